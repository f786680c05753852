-- Security keys and passkeys (WebAuthn) as second factors.

-- The 2FA row of an account (its mode and state) may now come without a TOTP secret: an account
-- whose second factors are only keys. `secret_sealed` is then empty.
ALTER TABLE totp ADD COLUMN has_totp INTEGER NOT NULL DEFAULT 1;

CREATE TABLE security_keys (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id        INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name           TEXT    NOT NULL,
    credential_id  TEXT    NOT NULL UNIQUE,       -- base64url, as the authenticator made it
    credential     TEXT    NOT NULL,              -- public key and counter (webauthn-rs, JSON)
    counter        INTEGER NOT NULL DEFAULT 0,
    backup_state   INTEGER NOT NULL DEFAULT 0,    -- a synced passkey (backed up)
    created_at     INTEGER NOT NULL,
    last_used_at   INTEGER
);
CREATE INDEX security_keys_user ON security_keys (user_id);

-- A registration or an assertion under way: single use, expiring, kept here so that a ceremony
-- begun on one instance completes on another.
CREATE TABLE webauthn_ceremonies (
    id_hash     TEXT    PRIMARY KEY,              -- SHA-256 of the id the page holds
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind        TEXT    NOT NULL,                 -- 'register' | 'authenticate'
    bound_to    TEXT    NOT NULL,                 -- the session or handshake that began it
    state       TEXT    NOT NULL,                 -- webauthn-rs ceremony state, JSON
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
