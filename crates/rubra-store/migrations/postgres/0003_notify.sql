-- Subscriptions and their notifications (the outbox). A notification row is written in the
-- same transaction as the event that caused it; delivery workers lease rows from here.
CREATE TABLE subscriptions (
    id                    TEXT PRIMARY KEY,           -- sub_ + 16 hex
    client_id             TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    threshold             DOUBLE PRECISION NOT NULL,              -- notify when red > threshold
    channel_type          TEXT NOT NULL,              -- webhook | viber | stream
    channel               TEXT NOT NULL,              -- the channel JSON as given (secrets included)
    secret                TEXT,                       -- whsec_… for webhooks
    state                 TEXT NOT NULL DEFAULT 'active', -- active | paused
    paused_reason         TEXT,
    consecutive_failures  INTEGER NOT NULL DEFAULT 0,
    created_at            BIGINT NOT NULL,
    deleted_at            BIGINT                     -- soft delete keeps the delivery log readable
);
CREATE INDEX subscriptions_client_threshold ON subscriptions (client_id, threshold);

-- seq is the notification's identity: the SSE event id and, as "ntf_{seq}", the webhook-id.
CREATE TABLE notifications (
    seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id        TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    subscription_id  TEXT NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,
    channel_type     TEXT NOT NULL,
    image_id         TEXT,
    red              DOUBLE PRECISION NOT NULL,
    threshold        DOUBLE PRECISION NOT NULL,
    event_ts         BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'pending', -- pending | delivered | failed
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    lease_owner      TEXT,
    lease_until      BIGINT,
    delivered_at     BIGINT,
    last_error       TEXT
);
CREATE INDEX notifications_due ON notifications (state, next_attempt_at);
CREATE INDEX notifications_client_seq ON notifications (client_id, seq);

-- The delivery log: one row per attempt.
CREATE TABLE delivery_attempts (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_seq BIGINT NOT NULL,
    subscription_id  TEXT NOT NULL,
    client_id        TEXT NOT NULL,
    attempt          INTEGER NOT NULL,
    at               BIGINT NOT NULL,
    outcome          TEXT NOT NULL,                   -- delivered | failed | retrying
    status_code      INTEGER,
    latency_ms       BIGINT NOT NULL,
    error            TEXT
);
CREATE INDEX delivery_attempts_client ON delivery_attempts (client_id, id);
CREATE INDEX delivery_attempts_subscription ON delivery_attempts (subscription_id, id);
