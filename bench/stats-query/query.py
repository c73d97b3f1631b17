"""Times GET /stats against a running rubra on a filled database and prints a table row per
query kind (median and p95 of N requests, client-side wall time over a kept-alive
connection). Also times the brute-force SQL count on the raw rows of the same SQLite file
(the design the rollups replace) for comparison.

usage: query.py BASE_URL API_KEY DAYS N [SQLITE_FILE CLIENT_ID]"""
import http.client, random, sqlite3, statistics, sys, time, urllib.parse

from kinds import encode, query_kinds, timed_get

base, key, days, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
db_file = sys.argv[5] if len(sys.argv) > 5 else None
client_id = sys.argv[6] if len(sys.argv) > 6 else None
u = urllib.parse.urlparse(base)
conn = http.client.HTTPConnection(u.hostname, u.port)
now = int(time.time() * 1000)
span = days * 86_400_000
start = now - span
rng = random.Random(11)

def get(params):
    return timed_get(conn, key, encode(params))

kinds = query_kinds(rng, start, now, days)
print(f"| GET /stats, {n} requests each | median ms | p95 ms | total events in range (last) |")
print("|---|---:|---:|---:|")
for name, make in kinds.items():
    get(make())  # warm
    times = []
    last = None
    for _ in range(n):
        dt, body = get(make())
        times.append(dt)
        last = body
    times.sort()
    print(f"| {name} | {statistics.median(times):.2f} | {times[int(0.95 * (len(times) - 1))]:.2f} | {last['total']:,} |")

if db_file:
    db = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        db.execute("SELECT COUNT(*), SUM(red > ?) FROM events "
                   "WHERE ckey = (SELECT ckey FROM client_keys WHERE client_id = ?) AND ts >= ? AND ts < ?",
                   (rng.random(), client_id, start, now)).fetchone()
        times.append((time.perf_counter() - t) * 1000)
    print(f"| brute force: SQL count over the raw rows, all {days} days (covering index; same file, same run, 3 runs) | {statistics.median(times):.2f} | {max(times):.2f} | |")
