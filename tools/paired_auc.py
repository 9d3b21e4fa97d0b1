#!/usr/bin/python3
"""Test macro-AUC of two sets of runs on the same records, paired by seed and by record.

    tools/paired_auc.py PREP/ --a A1.npy,A2.npy,... --b B1.npy,B2.npy,... [--resamples 1000] [--seed 1]

A and B are probability arrays (N, C) float32 in PREP/ids_test.txt's order (e.g. a run's
test_probs.npy from `mrmnet ablate`, or `mrmnet eval --predictions`), one per seed, in the same
seed order. Prints JSON: each run's macro-AUC (scikit-learn, classes with both labels present),
the means and standard deviations over seeds, and the mean over seeds of (B - A) with the
2.5/97.5 percentiles of that mean over bootstrap resamples of the test records (the same
resamples for every run), as `mrmnet ablate` computes its differences."""
import argparse
import json
import os

import numpy as np
from sklearn.metrics import roc_auc_score


def macro_auc(y, p):
    cols = [c for c in range(y.shape[1]) if 0 < y[:, c].sum() < len(y)]
    return float(np.mean([roc_auc_score(y[:, c], p[:, c]) for c in cols]))


ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("prep")
ap.add_argument("--a", required=True)
ap.add_argument("--b", required=True)
ap.add_argument("--resamples", type=int, default=1000)
ap.add_argument("--seed", type=int, default=1)
args = ap.parse_args()
y = np.load(os.path.join(args.prep, "y_test.npy"))
a = [np.load(f) for f in args.a.split(",")]
b = [np.load(f) for f in args.b.split(",")]
if len(a) != len(b) or any(x.shape != y.shape for x in a + b):
    raise SystemExit("paired_auc.py: --a and --b need as many runs each, each of shape %s" % (y.shape,))
ra, rb = [macro_auc(y, p) for p in a], [macro_auc(y, p) for p in b]
rng = np.random.default_rng(args.seed)
diffs = []
for _ in range(args.resamples):
    i = rng.integers(0, len(y), len(y))
    diffs.append(np.mean([macro_auc(y[i], q[i]) - macro_auc(y[i], p[i]) for p, q in zip(a, b)]))
lo, hi = np.percentile(diffs, [2.5, 97.5])
print(json.dumps({"a": ra, "b": rb, "mean_a": float(np.mean(ra)), "mean_b": float(np.mean(rb)),
                  "sd_a": float(np.std(ra, ddof=1)) if len(ra) > 1 else 0.0,
                  "sd_b": float(np.std(rb, ddof=1)) if len(rb) > 1 else 0.0,
                  "difference_b_minus_a": float(np.mean(rb) - np.mean(ra)), "difference_ci95": [float(lo), float(hi)],
                  "resamples": args.resamples, "seed": args.seed}, indent=1))
