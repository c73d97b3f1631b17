-- API key lifecycle (issue #19): many named keys per client, each with a public id, the first
-- characters of the token (to tell keys apart; never enough to use one), an optional expiry and
-- the last time it was used (written at most once a minute per key). Times are epoch ms.
ALTER TABLE api_keys ADD COLUMN id TEXT;
ALTER TABLE api_keys ADD COLUMN prefix TEXT;
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;
ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT;
-- Keys made before this migration get a random id; their prefix stays unknown (only the hash
-- was kept).
UPDATE api_keys SET id = 'key_' || substr(md5(random()::text || key_hash), 1, 16) WHERE id IS NULL;
CREATE UNIQUE INDEX api_keys_id ON api_keys(id);

-- A disabled client (PATCH /clients/{id} {"disabled": true}): its keys are refused, its jobs,
-- watches and deliveries are not claimed until it is enabled again. NULL: enabled.
ALTER TABLE clients ADD COLUMN disabled_at BIGINT;
