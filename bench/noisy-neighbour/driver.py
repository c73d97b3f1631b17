"""Noisy-neighbour load driver (issue #18) against a running `rubra serve`.

`run`: the polite client alone (phase "idle"), then the polite client while a flood hammers the
server (phase "flood"). The polite client sends a steady RATE requests/s of `POST /red` and
RATE requests/s of `POST /events`, open loop: each request is due at a fixed time and its
latency is counted from that time (so a stalled server cannot hide behind a stalled client),
on keep-alive connections from a pool of threads. The flood is two wrk processes (flood.lua):
half the connections post the image to `/red`, half post the big event batch to `/events`,
as fast as the answers come. The server's CPU (utime + stime over the phase) and RSS (sampled
VmRSS every 0.25 s, and VmHWM) are read from /proc. Prints markdown tables and appends one
JSON line per run to the results file.

`summary RESULTS RSS_BOUND_MB`: the medians over the runs in RESULTS and the verdict.

usage: driver.py run HOST PORT SERVER_PID POLITE_KEY FLOOD_KEY IMAGE SMALL_EVENTS BIG_EVENTS
                     SECONDS CONNECTIONS FLOOD_TIMEOUT_S RESULTS [FLOOD]
       (FLOOD: the flooded endpoints, "red,events" by default; "red" or "events" alone to
       see which one hurts)
       driver.py summary RESULTS RSS_BOUND_MB
"""
import collections
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

RATE = 20  # polite requests per second, per endpoint
POLITE_TIMEOUT_S = 30  # the server's own request timeout
HZ = os.sysconf("SC_CLK_TCK")
HERE = os.path.dirname(os.path.abspath(__file__))


def classify(status):
    """The status-count bucket of an HTTP status (None: no answer)."""
    if status is None:
        return "errors"
    if 200 <= status < 300:
        return "s2xx"
    if status in (429, 503):
        return f"s{status}"
    if 400 <= status < 500:
        return "s4xx"
    if status >= 500:
        return "s5xx"
    return "sother"


