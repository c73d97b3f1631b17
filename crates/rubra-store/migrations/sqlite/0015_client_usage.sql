-- What each client stores (issue #18): the bytes of its images, kept in the transactions that
-- insert and delete image records, so the --max-image-bytes-per-client quota is checked with
-- one row read instead of a sum over every image.
CREATE TABLE client_usage (
    client_id    TEXT PRIMARY KEY REFERENCES clients(id) ON DELETE CASCADE,
    image_bytes  INTEGER NOT NULL DEFAULT 0
);
INSERT INTO client_usage (client_id, image_bytes)
    SELECT client_id, SUM(bytes) FROM images GROUP BY client_id;
