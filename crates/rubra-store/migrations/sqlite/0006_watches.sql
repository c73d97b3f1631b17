-- Watches (DESIGN §8): JSON sources polled by whichever process holds the watch's lease.
-- A process holds a watch while lease_until is in the future and proves it by
-- (lease_owner, lease_gen); every write of a poll's outcome matches both, so a process whose
-- lease was taken over writes nothing. doc is the last document seen: the baseline the next
-- poll is diffed against, whichever process makes it.
CREATE TABLE watches (
    id             TEXT PRIMARY KEY,                  -- wat_ + 16 hex
    client_id      TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    url            TEXT NOT NULL,
    interval_ms    INTEGER NOT NULL,
    pointer        TEXT,                              -- JSON Pointer of the watched part
    array_key      TEXT,                              -- match array elements by this field
    headers        TEXT NOT NULL DEFAULT '[]',        -- JSON [[name, value], …]
    created_at     INTEGER NOT NULL,
    lease_owner    TEXT,
    lease_gen      INTEGER NOT NULL DEFAULT 0,        -- claims so far: the fencing token
    lease_until    INTEGER NOT NULL DEFAULT 0,
    doc            TEXT,
    etag           TEXT,
    last_modified  TEXT,
    baseline_at    INTEGER,                           -- first successful poll
    last_ok_at     INTEGER,
    last_error     TEXT,
    last_error_at  INTEGER,
    failures       INTEGER NOT NULL DEFAULT 0,        -- consecutive failed polls
    last_seq       INTEGER NOT NULL DEFAULT 0         -- seq of the newest change
);
CREATE INDEX watches_client ON watches (client_id, created_at, id);
CREATE INDEX watches_lease ON watches (lease_until);

-- Each change of a watched document; seq counts per watch from 1 (the SSE event id).
CREATE TABLE watch_changes (
    watch_id  TEXT NOT NULL REFERENCES watches(id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    ts        INTEGER NOT NULL,
    path      TEXT NOT NULL,                          -- JSON Pointer into the fetched document
    op        TEXT NOT NULL,                          -- add | remove | replace
    old       TEXT,                                   -- JSON, exactly as the source wrote it
    new       TEXT,
    PRIMARY KEY (watch_id, seq)
) WITHOUT ROWID;
