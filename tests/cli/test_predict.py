"""mrmnet predict on fixture records: the probabilities of a PTB-XL record equal those of `mrmnet
eval` on the same signal decoded and standardised by numpy; labels follow the model's thresholds;
MATLAB records; bad recordings (2 leads, too short, missing) reported without stopping the rest."""
import csv
import io
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
from mrm_testlib import SRC, TMP, check, end, make_prepared, read_safetensors, run  # noqa: E402

import numpy as np  # noqa: E402

FIX = os.path.join(SRC, "tests", "fixtures")
ptb = [os.path.join(FIX, "ptb-xl", r) for r in ("00001_lr", "00002_lr", "01000_lr")]

# a small model whose metadata asks for a non-trivial standardisation
prep = make_prepared(os.path.join(TMP, "prep"))
pj = json.load(open(os.path.join(prep, "prepare.json")))
pj.update(mean=0.05, std=0.3)
json.dump(pj, open(os.path.join(prep, "prepare.json"), "w"))
out = os.path.join(TMP, "run")
shutil.rmtree(out, ignore_errors=True)
check(run("train", "--data", prep, "--out", out, "--epochs", "1", "--batch", "8", "--width", "4", "--threads", "2",
          "--quiet")[0] == 0, "train")
model = os.path.join(out, "best.safetensors")
_, meta, _ = read_safetensors(model)
thr = np.array(json.loads(meta["thresholds"]), dtype=np.float32)


def decode_wfdb16(rec):
    """Physical values (12, T) of a format-16 WFDB record, from its header and raw bytes."""
    lines = [l.split() for l in open(rec + ".hea") if l.strip() and not l.startswith("#")]
    nsig, n = int(lines[0][1]), int(lines[0][3])
    gains = [float(l[2].split("(")[0].split("/")[0]) for l in lines[1:1 + nsig]]
    base = [int(l[2].split("(")[1].split(")")[0]) if "(" in l[2] else 0 for l in lines[1:1 + nsig]]
    d = np.fromfile(rec + ".dat", dtype="<i2").reshape(n, nsig).T.astype(np.float64)
    return (d - np.array(base)[:, None]) / np.array(gains)[:, None]


# reference: the same records prepared by numpy, evaluated by mrmnet eval (same model)
ref = os.path.join(TMP, "ref")
os.makedirs(ref, exist_ok=True)
x = np.stack([(decode_wfdb16(r) - 0.05) / 0.3 for r in ptb]).astype(np.float32)
np.save(os.path.join(ref, "X_test.npy"), x)
np.save(os.path.join(ref, "y_test.npy"), np.eye(3, dtype=np.float32))
shutil.copy(os.path.join(prep, "classes.txt"), ref)
shutil.copy(os.path.join(prep, "prepare.json"), ref)
pred = os.path.join(TMP, "ref.npy")
check(run("eval", "--model", model, "--data", ref, "--predictions", pred, "--resamples", "0")[0] == 0, "eval of the reference")
pref = np.load(pred)

rc, so, se = run("predict", "--model", model, "--json", *ptb)
check(rc == 0, "predict PTB-XL records")
res = json.loads(so) if rc == 0 else []
check(len(res) == 3, "3 results")
for i, r in enumerate(res):
    p = np.array([r["probabilities"][k] for k in ("A", "B", "C")])
    check(np.abs(p - pref[i]).max() < 2e-6, "record %d: predict %s vs eval on numpy-decoded signal %s" % (i, p, pref[i]))
    want = [k for k, pk, tk in zip(("A", "B", "C"), pref[i], thr) if pk > tk]
    check(r["labels"] == want, "labels above the model's thresholds: %s vs %s" % (r["labels"], want))
    check(r["record"] == ptb[i], "record name")

