"""Times rubra-csvsum, polars and DuckDB on one CSV; prints a markdown table.

usage: bench.py SUM_FILE_BINARY CSV RUNS

rubra-csvsum is timed as a whole process (start-up included); polars and
DuckDB are timed in-process around the query only (their import excluded).
"""

import statistics
import subprocess
import sys
import time

binary, csv, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
cols = [f"c{i}" for i in (10, 20, 30, 40)]
results = {}  # name -> (median seconds, all runs, sums)


def timed(name, fn):
    times, out = [], None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    results[name] = (statistics.median(times), times, out)


def rubra(*extra):
    def go():
        p = subprocess.run([binary, csv, *extra], check=True, capture_output=True, text=True)
        return [line.split("\t")[2] for line in p.stdout.splitlines()[1:]]
    return go


timed("rubra-csvsum (2 threads, mmap)", rubra())
timed("rubra-csvsum (1 thread, mmap)", rubra("--threads", "1"))
timed("rubra-csvsum (1 thread, read() stream)", rubra("--stream"))

try:
    import polars as pl

    timed(
        f"polars {pl.__version__} scan_csv",
        lambda: [str(v) for v in pl.scan_csv(csv).select([pl.col(c).sum() for c in cols]).collect().row(0)],
    )
except ImportError:
    print("polars not installed: skipped", file=sys.stderr)

try:
    import duckdb

    con = duckdb.connect()
    sql = f"SELECT {', '.join(f'sum({c})' for c in cols)} FROM read_csv('{csv}')"
    timed(f"duckdb {duckdb.__version__}", lambda: [str(v) for v in con.execute(sql).fetchone()])
except ImportError:
    print("duckdb not installed: skipped", file=sys.stderr)

base = next(iter(results.values()))[0]
print()
print(f"| engine | median s ({runs} runs) | runs | vs rubra 2 threads | sums |")
print("|---|---|---|---|---|")
for name, (med, times, sums) in results.items():
    runs_s = " ".join(f"{t:.3f}" for t in times)
    print(f"| {name} | {med:.3f} | {runs_s} | {med / base:.2f}x | {' '.join(sums)} |")
