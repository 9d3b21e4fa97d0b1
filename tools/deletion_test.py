"""Faithfulness of the explanation maps: the deletion test (docs/explain.md).

For each record of a prepared test split (a seeded subsample) and each class the record is
labelled with, the time steps are ranked by a map's saliency and the top 5%, 10%, 20%, 30% and 50%
are replaced, in all 12 leads at once, by the record's baseline (each lead's median); the drop of
the class's probability (the mean of the model's heads) is recorded. The same amount of time is
also replaced in randomly placed segments of 0.2 s (the control). Maps: Grad-CAM (its value per
step), input x gradient and integrated gradients (each step's saliency: the sum over the leads of
the absolute attribution). Everything is computed by mrmnet (explain --input, forward); numpy only
masks and averages.

    python3 tools/deletion_test.py --model models/ptbxl-superdiagnostic.safetensors \
        --data PREP --records 100 --ig 16 --out docs/explain
writes docs/explain-deletion.svg and docs/explain-deletion.json and prints a Markdown table.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

FRACTIONS = (0.05, 0.10, 0.20, 0.30, 0.50)
SEG = 20  # steps of a random segment (0.2 s at 100 Hz)


def mrmnet(exe, *args):
    p = subprocess.run([exe] + [str(a) for a in args], capture_output=True, text=True)
    if p.returncode:
        sys.exit("mrmnet %s failed:\n%s" % (" ".join(map(str, args)), p.stderr[-2000:]))


def probs(exe, model, X, work):
    """The mean of the heads' sigmoids, (N, C), by mrmnet forward."""
    path = os.path.join(work, "Xdel.npy")
    np.save(path, X.astype(np.float32))
    out = os.path.join(work, "fwd")
    mrmnet(exe, "forward", "--model", model, "--input", path, "--out", out, "--fast")
    outs = [np.load(os.path.join(out, f)) for f in ("out1.npy", "out2.npy") if os.path.isfile(os.path.join(out, f))]
    return sum(1 / (1 + np.exp(-o.astype(np.float64))) for o in outs) / len(outs)


def random_mask(rng, frac):
    """A (1000,) boolean mask of randomly placed SEG-step segments covering frac of the steps."""
    m = np.zeros(1000, bool)
    want = int(round(frac * 1000))
    while m.sum() < want:
        a = rng.integers(0, 1000 - SEG + 1)
        m[a:a + SEG] = True
    # trim the excess at the last segment's end so that every curve deletes the same amount
    extra = int(m.sum()) - want
    if extra > 0:
        idx = np.nonzero(m)[0]
        m[idx[-extra:]] = False
    return m


def top_mask(sal, frac):
    m = np.zeros(1000, bool)
    m[np.argsort(-sal, kind="stable")[:int(round(frac * 1000))]] = True
    return m


