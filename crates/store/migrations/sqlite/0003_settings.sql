-- Registry-wide settings changed at run time (`tessera admin policy`), shared by every instance.
CREATE TABLE settings (
    key         TEXT    PRIMARY KEY,
    value       TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL
);
