"""What query.py and paired.py share: one timed GET /stats and the four kinds of query."""
import json, time, urllib.parse


def timed_get(conn, key, query):
    """GET /stats?<query> on a kept-alive connection: (wall ms, parsed answer); asserts 200."""
    t = time.perf_counter()
    conn.request("GET", "/stats?" + query, headers={"Authorization": "Bearer " + key})
    r = conn.getresponse()
    body = r.read()
    dt = (time.perf_counter() - t) * 1000
    assert r.status == 200, (r.status, body)
    return dt, json.loads(body)


def query_kinds(rng, start, now, days):
    """Name → a function drawing that kind's next query parameters from `rng`."""
    def rand_range():
        return sorted(rng.randrange(start, now) for _ in range(2))

    return {
        "random range (ms edges), random threshold (6 decimals)":
            lambda: dict(zip(("from", "to"), rand_range()), threshold=f"{rng.random():.6f}"),
        "random range (ms edges), 2-decimal threshold":
            lambda: dict(zip(("from", "to"), rand_range()), threshold=f"{rng.randrange(100) / 100:.2f}"),
        f"all {days} days, random threshold (6 decimals)":
            lambda: {"from": start, "to": now, "threshold": f"{rng.random():.6f}"},
        f"all {days} days, bucket=1h, random threshold (6 decimals)":
            lambda: {"from": start, "to": now, "threshold": f"{rng.random():.6f}", "bucket": "1h"},
    }


def encode(params):
    """The query string of `params`."""
    return urllib.parse.urlencode(params)
