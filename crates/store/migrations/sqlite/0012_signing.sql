-- Registry signatures: the keys that sign `<name>@<version>:<integrity>`, and each version's
-- signatures (served as `dist.signatures`).

-- One current key (expires_at NULL) and the retired ones, kept so that versions signed before a
-- rotation still verify: a signature counts when the version was published before `expires_at`.
CREATE TABLE signing_keys (
    keyid           TEXT    PRIMARY KEY,     -- SHA256:<base64 of the SHA-256 of the SPKI>
    public_key      TEXT    NOT NULL,        -- base64 SPKI DER (ECDSA P-256)
    sealed_private  BLOB    NOT NULL,        -- PKCS#8, sealed like the TOTP secrets
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER                  -- NULL: the current key
);
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys ((1)) WHERE expires_at IS NULL;

-- `[{"keyid": …, "sig": …}]`; NULL until signed (versions published before keys existed).
ALTER TABLE versions ADD COLUMN signatures TEXT;
