-- Trusted publishing: CI jobs exchange an OIDC identity token for a short-lived token that can
-- only publish one package.

-- Who may publish a package from CI: a provider's claims, as `npm trust` sends them. Keyed by
-- the package's name, which may not exist yet (a pending publisher creates it).
CREATE TABLE trusted_publishers (
    id           TEXT    PRIMARY KEY,          -- a UUID, shown by `npm trust list`
    package      TEXT    NOT NULL,
    kind         TEXT    NOT NULL,             -- github | gitlab | buildkite | generic
    claims       TEXT    NOT NULL,             -- JSON, canonical (sorted keys)
    permissions  TEXT    NOT NULL,             -- JSON array: createPackage, createStagedPackage
    bound        TEXT,                         -- JSON: immutable ids seen at the first exchange
    created_by   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    UNIQUE (package, kind, claims)
);

-- Identity tokens already exchanged (`jti`), kept until they expire: each is used once.
CREATE TABLE oidc_jtis (
    jti_hash    TEXT    PRIMARY KEY,
    expires_at  INTEGER NOT NULL
);
