-- tessera core schema (SQLite). Times are Unix milliseconds (INTEGER).
-- The PostgreSQL schema mirrors this one table for table.

CREATE TABLE users (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT    NOT NULL UNIQUE,
    email           TEXT    NOT NULL,
    email_verified  INTEGER NOT NULL DEFAULT 0,
    password_hash   TEXT    NOT NULL,
    fullname        TEXT,
    homepage        TEXT,
    twitter         TEXT,
    github          TEXT,
    freenode        TEXT,
    is_admin        INTEGER NOT NULL DEFAULT 0,
    locked          INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE TABLE invitations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL,
    email       TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);
CREATE INDEX invitations_name ON invitations (name);

CREATE TABLE tokens (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash      TEXT    NOT NULL UNIQUE,
    display_prefix  TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    name            TEXT,
    description     TEXT,
    readonly        INTEGER NOT NULL DEFAULT 0,
    bypass_2fa      INTEGER NOT NULL DEFAULT 0,
    cidr_whitelist  TEXT    NOT NULL DEFAULT '[]',
    grants          TEXT    NOT NULL DEFAULT '{}',
    expires_at      INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX tokens_user ON tokens (user_id);

CREATE TABLE packages (
    id                        INTEGER PRIMARY KEY AUTOINCREMENT,
    name                      TEXT    NOT NULL UNIQUE,
    access                    TEXT    NOT NULL,
    rev                       INTEGER NOT NULL DEFAULT 1,
    description               TEXT,
    keywords                  TEXT    NOT NULL DEFAULT '[]',
    publish_requires_tfa      INTEGER NOT NULL DEFAULT 0,
    automation_overrides_tfa  INTEGER NOT NULL DEFAULT 0,
    created_at                INTEGER NOT NULL,
    modified_at               INTEGER NOT NULL
);

CREATE TABLE versions (
    package_id       INTEGER NOT NULL REFERENCES packages (id) ON DELETE CASCADE,
    version          TEXT    NOT NULL,
    manifest         TEXT    NOT NULL,
    readme           TEXT,
    tarball_sha512   TEXT    NOT NULL,
    shasum           TEXT    NOT NULL,
    integrity        TEXT    NOT NULL,
    size             INTEGER NOT NULL,
    deprecated       TEXT,
    publisher_id     INTEGER REFERENCES users (id) ON DELETE SET NULL,
    published_at     INTEGER NOT NULL,
    PRIMARY KEY (package_id, version)
);
CREATE INDEX versions_blob ON versions (tarball_sha512);

-- Versions once published and then unpublished can never be published again.
CREATE TABLE retired_versions (
    package_name  TEXT    NOT NULL,
    version       TEXT    NOT NULL,
    retired_at    INTEGER NOT NULL,
    PRIMARY KEY (package_name, version)
);

CREATE TABLE dist_tags (
    package_id  INTEGER NOT NULL REFERENCES packages (id) ON DELETE CASCADE,
    tag         TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    PRIMARY KEY (package_id, tag)
);

CREATE TABLE maintainers (
    package_id  INTEGER NOT NULL REFERENCES packages (id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (package_id, user_id)
);
CREATE INDEX maintainers_user ON maintainers (user_id);

CREATE TABLE stars (
    package_id  INTEGER NOT NULL REFERENCES packages (id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (package_id, user_id)
);