# --csv and a folder
rc, so, se = run("predict", "--model", model, "--csv", os.path.join(FIX, "ptb-xl"))
rows = list(csv.reader(io.StringIO(so)))
check(rc == 0 and rows[0] == ["record", "A", "B", "C", "labels", "error"], "csv header")
check(len(rows) == 1 + len([f for f in os.listdir(os.path.join(FIX, "ptb-xl")) if f.endswith(".hea")]), "one row a record")
for row in rows[1:]:
    p = np.array(row[1:4], dtype=float)
    check(((p >= 0) & (p <= 1)).all(), "probabilities in [0, 1]")
    if (np.abs(p - thr) > 1e-5).all():  # the csv rounds to 6 decimals
        check(row[4] == ";".join(k for k, pk, tk in zip("ABC", p, thr) if pk > tk), "csv labels " + ",".join(row))
# the 500 Hz PTB-XL record resamples to nearly the 100 Hz one
lr = [r for r in rows if r[0].endswith("00001_lr.hea")][0]
hr = [r for r in rows if r[0].endswith("00001_hr.hea")][0]
check(np.abs(np.array(lr[1:4], float) - np.array(hr[1:4], float)).max() < 0.05, "500 Hz record close to its 100 Hz twin")

# MATLAB records (CPSC2018 v5 original, Challenge 2020 v4 via its header)
rc, so, se = run("predict", "--model", model, "--json", os.path.join(FIX, "cpsc2018", "A1980.mat"),
                 os.path.join(FIX, "challenge2020", "A0002.mat"))
check(rc == 0 and len(json.loads(so)) == 2, "MATLAB v5 and v4 records: " + se.strip())

# bad inputs: a 2-lead record, a 0.5 s record, a missing record; a 5 s record is padded
bad = os.path.join(TMP, "bad")
os.makedirs(bad, exist_ok=True)
names = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
for name, n in (("short", 50), ("five", 500)):
    with open(os.path.join(bad, name + ".hea"), "w") as f:
        f.write("%s 12 100 %d\n" % (name, n))
        for lead in names:
            f.write("%s.dat 16 1000/mV 16 0 0 0 0 %s\n" % (name, lead))
    (np.random.default_rng(1).integers(-500, 500, (n, 12))).astype("<i2").tofile(os.path.join(bad, name + ".dat"))
args = [ptb[0], os.path.join(FIX, "mitdb", "100s"), os.path.join(bad, "short"), os.path.join(bad, "missing"),
        os.path.join(bad, "five"), ptb[1]]
rc, so, se = run("predict", "--model", model, "--json", "--batch", "2", "--min-seconds", "1", *args, expect=1)
check(rc == 1, "exit status 1 when a record fails")
res = json.loads(so)
check([r["record"] for r in res] == args, "one entry an input, in their order")
check([r["record"] for r in res if "error" not in r] == [ptb[0], os.path.join(bad, "five"), ptb[1]],
      "the good records still labelled")
check(all(("error" in r) == ("probabilities" not in r) for r in res), "an entry has probabilities or an error")
check("shorter than" in [r for r in res if r["record"].endswith("short")][0]["error"], "the short record's error")
check("100s" in se and "12 standard leads cannot be formed" in se and "missing: I, II, V1, V2, V3, V4, V6" in se, "2-lead record: " + se)
check("short" in se and "shorter than" in se, "too short record reported")
check("missing" in se, "missing record reported")
check("zero-padded" in se, "padding reported")
# by default a recording shorter than the model's 10 s window is refused, with the reason
rc, so, se = run("predict", "--model", model, os.path.join(bad, "five"), expect=1)
check(rc == 1 and "5 s long, shorter than 10 s" in se, "5 s record refused by default: " + se)

# errors of usage
rc, _, se = run("predict", "--model", model, expect=2)
check(rc == 2, "no record")
rc, _, se = run("predict", "--model", os.path.join(TMP, "none.safetensors"), ptb[0], expect=1)
check(rc == 1 and "none.safetensors" in se, "missing model named")
end()
