-- RED_STATS storage (see the rubra-store `stats` module docs for the design).
-- bin: the coarse value bin of red (0 = exactly 0, c = ((c-1)/1000, c/1000]).
ALTER TABLE events ADD COLUMN bin INTEGER NOT NULL DEFAULT 0;

-- Covering indexes: the ragged edges of a range, and exact counting next to a threshold.
DROP INDEX events_client_ts;
CREATE INDEX events_client_ts_red ON events (client_id, ts) INCLUDE (red);
CREATE INDEX events_client_bin_ts ON events (client_id, bin, ts) INCLUDE (red);

-- Per client (and '*' = all clients), per whole minute (level 0), hour (1) and day (2): a
-- histogram of red over 10 001 fine bins, updated in the events' own transaction.
CREATE TABLE stats_rollups (
    client_id     TEXT NOT NULL,
    level         SMALLINT NOT NULL,
    period_start  BIGINT NOT NULL,
    total         BIGINT NOT NULL,
    hist          BYTEA NOT NULL,
    PRIMARY KEY (client_id, level, period_start)
);
-- The histograms are varints already: skip compression, it would only cost reads.
ALTER TABLE stats_rollups ALTER COLUMN hist SET STORAGE EXTERNAL;
