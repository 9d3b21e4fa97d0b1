"""eval's metrics at the operating point, the PTB-XL benchmark's F-beta/G-beta, calibration, the
threshold rules, the CPSC2018 scores and the PhysioNet/CinC 2021 challenge score, each against an
independent computation: scikit-learn where it has the metric, else the published definitions
re-derived here in numpy (vectorised, not the scoring scripts' loops). Predictions are chosen: random,
heavily tied (scores on a grid that hits the calibration bin edges and 0.5), a class without
positives, a class without negatives, records without any label. Run through `mrmnet eval --scores`
on label-only prepared folders."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
from mrm_testlib import SRC, TMP, check, end, run  # noqa: E402

import numpy as np  # noqa: E402

try:
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import (brier_score_loss, f1_score, multilabel_confusion_matrix, precision_score,
                                 recall_score)
except ImportError:
    print("skipped: scikit-learn is not available")
    sys.exit(77)


def prepared(name, y, classes, ids=None):
    d = os.path.join(TMP, name)
    os.makedirs(d, exist_ok=True)
    np.save(os.path.join(d, "y_test.npy"), y.astype(np.float32))
    with open(os.path.join(d, "classes.txt"), "w") as f:
        f.write("".join(k + "\n" for k in classes))
    with open(os.path.join(d, "prepare.json"), "w") as f:
        json.dump({"task": "chosen", "mean": 0.0, "std": 1.0}, f)
    if ids is not None:
        with open(os.path.join(d, "ids_test.txt"), "w") as f:
            f.write("".join(i + "\n" for i in ids))
    return d


def evaluate(name, y, p, classes, *extra, ids=None):
    d = prepared(name, y, classes, ids)
    sp = os.path.join(TMP, name + "_p.npy")
    np.save(sp, p.astype(np.float32))
    js = os.path.join(TMP, name + ".json")
    rc, out, err = run("eval", "--scores", sp, "--data", d, "--json", js, "--resamples", "0", *extra)
    check(rc == 0, "%s: eval runs (%s)" % (name, err.strip()[-300:]))
    return (json.load(open(js)) if rc == 0 else None), out


def close(a, b, tol=1e-9):
    if a is None or b is None or (isinstance(b, float) and np.isnan(b)):
        return a is None and (b is None or np.isnan(b))
    return abs(a - b) <= tol * max(1.0, abs(b))


def cases():
    rng = np.random.default_rng(7)
    n, c = 240, 5
    y = (rng.random((n, c)) < 0.3).astype(int)
    p = np.clip(0.55 * rng.random((n, c)) + 0.45 * y * rng.random((n, c)), 0, 1).astype(np.float32)
    yield "random", y, p
    # ties on a grid of 0.1 that hits every bin edge, 0.5 included, and exact 0 and 1
    q = np.round(p * 10) / 10
    yield "grid", y, q.astype(np.float32)
    # class 1 without positives, class 3 without negatives, rows without labels
    y2 = y.copy()
    y2[:, 1] = 0
    y2[:, 3] = 1
    y2[::6, :] = 0
    q2 = (np.round(p * 4) / 4).astype(np.float32)
    yield "edge", y2, q2


def fbeta_gbeta(y, p, thr, b1=2.0, b2=2.0):
    pred = (p > thr).astype(int)
    none = pred.sum(1) == 0
    pred[np.where(none)[0], p[none].argmax(1)] = 1
    nl = y.sum(1)
    w = np.where(nl > 0, 1.0 / np.maximum(nl, 1), 0.0)[:, None]
    tp = (w * (y * pred)).sum(0)
    fp = (w * ((1 - y) * pred)).sum(0)
    fn = (w * (y * (1 - pred))).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = (1 + b1 ** 2) * tp / ((1 + b1 ** 2) * tp + fp + b1 ** 2 * fn)
        g = tp / (tp + fp + b2 * fn)
    return f, g, int(none.sum())


def brute_threshold(yk, pk, rule, value=None):
    """The prediction vector of the best cut by brute force over every cut (p > t)."""
    cuts = np.concatenate([[-np.inf], np.unique(pk)])[::-1]  # highest first: ties go to it
    P, N = yk.sum(), (1 - yk).sum()
    best, best_pred = None, None
    for t in cuts:
        pred = pk > t
        tp, fp = (pred & (yk == 1)).sum(), (pred & (yk == 0)).sum()
        sens = tp / P if P else np.nan
        spec = (N - fp) / N if N else np.nan
        if rule == "f1":
            v = f1_score(yk, pred, zero_division=0)
        elif rule == "youden":
            v = tp * N - fp * P  # = (sens + spec - 1) P N, in integers so that equal values tie
        elif rule == "sensitivity":
            if sens >= value:
                return pred
            continue
        else:  # specificity: the lowest cut that keeps it; cuts go down, so keep the last that holds
            if spec >= value:
                best_pred = pred
            continue
        if best is None or v > best:
            best, best_pred = v, pred
    return best_pred


for name, y, p in cases():
    classes = ["c%d" % k for k in range(y.shape[1])]
    j, table = evaluate(name, y, p, classes, "--bins", "10")
    if j is None:
        continue
    opj = j["operating_point"]
    check(opj["source"] == "default" and not opj["optimistic"], "%s: 0.5 without a model" % name)
    thr = np.array([opj["per_class"][k]["threshold"] for k in classes], dtype=np.float32)
    check(np.all(thr == np.float32(0.5)), "%s: thresholds 0.5" % name)
    pred = (p > 0.5).astype(int)
    mcm = multilabel_confusion_matrix(y, pred)
    for k, cname in enumerate(classes):
        o = opj["per_class"][cname]
        tn, fp, fn, tp = (int(v) for v in mcm[k].ravel())
        check((o["tp"], o["fp"], o["tn"], o["fn"], o["support"]) == (tp, fp, tn, fn, tp + fn),
              "%s/%s: confusion counts vs sklearn" % (name, cname))
        sens = recall_score(y[:, k], pred[:, k], zero_division=0) if tp + fn else None
        ppv = precision_score(y[:, k], pred[:, k], zero_division=0) if tp + fp else None
        f1 = f1_score(y[:, k], pred[:, k], zero_division=0) if 2 * tp + fp + fn else None
        spec = recall_score(1 - y[:, k], 1 - pred[:, k], zero_division=0) if tn + fp else None
        npv = precision_score(1 - y[:, k], 1 - pred[:, k], zero_division=0) if tn + fn else None
        for key, ref in (("sensitivity", sens), ("specificity", spec), ("ppv", ppv), ("npv", npv), ("f1", f1)):
            check(close(o[key], ref), "%s/%s: %s %s vs sklearn %s" % (name, cname, key, o[key], ref))
    # F-beta / G-beta
    f, g, forced = fbeta_gbeta(y, p, np.full(y.shape[1], 0.5, dtype=np.float32))
    fj = opj["ptbxl_benchmark"]
    check(close(fj["f_beta"], float(np.nanmean(f))) and close(fj["g_beta"], float(np.nanmean(g))),
          "%s: F_beta %s G_beta %s vs %s %s" % (name, fj["f_beta"], fj["g_beta"], np.nanmean(f), np.nanmean(g)))
    for k, cname in enumerate(classes):
        check(close(fj["f_beta_class"][cname], float(f[k])) and close(fj["g_beta_class"][cname], float(g[k])),
              "%s/%s: F_beta, G_beta of the class" % (name, cname))
    check(fj["records_given_top_class"] == forced, "%s: %d records given their top class" % (name, forced))
    check(fj["records_without_label"] == int((y.sum(1) == 0).sum()), "%s: records without label" % name)
    check(fj["classes_undefined"] == int(np.isnan(f).sum()), "%s: undefined classes" % name)
    # calibration
    cal = j["calibration"]
    edges = np.linspace(0.0, 1.0, 11)
    for k, cname in [(k, classes[k]) for k in range(y.shape[1])] + [(None, "overall")]:
        yy = y.ravel() if k is None else y[:, k]
        pp = (p.ravel() if k is None else p[:, k]).astype(np.float64)
        o = cal["overall"] if k is None else cal["per_class"][cname]
        check(close(o["brier"], brier_score_loss(yy, pp), 1e-7), "%s/%s: Brier vs sklearn" % (name, cname))
        pt, pm = calibration_curve(yy, pp, n_bins=10, strategy="uniform")
        cnt = np.bincount(np.searchsorted(edges[1:-1], pp), minlength=10)
        nz = cnt > 0
        check(list(np.array(o["bin_count"])) == list(cnt), "%s/%s: bin counts" % (name, cname))
        got_pt = np.array([v for v in o["bin_fraction_positive"] if v is not None])
        got_pm = np.array([v for v in o["bin_mean_score"] if v is not None])
        check(len(got_pt) == len(pt) and np.allclose(got_pt, pt, atol=1e-9) and np.allclose(got_pm, pm, atol=1e-7),
              "%s/%s: reliability bins vs calibration_curve" % (name, cname))
        ece = float((cnt[nz] / cnt.sum() * np.abs(pt - pm)).sum())
        check(close(o["ece"], ece, 1e-7), "%s/%s: ECE %s vs %s" % (name, cname, o["ece"], ece))
    # threshold rules on the evaluated split: the same predictions as a brute-force search
    for rule in ("f1", "youden", "sensitivity=0.9", "specificity=0.8", "sensitivity=1"):
        jr, _ = evaluate(name + "_" + rule.replace("=", ""), y, p, classes, "--threshold-rule", rule)
        if jr is None:
            continue
        o = jr["operating_point"]
        check(o["optimistic"] and o["source"] == "rule applied to the evaluated split", "%s %s: marked optimistic" % (name, rule))
        kind, _, val = rule.partition("=")
        for k, cname in enumerate(classes):
            t = np.float32(o["per_class"][cname]["threshold"])
            yk, pk = y[:, k], p[:, k]
            P, N = yk.sum(), len(yk) - yk.sum()
            applicable = (P > 0 if kind in ("f1", "sensitivity") else N > 0 if kind == "specificity" else P > 0 and N > 0)
            if not applicable:
                check(t == np.float32(0.5) and o["per_class"][cname].get("rule_not_applicable"),
                      "%s %s/%s: not applicable: 0.5, flagged" % (name, rule, cname))
                continue
            want = brute_threshold(yk, pk, kind, float(val) if val else None)
            check(np.array_equal(pk > t, want), "%s %s/%s: threshold %g gives the brute-force predictions" % (name, rule, cname, t))
    check("at the operating point" in table and "calibration" in table, "%s: the table" % name)

# ---- CPSC2018 ----------------------------------------------------------------------------------
icbeb = ["1AVB", "AFIB", "CLBBB", "CRBBB", "NORM", "PAC", "STD_", "STE_", "VPC"]  # sorted, as prepare writes them
number = {"NORM": 1, "AFIB": 2, "1AVB": 3, "CLBBB": 4, "CRBBB": 5, "PAC": 6, "VPC": 7, "STD_": 8, "STE_": 9}
rng = np.random.default_rng(3)
n = 300
y = np.zeros((n, 9), dtype=int)
firsts = []
for i in range(n):
    labs = list(rng.choice(9, size=rng.choice([1, 1, 1, 2, 3]), replace=False))
    y[i, labs] = 1
    firsts.append(labs[0])
p = (rng.random((n, 9)) * 0.6 + 0.4 * y * rng.random((n, 9)))
p = (np.round(p * 8) / 8).astype(np.float32)  # ties, including ties for the top score
ids = ["A%04d" % (i + 1) for i in range(n)]
ref = os.path.join(TMP, "REFERENCE.csv")
with open(ref, "w") as f:
    f.write("Recording,First_label,Second_label,Third_label\n")
    for i in range(n):
        labs = [number[icbeb[firsts[i]]]] + [number[icbeb[k]] for k in np.flatnonzero(y[i]) if k != firsts[i]]
        f.write("%s,%s\n" % (ids[i], ",".join(str(v) for v in labs + [""] * (3 - len(labs)))))


def cpsc_reference(y, p, first_col):
    """The challenge's table: columns of the model (icbeb order) renumbered to the challenge's."""
    A = np.zeros((9, 9))
    perm = [number[k] - 1 for k in icbeb]  # model column -> challenge index
    for i in range(len(y)):
        top = int(np.argmax(p[i]))  # numpy: the first maximum, in the model's column order
        answer = perm[top]
        truth = [perm[k] for k in np.flatnonzero(y[i])]
        if answer in truth:
            A[answer, answer] += 1
        else:
            A[perm[first_col[i]], answer] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = 2 * np.diag(A) / (A.sum(1) + A.sum(0))

        def block(a, b):
            return 2 * np.trace(A[a:b, a:b]) / (A[a:b, :].sum() + A[:, a:b].sum())
        return A, f1, f1.mean(), f1[1], block(2, 5), block(5, 7), block(7, 9)


for with_ref in (True, False):
    extra = ("--cpsc-reference", ref) if with_ref else ()
    j, table = evaluate("cpsc%d" % with_ref, y, p, icbeb, *extra, ids=ids)
    if j is None:
        continue
    first_col = firsts if with_ref else [min(np.flatnonzero(y[i]), key=lambda k: number[icbeb[k]]) for i in range(n)]
    A, f1, F1, Faf, Fblock, Fpc, Fst = cpsc_reference(y, p, first_col)
    o = j["cpsc2018"]
    check(np.array_equal(np.array(o["table"]), A), "CPSC2018 table (%s first labels)" % ("given" if with_ref else "lowest"))
    check(np.allclose(o["f1"], f1, atol=1e-12), "CPSC2018 per-class F1")
    for key, ref_v in (("F1", F1), ("Faf", Faf), ("Fblock", Fblock), ("Fpc", Fpc), ("Fst", Fst)):
        check(close(o[key], float(ref_v)), "CPSC2018 %s %s vs %s" % (key, o[key], ref_v))
    check(o["first_label_from_reference"] == with_ref and "CPSC2018" in table, "CPSC2018 reported")
    check(close(o["F1_defined_classes"], float(np.nanmean(f1))) and o["classes_defined"] == int(np.isfinite(f1).sum()),
          "CPSC2018 mean over the defined classes")
# a split where some classes are neither labelled nor predicted: their F1 is undefined (NaN, as the challenge's code)
ys, ps = y[:12].copy(), p[:12].copy()
j, _ = evaluate("cpsc_small", ys, ps, icbeb, ids=ids[:12])
if j is not None:
    A, f1, F1, *_ = cpsc_reference(ys, ps, [min(np.flatnonzero(ys[i]), key=lambda k: number[icbeb[k]]) for i in range(12)])
    o = j["cpsc2018"]
    check(all(close(a, float(b)) for a, b in zip(o["f1"], f1)) and close(o["F1"], float(F1)) and
          close(o["F1_defined_classes"], float(np.nanmean(f1))), "CPSC2018 on a small split: undefined classes as null")

# ---- PhysioNet/CinC 2021 challenge score --------------------------------------------------------
# scored classes (one pair of equivalent codes), a reward matrix with partial credit
scored = ["426783006", "164889003", "713427006|59118001", "270492004", "284470004"]
W = np.array([[1.0, 0.2, 0.3, 0.4, 0.5],
              [0.2, 1.0, 0.1, 0.0, 0.45],
              [0.3, 0.1, 1.0, 0.25, 0.2],
              [0.4, 0.0, 0.25, 1.0, 0.375],
              [0.5, 0.45, 0.2, 0.375, 1.0]])
wpath = os.path.join(TMP, "weights.csv")
with open(wpath, "w") as f:
    f.write("," + ",".join(scored) + "\n")
    for r, name in enumerate(scored):
        f.write(name + "," + ",".join("%.17g" % v for v in W[r]) + "\n")
# the model's classes: names mapped to codes by a file; RBBB and CRBBB both map to the pair; OTHER is unscored
mclasses = ["AF", "CRBBB", "IAVB", "OTHER", "PAC", "RBBB", "SR"]
code = {"AF": "164889003", "CRBBB": "713427006", "IAVB": "270492004", "OTHER": "10370003", "PAC": "284470004",
        "RBBB": "59118001", "SR": "426783006"}
cmap = os.path.join(TMP, "codes.csv")
with open(cmap, "w") as f:
    f.write("from,to\n" + "".join("%s,%s\n" % (k, v) for k, v in code.items()))
rng = np.random.default_rng(11)
n = 200
y = (rng.random((n, len(mclasses))) < 0.25).astype(int)
y[::9] = 0
p = (0.6 * rng.random(y.shape) + 0.4 * y * rng.random(y.shape)).astype(np.float32)


def challenge_reference(y, p, thr):
    m = len(scored)
    cls = [set(s.split("|")) for s in scored]
    col = [next((j for j in range(m) if code[k] in cls[j]), None) for k in mclasses]
    L = np.zeros((len(y), m), dtype=bool)
    O = np.zeros((len(y), m), dtype=bool)
    for k, j in enumerate(col):
        if j is not None:
            L[:, j] |= y[:, k] == 1
            O[:, j] |= p[:, k] > thr[k]

    def score(out):
        norm = np.maximum((L | out).sum(1), 1).astype(float)
        A = L.T.astype(float) @ (out / norm[:, None])
        return float(np.nansum(W * A))
    inactive = np.zeros_like(L)
    inactive[:, next(j for j in range(m) if "426783006" in cls[j])] = True
    s_o, s_c, s_i = score(O), score(L), score(inactive)
    return (s_o - s_i) / (s_c - s_i) if s_c != s_i else 0.0, s_o, s_c, s_i


j, table = evaluate("chal", y, p, mclasses, "--challenge-weights", wpath, "--challenge-classes", cmap)
if j is not None:
    o = j["challenge2021"]
    s, s_o, s_c, s_i = challenge_reference(y, p, np.full(len(mclasses), 0.5, dtype=np.float32))
    check(close(o["score"], s) and close(o["observed"], s_o) and close(o["correct"], s_c) and close(o["inactive"], s_i),
          "challenge score %s vs %s" % (o["score"], s))
    check(o["classes_mapped"] == 6 and o["scored_classes_present"] == 5, "6 classes map to the 5 scored classes")
    check("challenge score" in table, "challenge score reported")
    # the same at a rule's thresholds
    j2, _ = evaluate("chal_youden", y, p, mclasses, "--challenge-weights", wpath, "--challenge-classes", cmap,
                     "--threshold-rule", "youden")
    if j2 is not None:
        thr = np.array([j2["operating_point"]["per_class"][k]["threshold"] for k in mclasses], dtype=np.float32)
        check(close(j2["challenge2021"]["score"], challenge_reference(y, p, thr)[0]), "challenge score at youden thresholds")

# the challenge's own reward matrix (26 scored classes) with CPSC2018's classes mapped to SNOMED codes
share = os.path.join(SRC, "share", "challenge2021")
rows = [line.rstrip("\n").split(",") for line in open(os.path.join(share, "weights.csv"))]
scored = rows[0][1:]
W = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
code = dict(line.strip().split(",") for line in open(os.path.join(share, "cpsc2018-snomed.csv")).readlines()[1:])
mclasses = icbeb
rng = np.random.default_rng(5)
y = np.zeros((150, 9), dtype=int)
y[np.arange(150), rng.integers(0, 9, 150)] = 1
y[rng.random((150, 9)) < 0.08] = 1
p = (0.5 * rng.random(y.shape) + 0.5 * y * rng.random(y.shape)).astype(np.float32)
j, _ = evaluate("chal_real", y, p, mclasses, "--challenge-weights", os.path.join(share, "weights.csv"),
                "--challenge-classes", os.path.join(share, "cpsc2018-snomed.csv"))
if j is not None:
    s = challenge_reference(y, p, np.full(9, 0.5, dtype=np.float32))[0]
    check(close(j["challenge2021"]["score"], s), "challenge score with weights.csv: %s vs %s" % (j["challenge2021"]["score"], s))
    check(j["challenge2021"]["classes_mapped"] == 7, "STD and STE are not scored in 2021")

# malformed reward matrices and maps are errors naming the file and line
bad = os.path.join(TMP, "bad_weights.csv")
for text, what in ((",a,b\na,1,0\nb,0\n", "row without its rewards"),
                   (",a,b\na,1,0\nc,0,1\n", "rows not in the columns' order"),
                   (",a,b\na,1,x\nb,0,1\n", "a reward that is not a number"),
                   (",a,b\na,1,0\n", "not square"),
                   (",a|b,b\na|b,1,0\nb,0,1\n", "a code in two classes")):
    open(bad, "w").write(text)
    d = prepared("bad", np.eye(2, dtype=int), ["a", "b"])
    sp = os.path.join(TMP, "bad_p.npy")
    np.save(sp, np.eye(2, dtype=np.float32))
    rc, _, err = run("eval", "--scores", sp, "--data", d, "--challenge-weights", bad, "--resamples", "0", "--sinus-code", "a")
    check(rc == 1 and "bad_weights.csv" in err, "%s: refused (%s)" % (what, err.strip()))
rc, _, err = run("eval", "--scores", sp, "--data", d, "--threshold-rule", "sensitivity=2")
check(rc == 2 and "threshold-rule" in err, "a rule value out of range is a usage error")
end()
