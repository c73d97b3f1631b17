"""Times rubra-csvsum, polars and DuckDB on one CSV; prints a markdown table.

usage: bench.py SUM_FILE_BINARY CSV RUNS

Wall time: rubra-csvsum is timed as a whole process (start-up included);
polars and DuckDB in-process around the query only (their import excluded).
CPU time (user + system, all threads) is reported too: on a shared machine it
is much less disturbed by other load than wall time.
"""

import os
import resource
import statistics
import subprocess
import sys
import time

binary, csv, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
cols = [f"c{i}" for i in (10, 20, 30, 40)]
results = {}  # name -> (median wall, median cpu, walls, sums)


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def self_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(name, fn, cpu_clock):
    walls, cpus, out = [], [], None
    for _ in range(runs):
        c, t = cpu_clock(), time.perf_counter()
        out = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(cpu_clock() - c)
    results[name] = (statistics.median(walls), statistics.median(cpus), walls, out)


def rubra(*extra):
    def go():
        p = subprocess.run([binary, csv, *extra], check=True, capture_output=True, text=True)
        return [line.split("\t")[2] for line in p.stdout.splitlines()[1:]]

    return go


timed("rubra-csvsum sum_file (2 threads, mmap)", rubra(), children_cpu)
timed("rubra-csvsum sum_file (1 thread, mmap)", rubra("--threads", "1"), children_cpu)
timed("rubra-csvsum sum_read_at (2 threads, pread)", rubra("--pread"), children_cpu)
timed("rubra-csvsum sum_reader (read() + 2 parser threads)", rubra("--stream"), children_cpu)

try:
    import polars as pl

    timed(
        f"polars {pl.__version__} scan_csv",
        lambda: [str(v) for v in pl.scan_csv(csv).select([pl.col(c).sum() for c in cols]).collect().row(0)],
        self_cpu,
    )
except ImportError:
    print("polars not installed: skipped", file=sys.stderr)

try:
    import duckdb

    con = duckdb.connect()
    sql = f"SELECT {', '.join(f'sum({c})' for c in cols)} FROM read_csv('{csv}')"
    timed(f"duckdb {duckdb.__version__}", lambda: [str(v) for v in con.execute(sql).fetchone()], self_cpu)
except ImportError:
    print("duckdb not installed: skipped", file=sys.stderr)

base_wall, base_cpu = next(iter(results.values()))[:2]
print(f"load average (1 min) after the runs: {os.getloadavg()[0]:.2f}")
print()
print(f"| engine | median wall s | median CPU s | wall vs rubra | CPU vs rubra | all wall runs | sums c10 c20 c30 c40 |")
print("|---|---|---|---|---|---|---|")
for name, (wall, cpu, walls, sums) in results.items():
    runs_s = " ".join(f"{t:.3f}" for t in walls)
    print(
        f"| {name} | {wall:.3f} | {cpu:.3f} | {wall / base_wall:.2f}x | {cpu / base_cpu:.2f}x "
        f"| {runs_s} | {' '.join(sums)} |"
    )
