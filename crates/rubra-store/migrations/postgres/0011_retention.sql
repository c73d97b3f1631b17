-- Retention (issue #18): the sweeper deletes old delivery log rows, finished notifications,
-- watch changes and finished jobs by time, in small batches; these indexes let each batch
-- find its rows without scanning the table.
CREATE INDEX delivery_attempts_at ON delivery_attempts (at);
CREATE INDEX notifications_created ON notifications (created_at);
CREATE INDEX watch_changes_ts ON watch_changes (ts);
-- Only final jobs have a finished_at that the sweeper looks at.
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;

-- Named leases of cluster-wide chores (the retention sweeper): one process holds a lease
-- while lease_until (epoch ms) is in the future; a dead holder's lease simply expires.
CREATE TABLE chore_leases (
    name         TEXT PRIMARY KEY,
    owner        TEXT NOT NULL,
    lease_until  BIGINT NOT NULL
);
