-- The audit log (issue #19): who (key id, actor kind), what (action, target, detail), when and
-- from where (peer address) for every admin action, key creation and revocation, client
-- disabling and every create/delete of subscriptions, watches and overlays. Each row is written
-- in the same transaction as the change it records. client_id is the client whose data changed
-- (NULL for installation-wide actions); a client reads the rows of its own id.
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    client_id TEXT,
    actor_kind TEXT NOT NULL,
    actor_key_id TEXT,
    peer TEXT,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX audit_log_client ON audit_log (client_id, seq);
CREATE INDEX audit_log_at ON audit_log (at);
