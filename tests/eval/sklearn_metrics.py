"""Reference values for tests/eval/test_metrics_sklearn.c, from scikit-learn and numpy.

usage: sklearn_metrics.py DIR   (DIR holds case*.txt "n c", case*_y.f32, case*_p.f32)
Writes DIR/case*_ref.txt: one "name value" a line. Exits 77 when numpy or scikit-learn is missing.
"""
import glob
import os
import sys

try:
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score, recall_score, roc_auc_score, roc_curve
except ImportError:
    sys.exit(77)


def fmax(y, p):
    # sample-centric Fmax over t = 0.00 .. 1.00 (prediction p >= t)
    best, best_t = 0.0, 0.0
    for step in range(101):
        t = step / 100.0
        q = p.astype(np.float64) >= t
        tp = (q & (y == 1)).sum(axis=1)
        npred, ntrue = q.sum(axis=1), (y == 1).sum(axis=1)
        has = npred > 0
        prec = (tp[has] / npred[has]).mean() if has.any() else 0.0
        rec = np.where(ntrue > 0, tp / np.maximum(ntrue, 1), 0.0).mean()
        f = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
        if f > best:
            best, best_t = f, t
    return best, best_t


def main():
    d = sys.argv[1]
    for meta in sorted(glob.glob(os.path.join(d, "case*.txt"))):
        if meta.endswith("_ref.txt"):
            continue
        base = meta[:-4]
        n, c = map(int, open(meta).read().split())
        y = np.fromfile(base + "_y.f32", dtype="<f4").reshape(n, c).astype(int)
        p = np.fromfile(base + "_p.f32", dtype="<f4").reshape(n, c)
        yb = (p > 0.5).astype(int)
        out = []
        aucs = []
        for k in range(c):
            if 0 < y[:, k].sum() < n:
                a = roc_auc_score(y[:, k], p[:, k])
                aucs.append(a)
                out.append("auc%d %.17g" % (k, a))
            else:
                out.append("auc%d nan" % k)
        out.append("macro_auc %.17g" % (np.mean(aucs) if aucs else float("nan")))
        out.append("sample_f1 %.17g" % f1_score(y, yb, average="samples", zero_division=0))
        out.append("sample_tpr %.17g" % recall_score(y, yb, average="samples", zero_division=0))
        out.append("acc %.17g" % accuracy_score(y.ravel(), yb.ravel()))
        out.append("macro_f1 %.17g" % f1_score(y, yb, average="macro", zero_division=0))
        f, t = fmax(y, p)
        out.append("fmax %.17g" % f)
        out.append("fmax_t %.17g" % t)
        # ROC curve of the first class with both kinds, every point
        for k in range(c):
            if 0 < y[:, k].sum() < n:
                fpr, tpr, _ = roc_curve(y[:, k], p[:, k], drop_intermediate=False)
                out.append("roc_class %d" % k)
                out.append("roc_n %d" % len(fpr))
                for a, b in zip(fpr, tpr):
                    out.append("roc %.17g %.17g" % (a, b))
                break
        # best per-class F1 over every possible cut (p > t for t at each score and below all)
        for k in range(c):
            best = 0.0
            for t in np.concatenate([[-np.inf], np.unique(p[:, k])]):
                best = max(best, f1_score(y[:, k], (p[:, k] > t).astype(int), zero_division=0))
            out.append("best_f1_%d %.17g" % (k, best))
        with open(base + "_ref.txt", "w") as f:
            f.write("\n".join(out) + "\n")


main()
