-- Events name their client by a small integer key instead of the text id: every event row and
-- both of its index entries shrink by the id's length, which is most of an index entry, so
-- ingest writes fewer pages and compares integers (see the rubra-store `stats` docs).
-- Keys are handed out by the event writer the first time a client records an event.
CREATE TABLE client_keys (
    ckey       INTEGER PRIMARY KEY,
    client_id  TEXT NOT NULL UNIQUE REFERENCES clients(id) ON DELETE CASCADE
);
INSERT INTO client_keys (client_id) SELECT DISTINCT client_id FROM events ORDER BY client_id;

CREATE TABLE events_by_key (
    id        INTEGER PRIMARY KEY,
    ckey      INTEGER NOT NULL,
    image_id  TEXT,
    red       REAL NOT NULL,
    ts        INTEGER NOT NULL,
    bin       INTEGER NOT NULL
);
INSERT INTO events_by_key (id, ckey, image_id, red, ts, bin)
    SELECT e.id, k.ckey, e.image_id, e.red, e.ts, e.bin
    FROM events e JOIN client_keys k ON k.client_id = e.client_id;
DROP TABLE events;
ALTER TABLE events_by_key RENAME TO events;

-- Covering indexes: the ragged edges of a range, and exact counting next to a threshold.
CREATE INDEX events_key_ts_red ON events (ckey, ts, red);
CREATE INDEX events_key_bin_ts ON events (ckey, bin, ts, red);
