"""mrmnet quantize on the shared PTB-XL superdiagnostic split with the bundled model: the int8
engine's test-split AUCs, recomputed here with scikit-learn from the probabilities it wrote, agree
with what it printed, and the int8 macro-AUC is within 0.005 of the float engine's; the int8 image
is smaller and predict takes it (a truncated one is refused). Skips without ../shared or scikit-learn."""
import os
import sys

from cli_testlib import SRC, TMP, check, end, need_mrmnet, need_shared, prepare, run, skip

need_mrmnet()
ptb = need_shared("data/ptb-xl", "ptbxl_database.csv", "no ../shared/data/ptb-xl")
try:
    import numpy as np
    from sklearn.metrics import roc_auc_score
except ImportError:
    skip("numpy or scikit-learn not installed")

prep = os.path.join(TMP, "prep")
p = prepare(prep, "--ptbxl", ptb, "--task", "superdiagnostic")
check(p.returncode == 0, "prepare: " + p.stderr[-500:])
model = os.path.join(SRC, "models", "ptbxl-superdiagnostic.safetensors")
out = os.path.join(TMP, "w8.mrme")
scores = os.path.join(TMP, "scores")
rc, so, se = run("quantize", "--model", model, "--data", prep, "--out", out, "--scores", scores)
print(so)
check(rc == 0, "quantize: " + se[-500:])
y = np.load(os.path.join(scores, "test_y.npy"))
pf = np.load(os.path.join(scores, "test_probs_float.npy"))
pq = np.load(os.path.join(scores, "test_probs_int8.npy"))
printed = {}
for line in so.splitlines():
    f = line.split()
    if len(f) == 4 and f[0] != "class":
        try:
            printed[f[0]] = (float(f[1]), float(f[2]))
        except ValueError:
            pass
classes = open(os.path.join(prep, "classes.txt")).read().split()
af, aq = [], []
for k, c in enumerate(classes):
    a, b = roc_auc_score(y[:, k], pf[:, k]), roc_auc_score(y[:, k], pq[:, k])
    af.append(a)
    aq.append(b)
    check(c in printed and abs(printed[c][0] - a) < 6e-5 and abs(printed[c][1] - b) < 6e-5,
          f"{c}: printed {printed.get(c)} vs scikit-learn {a:.6f} {b:.6f}")
    print(f"{c:6s} float {a:.4f} int8 {b:.4f} (scikit-learn)")
mf, mq = float(np.mean(af)), float(np.mean(aq))
print(f"macro  float {mf:.4f} int8 {mq:.4f} diff {mq - mf:+.4f}")
check(abs(mq - mf) <= 0.005, f"int8 macro-AUC {mq:.4f} vs float {mf:.4f}")
check(np.max(np.abs(pq - pf)) < 0.2, "int8 probabilities far from float")
check(os.path.getsize(out) < 0.5 * os.path.getsize(model), "int8 image not smaller than half the model file")
# the int8 image is a model predict takes: probabilities near the float model's on a sample record
rec = os.path.join(SRC, "samples", "00009_lr")
rc8, s8, e8 = run("predict", "--model", out, rec, "--csv")
rcf, sf, ef = run("predict", "--model", model, rec, "--csv")
check(rc8 == 0 and rcf == 0, "predict: " + e8[-300:] + ef[-300:])
if rc8 == 0 and rcf == 0:
    r8 = [float(v) for v in s8.splitlines()[1].split(",")[1:1 + len(classes)]]
    rf = [float(v) for v in sf.splitlines()[1].split(",")[1:1 + len(classes)]]
    check(max(abs(a - b) for a, b in zip(r8, rf)) < 0.05, f"predict int8 {r8} vs float {rf}")
# a truncated image is refused with its path
with open(out, "rb") as f:
    data = f.read()
bad = os.path.join(TMP, "bad.mrme")
with open(bad, "wb") as f:
    f.write(data[: len(data) // 2])
rc, so, se = run("predict", "--model", bad, rec, expect=1)
check(rc == 1 and "bad.mrme" in se and "total_bytes" in se, "truncated image: " + se[-300:])
sys.exit(end())
