-- Rollups split by value band (see the rubra-store `stats` module docs): a small period row
-- with the total and the counts per band of 100 fine bins, and one row per band holding that
-- band's fine-bin histogram. A query reads the period rows and at most the one band row the
-- threshold falls in; a write rewrites only the bands its events touch.
-- The old one-histogram rows are kept aside here; the `stats_bands` step of the backfill, run
-- by the same `migrate()` right after the migrations, converts them a page at a time (work per
-- period, not per event) and then drops them.
ALTER TABLE stats_rollups RENAME TO stats_rollups_old;

CREATE TABLE stats_periods (
    client_id     TEXT NOT NULL,
    level         SMALLINT NOT NULL,
    period_start  BIGINT NOT NULL,
    total         BIGINT NOT NULL,
    bands         BYTEA NOT NULL,
    PRIMARY KEY (client_id, level, period_start)
);

-- Band first: the band rows of one band over a range of periods are one index range.
CREATE TABLE stats_bands (
    client_id     TEXT NOT NULL,
    level         SMALLINT NOT NULL,
    band          SMALLINT NOT NULL,
    period_start  BIGINT NOT NULL,
    hist          BYTEA NOT NULL,
    PRIMARY KEY (client_id, level, band, period_start)
);
