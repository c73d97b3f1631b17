"""The raw ceiling: Python's sqlite3 inserting the same rows (same schema and indexes as
migration 0008, WAL, synchronous=NORMAL) in transactions of BATCH rows, no HTTP, no rollups. Prints rows/s."""
import os, random, sqlite3, sys, tempfile, time

batch = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 10
d = tempfile.mkdtemp()
db = sqlite3.connect(os.path.join(d, "b.db"), isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=NORMAL")
db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, ckey INTEGER NOT NULL, image_id TEXT, red REAL NOT NULL, ts INTEGER NOT NULL, bin INTEGER NOT NULL)")
db.execute("CREATE INDEX a ON events (ckey, ts, red)")
db.execute("CREATE INDEX b ON events (ckey, bin, ts, red)")
client = 1
n = 0
start = time.time()
while time.time() - start < seconds:
    now = int(time.time() * 1000)
    rows = []
    for _ in range(batch):
        r = random.random()
        rows.append((client, None, r, now, int(r * 1000) + 1))
    db.execute("BEGIN")
    db.executemany("INSERT INTO events (ckey, image_id, red, ts, bin) VALUES (?,?,?,?,?)", rows)
    db.execute("COMMIT")
    n += batch
print(f"{n / (time.time() - start):.0f}")
