-- Registry signatures: the keys that sign `<name>@<version>:<integrity>`, and each version's
-- signatures (served as `dist.signatures`).

CREATE TABLE signing_keys (
    keyid           TEXT    COLLATE "C" PRIMARY KEY,
    public_key      TEXT    NOT NULL,
    sealed_private  BYTEA   NOT NULL,
    created_at      BIGINT  NOT NULL,
    expires_at      BIGINT
);
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys ((1)) WHERE expires_at IS NULL;

ALTER TABLE versions ADD COLUMN signatures TEXT;
