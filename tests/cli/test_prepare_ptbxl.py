#!/usr/bin/env python3
"""mrmnet prepare --ptbxl on the shared PTB-XL subset, all six tasks, against the independent
reference tools/reference_labels.py (csv + ast.literal_eval + numpy from the raw format-16 bytes):
classes, ids and y exactly; X, mean and std to 1e-5. Also the counts the data README states, the
500 Hz path (--hr, resampled to 100 Hz) against the 100 Hz files, missing records, fold options.
Skipped (77) without ../shared, numpy or the mrmnet binary."""
import json
import os
import shutil
import sys
import time

from cli_testlib import SRC, TMP, check, end, need_mrmnet, need_shared, prepare, read_lines, skip

try:
    import numpy as np
except ImportError:
    skip("numpy absent")

PTBXL = need_shared(os.path.join("data", "ptb-xl"), "ptbxl_database.csv", "no shared PTB-XL data")
need_mrmnet()
sys.path.insert(0, os.path.join(SRC, "tools"))
import reference_labels as ref  # noqa: E402


README_CLASSES = {"all": 68, "diagnostic": 42, "subdiagnostic": 22, "superdiagnostic": 5, "form": 19, "rhythm": 11}
SPLITS = ("train", "val", "test")

for task in ref.TASKS:
    out = os.path.join(TMP, "prep_" + task)
    t0 = time.time()
    p = prepare(out, "--ptbxl", PTBXL, "--task", task)
    dt = time.time() - t0
    check(p.returncode == 0, "%s: prepare failed: %s" % (task, p.stderr[-2000:]))
    if p.returncode != 0:
        continue
    lab = ref.build_labels(PTBXL, task)
    classes = read_lines(os.path.join(out, "classes.txt"))
    check(classes == lab["classes"], "%s: classes differ" % task)
    check(len(classes) == README_CLASSES[task], "%s: %d classes, README says %d" % (task, len(classes), README_CLASSES[task]))
    X_ref, mean, std = ref.build_arrays(PTBXL, lab)
    info = json.load(open(os.path.join(out, "prepare.json")))
    check(abs(info["mean"] - mean) <= 1e-5 * max(1, abs(mean)) and abs(info["std"] - std) <= 1e-5 * std,
          "%s: mean/std %r %r vs %r %r" % (task, info["mean"], info["std"], mean, std))
    check(info["classes"] == lab["classes"] and info["task"] == task, "%s: prepare.json classes/task" % task)
    for s in SPLITS:
        ids = read_lines(os.path.join(out, "ids_%s.txt" % s))
        check(ids == lab[s]["ids"], "%s %s: ids differ (%d vs %d)" % (task, s, len(ids), len(lab[s]["ids"])))
        y = np.load(os.path.join(out, "y_%s.npy" % s))
        check(y.dtype == np.float32 and y.shape == lab[s]["y"].shape and (y == lab[s]["y"]).all(), "%s %s: y differs" % (task, s))
        check(info["splits"][s]["records"] == len(ids), "%s %s: prepare.json record count" % (task, s))
        counts = {c: int(n) for c, n in zip(lab["classes"], lab[s]["y"].sum(0))}
        check(info["splits"][s]["class_counts"] == counts, "%s %s: class counts" % (task, s))
        X = np.load(os.path.join(out, "X_%s.npy" % s))
        check(X.dtype == np.float32 and X.shape == (len(ids), 12, 1000), "%s %s: X shape %r" % (task, s, X.shape))
        if X.shape == X_ref[s].shape:
            err = float(np.abs(X - X_ref[s]).max()) if X.size else 0.0
            check(err <= 1e-5, "%s %s: X differs by %g" % (task, s, err))
    if task == "superdiagnostic":
        n = [len(lab[s]["ids"]) for s in SPLITS]
        check(n == [1481, 232, 252], "superdiagnostic split sizes %r, README says 1481/232/252" % n)
        tr = X_ref["train"].astype(np.float64)
        check(abs(tr.mean()) < 1e-6 and abs(tr.std() - 1) < 1e-5, "standardised training split has mean 0, std 1")
    print("%s: %d classes, %s records, %.2f s" % (task, len(classes), "/".join(str(len(lab[s]["ids"])) for s in SPLITS), dt))
    shutil.rmtree(out, ignore_errors=True)

