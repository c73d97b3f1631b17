#!/usr/bin/env python3
"""Generate a pair of JSON files for the rubra-jsondiff benchmark.

Usage: gen.py N OUT_DIR [--shuffle] [--seed S] [--object-bytes B]

A is an array of N objects. B is A with:
  * 1% of prices moved by +/-1e-7 (within the default tolerance: not a difference),
  * 0.1% of prices changed by 0.01 (a difference),
  * 0.05% of the objects deleted and 0.05% new objects inserted,
  * with --shuffle, the whole array in a random order (for --key id / --set runs).

--object-bytes B picks the object layout: the default (185) is the full one
(id, sku, name, price, qty, tags, active, dims{w,h}, updated_at, ~185 bytes at
N = 500 000); a B below 185 gives the compact one (id, sku, price, qty, active,
ts, ~100 bytes), with a "name" padded so the objects average about B
bytes when B is above the compact size. Issue 7's reference pair is
`gen.py 500000 DIR --object-bytes 100` (2 x ~50 MB). The same seed and B give
the same files.
"""
import json
import random
import sys

FULL = 185
COMPACT = 100


def full_item(r, i, pad):
    return {
        "id": i,
        "sku": f"SKU-{i:08d}",
        "name": f"Item {i} {r.choice(['red', 'green', 'blue', 'grey'])}" + "x" * pad,
        "price": round(r.uniform(1, 1000), 6),
        "qty": r.randint(0, 50),
        "tags": r.sample(["a", "b", "c", "d", "e"], 2),
        "active": r.random() < 0.8,
        "dims": {"w": round(r.uniform(0, 10), 3), "h": round(r.uniform(0, 10), 3)},
        "updated_at": f"2026-11-{r.randint(1, 28):02d}T{r.randint(0, 23):02d}:00:00Z",
    }


def compact_item(r, i, pad):
    x = {
        "id": i,
        "sku": f"SKU-{i:08d}",
        "price": round(r.uniform(1, 1000), 6),
        "qty": r.randint(0, 50),
        "active": r.random() < 0.8,
        "ts": f"2026-11-{r.randint(1, 28):02d}T{r.randint(0, 23):02d}:00Z",
    }
    if pad > 0:
        x["name"] = "x" * pad
    return x


def main():
    args = sys.argv[1:]
    n = int(args[0])
    out = args[1]
    shuffle = "--shuffle" in args
    seed = int(args[args.index("--seed") + 1]) if "--seed" in args else 7
    size = int(args[args.index("--object-bytes") + 1]) if "--object-bytes" in args else FULL
    if size >= FULL:
        make, pad = full_item, size - FULL
    else:
        # The compact layout with a name of `pad` bytes weighs about 10 + pad more.
        make, pad = compact_item, max(0, size - COMPACT - 10)

    def item(r, i):
        return make(r, i, pad)

    r = random.Random(seed)
    a = [item(r, i) for i in range(n)]
    b = [dict(x) for x in a]
    for x in r.sample(b, n // 100):
        x["price"] = float(f"{x['price'] + r.choice([-1e-7, 1e-7]):.7f}")
    for x in r.sample(b, max(1, n // 1000)):
        x["price"] = round(x["price"] + 0.01, 6)
    gone = set(r.sample(range(n), max(1, n // 2000)))
    b = [x for i, x in enumerate(b) if i not in gone]
    for k in range(max(1, n // 2000)):
        b.insert(r.randrange(len(b) + 1), item(r, n + k))
    if shuffle:
        r.shuffle(b)
    for name, doc in (("a.json", a), ("b.json", b)):
        with open(f"{out}/{name}", "w") as f:
            json.dump(doc, f, separators=(",", ":"))


main()
