#!/usr/bin/env python3
"""Independent reference of `mrmnet prepare --ptbxl`: the six PTB-XL benchmark tasks, the folds and
the standardised arrays, built with Python's csv, ast.literal_eval and numpy only (no pandas, no
wfdb), following the PTB-XL benchmark (Strodthoff et al. 2021, utils.py compute_label_aggregations
and select_data):

  all             every scp code of the record
  diagnostic      codes whose scp_statements row has diagnostic == 1.0
  subdiagnostic   the diagnostic_subclass of those codes (NaN ignored)
  superdiagnostic the diagnostic_class of those codes (NaN ignored)
  form            codes with form == 1.0
  rhythm          codes with rhythm == 1.0

Any code counts whatever its likelihood; records with no label for the task are dropped; classes
are sorted (Python's sorted()). Signals are read from the raw WFDB format-16 bytes (little-endian
int16, interleaved) and scaled by each signal's gain and baseline from the header. Mean and std
(ddof 0) are fitted on every value of the training split in float64.

Usage as a script: reference_labels.py PTBXL_DIR TASK OUT_DIR [--labels-only] [--folds 1-8/9/10]
writes classes.txt, ids_*.txt, y_*.npy, X_*.npy and reference.json like mrmnet prepare.
"""
import ast
import csv
import json
import os
import sys

TASKS = ("all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm")
SPLITS = ("train", "val", "test")


def parse_folds(text):
    parts = text.split("/")
    assert len(parts) == 3, text
    out = []
    for p in parts:
        s = set()
        for item in p.split(","):
            if "-" in item:
                a, b = item.split("-")
                s.update(range(int(a), int(b) + 1))
            else:
                s.add(int(item))
        out.append(s)
    return out


def read_statements(folder):
    with open(os.path.join(folder, "scp_statements.csv"), newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    head = rows[0]
    col = {name: i for i, name in enumerate(head)}
    table = {}
    for r in rows[1:]:
        def flag(name):
            v = r[col[name]]
            return v != "" and float(v) == 1.0
        table[r[0]] = {
            "diagnostic": flag("diagnostic"),
            "form": flag("form"),
            "rhythm": flag("rhythm"),
            "diagnostic_class": r[col["diagnostic_class"]],
            "diagnostic_subclass": r[col["diagnostic_subclass"]],
        }
    return table


def task_labels(codes, task, stmts):
    """The set of labels of one record (codes: the scp_codes dict)."""
    out = set()
    for code in codes:
        s = stmts.get(code)
        if task == "all":
            out.add(code)
        elif task == "diagnostic":
            if s and s["diagnostic"]:
                out.add(code)
        elif task == "subdiagnostic":
            if s and s["diagnostic"] and s["diagnostic_subclass"] not in ("", "nan"):
                out.add(s["diagnostic_subclass"])
        elif task == "superdiagnostic":
            if s and s["diagnostic"] and s["diagnostic_class"] not in ("", "nan"):
                out.add(s["diagnostic_class"])
        elif task == "form":
            if s and s["form"]:
                out.add(code)
        elif task == "rhythm":
            if s and s["rhythm"]:
                out.add(code)
        else:
            raise ValueError(task)
    return out


def build_labels(folder, task, folds="1-8/9/10", hr=False):
    """Returns dict with classes, and per split: ids (list of str), y (numpy), files (record paths)."""
    import numpy as np
    stmts = read_statements(folder)
    fold_sets = parse_folds(folds)
    with open(os.path.join(folder, "ptbxl_database.csv"), newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    recs = []
    for r in rows:
        labels = task_labels(ast.literal_eval(r["scp_codes"]).keys(), task, stmts)
        if not labels:
            continue
        fold = int(float(r["strat_fold"]))
        split = next((i for i in range(3) if fold in fold_sets[i]), None)
        if split is None:
            continue
        recs.append((str(int(float(r["ecg_id"]))), labels, split, r["filename_hr" if hr else "filename_lr"]))
    classes = sorted(set().union(*[x[1] for x in recs])) if recs else []
    index = {c: i for i, c in enumerate(classes)}
    out = {"classes": classes}
    for s in range(3):
        sel = [x for x in recs if x[2] == s]
        y = np.zeros((len(sel), len(classes)), dtype=np.float32)
        for i, x in enumerate(sel):
            for c in x[1]:
                y[i, index[c]] = 1.0
        out[SPLITS[s]] = {"ids": [x[0] for x in sel], "y": y, "files": [x[3] for x in sel]}
    return out


def read_format16(folder, record):
    """A WFDB format-16 record as float64 (n_signals, n_samples) in physical units."""
    import numpy as np
    path = os.path.join(folder, record)
    with open(path + ".hea") as f:
        lines = [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
    head = lines[0].split()
    nsig, nsamp = int(head[1]), int(head[3])
    gains, bases, files = [], [], []
    for ln in lines[1:1 + nsig]:
        p = ln.split()
        assert p[1] == "16", "format-16 only"
        g = p[2].split("/")[0]
        if "(" in g:
            gain, base = g.split("(")
            base = int(base.rstrip(")"))
        else:
            gain, base = g, int(p[4]) if len(p) > 4 else 0
        gains.append(float(gain))
        bases.append(base)
        files.append(p[0])
    assert len(set(files)) == 1
    raw = np.fromfile(os.path.join(os.path.dirname(path), files[0]), dtype="<i2")
    raw = raw[: nsig * nsamp].reshape(nsamp, nsig).T.astype(np.float64)
    return (raw - np.array(bases)[:, None]) / np.array(gains)[:, None]


def build_arrays(folder, labels):
    """X per split (float32 mV, (N,12,1000)), then mean/std of the training split and standardised X."""
    import numpy as np
    X = {}
    for s in SPLITS:
        files = labels[s]["files"]
        a = np.zeros((len(files), 12, 1000), dtype=np.float32)
        for i, fn in enumerate(files):
            sig = read_format16(folder, fn)
            a[i] = sig[:, :1000].astype(np.float32)
        X[s] = a
    train = X["train"].astype(np.float64)
    mean = float(train.mean())
    std = float(train.std())
    for s in SPLITS:
        X[s] = ((X[s].astype(np.float64) - mean) / std).astype(np.float32)
    return X, mean, std


def main(argv):
    import numpy as np
    if len(argv) < 4:
        print(__doc__)
        return 2
    folder, task, out = argv[1], argv[2], argv[3]
    folds = "1-8/9/10"
    if "--folds" in argv:
        folds = argv[argv.index("--folds") + 1]
    lab = build_labels(folder, task, folds)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "classes.txt"), "w") as f:
        f.write("".join(c + "\n" for c in lab["classes"]))
    info = {"task": task, "classes": lab["classes"]}
    for s in SPLITS:
        with open(os.path.join(out, "ids_%s.txt" % s), "w") as f:
            f.write("".join(i + "\n" for i in lab[s]["ids"]))
        np.save(os.path.join(out, "y_%s.npy" % s), lab[s]["y"])
        info[s] = len(lab[s]["ids"])
    if "--labels-only" not in argv:
        X, mean, std = build_arrays(folder, lab)
        for s in SPLITS:
            np.save(os.path.join(out, "X_%s.npy" % s), X[s])
        info["mean"], info["std"] = mean, std
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(info, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
