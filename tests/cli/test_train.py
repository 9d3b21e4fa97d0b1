"""mrmnet train: determinism, exact resume (at an epoch boundary and within an epoch), the files of
a run, validation selection, and errors. Tiny width-4 model on a random prepared folder."""
import json
import os
import shutil
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
from mrm_testlib import TMP, check, end, make_prepared, read_safetensors, run  # noqa: E402

prep = make_prepared(os.path.join(TMP, "prep"))
common = ["--data", prep, "--batch", "8", "--width", "4", "--threads", "2", "--quiet"]


def fresh(name):
    d = os.path.join(TMP, name)
    shutil.rmtree(d, ignore_errors=True)
    return d


# 1. Same seed and threads: bit-identical checkpoints (3 steps, no epoch finished: whole files).
a, b = fresh("det_a"), fresh("det_b")
check(run("train", *common, "--out", a, "--steps", "3")[0] == 0, "train --steps 3")
check(run("train", *common, "--out", b, "--steps", "3")[0] == 0, "train --steps 3 again")
fa = open(os.path.join(a, "last.safetensors"), "rb").read()
fb = open(os.path.join(b, "last.safetensors"), "rb").read()
check(fa == fb, "same seed and threads: identical last.safetensors bytes")
ta, ma, _ = read_safetensors(os.path.join(a, "last.safetensors"))
check("adam.m" in ta and "adam.v" in ta, "optimizer moments in the checkpoint")
check(json.loads(ma["train_state"])["step"] == 3, "3 steps recorded")
check(ma["optimizer_t"] == "3", "optimizer step count 3")
# another seed: other weights
c = fresh("det_c")
run("train", *common, "--out", c, "--steps", "3", "--seed", "2")
tc, _, _ = read_safetensors(os.path.join(c, "last.safetensors"))
w = "BaseBlock.conv_block1.0.weight"
check(not (ta[w] == tc[w]).all(), "another seed: other weights")
# the weights keep moving: 1 step vs 3 steps
z = fresh("det_z")
run("train", *common, "--out", z, "--steps", "1")
tz, mz, _ = read_safetensors(os.path.join(z, "last.safetensors"))
check(not (ta[w] == tz[w]).all(), "steps 2 and 3 change the weights")
check(mz["optimizer_t"] == "1" and float(tz["adam.v"].min()) >= 0, "one step, second moment >= 0")

# 2. Two epochs uninterrupted vs one epoch + resume vs 3 steps + resume (5 steps an epoch).
full, r1, r2 = fresh("full"), fresh("res1"), fresh("res2")
check(run("train", *common, "--out", full, "--epochs", "2")[0] == 0, "2 epochs")
check(run("train", *common, "--out", r1, "--epochs", "1")[0] == 0, "1 epoch")
check(run("train", "--resume", r1, "--epochs", "2", "--quiet")[0] == 0, "resume to 2 epochs")
check(run("train", *common, "--out", r2, "--epochs", "2", "--steps", "3")[0] == 0, "3 steps")
check(run("train", "--resume", r2, "--steps", "0", "--quiet")[0] == 0, "resume within the epoch")
tf, mf, rf = read_safetensors(os.path.join(full, "last.safetensors"))
for other in (r1, r2):
    to, mo, ro = read_safetensors(os.path.join(other, "last.safetensors"))
    check(sorted(rf) == sorted(ro), "same tensors")
    diff = [k for k in rf if rf[k] != ro.get(k)]
    check(not diff, "resumed run %s equals the uninterrupted one (differs: %s)" % (other, diff[:3]))
    sf, so = json.loads(mf["train_state"]), json.loads(mo["train_state"])
    check(sf["step"] == so["step"] == 10 and sf["epochs_done"] == so["epochs_done"] == 2, "10 steps, 2 epochs")
    check([h["loss"] for h in sf["history"]] == [h["loss"] for h in so["history"]], "same loss history")
    bf, _, _ = read_safetensors(os.path.join(full, "best.safetensors"))
    bo, mbo, _ = read_safetensors(os.path.join(other, "best.safetensors"))
    check(all((bf[k] == bo[k]).all() for k in bf), "same best weights")

