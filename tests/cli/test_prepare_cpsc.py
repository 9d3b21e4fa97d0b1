#!/usr/bin/env python3
"""mrmnet prepare --cpsc on the shared CPSC2018 files: labels of all 6,877 records from REFERENCE.csv
cross-checked against the ICBEB codes of icbeb_database.csv (an independent table of the same
labels), folds from icbeb_database.csv, and the signals (10 original MATLAB v5 files, 10 Challenge
2020 WFDB copies) against scipy: loadmat, then scipy.signal.resample_poly 500 -> 100 Hz (padtype line), first 10 s,
standardised with the training split's mean/std. Skipped (77) without ../shared, numpy or scipy."""
import ast
import csv
import json
import os
import shutil

from cli_testlib import TMP, check, end, need_mrmnet, need_shared, prepare, read_lines, skip

try:
    import numpy as np
    import scipy.io
    import scipy.signal
except ImportError:
    skip("numpy/scipy absent")

CPSC = need_shared(os.path.join("data", "cpsc2018"), "REFERENCE.csv", "no shared CPSC2018 data")
need_mrmnet()


CLASSES = sorted(["NORM", "AFIB", "1AVB", "CLBBB", "CRBBB", "PAC", "VPC", "STD_", "STE_"])
icbeb = {r["filename"]: r for r in csv.DictReader(open(os.path.join(CPSC, "icbeb_database.csv"), newline=""))}
reference = list(csv.DictReader(open(os.path.join(CPSC, "REFERENCE.csv"), newline="")))

# labels of every record, from the ICBEB table (not from REFERENCE.csv, which mrmnet reads)
expect_y = {r: {c for c in ast.literal_eval(v["scp_codes"])} for r, v in icbeb.items()}
expect_fold = {r: int(v["strat_fold"]) for r, v in icbeb.items()}

out = os.path.join(TMP, "prep_cpsc_labels")
p = prepare(out, "--cpsc", CPSC, "--labels-only")
check(p.returncode == 0, "labels-only: %s" % p.stderr)
if p.returncode == 0:
    check(read_lines(os.path.join(out, "classes.txt")) == CLASSES, "classes")
    total = 0
    order = [r["Recording"] for r in reference]
    for s, folds in (("train", range(1, 9)), ("val", [9]), ("test", [10])):
        ids = read_lines(os.path.join(out, "ids_%s.txt" % s))
        y = np.load(os.path.join(out, "y_%s.npy" % s))
        check(ids == [r for r in order if expect_fold[r] in folds], "%s: ids / folds" % s)
        bad = sum(1 for i, r in enumerate(ids) if {CLASSES[j] for j in np.nonzero(y[i])[0]} != expect_y[r])
        check(bad == 0, "%s: %d records whose labels differ from icbeb_database.csv" % (s, bad))
        total += len(ids)
    check(total == 6877, "all 6877 records (%d)" % total)

