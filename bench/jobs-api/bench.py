#!/usr/bin/env python3
"""Times whole CSV jobs through the API (POST /jobs, then GET /jobs/{id} every 5 ms until
it is final) and polars on the same data, and prints a markdown table.

usage: bench.py BASE KEY LOCAL_SOURCE LOCAL_PATH S3_SOURCE S3_ENDPOINT RUNS [BASE2 KEY2 S3_ENDPOINT2]

BASE is a server whose S3 endpoint is S3_ENDPOINT (moto); the optional BASE2 is a second
server whose S3 endpoint, S3_ENDPOINT2, serves the same object (the Rust S3 server).
"""
import json
import os
import statistics
import sys
import time
import urllib.request

base, key, local_source, local_path, s3_source, s3_endpoint, runs = sys.argv[1:8]
runs = int(runs)
second = sys.argv[8:11] if len(sys.argv) >= 11 else None
COLS = ["c10", "c20", "c30", "c40"]


def call(method, path, body=None, server=None):
    url, token = server or (base, key)
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def api_job(source, server=None):
    t0 = time.perf_counter()
    job = call("POST", "/jobs", {"source": source}, server)
    while True:
        job = call("GET", "/jobs/" + job["id"], None, server)
        if job["state"] in ("succeeded", "failed", "canceled"):
            break
        time.sleep(0.005)
    dt = time.perf_counter() - t0
    if job["state"] != "succeeded":
        raise SystemExit("job failed: %s" % json.dumps(job))
    return dt, " ".join(c["sum"] for c in job["result"]["columns"])


def polars_job(source, storage_options=None):
    import polars as pl

    t0 = time.perf_counter()
    kw = {"storage_options": storage_options} if storage_options else {}
    df = pl.scan_csv(source, **kw).select([pl.col(c).sum() for c in COLS]).collect()
    dt = time.perf_counter() - t0
    return dt, " ".join(str(df[c][0]) for c in COLS)


def measure(name, fn):
    times, sums = [], None
    try:
        fn()  # warm-up (page cache, connections), not counted
        for _ in range(runs):
            dt, sums = fn()
            times.append(dt)
    except Exception as e:  # noqa: BLE001 - report and go on with the other rows
        print("| %s | failed: %s | | |" % (name, str(e).splitlines()[0][:120]))
        return
    print(
        "| %s | %.3f | %s | %s |"
        % (name, statistics.median(times), " ".join("%.3f" % t for t in times), sums)
    )


print("| what | median wall s | all runs | sums c10 c20 c30 c40 |")
print("|---|---|---|---|")
measure("rubra POST /jobs → done, local disk", lambda: api_job(local_source))
measure("rubra POST /jobs → done, S3 (moto)", lambda: api_job(s3_source))
if second:
    measure(
        "rubra POST /jobs → done, S3 (s3_dir_server, Rust)",
        lambda: api_job(s3_source, (second[0], second[1])),
    )
try:
    import polars  # noqa: F401

    have_polars = True
except ImportError:
    have_polars = False
if have_polars:
    measure("polars scan_csv sum, local disk", lambda: polars_job(local_path))
    so = {
        "aws_endpoint_url": s3_endpoint,
        "aws_access_key_id": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        "aws_secret_access_key": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        "aws_region": os.environ.get("AWS_REGION", "us-east-1"),
        "aws_allow_http": "true",
    }
    measure("polars scan_csv sum, S3 (moto)", lambda: polars_job(s3_source, so))
    if second:
        so2 = dict(so, aws_endpoint_url=second[2])
        measure("polars scan_csv sum, S3 (s3_dir_server, Rust)", lambda: polars_job(s3_source, so2))
else:
    print("| polars | not installed | | |")
