"""Spread of the accuracy benchmark's summary figures: paired bootstrap over the cases of one run.

The benchmark is deterministic on the CPU (the same run gives the same numbers), so "run-to-run spread"
here is the sampling spread of 60 cases: resample the cases with replacement (10,000 times), recompute
each method's figures and the difference between two methods on the same resampled cases (paired).
Prints the 90% interval of each difference.

    python bench/spread.py bench/results/toy_mask_keep.json dragnoise dragnoise_keep [more.json ...]
"""
from __future__ import annotations

import json
import math
import sys

import numpy as np


def figures(rows: list[dict]) -> dict:
    err = np.array([r["error"] / r["drag_length"] for r in rows])
    return {"within_1/4": np.array([float(r["success"]) for r in rows]), "relative_error": err,
            "lost": np.array([float(r["lost"]) for r in rows]),
            "psnr_outside_mask": np.array([r["psnr_outside_mask"] for r in rows])}


def main(argv):
    files = [a for a in argv if a.endswith(".json")]
    pair = [a for a in argv if not a.endswith(".json")]
    cases = {}
    for f in files:  # several runs of the same cases (e.g. a method run later) merge by case name
        for row in json.load(open(f))["cases"]:
            cases.setdefault(row["name"], {}).update({k: v for k, v in row.items() if isinstance(v, dict)})
    names = sorted(n for n, c in cases.items() if all(m in c for m in pair))
    a, b = (figures([cases[n][m] for n in names]) for m in pair)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(names), (10_000, len(names)))
    print(f"{len(names)} cases, {pair[1]} minus {pair[0]} (paired bootstrap, 90% interval)")
    print("| figure | " + " | ".join(pair) + " | difference | 90% interval |\n|---|---|---|---|---|")
    for k in a:
        total = k == "lost"
        f = (lambda v: v.sum(-1)) if total else (lambda v: v.mean(-1))
        d = f(b[k][idx]) - f(a[k][idx])
        lo, hi = np.quantile(d, [0.05, 0.95])
        scale = 1 if total or k.startswith("psnr") else 100
        unit = "" if total else " dB" if k.startswith("psnr") else " pp"
        print(f"| {k} | {scale * f(a[k]):.1f} | {scale * f(b[k]):.1f} | {scale * (f(b[k]) - f(a[k])):+.1f}{unit} | "
              f"{scale * lo:+.1f} .. {scale * hi:+.1f}{unit} |")


if __name__ == "__main__":
    main(sys.argv[1:])
