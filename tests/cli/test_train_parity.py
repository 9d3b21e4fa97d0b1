"""mrmnet train against the PyTorch twin: 3 Adam steps (weight decay 0.01, the four reference PTB-XL
records as one batch, 3 epochs, dropout 0) from the width-4 reference weights. The weights,
BatchNorm statistics and per-step losses must match tests/train/ref_adam_steps.safetensors
(written by tools/make_train_reference.py with torch.optim.Adam in float64) within a few times
the distance at which PyTorch's own float32 training lands (recorded in the file)."""
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
from mrm_testlib import SRC, TMP, check, end, read_safetensors, run  # noqa: E402

import numpy as np  # noqa: E402

FIX = os.path.join(SRC, "tests", "fixtures", "model")
REF = os.path.join(SRC, "tests", "train", "ref_adam_steps.safetensors")

prep = os.path.join(TMP, "prep")
os.makedirs(prep, exist_ok=True)
shutil.copy(os.path.join(FIX, "ref_input.npy"), os.path.join(prep, "X_train.npy"))
shutil.copy(os.path.join(FIX, "ref_labels.npy"), os.path.join(prep, "y_train.npy"))
with open(os.path.join(prep, "classes.txt"), "w") as f:
    f.write("CD\nHYP\nMI\nNORM\nSTTC\n")
with open(os.path.join(prep, "prepare.json"), "w") as f:
    json.dump({"task": "superdiagnostic", "mean": 0.0, "std": 0.2}, f)
out = os.path.join(TMP, "run")
shutil.rmtree(out, ignore_errors=True)
rc, _, err = run("train", "--data", prep, "--out", out, "--init", os.path.join(FIX, "ref_hi_weights.safetensors"),
                 "--epochs", "3", "--batch", "4", "--no-shuffle", "--dropout", "0", "--weight-decay", "0.01",
                 "--threads", "2", "--quiet")
check(rc == 0, "train")
if rc:
    end()
got, meta, _ = read_safetensors(os.path.join(out, "last.safetensors"))
ref, rmeta, _ = read_safetensors(REF)
init, _, _ = read_safetensors(os.path.join(FIX, "ref_hi_weights.safetensors"))
check(sorted(k for k in got if not k.startswith("adam.")) == sorted(ref), "same tensor names")

f32_max, f32_mean, f32_bn = (float(rmeta[k]) for k in ("f32_max_abs", "f32_mean_abs", "f32_bn_max_rel"))
worst_w = worst_bn = 0.0
sum_abs, count = 0.0, 0
for k, r in ref.items():
    g = got.get(k)
    if g is None:
        continue
    if k.endswith("num_batches_tracked"):
        check(int(g) == int(r) > int(init[k]), "%s: %d vs %d (from %d)" % (k, g, r, init[k]))
        continue
    d = float(np.abs(g.astype(np.float64) - r.astype(np.float64)).max())
    if k.endswith("running_mean") or k.endswith("running_var"):
        rel = d / max(1.0, float(np.abs(r).max()))
        worst_bn = max(worst_bn, rel)
        check(rel <= max(4 * f32_bn, 1e-5), "%s: max relative diff %g (float32 torch: %g)" % (k, rel, f32_bn))
    else:
        # Adam moves every weight by about 1e-3 a step; a wrong detail (no weight decay, another
        # eps, no bias correction) shifts the mean difference by 4e-5 or more.
        worst_w = max(worst_w, d)
        sum_abs += float(np.abs(g.astype(np.float64) - r.astype(np.float64)).sum())
        count += r.size
        check(d <= max(4 * f32_max, 1e-5), "%s: max diff %g (float32 torch: %g)" % (k, d, f32_max))
check(sum_abs / count <= max(4 * f32_mean, 1e-7), "mean |weight - torch| %g (float32 torch: %g)" % (sum_abs / count, f32_mean))
losses_ref = json.loads(rmeta["losses"])
steps = [json.loads(l) for l in open(os.path.join(out, "log.jsonl")) if '"step"' in l and '"type":"step"' in l]
check(len(steps) == 3, "3 steps logged")
for s, lr in zip(steps, losses_ref):
    check(abs(s["loss"] - lr) <= 1e-5 * max(1, abs(lr)), "step %d loss %.9g vs torch %.9g" % (s["step"], s["loss"], lr))
print("max |weight - torch| = %.3g, mean %.3g, max relative BN statistic diff = %.3g; float32 torch: %.3g, %.3g, %.3g"
      % (worst_w, sum_abs / count, worst_bn, f32_max, f32_mean, f32_bn))
end()
