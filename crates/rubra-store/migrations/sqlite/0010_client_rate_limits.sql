-- A client's own request rate limit, set by an admin with PATCH /clients/{id}. NULL: the
-- server's default (--rate-limit-rps / --rate-limit-burst). Read with the key on every cache
-- refresh, so a change reaches every process within the key cache's lifetime.
ALTER TABLE clients ADD COLUMN rate_limit_rps INTEGER
    CHECK (rate_limit_rps BETWEEN 1 AND 4294967295);
ALTER TABLE clients ADD COLUMN rate_limit_burst INTEGER
    CHECK (rate_limit_burst BETWEEN 1 AND 4294967295);