# 3. The files of a run.
lines = [json.loads(l) for l in open(os.path.join(full, "log.jsonl"))]
steps = [l for l in lines if l["type"] == "step"]
epochs = [l for l in lines if l["type"] == "epoch"]
check(len(steps) == 10 and len(epochs) == 2, "log: 10 steps, 2 epochs (%d, %d)" % (len(steps), len(epochs)))
check(all(abs(s["loss"] - (s["bce1"] + s["bce2"] + 0.01 * s["kl_feat"] + 0.1 * s["kl_logits"])) < 1e-5 * max(1, s["loss"])
          for s in steps), "loss = bce1 + bce2 + 0.01 kl_feat + 0.1 kl_logits")
root = ET.parse(os.path.join(full, "curves.svg")).getroot()
check(root.tag.endswith("svg") and len(root.findall(".//{http://www.w3.org/2000/svg}polyline")) >= 2, "curves.svg has lines")
bt, bm, _ = read_safetensors(os.path.join(full, "best.safetensors"))
check(json.loads(bm["classes"]) == ["A", "B", "C"], "classes in best")
check(bm["task"] == "toy" and float(bm["mean"]) == 0.0 and float(bm["std"]) == 1.0, "task, mean, std in best")
thr = json.loads(bm.get("thresholds", "[]"))
check(len(thr) == 3 and all(0 <= t <= 1 for t in thr), "3 thresholds in best: %s" % thr)
check("adam.m" not in bt, "best.safetensors is a plain model file")
# best = the epoch with the highest validation macro-AUC
aucs = [e["val_macro_auc"] for e in epochs]
best_epoch = max(range(len(aucs)), key=lambda i: (aucs[i], -i)) + 1
check(int(bm["epoch"]) == best_epoch, "best epoch %s, expected %d (%s)" % (bm["epoch"], best_epoch, aucs))
check(abs(float(bm["val_macro_auc"]) - max(aucs)) < 1e-6, "best metric recorded")

# 4. Without a validation split: the last epoch is kept, no thresholds, a warning.
noval = fresh("noval_prep")
shutil.copytree(prep, noval)
for f in ("X_val.npy", "y_val.npy", "ids_val.txt"):
    os.remove(os.path.join(noval, f))
nv = fresh("noval")
rc, _, err = run("train", *common[2:], "--data", noval, "--out", nv, "--epochs", "2")
check(rc == 0 and "validation" in err, "train without a validation split warns: " + err.strip())
_, mnv, _ = read_safetensors(os.path.join(nv, "best.safetensors"))
check(mnv["epoch"] == "2" and "thresholds" not in mnv, "no validation: best = last epoch, no thresholds")

# 5. Errors.
rc, _, err = run("train", "--data", os.path.join(TMP, "nope"), "--out", fresh("bad"), "--width", "4", expect=1)
check(rc == 1 and "nope" in err, "missing data folder named: " + err.strip())
rc, _, err = run("train", "--data", prep, "--out", fresh("bad"), "--width", "6", expect=2)
check(rc == 2, "width not a multiple of 4 refused")
rc, _, err = run("train", "--data", prep, expect=2)
check(rc == 2, "--out missing")
rc, _, err = run("train", "--resume", fresh("bad"), expect=1)
check(rc == 1 and "last.safetensors" in err, "resume of an empty folder: " + err.strip())
other = fresh("otherprep")
make_prepared(other, n=(48, 24, 20))
rc, _, err = run("train", "--resume", r1, "--data", other, "--epochs", "3", expect=1)
check(rc == 1 and "48 records" in err and "40" in err, "resume on another training split refused: " + err.strip())
bad = fresh("badprep")
shutil.copytree(prep, bad)
with open(os.path.join(bad, "classes.txt"), "w") as f:
    f.write("A\nB\n")
rc, _, err = run("train", "--data", bad, "--out", fresh("bad"), "--width", "4", expect=1)
check(rc == 1 and "y_train.npy" in err, "labels of another width than classes.txt: " + err.strip())

end()
