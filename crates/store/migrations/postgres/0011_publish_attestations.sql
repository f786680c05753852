-- Publish attestations: the registry's own in-toto statement for a version (npm's publish
-- predicate), signed with the registry key and logged in a transparency log, served with the
-- version's provenance at `/-/npm/v1/attestations/<name>@<version>`.
CREATE TABLE publish_attestations (
    package_id      BIGINT  NOT NULL,
    version         TEXT    COLLATE "C" NOT NULL,
    keyid           TEXT    NOT NULL,        -- the registry key that signed it
    bundle          TEXT    NOT NULL,        -- the Sigstore bundle (JSON)
    integrated_at   BIGINT  NOT NULL,        -- when the log took it (Unix ms)
    PRIMARY KEY (package_id, version),
    FOREIGN KEY (package_id, version) REFERENCES versions (package_id, version) ON DELETE CASCADE
);
