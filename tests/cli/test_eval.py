"""mrmnet eval against scikit-learn on the predictions it writes; the selection metric and the
thresholds of a trained run; a class without positives; errors."""
import json
import os
import shutil
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
from mrm_testlib import TMP, check, end, make_prepared, read_safetensors, run  # noqa: E402

import numpy as np  # noqa: E402

try:
    from sklearn.metrics import accuracy_score, f1_score, recall_score, roc_auc_score
except ImportError:
    print("skipped: scikit-learn is not available")
    sys.exit(77)

prep = make_prepared(os.path.join(TMP, "prep"), n=(40, 30, 36))
out = os.path.join(TMP, "run")
shutil.rmtree(out, ignore_errors=True)
check(run("train", "--data", prep, "--out", out, "--epochs", "3", "--batch", "8", "--width", "4", "--threads", "2",
          "--quiet")[0] == 0, "train")
best = os.path.join(out, "best.safetensors")
_, meta, _ = read_safetensors(best)

for split in ("val", "test"):
    js, pr, roc = (os.path.join(TMP, "%s.%s" % (split, e)) for e in ("json", "npy", "svg"))
    rc, table, err = run("eval", "--model", best, "--data", prep, "--split", split, "--json", js, "--predictions", pr,
                         "--roc", roc, "--threads", "2")
    check(rc == 0, "eval %s" % split)
    if rc:
        continue
    j = json.load(open(js))
    p = np.load(pr)
    y = np.load(os.path.join(prep, "y_%s.npy" % split)).astype(int)
    check(p.shape == y.shape and p.dtype == np.float32, "predictions (N, C) float32 %s" % (p.shape,))
    a = j["heads"]["average"]
    check(abs(a["macro_auc"] - roc_auc_score(y, p, average="macro")) < 1e-6, "macro-AUC vs sklearn")
    for k, name in enumerate(j["classes"]):
        check(abs(a["auc"][name] - roc_auc_score(y[:, k], p[:, k])) < 1e-6, "AUC of %s vs sklearn" % name)
    yb = (p > 0.5).astype(int)
    check(abs(a["sample_f1"] - f1_score(y, yb, average="samples", zero_division=0)) < 1e-6, "sample-F1 vs sklearn")
    check(abs(a["sample_tpr"] - recall_score(y, yb, average="samples", zero_division=0)) < 1e-6, "sample-TPR vs sklearn")
    check(abs(a["acc"] - accuracy_score(y.ravel(), yb.ravel())) < 1e-6, "ACC vs sklearn")
    check(abs(a["macro_f1"] - f1_score(y, yb, average="macro", zero_division=0)) < 1e-6, "macro-F1 vs sklearn")
    b = a["macro_auc_bootstrap"]
    check(b["resamples"] == 100 and b["p2.5"] <= b["p5"] <= b["mean"] <= b["p95"] <= b["p97.5"], "bootstrap interval ordered")
    check(abs(b["point"] - a["macro_auc"]) < 1e-12, "bootstrap point = macro-AUC")
    for h in ("head1", "head2"):
        check(0 <= j["heads"][h]["macro_auc"] <= 1, "%s macro-AUC in [0, 1]" % h)
    check("at_model_thresholds" in a, "metrics at the model's thresholds")
    check("macro-AUC" in table and "head 1" in table and "average" in table, "table on stdout")
    root = ET.parse(roc).getroot()
    check(len(root.findall(".//{http://www.w3.org/2000/svg}polyline")) == 3, "3 ROC curves")
    if split == "val":
        # the run's selection metric is the validation macro-AUC of the averaged heads
        check(abs(float(meta["val_macro_auc"]) - a["macro_auc"]) < 1e-6,
              "best's val_macro_auc %s = eval on val %s" % (meta["val_macro_auc"], a["macro_auc"]))
        # the thresholds maximise each class's F1 on the validation split
        thr = json.loads(meta["thresholds"])
        for k in range(y.shape[1]):
            cuts = np.concatenate([[-1.0], np.unique(p[:, k])])
            best_f1 = max(f1_score(y[:, k], p[:, k] > t, zero_division=0) for t in cuts)
            got = f1_score(y[:, k], p[:, k] > thr[k], zero_division=0)
            check(abs(got - best_f1) < 1e-9, "threshold of class %d reaches the best F1 (%g vs %g)" % (k, got, best_f1))

# same seed: same numbers; another seed: another interval
j1 = os.path.join(TMP, "s1.json")
j2 = os.path.join(TMP, "s2.json")
run("eval", "--model", best, "--data", prep, "--json", j1, "--seed", "5")
run("eval", "--model", best, "--data", prep, "--json", j2, "--seed", "6")
b5 = json.load(open(j1))["heads"]["average"]["macro_auc_bootstrap"]
b6 = json.load(open(j2))["heads"]["average"]["macro_auc_bootstrap"]
check(json.load(open(os.path.join(TMP, "test.json")))["heads"]["average"]["macro_auc"] ==
      json.load(open(j1))["heads"]["average"]["macro_auc"], "same point value")
check(b5["mean"] != b6["mean"], "the seed changes the resamples")

# a class without positives in the split: no AUC, said so
nopos = os.path.join(TMP, "nopos")
shutil.rmtree(nopos, ignore_errors=True)
shutil.copytree(prep, nopos)
y = np.load(os.path.join(nopos, "y_test.npy"))
y[:, 2] = 0
y[y.sum(axis=1) == 0, 0] = 1
np.save(os.path.join(nopos, "y_test.npy"), y)
js = os.path.join(TMP, "nopos.json")
rc, table, _ = run("eval", "--model", best, "--data", nopos, "--json", js)
check(rc == 0, "eval with a class without positives")
if rc == 0:
    a = json.load(open(js))["heads"]["average"]
    check(a["auc"]["C"] is None and a["classes_without_auc"] == 1, "no AUC for C")
    p = np.load(os.path.join(TMP, "test.npy"))
    check(abs(a["macro_auc"] - np.mean([roc_auc_score(y[:, k], p[:, k]) for k in (0, 1)])) < 1e-6, "macro over A and B")
    check("no positive" in table, "the table says why")

# one record: no class has an AUC; the other metrics are still given
one = os.path.join(TMP, "one")
shutil.rmtree(one, ignore_errors=True)
shutil.copytree(prep, one)
for name in ("X_test.npy", "y_test.npy"):
    np.save(os.path.join(one, name), np.load(os.path.join(prep, name))[:1])
os.remove(os.path.join(one, "ids_test.txt"))
js = os.path.join(TMP, "one.json")
rc, table, _ = run("eval", "--model", best, "--data", one, "--json", js)
check(rc == 0, "eval of a single record")
if rc == 0:
    a = json.load(open(js))["heads"]["average"]
    check(a["macro_auc"] is None and a["classes_without_auc"] == 3 and "macro_auc_bootstrap" not in a,
          "single record: no AUC, no interval")
    check(a["acc"] is not None and "n/a" in table, "single record: thresholded metrics given, AUC n/a")

# errors
two = os.path.join(TMP, "two")
make_prepared(two, n=(8, 8, 8), classes=("A", "B"))
rc, _, err = run("eval", "--model", best, "--data", two, expect=1)
check(rc == 1 and "classes" in err, "class count mismatch: " + err.strip())
rc, _, err = run("eval", "--model", os.path.join(TMP, "missing.safetensors"), "--data", prep, expect=1)
check(rc == 1 and "missing.safetensors" in err, "missing model named: " + err.strip())
rc, _, err = run("eval", "--model", best, "--data", prep, "--split", "dev", expect=2)
check(rc == 2, "bad split refused")
end()
