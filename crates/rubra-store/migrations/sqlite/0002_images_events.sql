-- Images are content-addressed per client: id = lowercase hex SHA-256 of the bytes.
CREATE TABLE images (
    client_id   TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    format      TEXT NOT NULL,
    width       INTEGER NOT NULL,
    height      INTEGER NOT NULL,
    bytes       INTEGER NOT NULL,
    red         REAL NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (client_id, id)
);
CREATE INDEX images_client_newest ON images (client_id, created_at DESC, id DESC);
CREATE INDEX images_newest ON images (created_at DESC, id DESC);

-- One row per red measurement (RED_STATS events). ts is epoch ms UTC.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    client_id   TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    image_id    TEXT,
    red         REAL NOT NULL,
    ts          INTEGER NOT NULL
);
CREATE INDEX events_client_ts ON events (client_id, ts);
