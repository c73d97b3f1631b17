-- Commit records of the event writer (issue #26): every group transaction of the writer
-- inserts one row under a fresh random token, with the per-op results it answers. When a
-- commit's answer is lost (the connection dropped while PostgreSQL committed), the writer
-- looks the token up to learn whether the group was written, instead of answering a stored
-- batch as failed or writing it a second time. Rows older than ten minutes are deleted by
-- the writer itself; results: per op, '1'/'0' per image (new or not), ops joined by ';'.
CREATE TABLE write_commits (
    token    TEXT PRIMARY KEY,
    at_ms    BIGINT NOT NULL,
    results  TEXT NOT NULL
);
CREATE INDEX write_commits_at_ms ON write_commits (at_ms);
