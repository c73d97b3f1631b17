-- Subscriptions and their notifications (the outbox). A notification row is written in the
-- same transaction as the event that caused it; delivery workers lease rows from here.
CREATE TABLE subscriptions (
    id                    TEXT PRIMARY KEY,           -- sub_ + 16 hex
    client_id             TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    threshold             DOUBLE PRECISION NOT NULL,              -- notify when red > threshold
    channel_type          TEXT NOT NULL,              -- webhook | viber | stream
    channel               TEXT NOT NULL,              -- the channel JSON as given (secrets included)
    secret                TEXT,                       -- whsec_… for webhooks
    state                 TEXT NOT NULL DEFAULT 'active', -- active | paused (see paused_reason)
    paused_reason         TEXT,
    consecutive_failures  BIGINT NOT NULL DEFAULT 0,
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
    -- pending: due at next_attempt_at (a claim pushes next_attempt_at to the lease's end, so
    --          a dead worker's notification is simply due again then)
    -- delivered | failed (retries ran out) | held (its subscription is paused)
    -- | canceled (its subscription was deleted) | stream (stream channel: nothing to send)
    state            TEXT NOT NULL DEFAULT 'pending',
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    lease_owner      TEXT,
    lease_until      BIGINT,
    delivered_at     BIGINT,
    last_error       TEXT
);
-- Only pending rows are ever looked for by time, so the index holds only those.
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE state = 'pending';
CREATE INDEX notifications_subscription_state ON notifications (subscription_id, state);
CREATE INDEX notifications_client_seq ON notifications (client_id, seq);

-- The delivery log: one row per attempt.
CREATE TABLE delivery_attempts (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_seq BIGINT NOT NULL,
    subscription_id  TEXT NOT NULL,
    client_id        TEXT NOT NULL,
    attempt          BIGINT NOT NULL,
    at               BIGINT NOT NULL,
    outcome          TEXT NOT NULL,                   -- delivered | failed | retrying
    status_code      BIGINT,
    latency_ms       BIGINT NOT NULL,
    error            TEXT
);
CREATE INDEX delivery_attempts_client ON delivery_attempts (client_id, id);
CREATE INDEX delivery_attempts_subscription ON delivery_attempts (subscription_id, id);

-- The doorbell: other processes' delivery workers and live streams LISTEN here. The payload
-- is the client id; PostgreSQL folds identical payloads of one transaction into one message.
-- Listeners also poll, since NOTIFY has no replay.
CREATE FUNCTION rubra_notifications_doorbell() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('rubra_notifications', NEW.client_id);
    RETURN NULL;
END
$$;
CREATE TRIGGER notifications_doorbell AFTER INSERT ON notifications
    FOR EACH ROW EXECUTE FUNCTION rubra_notifications_doorbell();