# records per fold as the README states: the 'all' task keeps every record (all have a code)
expect = [212, 178, 177, 193, 207, 156, 196, 171, 242, 255]
got = []
for f in range(1, 11, 3):
    folds = "/".join(str(min(10, x)) for x in (f, f + 1, f + 2)) if f < 10 else "10/1/2"
    out = os.path.join(TMP, "prep_folds")
    p = prepare(out, "--ptbxl", PTBXL, "--task", "all", "--labels-only", "--folds", folds)
    check(p.returncode == 0, "folds %s: %s" % (folds, p.stderr))
    if p.returncode == 0:
        for s in SPLITS[: 3 if f < 10 else 1]:
            got.append(len(read_lines(os.path.join(out, "ids_%s.txt" % s))))
check(got == expect, "records per fold %r, README says %r" % (got, expect))
check(not os.path.exists(os.path.join(out, "X_train.npy")), "--labels-only writes no X")

# other folds: train 1-6, val 7, test 8: records of folds 9-10 dropped and counted
p = prepare(out, "--ptbxl", PTBXL, "--task", "superdiagnostic", "--labels-only", "--folds", "1-6/7/8")
lab = ref.build_labels(PTBXL, "superdiagnostic", "1-6/7/8")
info = json.load(open(os.path.join(out, "prepare.json"))) if p.returncode == 0 else {}
check(p.returncode == 0 and read_lines(os.path.join(out, "ids_test.txt")) == lab["test"]["ids"], "--folds 1-6/7/8")
check(info.get("dropped", {}).get("other_fold") == 484, "other-fold count %r" % info.get("dropped"))
p = prepare(out, "--ptbxl", PTBXL, "--folds", "1-8/8/10")
check(p.returncode == 2 and "two splits" in p.stderr, "overlapping folds rejected: %s" % p.stderr)

# 500 Hz: only records 1..100 are present; without --skip-missing the first absent one is named
p = prepare(out, "--ptbxl", PTBXL, "--hr")
check(p.returncode == 1 and "record 1" in p.stderr and "--skip-missing" in p.stderr, "missing 500 Hz record: %s" % p.stderr)
p = prepare(out, "--ptbxl", PTBXL, "--hr", "--skip-missing")
check(p.returncode == 0, "--hr --skip-missing: %s" % p.stderr)
if p.returncode == 0:
    info = json.load(open(os.path.join(out, "prepare.json")))
    n = sum(info["splits"][s]["records"] for s in SPLITS)
    check(n > 90 and info["dropped"]["missing"] == 1965 - n, "--hr records %d, missing %r" % (n, info["dropped"]))
    check(info["source_sampling_rate"] == 500 and info["preprocessing"]["resampled"] == n, "--hr resampled")
    # compare with the 100 Hz files of the same records, in mV
    hr = {}
    for s in SPLITS:
        X = np.load(os.path.join(out, "X_%s.npy" % s)).astype(np.float64) * info["std"] + info["mean"]
        for i, rid in enumerate(read_lines(os.path.join(out, "ids_%s.txt" % s))):
            hr[rid] = X[i]
    corr = []
    for rid, x in hr.items():
        lr = ref.read_format16(PTBXL, "records100/00000/%05d_lr" % int(rid))
        a, b = x[:, 20:980].ravel(), lr[:, 20:980].ravel()
        corr.append(np.corrcoef(a, b)[0, 1])
    corr = np.array(corr)
    print("500 Hz -> 100 Hz vs the 100 Hz files: correlation min %.4f median %.4f" % (corr.min(), np.median(corr)))
    check(np.median(corr) > 0.98, "resampled 500 Hz signals do not match the 100 Hz files (median r %.3f)" % np.median(corr))
shutil.rmtree(out, ignore_errors=True)

p = prepare(out, "--ptbxl", PTBXL, "--task", "nonsense")
check(p.returncode == 1 and "nonsense" in p.stderr, "bad task named: %s" % p.stderr)
p = prepare(out, "--ptbxl", "/nonexistent")
check(p.returncode == 1 and "/nonexistent/scp_statements.csv" in p.stderr, "missing folder: %s" % p.stderr)

end()
