-- Clients and their API keys. Times are epoch milliseconds (UTC) in both databases.
CREATE TABLE clients (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

-- Keys are stored as the hex SHA-256 of the bearer token; the token itself is never kept.
-- client_id is NULL for admin keys.
CREATE TABLE api_keys (
    key_hash    TEXT PRIMARY KEY,
    client_id   TEXT REFERENCES clients(id) ON DELETE CASCADE,
    is_admin    BOOLEAN NOT NULL,
    label       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    CHECK ((is_admin AND client_id IS NULL) OR (NOT is_admin AND client_id IS NOT NULL))
);
CREATE INDEX api_keys_client ON api_keys(client_id);

-- One-off facts about this installation, e.g. that the first admin key was created.
CREATE TABLE meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
