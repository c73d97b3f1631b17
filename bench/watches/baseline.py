#!/usr/bin/env python3
"""Reference poller for bench/watches: the naive way, in Python (standard library).

One thread per watch fetches its URL every interval, diffs the JSON against the last
document (objects by member, arrays by position, the way the simulator's edits are
shaped; not a general diff) and keeps the changes in memory. It answers the three calls
bench.py makes (POST /watches, GET /watches/{id}, GET /watches/{id}/changes) on
127.0.0.1:PORT, so the same checker measures it in the same run as `rubra serve`.

    baseline.py PORT
"""
import json, sys, threading, time, urllib.request
from datetime import datetime, timezone
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

watches = {}
lock = threading.Lock()

def esc(k): return str(k).replace("~", "~0").replace("/", "~1")

def diff(a, b, path, out):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in a:
            if k in b: diff(a[k], b[k], f"{path}/{esc(k)}", out)
            else: out.append((f"{path}/{esc(k)}", "remove", a[k], None))
        for k in b:
            if k not in a: out.append((f"{path}/{esc(k)}", "add", None, b[k]))
    elif isinstance(a, list) and isinstance(b, list):
        n = min(len(a), len(b))
        for i in range(n): diff(a[i], b[i], f"{path}/{i}", out)
        for i in range(n, len(a)): out.append((f"{path}/{i}", "remove", a[i], None))
        for i in range(n, len(b)): out.append((f"{path}/{i}", "add", None, b[i]))
    elif a != b or type(a) != type(b):
        out.append((path, "replace", a, b))

def now_rfc():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")

def poll(wid):
    w = watches[wid]
    while True:
        t = time.time()
        try:
            doc = json.load(urllib.request.urlopen(w["url"], timeout=5))
            with lock:
                if w["last"] is None:
                    w["baseline_at"] = now_rfc()
                else:
                    out = []
                    diff(w["last"], doc, "", out)
                    ts = now_rfc()
                    for p, op, old, new in out:
                        w["changes"].append(dict(seq=len(w["changes"]) + 1, ts=ts, path=p, op=op, old=old, new=new))
                w["last"] = doc
        except Exception as e:
            print(e, file=sys.stderr)
        time.sleep(max(0, w["interval"] / 1000 - (time.time() - t)))

class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def send(self, code, body):
        raw = json.dumps(body).encode()
        self.send_response(code); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw))); self.end_headers(); self.wfile.write(raw)
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with lock:
            wid = str(len(watches) + 1)
            watches[wid] = dict(url=body["url"], interval=body["interval_ms"], last=None, baseline_at=None, changes=[])
        threading.Thread(target=poll, args=(wid,), daemon=True).start()
        self.send(201, {"id": wid})
    def do_GET(self):
        from urllib.parse import urlparse, parse_qs
        u = urlparse(self.path); parts = u.path.strip("/").split("/"); q = parse_qs(u.query)
        if u.path == "/healthz":
            return self.send(200, {"status": "ok"})
        w = watches[parts[1]]
        if len(parts) == 2:
            return self.send(200, {"id": parts[1], "baseline_at": w["baseline_at"]})
        since, limit = int(q["since"][0]), int(q["limit"][0])
        with lock:
            ch = [c for c in w["changes"] if c["seq"] > since][:limit]
        self.send(200, {"changes": ch, "next_since": ch[-1]["seq"] if ch else since})

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
