#!/usr/bin/env python3
"""Competitor run: deepdiff on two JSON files. Usage: deepdiff_run.py A B ordered|key|set"""
import json
import sys

from deepdiff import DeepDiff

a_path, b_path, mode = sys.argv[1:4]
with open(a_path) as f:
    a = json.load(f)
with open(b_path) as f:
    b = json.load(f)
# significant_digits=5 is deepdiff's nearest notion of "equal to 5 decimal places"
# (it rounds, so values straddling a rounding boundary differ).
kw = {"significant_digits": 5}
if mode in ("key", "set"):
    kw["ignore_order"] = True
d = DeepDiff(a, b, **kw)
print(len(d.get("values_changed", {})) + len(d.get("iterable_item_added", {}))
      + len(d.get("iterable_item_removed", {})))
sys.exit(1 if d else 0)
