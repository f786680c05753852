-- The website: server-side sessions, and the browser handshakes of `npm login` (web login) and
-- of web-confirmed one-time passwords.

CREATE TABLE sessions (
    id_hash           TEXT    PRIMARY KEY,          -- SHA-256 of the cookie value
    user_id           INTEGER REFERENCES users (id) ON DELETE CASCADE,
    stage             TEXT    NOT NULL,             -- 'anonymous' | 'partial' | 'full'
    csrf              TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    last_seen_at      INTEGER NOT NULL,
    authenticated_at  INTEGER NOT NULL,             -- last proof of a factor (re-authentication)
    otp_attempts      INTEGER NOT NULL DEFAULT 0,   -- wrong codes on a partial sign-in
    return_to         TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_seen ON sessions (last_seen_at);

CREATE TABLE handshakes (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT    NOT NULL,               -- 'login' | 'otp'
    login_hash      TEXT    NOT NULL UNIQUE,        -- SHA-256 of the id in the browser URL
    done_hash       TEXT    NOT NULL UNIQUE,        -- SHA-256 of the id npm polls
    create_account  INTEGER NOT NULL DEFAULT 0,     -- `npm adduser`
    user_id         INTEGER REFERENCES users (id) ON DELETE CASCADE,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    approved_at     INTEGER,
    denied_at       INTEGER,
    used_at         INTEGER,
    result_hash     TEXT,                           -- web OTP: hash of the code handed to npm
    result_used_by  TEXT,
    result_used_at  INTEGER
);

ALTER TABLE users ADD COLUMN web_otp INTEGER NOT NULL DEFAULT 0;