def pct(sorted_values, p):
    """Nearest-rank percentile of an ascending list (NaN when empty)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


class Polite:
    """One endpoint of the polite client: RATE requests/s, open loop, keep-alive connections."""

    def __init__(self, host, port, key, path, body, ctype):
        self.host, self.port, self.path, self.body = host, port, path, body
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": ctype}
        self.local = threading.local()
        self.samples = []  # (latency ms, status or None)
        self.failures = []
        self.lock = threading.Lock()

    def one(self, due):
        conn = getattr(self.local, "conn", None)
        status = None
        try:
            if conn is None:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=POLITE_TIMEOUT_S)
                self.local.conn = conn
            conn.request("POST", self.path, self.body, self.headers)
            resp = conn.getresponse()
            body = resp.read()
            status = resp.status
            if resp.will_close:
                conn.close()
                self.local.conn = None
            if status >= 500:
                with self.lock:
                    self.failures.append(f"{status} {body[:120]!r}")
        except Exception as e:  # timeouts, resets: no answer
            conn.close()
            self.local.conn = None
            with self.lock:
                self.failures.append(repr(e))
        latency = (time.perf_counter() - due) * 1000
        with self.lock:
            self.samples.append((latency, status))

    def run(self, secs):
        """Sends RATE × secs requests, one every 1/RATE s; returns when all are answered."""
        self.samples, self.failures = [], []
        with ThreadPoolExecutor(max_workers=64) as pool:
            t0 = time.perf_counter() + 0.01
            for i in range(int(secs * RATE)):
                due = t0 + i / RATE
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(self.one, due)
        return self.stats()

    def stats(self):
        counts = dict.fromkeys(["s2xx", "s429", "s503", "s4xx", "s5xx", "sother", "errors"], 0)
        for _, status in self.samples:
            counts[classify(status)] += 1
        lat = sorted(l for l, s in self.samples if s is not None)
        return {
            "requests": len(self.samples),
            **counts,
            "p50_ms": pct(lat, 50),
            "p99_ms": pct(lat, 99),
            "max_ms": lat[-1] if lat else float("nan"),
        }


def polite_both(clients, secs):
    """Runs the polite endpoints side by side for secs; returns their statistics by name."""
    out = {}

    def go(name, c):
        out[name] = c.run(secs)

    threads = [threading.Thread(target=go, args=(n, c)) for n, c in clients.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {name: out[name] for name in clients}


class Server:
    """CPU and memory of the server process over a phase."""

    def __init__(self, pid):
        self.pid = pid

    def ticks(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime

    def status_kb(self, key):
        with open(f"/proc/{self.pid}/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith(key + ":"))

    def __enter__(self):
        self.stop = threading.Event()
        self.peak_rss = 0
        self.t0, self.ticks0 = time.monotonic(), self.ticks()

        def sample():
            while not self.stop.is_set():
                self.peak_rss = max(self.peak_rss, self.status_kb("VmRSS"))
                self.stop.wait(0.25)

        self.sampler = threading.Thread(target=sample)
        self.sampler.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.sampler.join()
        secs = time.monotonic() - self.t0
        self.result = {
            "seconds": secs,
            "cpu_cores": (self.ticks() - self.ticks0) / HZ / secs,
            "rss_peak_mb": self.peak_rss / 1024,
            "hwm_mb": self.status_kb("VmHWM") / 1024,
            "load": open("/proc/loadavg").read().split()[0],
        }


def start_flood(url, key, image, big_events, conns, secs, timeout_s, endpoints):
    """One wrk process per flooded endpoint (`red`, `events`), conns/2 connections each."""
    procs = {}
    for name, path, body, ctype in [
        ("POST /red", "/red", image, "image/jpeg"),
        ("POST /events", "/events", big_events, "application/json"),
    ]:
        if path[1:] not in endpoints:
            continue
        env = dict(os.environ, RUBRA_BODY=body, RUBRA_TYPE=ctype, RUBRA_KEY=key)
        # FLOOD_NICE=N runs the flood's generator at that niceness: on a 2-core box the
        # generator otherwise competes with the server for the CPU a remote flood would not
        # use (see run.sh). 0 (the default) leaves it as it is.
        nice = ["nice", "-n", os.environ["FLOOD_NICE"]] if os.environ.get("FLOOD_NICE") else []
        procs[name] = subprocess.Popen(
            nice + ["wrk", "-t1", f"-c{max(1, conns // 2)}", f"-d{secs}s", f"--timeout={timeout_s}s",
             "-s", os.path.join(HERE, "flood.lua"), url + path],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return procs


def finish_flood(procs):
    out = {}
    for name, p in procs.items():
        text, _ = p.communicate()
        line = next((l for l in text.splitlines() if l.startswith("RESULT")), None)
        if line is None:
            raise SystemExit(f"wrk for {name} printed no RESULT:\n{text}")
        r = {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
        r["errors"] = r["timeouts"] + r.pop("conn_errors")
        out[name] = r
    return out


ROW_HEAD = (
    "| phase | client | endpoint | requests | 2xx | 429 | 503 | other non-2xx | 5xx | "
    "timeouts + connection errors | p50 ms | p99 ms | max ms |\n"
    "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)
SERVER_HEAD = (
    "| phase | seconds | server CPU (cores) | server RSS MB (peak sampled) | VmHWM MB | load avg |\n"
    "|---|---:|---:|---:|---:|---:|"
)


def row(phase, client, endpoint, r):
    return (
        f"| {phase} | {client} | {endpoint} | {r['requests']:.0f} | {r['s2xx']:.0f} | {r['s429']:.0f} | "
        f"{r['s503']:.0f} | {r['s4xx'] + r.get('sother', 0):.0f} | {r['s5xx']:.0f} | {r['errors']:.0f} | "
        f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} |"
    )


def server_row(phase, s):
    return (
        f"| {phase} | {s['seconds']:.0f} | {s['cpu_cores']:.2f} | {s['rss_peak_mb']:.0f} | "
        f"{s['hwm_mb']:.0f} | {s['load']} |"
    )


def print_run(res):
    print(ROW_HEAD)
    for phase in ("idle", "flood"):
        for ep, r in res[phase]["polite"].items():
            print(row(phase, "polite (20/s each)", ep, r))
    for ep, r in res["flood"]["flood"].items():
        print(row("flood", f"flood ({res['connections'] // 2} connections)", ep, r))
    print()
    print(SERVER_HEAD)
    for phase in ("idle", "flood"):
        print(server_row(phase, res[phase]["server"]))
    print()


def run(argv):
    host, port, pid, polite_key, flood_key, image, small, big, secs, conns, timeout_s, results = argv[:12]
    endpoints = (argv[12] if len(argv) > 12 else "red,events").split(",")
    port, pid, secs, conns = int(port), int(pid), float(secs), int(conns)
    img = open(image, "rb").read()
    ev = open(small, "rb").read()
    polite = {
        "POST /red": Polite(host, port, polite_key, "/red", img, "image/jpeg"),
        "POST /events": Polite(host, port, polite_key, "/events", ev, "application/json"),
    }
    server = Server(pid)
    polite_both(polite, 2)  # warm-up, not counted

    res = {"connections": conns, "seconds": secs, "flood": endpoints}
    with server:
        res["idle"] = {"polite": polite_both(polite, secs)}
    res["idle"]["server"] = server.result

    url = f"http://{host}:{port}"
    procs = start_flood(url, flood_key, image, big, conns, int(secs) + 4, timeout_s, endpoints)
    time.sleep(2)  # let the flood fill its connections
    with server:
        res["flood"] = {"polite": polite_both(polite, secs)}
    res["flood"]["server"] = server.result
    res["flood"]["flood"] = finish_flood(procs)
    res["flood"]["server"]["hwm_mb"] = server.status_kb("VmHWM") / 1024

    for c in polite.values():
        if c.failures:
            seen = collections.Counter(f[:110] for f in c.failures)
            print(f"polite {c.path}, 5xx answers (503 included) and requests without an answer:", file=sys.stderr)
            for what, n in seen.most_common(3):
                print(f"  {n} × {what}", file=sys.stderr)
    print_run(res)
    with open(results, "a") as f:
        f.write(json.dumps(res) + "\n")


def median_of(runs, get):
    return statistics.median(get(r) for r in runs)


def summary(argv):
    results, bound = argv[0], float(argv[1])
    runs = [json.loads(l) for l in open(results) if l.strip()]
    n = len(runs)
    print(f"Medians of {n} runs (each figure the median of its own column):\n")
    print(ROW_HEAD)
    keys = ["requests", "s2xx", "s429", "s503", "s4xx", "s5xx", "sother", "errors", "p50_ms", "p99_ms", "max_ms"]
    med = {}
    for phase in ("idle", "flood"):
        for ep in runs[0][phase]["polite"]:
            m = {k: median_of(runs, lambda r: r[phase]["polite"][ep].get(k, 0)) for k in keys}
            med[(phase, "polite", ep)] = m
            print(row(phase, "polite (20/s each)", ep, m))
    for ep in runs[0]["flood"]["flood"]:
        m = {k: median_of(runs, lambda r: r["flood"]["flood"][ep].get(k, 0)) for k in keys}
        med[("flood", "flood", ep)] = m
        print(row("flood", f"flood ({runs[0]['connections'] // 2} connections)", ep, m))
    print()
    print(SERVER_HEAD)
    for phase in ("idle", "flood"):
        s = {k: median_of(runs, lambda r: r[phase]["server"][k]) for k in ("seconds", "cpu_cores", "rss_peak_mb", "hwm_mb")}
        s["load"] = "–".join(sorted({r[phase]["server"]["load"] for r in runs}, key=float)[:: max(1, n - 1)])
        print(server_row(phase, s))
    print()

    print("Verdict (per run, then on the medians):\n")
    for ep in runs[0]["idle"]["polite"]:
        ratios = [r["flood"]["polite"][ep]["p99_ms"] / r["idle"]["polite"][ep]["p99_ms"] for r in runs]
        m = med[("flood", "polite", ep)]["p99_ms"] / med[("idle", "polite", ep)]["p99_ms"]
        ok = "met" if m <= 2 else "MISSED"
        print(f"- polite {ep} p99 under flood / idle p99: runs {', '.join(f'{x:.2f}×' for x in ratios)}; "
              f"medians {med[('flood', 'polite', ep)]['p99_ms']:.1f} / {med[('idle', 'polite', ep)]['p99_ms']:.1f} ms "
              f"= {m:.2f}× (target ≤ 2×): {ok}")
    for ph in ("idle", "flood"):
        for ep in runs[0][ph]["polite"]:
            per_run = [(r[ph]["polite"][ep]["s503"], r[ph]["polite"][ep]["s5xx"], r[ph]["polite"][ep]["errors"]) for r in runs]
            bad = sum(sum(x) for x in per_run)
            print(f"- polite {ep}, {ph}: 5xx per run (503, other 5xx, no answer) {per_run} "
                  f"of {runs[0][ph]['polite'][ep]['requests']:.0f}: {'met' if bad == 0 else 'MISSED'}")
    for ep in runs[0]["flood"]["flood"]:
        refused = [r["flood"]["flood"][ep]["s429"] + r["flood"]["flood"][ep]["s503"] for r in runs]
        tmo = [r["flood"]["flood"][ep]["timeouts"] for r in runs]
        errs = [r["flood"]["flood"][ep]["errors"] for r in runs]
        if all(t == 0 for t in tmo) and all(x > 0 for x in refused):
            verdict = "met"
        elif all(t == 0 for t in tmo):
            p99 = [r["flood"]["flood"][ep]["p99_ms"] for r in runs]
            verdict = f"never refused (no 429/503) and no timeouts either: served, at p99 {', '.join(f'{x:.0f}' for x in p99)} ms"
        else:
            verdict = "MISSED: timeouts"
        print(f"- flood {ep}: 429+503 per run {refused}, timeouts {tmo}, timeouts + connection errors {errs}: {verdict}")
    peak = max(r["flood"]["server"]["hwm_mb"] for r in runs)
    print(f"- server peak RSS (VmHWM, worst run) {peak:.0f} MB, bound {bound:.0f} MB: {'met' if peak <= bound else 'MISSED'}")


if __name__ == "__main__":
    {"run": run, "summary": summary}[sys.argv[1]](sys.argv[2:])
