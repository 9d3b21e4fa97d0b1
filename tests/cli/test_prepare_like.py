"""A user's own labelled records with a trained model: prepare --standardise-like (the model's mean,
std and classes; labels outside them counted), --class-map, then eval without warnings; thresholds
chosen by a rule and stored with it (eval --save-model), and eval at the stored thresholds."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "io"))
from mrm_testlib import SRC, TMP, check, end, read_safetensors, run  # noqa: E402
from cli_testlib import prepare  # noqa: E402

import numpy as np  # noqa: E402
import rawread  # noqa: E402

model = os.path.join(SRC, "models", "ptbxl-superdiagnostic.safetensors")
samples = os.path.join(SRC, "samples")
_, meta, _ = read_safetensors(model)
mean, std, classes = float(meta["mean"]), float(meta["std"]), json.loads(meta["classes"])

labels = os.path.join(TMP, "labels.csv")
with open(labels, "w") as f:
    f.write("record,labels\n00009_lr,NORM\n00063_lr,IMI\n00065_lr,CD\n00116_lr,STTC\n00162_lr,CD;HYP;MI;STTC\n"
            "A0001,RBBB;PAC\n")
cmap = os.path.join(TMP, "map.csv")
with open(cmap, "w") as f:
    f.write("from,to\nIMI,MI\nRBBB,CD\n")

# the model's standardisation and classes; the labels it does not know are counted
p1 = os.path.join(TMP, "like")
r = prepare(p1, "--records", samples, "--labels", labels, "--standardise-like", model)
check(r.returncode == 0, "prepare --standardise-like (%s)" % r.stderr[-300:])
pj = json.load(open(os.path.join(p1, "prepare.json")))
check(pj["mean"] == mean and pj["std"] == std, "prepare.json holds the model's mean and std")
check(open(os.path.join(p1, "classes.txt")).read().split() == classes, "the model's classes, in its order")
out = pj.get("labels_outside_classes", {})
check(out.get("records") == 2 and out.get("labels") == {"IMI": 1, "RBBB": 1, "PAC": 1} and out.get("records_left_without_label") == 2,
      "labels outside the class list counted: %s" % out)
check("2 records" in r.stdout and "IMI" in r.stdout, "and reported")
ids = open(os.path.join(p1, "ids_test.txt")).read().split()
check(len(ids) == 6 and not os.path.exists(os.path.join(p1, "X_train.npy")) or
      np.load(os.path.join(p1, "y_train.npy")).shape[0] == 0, "every record in the test split")
X = np.load(os.path.join(p1, "X_test.npy"))
y = np.load(os.path.join(p1, "y_test.npy"))
k = ids.index("00009_lr")
_, raw = rawread.read(os.path.join(samples, "00009_lr"))  # 100 Hz, 10 s, the model's lead order
check(np.allclose(X[k], ((raw - mean) / std).astype(np.float32), atol=1e-5), "X = (raw - model mean) / model std")
check(list(y[ids.index("00063_lr")]) == [0, 0, 0, 0, 0], "IMI is outside the superclasses: no label")

# a class map brings the other vocabulary in
p2 = os.path.join(TMP, "mapped")
r = prepare(p2, "--records", samples, "--labels", labels, "--standardise-like", model, "--class-map", cmap)
check(r.returncode == 0, "prepare --class-map")
ids2 = open(os.path.join(p2, "ids_test.txt")).read().split()
y2 = np.load(os.path.join(p2, "y_test.npy"))
check(y2[ids2.index("00063_lr"), classes.index("MI")] == 1 and y2[ids2.index("A0001"), classes.index("CD")] == 1,
      "IMI -> MI, RBBB -> CD")
pj2 = json.load(open(os.path.join(p2, "prepare.json")))
check(pj2["labels_outside_classes"]["labels"] == {"PAC": 1} and pj2["class_map"] == cmap, "only PAC left outside")

# eval of the model on them: no warning; at the stored thresholds
rc, table, err = run("eval", "--model", model, "--data", p2, "--resamples", "0", "--json", os.path.join(TMP, "e.json"))
check(rc == 0 and "warning" not in err, "eval on data prepared like the model: no warning (%s)" % err.strip())
e = json.load(open(os.path.join(TMP, "e.json")))
thr = json.loads(meta["thresholds"])
check(e["operating_point"]["source"] == "stored" and
      [e["operating_point"]["per_class"][c]["threshold"] for c in classes] == [float(np.float32(t)) for t in thr],
      "the operating point is the model's stored thresholds")
# a folder standardised its own way still warns
p3 = os.path.join(TMP, "own")
labels3 = os.path.join(TMP, "labels3.csv")
open(labels3, "w").write(open(labels).read().replace("RBBB;PAC", "RBBB"))
r = prepare(p3, "--records", samples, "--labels", labels3, "--class-map", cmap, "--seed", "3")
rc, _, err = run("eval", "--model", model, "--data", p3, "--split", "train", "--resamples", "0", expect=None)
check("warning" in err and "--standardise-like" in err, "other standardisation: the warning names the remedy")

# thresholds by a rule, stored with the rule; eval at them reproduces the rule's numbers
saved = os.path.join(TMP, "youden.safetensors")
rc, table, _ = run("eval", "--model", model, "--data", p2, "--resamples", "0", "--threshold-rule", "youden",
                   "--save-model", saved, "--json", os.path.join(TMP, "y.json"))
check(rc == 0 and "optimistic" in table, "the rule on the evaluated split is marked optimistic")
_, m2, t2 = read_safetensors(saved)
_, m0, t0 = read_safetensors(model)
check(m2["threshold_rule"] == "youden" and m2["threshold_split"] == "test", "rule and split stored")
check(all(np.array_equal(t0[k], t2[k]) for k in t0), "the weights are unchanged")
rc, _, _ = run("eval", "--model", saved, "--data", p2, "--resamples", "0", "--json", os.path.join(TMP, "s.json"))
a, b = json.load(open(os.path.join(TMP, "y.json"))), json.load(open(os.path.join(TMP, "s.json")))
check(b["operating_point"]["source"] == "stored" and b["operating_point"]["rule"] == "youden" and
      not b["operating_point"]["optimistic"], "eval reports the stored rule")
check(a["operating_point"]["per_class"] == b["operating_point"]["per_class"], "the same numbers at the stored thresholds")

# errors
bad = os.path.join(TMP, "badmap.csv")
open(bad, "w").write("source,target\nIMI,MI\n")
r = prepare(os.path.join(TMP, "bad"), "--records", samples, "--labels", labels, "--class-map", bad)
check(r.returncode == 1 and "badmap.csv" in r.stderr and "from" in r.stderr, "a map without from/to columns is refused")
r = prepare(os.path.join(TMP, "bad2"), "--records", samples, "--labels", labels, "--standardise-like", labels)
check(r.returncode == 1 and "labels.csv" in r.stderr, "a non-model file is refused")
rc, _, err = run("eval", "--model", model, "--data", p2, "--save-model", saved, expect=2)
check(rc == 2 and "--threshold-rule" in err, "--save-model needs a rule")
end()
