-- Images are content-addressed per client: id = lowercase hex SHA-256 of the bytes.
CREATE TABLE images (
    client_id   TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    format      TEXT NOT NULL,
    width       BIGINT NOT NULL,
    height      BIGINT NOT NULL,
    bytes       BIGINT NOT NULL,
    red         DOUBLE PRECISION NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (client_id, id)
);
CREATE INDEX images_client_newest ON images (client_id, created_at DESC, id DESC);
CREATE INDEX images_newest ON images (created_at DESC, id DESC);

-- One row per red measurement (RED_STATS events). ts is epoch ms UTC.
CREATE TABLE events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id   TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    image_id    TEXT,
    red         DOUBLE PRECISION NOT NULL,
    ts          BIGINT NOT NULL
);
CREATE INDEX events_client_ts ON events (client_id, ts);
