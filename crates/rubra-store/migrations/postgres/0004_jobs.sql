-- CSV jobs (DESIGN §6): a queue leased to workers. A worker owns a running job while
-- lease_until is in the future and proves it by (lease_owner, attempts); a heartbeat extends
-- the lease and stores progress; an expired lease lets any worker take the job over.
CREATE TABLE jobs (
    id                TEXT PRIMARY KEY,                 -- job_ + 16 hex
    seq               BIGINT GENERATED ALWAYS AS IDENTITY, -- submission order within a millisecond
    client_id         TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    source            TEXT NOT NULL,                    -- as submitted: s3://b/k or a relative path
    step              INTEGER NOT NULL,
    delimiter         INTEGER NOT NULL,                 -- the delimiter byte
    header            BOOLEAN NOT NULL,
    skip_invalid      BOOLEAN NOT NULL,
    state             TEXT NOT NULL,                    -- queued | running | succeeded | failed | canceled
    created_at        BIGINT NOT NULL,
    started_at        BIGINT,
    finished_at       BIGINT,
    run_after         BIGINT NOT NULL,                 -- not claimable before (retry backoff)
    attempts          INTEGER NOT NULL DEFAULT 0,       -- claims so far; also the lease's fencing token
    max_attempts      INTEGER NOT NULL,
    lease_owner       TEXT,
    lease_until       BIGINT,
    cancel_requested  BOOLEAN NOT NULL DEFAULT FALSE,
    bytes_done        BIGINT NOT NULL DEFAULT 0,
    bytes_total       BIGINT,
    rows_done         BIGINT NOT NULL DEFAULT 0,
    result            TEXT,                             -- JSON {rows, columns}, written once
    error_code        TEXT,
    error             TEXT
);
CREATE INDEX jobs_claimable ON jobs (state, run_after);
CREATE INDEX jobs_client_state ON jobs (client_id, state);
CREATE INDEX jobs_client_newest ON jobs (client_id, created_at DESC, id DESC);
CREATE INDEX jobs_newest ON jobs (created_at DESC, id DESC);
