-- Invitations are redeemed with a one-time secret (its SHA-256 kept here), sent to the invitee
-- as a link. Invitations made before this column existed have none and cannot be redeemed.
ALTER TABLE invitations ADD COLUMN secret_hash TEXT;
CREATE UNIQUE INDEX invitations_secret ON invitations (secret_hash);

-- Names whose every version was unpublished: for a while only their former maintainers
-- (user ids, comma-separated) may publish them again.
CREATE TABLE unpublished_names (
    name            TEXT    COLLATE "C" PRIMARY KEY,
    unpublished_at  BIGINT  NOT NULL,
    maintainers     TEXT    NOT NULL
);
