-- A counter bumped by every write that changes what a token grants (token revoked, account
-- locked or changed, 2FA changed). Running servers poll it to drop their cached token lookups,
-- so changes made by `tessera admin` (another process) reach them too.
CREATE TABLE auth_epoch (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    value  INTEGER NOT NULL
);
INSERT INTO auth_epoch (id, value) VALUES (1, 0);
