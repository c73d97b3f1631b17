-- Webhook secret rotation (issue #19): POST /subscriptions/{id}/rotate-secret moves the secret
-- here and stores a new one; until previous_secret_until (epoch ms) deliveries are signed with
-- both. Both columns hold values sealed by the service (enc:v1:…), never plaintext: a
-- migration has no key, so the values that exist are sealed in code when a process starts.
ALTER TABLE subscriptions ADD COLUMN previous_secret TEXT;
ALTER TABLE subscriptions ADD COLUMN previous_secret_until BIGINT;
