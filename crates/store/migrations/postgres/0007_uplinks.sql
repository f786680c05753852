-- Uplinks: packages proxied from upstream registries, cached here, and the names an admin let
-- be published although they exist upstream.

-- An upstream packument as the uplink last sent it (gzipped JSON), or its 404.
CREATE TABLE upstream_packuments (
    name        TEXT    COLLATE "C" PRIMARY KEY,
    uplink      TEXT    NOT NULL,              -- the uplink's name in the configuration
    status      BIGINT  NOT NULL,              -- 200, or 404 (a negative answer, kept briefly)
    etag        TEXT,                          -- for If-None-Match
    body        BYTEA   NOT NULL,              -- gzipped JSON (empty for a 404)
    fetched_at  BIGINT  NOT NULL,              -- when the body last changed
    checked_at  BIGINT  NOT NULL               -- when the uplink last confirmed it
);

-- Tarballs fetched from an uplink, stored in the blob store after their integrity was checked.
CREATE TABLE upstream_tarballs (
    name            TEXT    COLLATE "C" NOT NULL,
    version         TEXT    COLLATE "C" NOT NULL,
    uplink          TEXT    NOT NULL,
    tarball_sha512  TEXT    NOT NULL,
    integrity       TEXT    NOT NULL,          -- sha512-… of the stored bytes
    size            BIGINT  NOT NULL,
    fetched_at      BIGINT  NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX upstream_tarballs_by_blob ON upstream_tarballs (tarball_sha512);

-- Each uplink's circuit breaker, shared by every instance.
CREATE TABLE uplink_health (
    uplink           TEXT    PRIMARY KEY,
    fails            BIGINT  NOT NULL,         -- failures in a row
    down_until       BIGINT  NOT NULL,         -- skipped until then (0: up)
    last_error       TEXT,
    last_failure_at  BIGINT,
    last_success_at  BIGINT
);

-- Who is fetching what from an uplink right now, so that instances do not fetch it twice.
CREATE TABLE upstream_fetches (
    key     TEXT    PRIMARY KEY,
    holder  TEXT    NOT NULL,
    until   BIGINT  NOT NULL
);

-- Unscoped names an admin allowed to be published here although they exist upstream.
CREATE TABLE allowed_names (
    name        TEXT    COLLATE "C" PRIMARY KEY,
    allowed_by  TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);
