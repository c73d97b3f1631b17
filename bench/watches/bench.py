#!/usr/bin/env python3
"""Watches benchmark driver and checker (standard library only).

    bench.py run --server URL --key KEY --sim URL --serve-pid PID --sim-pid PID \
        --duration S --interval-ms MS --out FILE
    bench.py table --interval-ms MS FILE...

`run` creates one watch per simulated game, waits for every baseline, resumes the
simulator for S seconds, pauses it, waits 2 s, then compares per game the changes the
simulator made with those the watch recorded, and writes the figures to FILE as JSON.
`table` prints a markdown row per run and the medians per poller (the file name up to its
last `-`: `rubra-1.json`, `python-1.json`).
"""
import argparse
import difflib
import json
import os
import statistics
import sys
import time
import urllib.request
from datetime import datetime

TICK = os.sysconf("SC_CLK_TCK")


def request(method, url, key=None, body=None, expect=(200,)):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as r:
        if r.status not in expect:
            raise RuntimeError(f"{method} {url}: {r.status}")
        raw = r.read()
        return json.loads(raw) if raw else None


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fields = s[s.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def canon(v):
    """A JSON value in a form where 2.0 == 2 and member order does not matter."""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, dict):
        return {k: canon(x) for k, x in v.items()}
    if isinstance(v, list):
        return [canon(x) for x in v]
    return v


def key_of(c):
    return json.dumps(
        [c["path"], c["op"], canon(c.get("old")), canon(c.get("new"))], sort_keys=True
    )


def epoch_ms(ts):
    if isinstance(ts, (int, float)):
        return float(ts)
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000.0


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def run(a):
    games = request("GET", f"{a.sim}/games")["games"]
    watches = {}
    for g in games:
        w = request(
            "POST",
            f"{a.server}/watches",
            a.key,
            {"url": g["url"], "interval_ms": a.interval_ms},
            expect=(200, 201),
        )
        watches[w["id"]] = g["id"]

    deadline = time.time() + 120
    pending = set(watches)
    while pending:
        if time.time() > deadline:
            sys.exit(f"{len(pending)} watches without a baseline after 120 s")
        for wid in list(pending):
            if request("GET", f"{a.server}/watches/{wid}", a.key).get("baseline_at"):
                pending.discard(wid)
        if pending:
            time.sleep(0.5)

    serve0, sim0, wall0 = cpu_seconds(a.serve_pid), cpu_seconds(a.sim_pid), time.time()
    request("POST", f"{a.sim}/control/resume")
    time.sleep(a.duration)
    request("POST", f"{a.sim}/control/pause")
    time.sleep(2)
    serve1, sim1, wall1 = cpu_seconds(a.serve_pid), cpu_seconds(a.sim_pid), time.time()

    made = {g["id"]: [] for g in games}
    log = request("GET", f"{a.sim}/changes?since=0")["changes"]
    for c in log:
        made[c["game"]].append(c)

    totals = dict(made=len(log), recorded=0, matched=0, missing=0, extra=0, duplicates=0)
    latencies = []
    worst = []
    for wid, game in watches.items():
        rec, since = [], 0
        while True:
            page = request(
                "GET", f"{a.server}/watches/{wid}/changes?since={since}&limit=1000", a.key
            )
            rec += page["changes"]
            if not page["changes"]:
                break
            since = page["next_since"]
        totals["recorded"] += len(rec)
        mk, rk = [key_of(c) for c in made[game]], [key_of(c) for c in rec]
        sm = difflib.SequenceMatcher(a=mk, b=rk, autojunk=False)
        matched_keys = set()
        for tag, i1, i2, j1, j2 in sm.get_opcodes():
            if tag == "equal":
                totals["matched"] += i2 - i1
                for i, j in zip(range(i1, i2), range(j1, j2)):
                    matched_keys.add(mk[i])
                    lat = epoch_ms(rec[j]["ts"]) - made[game][i]["ts"]
                    latencies.append(lat)
                    worst.append((lat, game, made[game][i]["seq"]))
            else:
                totals["missing"] += i2 - i1
                totals["extra"] += j2 - j1
        # An extra record identical to one that was matched is a change stored twice.
        seen = {}
        for k in rk:
            seen[k] = seen.get(k, 0) + 1
        made_count = {}
        for k in mk:
            made_count[k] = made_count.get(k, 0) + 1
        totals["duplicates"] += sum(
            max(0, n - made_count.get(k, 0)) for k, n in seen.items() if k in matched_keys
        )

    limit = a.interval_ms + 200
    out = dict(
        totals,
        games=len(games),
        duration_s=a.duration,
        p50_ms=pct(latencies, 50),
        p99_ms=pct(latencies, 99),
        max_ms=max(latencies, default=float("nan")),
        within=sum(1 for x in latencies if x <= limit),
        serve_cpu_pct=100.0 * (serve1 - serve0) / (wall1 - wall0),
        sim_cpu_pct=100.0 * (sim1 - sim0) / (wall1 - wall0),
        slowest=sorted(worst, reverse=True)[:5],
    )
    with open(a.out, "w") as f:
        json.dump(out, f)
    print(
        f"run: made {out['made']}, recorded {out['recorded']}, missing {out['missing']}, "
        f"extra {out['extra']}, p99 {out['p99_ms']:.0f} ms, serve CPU {out['serve_cpu_pct']:.1f} %",
        file=sys.stderr,
    )


