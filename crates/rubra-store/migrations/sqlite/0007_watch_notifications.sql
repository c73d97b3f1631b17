-- A watch may name a subscription of its client: each poll that finds changes then writes
-- one notification, in the same transaction as the changes (the outbox). Such a notification
-- carries the watch and its changes (a JSON array); red and threshold are 0 for it.
ALTER TABLE watches ADD COLUMN subscription_id TEXT;
ALTER TABLE notifications ADD COLUMN watch_id TEXT;
ALTER TABLE notifications ADD COLUMN changes TEXT;