# signals: 20 files present, the rest missing
p = prepare(out, "--cpsc", CPSC)
check(p.returncode == 1 and "not found" in p.stderr and "--skip-missing" in p.stderr, "missing without --skip-missing: %s" % p.stderr)
p = prepare(out, "--cpsc", CPSC, "--skip-missing")
check(p.returncode == 0, "--skip-missing: %s" % p.stderr)
if p.returncode == 0:
    info = json.load(open(os.path.join(out, "prepare.json")))
    check(info["dropped"]["missing"] == 6877 - 20, "missing count %r" % info["dropped"])
    raw = {}
    for name in os.listdir(os.path.join(CPSC, "original_mat")):
        raw[name[:-4]] = scipy.io.loadmat(os.path.join(CPSC, "original_mat", name))["ECG"]["data"][0, 0].astype(np.float64)
    for name in os.listdir(os.path.join(CPSC, "challenge2020_wfdb")):
        if name.endswith(".mat"):
            v = scipy.io.loadmat(os.path.join(CPSC, "challenge2020_wfdb", name))["val"].astype(np.float64)
            raw[name[:-4]] = v / 1000.0  # header: 1000/mV, baseline 0
    X = {}
    for s in ("train", "val", "test"):
        a = np.load(os.path.join(out, "X_%s.npy" % s))
        for i, r in enumerate(read_lines(os.path.join(out, "ids_%s.txt" % s))):
            X[r] = a[i].astype(np.float64) * info["std"] + info["mean"]
    check(len(X) == 20 and set(X) == set(raw), "the 20 records present")
    n_crop = 0
    worst, worst_low, worst_corr = 0.0, 0.0, 1.0
    lp_b, lp_a = scipy.signal.butter(4, 35, fs=100)
    for r, sig in raw.items():
        n = sig.shape[1]
        n_crop += n > 5000
        ref = scipy.signal.resample_poly(sig[:, : min(n, 5500)], 1, 5, axis=1, padtype="line")[:, :1000]
        # The two use different anti-aliasing filters (libsamplerate's sinc, scipy's Kaiser FIR), which
        # differ in the 35-50 Hz band: compare the whole signals loosely, and the difference
        # low-passed at 35 Hz tightly (a shift by one sample or a wrong gain would fail both).
        d = np.abs(X[r] - ref).max() / max(1e-9, np.abs(ref).max())
        worst = max(worst, d)
        low = scipy.signal.filtfilt(lp_b, lp_a, X[r] - ref, axis=1)[:, 20:980]
        worst_low = max(worst_low, np.abs(low).max() / max(1e-9, np.abs(ref).max()))
        corr = min(np.corrcoef(X[r][k], ref[k])[0, 1] for k in range(12))
        worst_corr = min(worst_corr, corr)
    print("CPSC signals vs scipy resample_poly: worst max error / peak = %.2e (below 35 Hz %.2e), worst lead correlation %.5f"
          % (worst, worst_low, worst_corr))
    check(worst < 0.05, "resampled signals differ from scipy's by %.3g of the peak" % worst)
    check(worst_low < 2e-3, "resampled signals differ from scipy's below 35 Hz by %.3g of the peak" % worst_low)
    check(worst_corr > 0.99, "resampled signals: a lead correlates %.4f only with scipy's" % worst_corr)
    check(info["preprocessing"]["cropped"] == n_crop and info["preprocessing"]["resampled"] == 20, "crop count")
    train = np.concatenate([np.load(os.path.join(out, "X_train.npy")).astype(np.float64).ravel()])
    check(abs(train.mean()) < 1e-6 and abs(train.std() - 1) < 1e-5, "training split standardised")

# overrides: a labels table with one record and a folds table putting it in fold 10
lab = os.path.join(TMP, "labels.csv")
with open(lab, "w") as f:
    f.write("Recording,First_label,Second_label,Third_label\nA0001,5,7,\nA0002,1,,\n")
fold = os.path.join(TMP, "folds.csv")
with open(fold, "w") as f:
    f.write("filename,strat_fold\nA0002,3\nA0001,10\n")
p = prepare(out, "--cpsc", CPSC, "--cpsc-labels", lab, "--cpsc-folds", fold)
check(p.returncode == 0, "overrides: %s" % p.stderr)
if p.returncode == 0:
    check(read_lines(os.path.join(out, "ids_test.txt")) == ["A0001"] and
          read_lines(os.path.join(out, "ids_train.txt")) == ["A0002"], "override folds")
    y = np.load(os.path.join(out, "y_test.npy"))
    check([CLASSES[j] for j in np.nonzero(y[0])[0]] == ["CRBBB", "VPC"], "override labels")
with open(lab, "w") as f:
    f.write("Recording,First_label,Second_label,Third_label\nA0001,5,12,\n")
p = prepare(out, "--cpsc", CPSC, "--cpsc-labels", lab, "--cpsc-folds", fold)
check(p.returncode == 1 and "labels.csv:2: Second_label: '12' is not a class 1..9" in p.stderr, "bad class: %s" % p.stderr)
shutil.rmtree(out, ignore_errors=True)

end()
