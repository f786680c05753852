-- Uplinks: packages proxied from upstream registries, cached here, and the names an admin let
-- be published although they exist upstream.

-- An upstream packument as the uplink last sent it (gzipped JSON), or its 404.
CREATE TABLE upstream_packuments (
    name        TEXT    PRIMARY KEY,
    uplink      TEXT    NOT NULL,              -- the uplink's name in the configuration
    status      INTEGER NOT NULL,              -- 200, or 404 (a negative answer, kept briefly)
    etag        TEXT,                          -- for If-None-Match
    body        BLOB    NOT NULL,              -- gzipped JSON (empty for a 404)
    fetched_at  INTEGER NOT NULL,              -- when the body last changed
    checked_at  INTEGER NOT NULL               -- when the uplink last confirmed it
);

-- Tarballs fetched from an uplink, stored in the blob store after their integrity was checked.
CREATE TABLE upstream_tarballs (
    name            TEXT    NOT NULL,
    version         TEXT    NOT NULL,
    uplink          TEXT    NOT NULL,
    tarball_sha512  TEXT    NOT NULL,
    integrity       TEXT    NOT NULL,          -- sha512-… of the stored bytes
    size            INTEGER NOT NULL,
    fetched_at      INTEGER NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX upstream_tarballs_by_blob ON upstream_tarballs (tarball_sha512);

-- Each uplink's circuit breaker, shared by every instance.
CREATE TABLE uplink_health (
    uplink           TEXT    PRIMARY KEY,
    fails            INTEGER NOT NULL,         -- failures in a row
    down_until       INTEGER NOT NULL,         -- skipped until then (0: up)
    last_error       TEXT,
    last_failure_at  INTEGER,
    last_success_at  INTEGER
);

-- Who is fetching what from an uplink right now, so that instances do not fetch it twice.
CREATE TABLE upstream_fetches (
    key     TEXT    PRIMARY KEY,
    holder  TEXT    NOT NULL,
    until   INTEGER NOT NULL
);

-- Unscoped names an admin allowed to be published here although they exist upstream.
CREATE TABLE allowed_names (
    name        TEXT    PRIMARY KEY,
    allowed_by  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);
