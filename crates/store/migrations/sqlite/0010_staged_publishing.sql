-- Staged publishing: a version uploaded without a second factor (by CI, or `npm stage publish`)
-- waits here until a maintainer approves it with one, or rejects it.

CREATE TABLE staged_versions (
    id              TEXT    PRIMARY KEY,         -- a UUID, shown by `npm stage list`
    package_name    TEXT    NOT NULL,
    version         TEXT    NOT NULL,
    tag             TEXT    NOT NULL,
    access          TEXT,                        -- asked for with --access, if it was
    manifest        TEXT    NOT NULL,
    readme          TEXT,
    tarball_sha512  TEXT    NOT NULL,
    shasum          TEXT    NOT NULL,
    integrity       TEXT    NOT NULL,
    size            INTEGER NOT NULL,
    description     TEXT,
    keywords        TEXT    NOT NULL DEFAULT '[]',
    owner_id        INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    actor           TEXT    NOT NULL,            -- who staged it, as `npm stage view` shows
    actor_type      TEXT    NOT NULL,            -- user | token | oidc
    created_at      INTEGER NOT NULL,
    UNIQUE (package_name, version)               -- a staged version holds its number
);
CREATE INDEX staged_versions_by_blob ON staged_versions (tarball_sha512);

-- npm's "require two-factor authentication and disallow tokens", and "publishes from tokens and
-- trusted publishing must be staged".
ALTER TABLE packages ADD COLUMN tokens_refused INTEGER NOT NULL DEFAULT 0;
ALTER TABLE packages ADD COLUMN staged_publishes INTEGER NOT NULL DEFAULT 0;
