#!/usr/bin/env python3
"""Generate a pair of JSON files for the rubra-jsondiff benchmark.

Usage: gen.py N OUT_DIR [--shuffle] [--seed S]

A is an array of N objects (~200 bytes each). B is A with:
  * 1% of prices moved by +/-1e-7 (within the default tolerance: not a difference),
  * 0.1% of prices changed by 0.01 (a difference),
  * 0.05% of the objects deleted and 0.05% new objects inserted,
  * with --shuffle, the whole array in a random order (for --key id / --set runs).
"""
import json
import random
import sys


def item(r, i):
    return {
        "id": i,
        "sku": f"SKU-{i:08d}",
        "name": f"Item {i} {r.choice(['red', 'green', 'blue', 'grey'])}",
        "price": round(r.uniform(1, 1000), 6),
        "qty": r.randint(0, 50),
        "tags": r.sample(["a", "b", "c", "d", "e"], 2),
        "active": r.random() < 0.8,
        "dims": {"w": round(r.uniform(0, 10), 3), "h": round(r.uniform(0, 10), 3)},
        "updated_at": f"2026-11-{r.randint(1, 28):02d}T{r.randint(0, 23):02d}:00:00Z",
    }


def main():
    args = sys.argv[1:]
    n = int(args[0])
    out = args[1]
    shuffle = "--shuffle" in args
    seed = int(args[args.index("--seed") + 1]) if "--seed" in args else 7
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
