"""Trains the PyTorch twin of MRM-Net on a prepared dataset folder (what `mrmnet prepare` writes:
X_{train,val,test}.npy float32 (N, 12, 1000), already standardised, y_*.npy float32 (N, C),
optionally classes.txt and prepare.json) with the protocol of spec section 6, and reports
macro-AUC as JSON.

    /usr/bin/python3 tools/train_torch.py PREP_DIR --epochs 40 --seed 1 --out best.safetensors
        [--init W.safetensors] [--width 16] [--hi-attention] [--json report.json]

Protocol: Adam (lr 1e-3, betas 0.9/0.999, eps 1e-8, no weight decay), batch 96, shuffled every
epoch (torch.randperm with a generator seeded by --seed), last partial batch kept, dropout 0.2 in
the multi-scale path, the loss of spec section 5. After every epoch the validation split is
predicted in evaluation mode; the best epoch is the one with the highest validation macro-AUC of
the average of the two heads' sigmoid outputs. Its weights are saved (our safetensors format) and
evaluated on the test split: macro-AUC of head 1, head 2 and their average.
"""
import argparse
import copy
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mrmnet_torch import MRMNet, load_model, mrmnet_loss, save_model  # noqa: E402

try:
    from sklearn.metrics import roc_auc_score
except ImportError:  # pragma: no cover
    roc_auc_score = None


def macro_auc(y, p, classes):
    """Mean ROC AUC over the classes that have both a positive and a negative (scikit-learn,
    ties counted half). Returns (macro, per-class dict, classes without an AUC)."""
    per, missing = {}, []
    for j, c in enumerate(classes):
        pos = int(y[:, j].sum())
        if pos == 0 or pos == len(y):
            missing.append(c)
            continue
        per[c] = float(roc_auc_score(y[:, j], p[:, j]))
    macro = float(np.mean(list(per.values()))) if per else float("nan")
    return macro, per, missing


def predict(model, x, batch=128):
    """Sigmoid outputs of both heads in evaluation mode: (p1, p2), each (N, C)."""
    model.eval()
    p1, p2 = [], []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            _, o1, _, o2 = model(torch.from_numpy(x[i:i + batch]))
            p1.append(torch.sigmoid(o1).numpy())
            p2.append(torch.sigmoid(o2).numpy())
    return np.concatenate(p1).astype(np.float64), np.concatenate(p2).astype(np.float64)


def evaluate(model, x, y, classes):
    p1, p2 = predict(model, x)
    out = {}
    for name, p in (("head1", p1), ("head2", p2), ("average", (p1 + p2) / 2)):
        macro, per, missing = macro_auc(y, p, classes)
        out[name] = {"macro_auc": macro, "per_class_auc": per}
        out["classes_without_auc"] = missing
    return out


def load_split(d, split):
    x = np.load(os.path.join(d, "X_%s.npy" % split)).astype(np.float32, copy=False)
    y = np.load(os.path.join(d, "y_%s.npy" % split)).astype(np.float32, copy=False)
    if x.ndim != 3 or x.shape[1:] != (12, 1000) or y.ndim != 2 or len(y) != len(x):
        raise SystemExit("%s: X_%s %s / y_%s %s: expected (N, 12, 1000) and (N, C)"
                         % (d, split, x.shape, split, y.shape))
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("data", help="prepared dataset folder")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=96)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--hi-attention", action="store_true")
    ap.add_argument("--init", help="start from these weights (our safetensors)")
    ap.add_argument("--out", default="best.safetensors", help="best weights (safetensors)")
    ap.add_argument("--json", help="also write the report here")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    if roc_auc_score is None:
        raise SystemExit("scikit-learn is needed for the macro-AUC")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    xtr, ytr = load_split(a.data, "train")
    xva, yva = load_split(a.data, "val")
    xte, yte = load_split(a.data, "test")
    n_classes = ytr.shape[1]
    classes_path = os.path.join(a.data, "classes.txt")
    if os.path.exists(classes_path):
        classes = [ln.strip() for ln in open(classes_path) if ln.strip()]
    else:
        classes = ["c%d" % j for j in range(n_classes)]
    if len(classes) != n_classes:
        raise SystemExit("%s: %d classes, y has %d columns" % (classes_path, len(classes), n_classes))
    prep = {}
    if os.path.exists(os.path.join(a.data, "prepare.json")):
        prep = json.load(open(os.path.join(a.data, "prepare.json")))

    if a.init:
        model, _ = load_model(a.init, dropout=a.dropout)
        if model.num_classes != n_classes:
            raise SystemExit("%s: %d classes, the data has %d" % (a.init, model.num_classes, n_classes))
    else:
        model = MRMNet(n_classes, a.width, a.hi_attention, dropout=a.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8,
                           weight_decay=0.0)
    gen = torch.Generator().manual_seed(a.seed)
    xtr_t, ytr_t = torch.from_numpy(xtr), torch.from_numpy(ytr)

    history, best, best_state = [], None, None
    skipped_single = 0
    for epoch in range(1, a.epochs + 1):
        t0 = time.time()
        model.train()
        order = torch.randperm(len(xtr), generator=gen)
        total, parts_sum, seen = 0.0, {}, 0
        for i in range(0, len(order), a.batch):
            idx = order[i:i + a.batch]
            if len(idx) < 2:  # train-mode BatchNorm needs 2 values a channel
                skipped_single += 1
                continue
            f1, o1, f2, o2 = model(xtr_t[idx])
            loss, parts = mrmnet_loss(f1, o1, f2, o2, ytr_t[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + float(v) * len(idx)
            seen += len(idx)
        val = evaluate(model, xva, yva, classes)
        rec = {"epoch": epoch, "train_loss": total / max(seen, 1),
               "train_parts": {k: v / max(seen, 1) for k, v in parts_sum.items()},
               "val_macro_auc": {h: val[h]["macro_auc"] for h in ("head1", "head2", "average")},
               "seconds": time.time() - t0}
        history.append(rec)
        print(json.dumps(rec), file=sys.stderr, flush=True)
        score = val["average"]["macro_auc"]
        if best is None or (score == score and score > best["val_macro_auc"]["average"]):
            best, best_state = rec, copy.deepcopy(model.state_dict())

    model.load_state_dict(best_state)
    save_model(model, a.out, classes, task=prep.get("task", ""),
               mean="%.9g" % float(prep.get("mean", 0.0)), std="%.9g" % float(prep.get("std", 1.0)),
               source="tools/train_torch.py seed %d epoch %d of %d" % (a.seed, best["epoch"], a.epochs))
    test = evaluate(model, xte, yte, classes)
    report = {"data": os.path.abspath(a.data), "classes": classes, "seed": a.seed,
              "epochs": a.epochs, "batch": a.batch, "lr": a.lr, "dropout": a.dropout,
              "width": model.mid_channels, "hi_attention": model.hi_attention,
              "init": a.init, "n_train": len(xtr), "n_val": len(xva), "n_test": len(xte),
              "best_epoch": best["epoch"], "val_macro_auc": best["val_macro_auc"],
              "test_macro_auc": {h: test[h]["macro_auc"] for h in ("head1", "head2", "average")},
              "test_per_class_auc_average": test["average"]["per_class_auc"],
              "test_classes_without_auc": test["classes_without_auc"],
              "skipped_batches_of_one": skipped_single, "weights": os.path.abspath(a.out),
              "history": history}
    text = json.dumps(report, indent=1)
    if a.json:
        tmp = a.json + ".tmp.%d" % os.getpid()
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, a.json)
    print(text)


if __name__ == "__main__":
    main()
