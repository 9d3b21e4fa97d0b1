"""Faithfulness of the explanation maps: the deletion test (docs/explain.md).

For each record of a prepared test split (all of it, or a seeded subsample) and each class the
record is labelled with, the time steps are ranked by a map's saliency and the top 5%, 10%, 20%, 30% and 50%
are replaced, in all 12 leads at once, by the record's baseline (each lead's median); the drop of
the class's probability (the mean of the model's heads) is recorded. The same amount of time is
also replaced in randomly placed segments of 0.2 s (the control). Maps: Grad-CAM (its value per
step), input x gradient and integrated gradients (each step's saliency: the sum over the leads of
the absolute attribution), and the map `report --shade ig` shades: integrated gradients summed
over the leads (signed) and averaged over 0.1 s (mrm_explain_smooth, written by explain as
integrated_smooth.npy); beside it, computed here with numpy (and checked equal to mrmnet's at
0.1 s), the same smoothing over 0.05, 0.2 and 0.4 s and of the absolute attribution over 0.1 s. Then the
segments the report shades themselves (each map at half its maximum or more, Grad-CAM and the
smoothed integrated gradients) are deleted, against random segments of the same amount. Everything is computed by mrmnet (explain --input, one run per class
on the records labelled with it; forward --fast); numpy only masks and averages. For each map and
amount, the paired difference (the map's drop less the random segments' drop, pair by pair) is
given with a 95% bootstrap interval (2000 resamples of the pairs, seeded), and so is the smoothed
integrated gradients' drop less Grad-CAM's.

    python3 tools/deletion_test.py --model models/ptbxl-superdiagnostic.safetensors \
        --data PREP [--records N] --ig 16 --threads 1 --out docs/explain
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


THREADS = None


def mrmnet(exe, *args):
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS)) if THREADS else None
    p = subprocess.run([exe] + [str(a) for a in args], capture_output=True, text=True, env=env)
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


def smooth(ig, width):
    """numpy's twin of mrm_explain_smooth: the sum over the leads, averaged over the steps of
    [t - width//2, t - width//2 + width) inside [0, 1000)."""
    v = ig.astype(np.float64).sum(axis=0)
    pre = np.concatenate([[0.0], np.cumsum(v)])
    a = np.clip(np.arange(1000) - width // 2, 0, 1000)
    b = np.clip(np.arange(1000) - width // 2 + width, 0, 1000)
    return (pre[b] - pre[a]) / (b - a)


def shaded(m):
    """The steps the report shades: the map at half its maximum or more (none if its maximum <= 0)."""
    mx = m.max()
    return m >= np.float32(0.5) * mx if mx > 0 else np.zeros(1000, bool)


SMOOTH = "IG smoothed 0.1 s (report)"
REPORT_STEPS = 10  # MRM_EXPLAIN_SMOOTH_STEPS


def top_mask(sal, frac):
    m = np.zeros(1000, bool)
    m[np.argsort(-sal, kind="stable")[:int(round(frac * 1000))]] = True
    return m


def svg_curves(res, path, n_cases):
    W, H, L, T, R, B = 165.0, 95.0, 16.0, 8.0, 59.0, 14.0
    pw, ph = W - L - R, H - T - B
    ymax = max(max(v) for v in res.values()) * 1.1
    colors = {"Grad-CAM": "#1f77b4", "input x gradient": "#ff7f0e", "integrated gradients": "#2ca02c",
              SMOOTH: "#d62728", "random segments": "#7f7f7f"}
    s = ['<svg xmlns="http://www.w3.org/2000/svg" width="%gmm" height="%gmm" viewBox="0 0 %g %g" '
         'font-family="sans-serif" font-size="3.2">' % (W, H, W, H),
         '<rect width="%g" height="%g" fill="#fff"/>' % (W, H)]
    res = {n: v for n, v in res.items() if n in colors}  # the sensitivity rows are in the JSON only
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
    ap.add_argument("--records", type=int, default=0, help="a seeded subsample of N records (0: the whole split)")
    ap.add_argument("--ig", type=int, default=16, help="integrated-gradients steps (0: not computed)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mrmnet", default="build/mrmnet")
    ap.add_argument("--threads", type=int, default=0, help="OpenMP threads of mrmnet (0: its default)")
    ap.add_argument("--work", help="keep mrmnet explain's maps in this folder and reuse those found there "
                    "(from a run with the same model, data, records and --ig)")
    ap.add_argument("--out", required=True, help="output prefix: PREFIX-deletion.svg, PREFIX-deletion.json")
    a = ap.parse_args()
    global THREADS
    THREADS = a.threads or None
    X = np.load(os.path.join(a.data, "X_test.npy"))
    Y = np.load(os.path.join(a.data, "y_test.npy"))
    prep = json.load(open(os.path.join(a.data, "prepare.json")))
    # the model's own standardisation (the preparation's may differ): back to mV, then the model's
    meta = json.loads(open(a.model, "rb").read(8 + int.from_bytes(open(a.model, "rb").read(8), "little"))[8:])["__metadata__"]
    mm, ms = float(meta["mean"]), float(meta["std"])
    X = ((X.astype(np.float64) * float(prep["std"]) + float(prep["mean"]) - mm) / ms).astype(np.float32)
    if a.records and a.records < len(X):
        rng = np.random.default_rng(a.seed)
        idx = np.sort(rng.choice(len(X), size=a.records, replace=False))
        X, Y = X[idx], Y[idx]
    cases = [(i, k) for i in range(len(X)) for k in range(Y.shape[1]) if Y[i, k] > 0.5]
    with tempfile.TemporaryDirectory() as tmp:
        work = a.work or tmp
        os.makedirs(work, exist_ok=True)
        p0 = probs(a.mrmnet, a.model, X, work)                    # (N, C), the same path as the deletions
        maps = {}  # (i, k) -> (Grad-CAM (1000), input x gradient (12, 1000), integrated gradients (12, 1000), smoothed (1000))
        for k in range(Y.shape[1]):
            rows = [i for i in range(len(X)) if Y[i, k] > 0.5]
            if not rows:
                continue
            np.save(os.path.join(work, "X.npy"), X[rows])
            ex = os.path.join(work, "maps%d" % k)
            if not os.path.isfile(os.path.join(ex, "integrated_smooth.npy" if a.ig else "saliency.npy")):
                mrmnet(a.mrmnet, "explain", "--model", a.model, "--input", os.path.join(work, "X.npy"), "--out", ex,
                       "--classes", k, *(("--ig", a.ig) if a.ig else ()))
            cam = np.load(os.path.join(ex, "gradcam.npy"))        # (n, 1, 1000)
            sal = np.load(os.path.join(ex, "saliency.npy"))       # (n, 1, 12, 1000)
            ig = np.load(os.path.join(ex, "integrated.npy")) if a.ig else None
            igs = np.load(os.path.join(ex, "integrated_smooth.npy")) if a.ig else None
            for q, i in enumerate(rows):
                maps[i, k] = (cam[q, 0], sal[q, 0], ig[q, 0] if a.ig else None, igs[q, 0] if a.ig else None)
        base = np.median(X, axis=2, keepdims=True)                # (N, 12, 1) each lead's median
        rankings = {"Grad-CAM": lambda i, k: maps[i, k][0],
                    "input x gradient": lambda i, k: np.abs(maps[i, k][1]).sum(axis=0),
                    "integrated gradients": lambda i, k: np.abs(maps[i, k][2]).sum(axis=0),
                    SMOOTH: lambda i, k: maps[i, k][3],
                    "IG smoothed 0.05 s": lambda i, k: smooth(maps[i, k][2], 5),
                    "IG smoothed 0.2 s": lambda i, k: smooth(maps[i, k][2], 20),
                    "IG smoothed 0.4 s": lambda i, k: smooth(maps[i, k][2], 40),
                    "|IG| smoothed 0.1 s": lambda i, k: smooth(np.abs(maps[i, k][2]), REPORT_STEPS)}
        if not a.ig:
            rankings = {n: f for n, f in rankings.items() if n in ("Grad-CAM", "input x gradient")}
        else:  # the tested map is mrmnet's: numpy's twin must agree with it
            worst = max(float(np.abs(smooth(maps[c][2], REPORT_STEPS) - maps[c][3]).max() / max(np.abs(maps[c][3]).max(), 1e-30))
                        for c in cases)
            print("mrm_explain_smooth against numpy: largest difference %.2e of the map's largest value" % worst)
            if worst > 1e-4:
                sys.exit("the smoothed map differs from numpy's by %.2e" % worst)
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
        # the segments the report shades (half the maximum or more), against random segments of the
        # same amount in each pair
        shade_src = {"Grad-CAM": lambda i, k: maps[i, k][0]}
        if a.ig:
            shade_src[SMOOTH] = lambda i, k: maps[i, k][3]
        shade = {}
        for name, f in shade_src.items():
            ms = [shaded(f(i, k)) for i, k in cases]
            rr = np.random.default_rng(a.seed + 41)
            Xd = np.empty((len(cases), 12, 1000), np.float32)
            Xr = np.empty((len(cases), 12, 1000), np.float32)
            for c, (i, k) in enumerate(cases):
                Xd[c] = np.where(ms[c][None, :], base[i], X[i])
                Xr[c] = np.where(random_mask(rr, ms[c].sum() / 1000.0)[None, :], base[i], X[i])
            p, pr = probs(a.mrmnet, a.model, Xd, work), probs(a.mrmnet, a.model, Xr, work)
            d = np.array([p0[i, k] - p[c, k] for c, (i, k) in enumerate(cases)])
            dr = np.array([p0[i, k] - pr[c, k] for c, (i, k) in enumerate(cases)])
            frac = np.array([m.sum() / 1000.0 for m in ms])
            nseg = np.array([int(np.sum(np.diff(np.concatenate([[0], m.astype(int), [0]])) == 1)) for m in ms])
            shade[name] = {"share_of_window": [float(frac.mean()), float(np.median(frac))], "segments": float(nseg.mean()),
                           "drop": d, "drop_random": dr}
    boot = np.random.default_rng(a.seed + 29).integers(0, len(cases), size=(2000, len(cases)))
    paired = {}
    ci = lambda diff: [float(diff.mean()), float(np.percentile(diff[boot].mean(axis=1), 2.5)),  # noqa: E731
                       float(np.percentile(diff[boot].mean(axis=1), 97.5))]
    for n in rankings:
        paired[n] = [ci(per_case[n][j] - per_case["random segments"][j]) for j in range(len(FRACTIONS))]
    vs_cam = {n: [ci(per_case[n][j] - per_case["Grad-CAM"][j]) for j in range(len(FRACTIONS))]
              for n in rankings if n != "Grad-CAM"}
    shade_out = {n: {"share_of_window_mean_median": v["share_of_window"], "segments_mean": v["segments"],
                     "mean_drop": float(v["drop"].mean()), "mean_drop_random_same_amount": float(v["drop_random"].mean()),
                     "minus_random_ci95": ci(v["drop"] - v["drop_random"])} for n, v in shade.items()}
    if SMOOTH in shade:
        shade_out[SMOOTH]["minus_grad_cam_ci95"] = ci(shade[SMOOTH]["drop"] - shade["Grad-CAM"]["drop"])
    out = {"model": a.model, "data": a.data, "records": int(len(X)),
           "record_indices_seed": a.seed if a.records and a.records < len(np.load(os.path.join(a.data, "y_test.npy"))) else None,
           "cases": len(cases), "ig_steps": a.ig, "fractions": FRACTIONS, "segment_steps": SEG,
           "mean_drop": res,
           "better_than_random": {n: [float(np.mean(per_case[n][j] > per_case["random segments"][j]))
                                      for j in range(len(FRACTIONS))] for n in rankings},
           "paired_difference_vs_random_ci95": paired,
           "paired_difference_vs_grad_cam_ci95": vs_cam,
           "report_shading": shade_out,
           "by_class": {cls: {"cases": int(sum(1 for _, k in cases if k == q)),
                              "mean_drop": {n: [float(per_case[n][j][[c for c, (_, k) in enumerate(cases) if k == q]].mean())
                                                for j in range(len(FRACTIONS))] for n in per_case}}
                        for q, cls in enumerate(open(os.path.join(a.data, "classes.txt")).read().split())
                        if any(k == q for _, k in cases)},
           "mean_probability_before": float(np.mean([p0[i, k] for i, k in cases]))}
    json.dump(out, open(a.out + "-deletion.json", "w"), indent=1)
    svg_curves(res, a.out + "-deletion.svg", len(cases))
    print("| map | " + " | ".join("%d%%" % round(f * 100) for f in FRACTIONS) + " |")
    print("|---|" + "---|" * len(FRACTIONS))
    for n, v in res.items():
        print("| %s | " % n + " | ".join("%.3f" % d for d in v) + " |")
    print("pairs where the map's deletion drops the probability more than random segments:",
          {n: ["%.2f" % x for x in v] for n, v in out["better_than_random"].items()})
    for n, v in paired.items():
        print("%s - random, mean [95%% CI]: " % n + ", ".join("%.3f [%.3f, %.3f]" % tuple(t) for t in v))
    for n, v in vs_cam.items():
        print("%s - Grad-CAM, mean [95%% CI]: " % n + ", ".join("%.3f [%.3f, %.3f]" % tuple(t) for t in v))
    for n, v in shade_out.items():
        print("report shading by %s: %s" % (n, json.dumps(v)))


if __name__ == "__main__":
    main()
