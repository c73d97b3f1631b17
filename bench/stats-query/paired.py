"""Paired A/B of GET /stats: two running rubra servers on the SAME data (e.g. an old and a new
build over one filled folder), each request sent to both with the same parameters, in turns
(A then B, then B then A), so drift in the machine's load falls on both alike. Prints, per
query kind, each server's median and the median of the per-pair ratios B/A.

usage: paired.py BASE_A BASE_B API_KEY DAYS N"""
import http.client, random, statistics, sys, time, urllib.parse

from kinds import encode, query_kinds, timed_get

base_a, base_b, key, days, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
conns = []
for base in (base_a, base_b):
    u = urllib.parse.urlparse(base)
    conns.append(http.client.HTTPConnection(u.hostname, u.port))
now = int(time.time() * 1000)
span = days * 86_400_000
start = now - span
rng = random.Random(11)

def get(conn, q):
    return timed_get(conn, key, q)

kinds = query_kinds(rng, start, now, days)
print(f"| GET /stats, {n} pairs each | A median ms | B median ms | median of B/A per pair |")
print("|---|---:|---:|---:|")
for name, make in kinds.items():
    q = encode(make())
    get(conns[0], q), get(conns[1], q)  # warm
    a, b = [], []
    for i in range(n):
        q = encode(make())
        order = (0, 1) if i % 2 == 0 else (1, 0)
        got = {}
        for side in order:
            got[side] = get(conns[side], q)
        assert got[0][1] == got[1][1], (q, got[0][1], got[1][1])
        a.append(got[0][0])
        b.append(got[1][0])
    ratio = statistics.median(y / x for x, y in zip(a, b))
    print(f"| {name} | {statistics.median(a):.2f} | {statistics.median(b):.2f} | {ratio:.3f} |")
