-- Browser confirmations (web OTP) where the registry requires a security key: the handshake
-- records that it asked for one, and whether the browser confirmed with one, so the one-time
-- code npm collects counts as a key only when it was.
ALTER TABLE handshakes ADD COLUMN needs_key INTEGER NOT NULL DEFAULT 0;
ALTER TABLE handshakes ADD COLUMN approved_with_key INTEGER NOT NULL DEFAULT 0;

-- An authenticator app offered to an account whose second factors were only keys: the secret
-- waits in `secret_sealed` (with `has_totp` still 0) until its first code confirms it.
ALTER TABLE totp ADD COLUMN offered_at INTEGER;
