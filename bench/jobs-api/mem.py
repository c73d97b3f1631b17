#!/usr/bin/env python3
"""Peak memory of a running `rubra serve` while it runs CSV jobs, one job at a time.

For each source: resets the server's peak RSS (`echo 5 > /proc/PID/clear_refs` sets VmHWM
back to the current RSS), submits the job through the API, samples /proc/PID/status every
few ms until the job is final, and prints a markdown row: RSS before, VmHWM (the kernel's
exact peak of the whole resident set), and the sampled peaks of RssAnon (heap, stacks: what
the job allocates) and RssFile (mapped file pages: the binary, and a memory-mapped input if
any; the server reads local files with pread, so the CSV's page cache is not counted).

usage: mem.py BASE KEY PID LABEL=SOURCE...
"""
import json
import sys
import time
import urllib.request

base, key, pid = sys.argv[1:4]
jobs = [a.split("=", 1) for a in sys.argv[4:]]


def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + key)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def status():
    out = {}
    with open("/proc/%s/status" % pid) as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[name] = int(value.split()[0])  # kB
    return out


def mib(kb):
    return "%.1f" % (kb / 1024)


print("| job | bytes | wall s | RSS before MiB | peak RSS (VmHWM) MiB | peak RssAnon MiB | peak RssFile MiB | samples |")
print("|---|---|---|---|---|---|---|---|")
for label, source in jobs:
    with open("/proc/%s/clear_refs" % pid, "w") as f:
        f.write("5")
    before = status()
    peak_anon, peak_file, samples = before["RssAnon"], before["RssFile"], 0
    t0 = time.perf_counter()
    job = call("POST", "/jobs", {"source": source})
    while True:
        s = status()
        peak_anon = max(peak_anon, s["RssAnon"])
        peak_file = max(peak_file, s["RssFile"])
        samples += 1
        if samples % 4 == 0:
            job = call("GET", "/jobs/" + job["id"])
            if job["state"] in ("succeeded", "failed", "canceled"):
                break
        time.sleep(0.002)
    dt = time.perf_counter() - t0
    if job["state"] != "succeeded":
        raise SystemExit("job failed: %s" % json.dumps(job))
    hwm = status()["VmHWM"]
    total = (job.get("progress") or {}).get("bytes_total", "?")
    print(
        "| %s | %s | %.3f | %s | %s | %s | %s | %d |"
        % (label, total, dt, mib(before["VmRSS"]), mib(hwm), mib(peak_anon), mib(peak_file), samples)
    )
