-- Messages (issue #22, DESIGN §12): a subscription may match messages by type, and a message
-- makes one notification per matching subscription in the transaction that records it.
--
-- types: a JSON array of type patterns ("transaction.status", "payment.*"), NULL for a
-- subscription that matches no message. A subscription without a threshold (types only)
-- stores +Infinity there: "red > threshold" is then never true, so the event paths need no
-- change; the store reads it back as "no threshold".
ALTER TABLE subscriptions ADD COLUMN types TEXT;

-- One row per message accepted from a client: (client_id, id) makes a repeated id a duplicate.
CREATE TABLE messages (
    client_id    TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    id           TEXT NOT NULL,
    type         TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    PRIMARY KEY (client_id, id)
);
CREATE INDEX messages_received_at ON messages (received_at);

-- A notification made by a message carries what its channels send (red and threshold are 0).
ALTER TABLE notifications ADD COLUMN message_id TEXT;
ALTER TABLE notifications ADD COLUMN message_type TEXT;
ALTER TABLE notifications ADD COLUMN payload TEXT;   -- compact JSON, as the producer wrote it
ALTER TABLE notifications ADD COLUMN text TEXT;
ALTER TABLE notifications ADD COLUMN receiver TEXT;  -- overrides a Viber subscription's receiver