def svg_curves(res, path, n_cases):
    W, H, L, T, R, B = 150.0, 95.0, 16.0, 8.0, 44.0, 14.0
    pw, ph = W - L - R, H - T - B
    ymax = max(max(v) for v in res.values()) * 1.1
    colors = {"Grad-CAM": "#1f77b4", "input x gradient": "#ff7f0e", "integrated gradients": "#2ca02c",
              "random segments": "#7f7f7f"}
    s = ['<svg xmlns="http://www.w3.org/2000/svg" width="%gmm" height="%gmm" viewBox="0 0 %g %g" '
         'font-family="sans-serif" font-size="3.2">' % (W, H, W, H),
         '<rect width="%g" height="%g" fill="#fff"/>' % (W, H)]
    x = lambda f: L + f / 0.5 * pw  # noqa: E731
    y = lambda v: T + ph - v / ymax * ph  # noqa: E731
    s.append('<path d="M%g %gV%gH%g" stroke="#000" stroke-width="0.3" fill="none"/>' % (L, T, T + ph, L + pw))
    for f in (0,) + FRACTIONS:
        s.append('<text x="%g" y="%g" text-anchor="middle">%d%%</text>' % (x(f), T + ph + 4.5, round(f * 100)))
    for k in range(5):
        v = ymax * k / 4
        s.append('<text x="%g" y="%g" text-anchor="end">%.2f</text>' % (L - 1.5, y(v) + 1, v))
        s.append('<path d="M%g %gH%g" stroke="#ddd" stroke-width="0.2"/>' % (L, y(v), L + pw))
    s.append('<text x="%g" y="%g" text-anchor="middle">time steps replaced by the baseline</text>' % (L + pw / 2, H - 2))
    s.append('<text transform="translate(4 %g) rotate(-90)" text-anchor="middle">mean drop of the probability</text>' % (T + ph / 2))
    for i, (name, v) in enumerate(res.items()):
        pts = " ".join("%.2f,%.2f" % (x(f), y(d)) for f, d in zip((0,) + FRACTIONS, [0.0] + list(v)))
        dash = ' stroke-dasharray="1.5 1"' if name == "random segments" else ""
        s.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="0.6"%s/>' % (pts, colors[name], dash))
        s.append('<path d="M%g %gh6" stroke="%s" stroke-width="0.8"%s/><text x="%g" y="%g">%s</text>' %
                 (L + pw + 3, T + 4 + 6 * i, colors[name], dash, L + pw + 10, T + 5 + 6 * i, name))
    s.append('<text x="%g" y="%g">%d record-class pairs</text>' % (L + pw + 3, T + 6 + 6 * len(res), n_cases))
    s.append("</svg>\n")
    open(path, "w").write("\n".join(s))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, help="a prepared folder (X_test.npy, y_test.npy, prepare.json)")
    ap.add_argument("--records", type=int, default=100)
    ap.add_argument("--ig", type=int, default=16, help="integrated-gradients steps (0: not computed)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mrmnet", default="build/mrmnet")
    ap.add_argument("--out", required=True, help="output prefix: PREFIX-deletion.svg, PREFIX-deletion.json")
    a = ap.parse_args()
    X = np.load(os.path.join(a.data, "X_test.npy"))
    Y = np.load(os.path.join(a.data, "y_test.npy"))
    prep = json.load(open(os.path.join(a.data, "prepare.json")))
    # the model's own standardisation (the preparation's may differ): back to mV, then the model's
    meta = json.loads(open(a.model, "rb").read(8 + int.from_bytes(open(a.model, "rb").read(8), "little"))[8:])["__metadata__"]
    mm, ms = float(meta["mean"]), float(meta["std"])
    X = ((X.astype(np.float64) * float(prep["std"]) + float(prep["mean"]) - mm) / ms).astype(np.float32)
    rng = np.random.default_rng(a.seed)
    idx = np.sort(rng.choice(len(X), size=min(a.records, len(X)), replace=False))
    X, Y = X[idx], Y[idx]
    with tempfile.TemporaryDirectory() as work:
        np.save(os.path.join(work, "X.npy"), X)
        ex = os.path.join(work, "maps")
        mrmnet(a.mrmnet, "explain", "--model", a.model, "--input", os.path.join(work, "X.npy"), "--out", ex,
               *(("--ig", a.ig) if a.ig else ()))
        cam = np.load(os.path.join(ex, "gradcam.npy"))            # (N, C, 1000)
        sal = np.load(os.path.join(ex, "saliency.npy"))           # (N, C, 12, 1000)
        ig = np.load(os.path.join(ex, "integrated.npy")) if a.ig else None  # (N, C, 12, 1000)
        p0 = np.load(os.path.join(ex, "probabilities.npy")).astype(np.float64)
        cases = [(i, k) for i in range(len(X)) for k in range(Y.shape[1]) if Y[i, k] > 0.5]
        base = np.median(X, axis=2, keepdims=True)                # (N, 12, 1) each lead's median
        rankings = {"Grad-CAM": lambda i, k: cam[i, k],
                    "input x gradient": lambda i, k: np.abs(sal[i, k]).sum(axis=0),
                    "integrated gradients": lambda i, k: np.abs(ig[i, k]).sum(axis=0)}
        if not a.ig:
            del rankings["integrated gradients"]
        res = {}
        per_case = {}
        for name in list(rankings) + ["random segments"]:
            drops = []
            rr = np.random.default_rng(a.seed + 17)
            for f in FRACTIONS:
                Xd = np.empty((len(cases), 12, 1000), np.float32)
                for c, (i, k) in enumerate(cases):
                    m = random_mask(rr, f) if name == "random segments" else top_mask(rankings[name](i, k), f)
                    Xd[c] = np.where(m[None, :], base[i], X[i])
                p = probs(a.mrmnet, a.model, Xd, work)
                d = np.array([p0[i, k] - p[c, k] for c, (i, k) in enumerate(cases)])
                drops.append(float(d.mean()))
                per_case.setdefault(name, []).append(d)
            res[name] = drops
    out = {"model": a.model, "data": a.data, "records": int(len(X)), "record_indices_seed": a.seed,
           "cases": len(cases), "ig_steps": a.ig, "fractions": FRACTIONS, "segment_steps": SEG,
           "mean_drop": res,
           "better_than_random": {n: [float(np.mean(per_case[n][j] > per_case["random segments"][j]))
                                      for j in range(len(FRACTIONS))] for n in rankings},
           "mean_probability_before": float(np.mean([p0[i, k] for i, k in cases]))}
    json.dump(out, open(a.out + "-deletion.json", "w"), indent=1)
    svg_curves(res, a.out + "-deletion.svg", len(cases))
    print("| map | " + " | ".join("%d%%" % round(f * 100) for f in FRACTIONS) + " |")
    print("|---|" + "---|" * len(FRACTIONS))
    for n, v in res.items():
        print("| %s | " % n + " | ".join("%.3f" % d for d in v) + " |")
    print("pairs where the map's deletion drops the probability more than random segments:",
          {n: ["%.2f" % x for x in v] for n, v in out["better_than_random"].items()})


if __name__ == "__main__":
    main()
