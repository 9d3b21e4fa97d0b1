"""Training options beyond the paper's protocol: BCE pos_weight (given or computed from the training
split), learning-rate schedules (step, cosine, reduce-on-plateau on the validation macro-AUC,
compared with PyTorch's schedulers when torch is installed, else with their documented formulas)
and early stopping; the defaults are the paper's and every run's record holds them."""
import json
import math
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
from mrm_testlib import TMP, check, end, make_prepared, read_safetensors, run  # noqa: E402

import numpy as np  # noqa: E402

try:
    import torch
except ImportError:
    torch = None

prep = make_prepared(os.path.join(TMP, "prep"), n=(40, 30, 20))


def train(name, *extra, epochs=4):
    out = os.path.join(TMP, name)
    shutil.rmtree(out, ignore_errors=True)
    rc, _, err = run("train", "--data", prep, "--out", out, "--epochs", str(epochs), "--batch", "8", "--width", "4",
                     "--threads", "2", "--quiet", *extra)
    check(rc == 0, "%s: train (%s)" % (name, err.strip()[-300:]))
    lines = [json.loads(x) for x in open(os.path.join(out, "log.jsonl"))] if rc == 0 else []
    start = next((x for x in lines if x["type"] == "start"), {"config": {}})
    return out, start["config"], [x for x in lines if x["type"] == "epoch"], lines


# the defaults: the paper's protocol, written into the record
out, cfg, ep, _ = train("default", epochs=2)
check(cfg.get("pos_weight_mode") == "none" and cfg.get("pos_weight") is None and cfg.get("lr_schedule") == "constant" and
      cfg.get("early_stop") == 0, "defaults recorded: %s" % {k: cfg.get(k) for k in ("pos_weight_mode", "lr_schedule", "early_stop")})
check(all(abs(e["lr"] - 1e-3) < 1e-15 for e in ep), "constant rate")
if cfg:
    _, meta, _ = read_safetensors(os.path.join(out, "last.safetensors"))
    check(json.loads(meta["train_config"])["lr_schedule"] == "constant", "the checkpoint's record too")

# pos_weight auto = negatives / positives of each class in the training split
y = np.load(os.path.join(prep, "y_train.npy"))
want = (len(y) - y.sum(0)) / y.sum(0)
out, cfg, ep, _ = train("posw", "--pos-weight", "auto", "--lr-schedule", "step:1:0.5", epochs=3)
check(cfg.get("pos_weight_mode") == "auto" and np.allclose(cfg.get("pos_weight") or [0], want, rtol=1e-6),
      "auto pos_weight %s vs %s" % (cfg.get("pos_weight"), want))
lrs = [e["lr"] for e in ep]
if torch is not None:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-3)
    sch = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    ref = []
    for _ in range(3):
        ref.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
else:
    ref = [1e-3 * 0.5 ** e for e in range(3)]
check(np.allclose(lrs, ref, rtol=1e-12), "step schedule %s vs %s" % (lrs, ref))
# a given weight changes the loss; the same weight for every class from one number
out2, cfg2, ep2, _ = train("posw1", "--pos-weight", "3", epochs=1)
check(cfg2.get("pos_weight") == [3.0, 3.0, 3.0], "one weight for every class: %s" % cfg2.get("pos_weight"))
_, _, ep1, _ = train("posw_none", epochs=1)
check(ep2 and ep1 and ep2[0]["bce1"] > ep1[0]["bce1"], "weighted positives raise the BCE")

# cosine
out, cfg, ep, _ = train("cosine", "--lr-schedule", "cosine:1e-5", epochs=4)
lrs = [e["lr"] for e in ep]
if torch is not None:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-3)
    sch = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4, eta_min=1e-5)
    ref = []
    for _ in range(4):
        ref.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
else:
    ref = [1e-5 + (1e-3 - 1e-5) * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
check(np.allclose(lrs, ref, rtol=1e-9), "cosine schedule %s vs %s" % (lrs, ref))

# reduce-on-plateau on the validation macro-AUC, and early stopping
out, cfg, ep, lines = train("plateau", "--lr-schedule", "plateau:0:0.5", "--early-stop", "2", epochs=6)
lrs, aucs = [e["lr"] for e in ep], [e["val_macro_auc"] for e in ep]
if torch is not None:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-3)
    sch = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=0)
    ref = []
    for a in aucs:
        ref.append(opt.param_groups[0]["lr"])
        sch.step(a)
else:
    ref, lr, best, bad = [], 1e-3, -math.inf, 0
    for a in aucs:
        ref.append(lr)
        if a > best * (1 + 1e-4):
            best, bad = a, 0
        else:
            bad += 1
        if bad > 0:
            lr, bad = lr * 0.5, 0
check(np.allclose(lrs, ref, rtol=1e-12), "plateau schedule %s vs %s (val AUC %s)" % (lrs, ref, aucs))
# early stopping: the run ends at the first epoch that is 2 past the best (strictly better) epoch
best_ep, stop_at = 0, None
for i, a in enumerate(aucs):
    if best_ep == 0 or a > aucs[best_ep - 1]:
        best_ep = i + 1
    if i + 1 - best_ep >= 2 and i + 1 < 6:
        stop_at = i + 1
        break
stopped = [x for x in lines if x["type"] == "early_stop"]
check(len(ep) == (stop_at or 6) and (stop_at is None) == (not stopped), "early stop at %s, ran %d epochs" % (stop_at, len(ep)))
_, meta, _ = read_safetensors(os.path.join(out, "best.safetensors"))
check(int(meta["epoch"]) == best_ep, "best.safetensors is the best epoch's (%s vs %d)" % (meta["epoch"], best_ep))

# bad values are usage errors
for opt_, val in (("--lr-schedule", "step:0:0.5"), ("--lr-schedule", "plateau:1:1.5"), ("--lr-schedule", "linear"),
                  ("--pos-weight", "0"), ("--pos-weight", "1,x"), ("--early-stop", "-1")):
    rc, _, err = run("train", "--data", prep, "--out", os.path.join(TMP, "bad"), opt_, val, expect=2)
    check(rc == 2 and opt_ in err, "%s %s refused" % (opt_, val))
rc, _, err = run("train", "--data", prep, "--out", os.path.join(TMP, "bad2"), "--pos-weight", "1,2", "--epochs", "1",
                 "--width", "4", expect=1)
check(rc == 1 and "pos_weight" in err, "2 weights for 3 classes refused (%s)" % err.strip())
end()
