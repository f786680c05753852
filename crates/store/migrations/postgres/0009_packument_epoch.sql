-- A counter bumped by writes that change packuments without going through a server's own
-- request path (`tessera admin sign-all`, a signing-key rotation): running servers poll it and
-- drop their rendered packuments, as they do their token lookups with `auth_epoch`.
CREATE TABLE packument_epoch (
    id     BIGINT  PRIMARY KEY CHECK (id = 1),
    value  BIGINT  NOT NULL
);
INSERT INTO packument_epoch (id, value) VALUES (1, 0);
