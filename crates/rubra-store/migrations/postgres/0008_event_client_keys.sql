-- Events name their client by a small integer key instead of the text id: every event row and
-- both of its index entries shrink by the id's length, which is most of an index entry, so
-- ingest writes fewer pages and compares integers (see the rubra-store `stats` docs).
-- Keys are handed out by the event writer the first time a client records an event.
CREATE TABLE client_keys (
    ckey       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id  TEXT NOT NULL UNIQUE REFERENCES clients(id) ON DELETE CASCADE
);
INSERT INTO client_keys (client_id) SELECT DISTINCT client_id FROM events ORDER BY client_id;

ALTER TABLE events ADD COLUMN ckey BIGINT;
UPDATE events e SET ckey = k.ckey FROM client_keys k WHERE k.client_id = e.client_id;
ALTER TABLE events ALTER COLUMN ckey SET NOT NULL;
DROP INDEX events_client_ts_red;
DROP INDEX events_client_bin_ts;
ALTER TABLE events DROP COLUMN client_id;

-- Covering indexes: the ragged edges of a range, and exact counting next to a threshold.
CREATE INDEX events_key_ts_red ON events (ckey, ts) INCLUDE (red);
CREATE INDEX events_key_bin_ts ON events (ckey, bin, ts) INCLUDE (red);
