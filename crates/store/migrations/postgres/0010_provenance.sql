-- Provenance: the Sigstore bundles `npm publish --provenance` attaches, verified at publish and
-- served at `/-/npm/v1/attestations/<name>@<version>`.
CREATE TABLE provenance (
    package_id      BIGINT  NOT NULL,
    version         TEXT    COLLATE "C" NOT NULL,
    predicate_type  TEXT    NOT NULL,        -- https://slsa.dev/provenance/v1
    bundle          TEXT    NOT NULL,        -- the bundle as the client sent it (JSON)
    summary         TEXT    NOT NULL,        -- what was verified: issuer, repository, commit, workflow, run (JSON)
    created_at      BIGINT  NOT NULL,
    PRIMARY KEY (package_id, version),
    FOREIGN KEY (package_id, version) REFERENCES versions (package_id, version) ON DELETE CASCADE
);

-- A package whose publishes must carry a valid provenance bundle.
ALTER TABLE packages ADD COLUMN provenance_required BOOLEAN NOT NULL DEFAULT FALSE;

-- A staged publish keeps its verified bundle until it is approved: the `provenance` row's
-- columns as JSON ({predicate_type, bundle, summary}).
ALTER TABLE staged_versions ADD COLUMN provenance TEXT;
