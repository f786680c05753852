-- Two-factor authentication: TOTP enrolment, recovery codes, failure counters, security log.

-- One row per account with 2FA pending or active.
CREATE TABLE totp (
    user_id         INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    mode            TEXT    NOT NULL,            -- 'auth-only' | 'auth-and-writes'
    pending         INTEGER NOT NULL,            -- 1 until the first code confirms it
    secret_sealed   BLOB    NOT NULL,            -- AES-256-GCM, never stored in clear
    started_at      INTEGER NOT NULL,
    confirmed_at    INTEGER,
    last_step       INTEGER,                     -- last accepted time step (replay guard)
    last_credential TEXT                         -- who consumed it (same credential may reuse it)
);

CREATE TABLE recovery_codes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash   TEXT    NOT NULL,
    used_at     INTEGER,
    used_by     TEXT
);
CREATE INDEX recovery_codes_user ON recovery_codes (user_id);

-- Failed attempts, counted in sliding windows: kind 'otp' (second factor) or 'password'.
CREATE TABLE auth_failures (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    kind     TEXT    NOT NULL,
    user_id  INTEGER,
    ip       TEXT    NOT NULL,
    at       INTEGER NOT NULL
);
CREATE INDEX auth_failures_user ON auth_failures (kind, user_id, at);
CREATE INDEX auth_failures_ip ON auth_failures (kind, ip, at);

CREATE TABLE security_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    ip          TEXT    NOT NULL,
    user_agent  TEXT    NOT NULL,
    detail      TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX security_events_user ON security_events (user_id, at);
