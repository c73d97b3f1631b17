#!/usr/bin/env python3
"""Pillow on the RED reference image: decode alone, decode + HSV red count,
decode + the exact integer red definition in numpy. Medians over N runs.

usage: pillow.py IMAGE [N]      (pip install pillow numpy)
Prints one line per case: name<TAB>wall_ms<TAB>cpu_ms<TAB>red (medians;
cpu = this thread's CPU time, robust to a busy machine)
"""
import io
import statistics
import sys
import time

import numpy as np
from PIL import Image


def decode(data):
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def hsv_red(data):
    # The way it is usually written with Pillow: convert to HSV, threshold.
    # H is 0..255 for 0..360°: ±20° is about ±14; S ≥ 0.5, V ≥ 0.3.
    hsv = np.asarray(decode(data).convert("RGB").convert("HSV"))
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    red = ((h <= 14) | (h >= 241)) & (s >= 128) & (v >= 77)
    return float(red.mean())


def exact_red(data):
    # DESIGN §4 in integer numpy arithmetic (the definition the Rust code uses).
    rgb = np.asarray(decode(data).convert("RGB")).astype(np.int16)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx = np.maximum(np.maximum(r, g), b)
    mn = np.minimum(np.minimum(r, g), b)
    d = r - mn
    red = (r == mx) & (r >= 77) & (2 * d >= r) & (3 * np.abs(g - b) <= d)
    return float(red.mean())


def bench(fn, data, n):
    """(median wall ms, median thread-CPU ms, result) of n runs."""
    fn(data)  # warm up
    wall, cpu = [], []
    out = None
    for _ in range(n):
        c = time.thread_time()
        t = time.perf_counter()
        out = fn(data)
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.thread_time() - c) * 1000)
    return statistics.median(wall), statistics.median(cpu), out


def main():
    path = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    data = open(path, "rb").read()
    for name, fn in [
        ("pillow_decode", lambda d: decode(d) and None),
        ("pillow_decode_hsv_red", hsv_red),
        ("pillow_decode_exact_red_numpy", exact_red),
    ]:
        wall, cpu, red = bench(fn, data, n)
        print(f"{name}\t{wall:.3f}\t{cpu:.3f}\t{'' if red is None else f'{red:.6f}'}")


if __name__ == "__main__":
    main()
