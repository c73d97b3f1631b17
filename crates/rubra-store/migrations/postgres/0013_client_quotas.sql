-- A client's own quotas, set by an admin with PATCH /clients/{id} (issue #18): a JSON object
-- of the quotas that differ from the server's defaults, e.g. {"subscriptions": 5000}; NULL or
-- a missing name: the default (--max-subscriptions-per-client and the like).
ALTER TABLE clients ADD COLUMN quotas TEXT;