COLS = [
    ("made", "made", "{:d}"),
    ("recorded", "recorded", "{:d}"),
    ("missing", "missing", "{:d}"),
    ("extra", "extra", "{:d}"),
    ("duplicates", "twice", "{:d}"),
    ("p50_ms", "p50 ms", "{:.0f}"),
    ("p99_ms", "p99 ms", "{:.0f}"),
    ("max_ms", "max ms", "{:.0f}"),
    ("late", "late", "{:d}"),
    ("serve_cpu_pct", "poller CPU %", "{:.1f}"),
    ("sim_cpu_pct", "sim CPU %", "{:.1f}"),
]


def table(a):
    groups = {}
    for path in a.files:
        with open(path) as f:
            r = json.load(f)
        r["late"] = r["matched"] - r["within"]
        r["name"] = os.path.basename(path).removesuffix(".json")
        groups.setdefault(r["name"].rsplit("-", 1)[0], []).append(r)
    limit = a.interval_ms + 200
    print(f"| run | {' | '.join(h for _, h, _ in COLS)} |")
    print(f"|---|{'---|' * len(COLS)}")
    runs = []
    for group, rs in groups.items():
        for r in rs:
            print(f"| {r['name']} | {' | '.join(fmt.format(r[k]) for k, _, fmt in COLS)} |")
        med = []
        for k, _, fmt in COLS:
            m = statistics.median(r[k] for r in rs)
            med.append(fmt.format(int(m)) if fmt == "{:d}" else fmt.format(m))
        print(f"| **{group} median** | {' | '.join(med)} |")
        runs += rs
    print()
    print(
        f"late = recorded more than {limit} ms (interval + 200 ms) after it was made; "
        "CPU as % of one core over the run (resume .. pause + 2 s)."
    )
    for r in runs:
        print(f"{r['name']} slowest (ms, game, sim seq): {r['slowest']}")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--server", required=True)
    r.add_argument("--key", required=True)
    r.add_argument("--sim", required=True)
    r.add_argument("--serve-pid", type=int, required=True)
    r.add_argument("--sim-pid", type=int, required=True)
    r.add_argument("--duration", type=float, default=60)
    r.add_argument("--interval-ms", type=int, default=1000)
    r.add_argument("--out", required=True)
    t = sub.add_parser("table")
    t.add_argument("--interval-ms", type=int, default=1000)
    t.add_argument("files", nargs="+")
    a = p.parse_args()
    run(a) if a.cmd == "run" else table(a)


if __name__ == "__main__":
    main()
