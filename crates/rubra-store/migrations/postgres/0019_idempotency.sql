-- Idempotency keys (issue #21): a POST that carries `Idempotency-Key` is recorded here under
-- (subject, key) with a hash of the request; a retry with the same key and the same request
-- within 24 h is answered with the stored status and body instead of doing the work again.
-- status is NULL while the first request runs. subject is the client's id ('admin' for the
-- admin keys together).
CREATE TABLE idempotency_keys (
    subject       TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    status        BIGINT,
    content_type  TEXT,
    body          BYTEA,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (subject, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
