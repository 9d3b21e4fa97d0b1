"""mrmnet explain against the PyTorch twin (tools/mrmnet_torch.py) computing the same maps with
autograd (float32, whose rounding is 1e-7 of float64's here): for each recording and class, the combined Grad-CAM, each branch's Grad-CAM
and the input x gradient agree to 1e-4 of the map's largest value. Models: the bundled default
model and two variants of the twin with random weights (combine=add; branches=low, attention=none,
fusion=off). Recordings: the bundled PTB-XL fixtures (100 Hz and 500 Hz) and samples, and, when
../shared is there, held-out PTB-XL test-fold records, 500 Hz records and a 25 s CPSC2018 recording
(a later window, --start; and without it every window predict analyses, whose windows, per-window
and mean probabilities and labels must be predict's). The model input explain writes is checked against the raw
WFDB samples for the 100 Hz records. A ReLU input within 1e-5 of 0, or a max-pool window whose two
values are within 1e-5 of each other, may be decided the other way by mrmnet's float32 forward
(docs/parity.md; PTB-XL 01000 with the default model: a window of BaseScale1's multi-scale path
whose values differ by 8.8e-7 in float64): the closest such positions where the maps differ are
flipped in the twin one at a time and kept when they bring it nearer to mrmnet; the flips are
printed. Skipped without PyTorch."""
import json
import os
import shutil
import sys

from cli_testlib import SHARED, SRC, TMP, check, end, mrmnet, need_mrmnet, skip  # noqa: E402

need_mrmnet()
try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    skip("PyTorch or numpy not installed")

sys.path.insert(0, os.path.join(SRC, "tools"))
from mrmnet_torch import MRMNet, ChannelLayerNorm, load_model, save_model  # noqa: E402

torch.set_num_threads(1)
TOL = 1e-4
worst = {"gradcam": 0.0, "branch": 0.0, "saliency": 0.0}
flipped = []


class NearSwitch:
    """F.relu and F.max_pool1d as the twin calls them, recording the positions a float32 forward
    may decide the other way (a ReLU input, or the gap between the two values of a max-pool window,
    within NEAR of 0) and applying forced flips {call: [(c, t), ...]}: a flipped ReLU passes (or
    stops) its gradient as if its input had the other sign; a flipped window routes its gradient to
    its other element. The ties rule is PyTorch's and mrmnet's: the first maximal element wins."""

    def __init__(self):
        self.relu, self.maxpool = F.relu, F.max_pool1d
        self.flips, self.near, self.calls = {}, [], 0

    def _call(self):
        i, self.calls = self.calls, self.calls + 1
        return i

    def relu_(self, t, inplace=False):
        i = self._call()
        a = t.detach()[0]
        for c, tt in (a.abs() < NEAR).nonzero().tolist():
            self.near.append((abs(float(a[c, tt])), "ReLU", i, c, tt, tt * 1000.0 / a.shape[1]))
        mask = (t > 0).to(t.dtype)
        for c, tt in self.flips.get(i, ()):
            mask[0, c, tt] = 1.0 - mask[0, c, tt]
        return t * mask

    def max_pool1d_(self, t, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
        assert kernel_size == 2 and dilation == 1 and not ceil_mode and not return_indices
        i, stride = self._call(), stride or kernel_size
        if padding:
            pad = torch.full_like(t[:, :, :1], -float("inf"))
            t = torch.cat([pad, t, pad], dim=2)
        n = (t.shape[2] - 2) // stride + 1
        first, second = t[:, :, 0:stride * (n - 1) + 1:stride], t[:, :, 1:stride * (n - 1) + 2:stride]
        take2 = second > first
        gap = (second - first).detach()[0].abs()
        for c, tt in (gap < NEAR).nonzero().tolist():
            if first[0, c, tt] != 0:  # (ties at 0 follow a ReLU, whose mask stops their gradient)
                self.near.append((float(gap[c, tt]), "max-pool", i, c, tt, tt * 1000.0 / n))
        for c, tt in self.flips.get(i, ()):
            take2[0, c, tt] = ~take2[0, c, tt]
        return torch.where(take2, second, first)


NEAR = 1e-5  # |ReLU input| or max-pool gap below which float32 rounding may flip the side (docs/parity.md)
switch = NearSwitch()
F.relu = switch.relu_  # the twin's modules call F.relu and F.max_pool1d (nn.ReLU, nn.MaxPool1d too)
F.max_pool1d = switch.max_pool1d_


def twin_maps(model, x, classes, flips=None):
    """{k: (score, combined Grad-CAM (1000), per-branch (nb, 1000), input x gradient (12, 1000))}
    for the classes k on one input x (12, 1000), float32 autograd, with the ReLU flips given."""
    switch.flips, switch.near, switch.calls = flips or {}, [], 0
    xt = torch.tensor(x[None], dtype=torch.float32, requires_grad=True)
    hi, lo = model.BaseBlock(xt)
    if model.fusion:
        hi = model.Fusion_block1(hi) if hi is not None else None
        lo = model.Fusion_block2(lo) if lo is not None else None
    maps = [a for a in (hi, lo) if a is not None]
    if model.combine == "concat":
        outs = [model.fc(model.conv_norm(torch.cat([hi.mean(dim=2), lo.mean(dim=2)], dim=1)))]
    else:
        o1 = model.fc1(model.conv_norm1(hi.mean(dim=2))) if hi is not None else None
        o2 = model.fc2(model.conv_norm2(lo.mean(dim=2))) if lo is not None else None
        outs = [o1 + o2] if model.combine == "add" else [o for o in (o1, o2) if o is not None]
    res = {}
    for k in classes:
        s = sum(o[0, k] for o in outs) / len(outs)
        grads = torch.autograd.grad(s, maps + [xt], retain_graph=True)
        cams = []
        for a, g in zip(maps, grads[:-1]):
            alpha = g.mean(dim=2, keepdim=True)
            cam = torch.relu((alpha * a).sum(dim=1, keepdim=True))
            cams.append(F.interpolate(cam, size=1000, mode="linear", align_corners=False)[0, 0])
        br = torch.stack(cams).detach().double().numpy()
        res[k] = (float(s), br.sum(axis=0), br, (xt * grads[-1])[0].detach().double().numpy())
    return res


def errors(got, ref):
    """(Grad-CAM, branches, input x gradient) relative errors of mrmnet's maps against the twin's."""
    cam, br, sal = got
    _, tcam, tbr, tixg = ref
    return (rel(cam, tcam), max(rel(br[b], tbr[b]) for b in range(tbr.shape[0])), rel(sal, tixg))


def rel(a, b):
    d = max(np.abs(b).max(), np.abs(a).max(), 1e-30)
    return float(np.abs(a - b).max() / d)


def raw_wfdb16(rec):
    """Physical values (n_sig, n) of a format-16 WFDB record, from the bytes."""
    lines = [ln for ln in open(rec + ".hea").read().splitlines() if ln and not ln.startswith("#")]
    ns, n = int(lines[0].split()[1]), int(lines[0].split()[3])
    gains, bases = [], []
    for ln in lines[1:1 + ns]:
        g = ln.split()[2]
        gain = float(g.split("(")[0].split("/")[0])
        base = int(g.split("(")[1].split(")")[0]) if "(" in g else int(ln.split()[4])
        gains.append(gain)
        bases.append(base)
    d = np.fromfile(rec + ".dat", dtype="<i2").reshape(n, ns).T.astype(np.float64)
    return (d - np.array(bases)[:, None]) / np.array(gains)[:, None]


def run_case(label, model_path, records, out, extra=(), raw_check=(), windows=None):
    """windows: for a recording longer than 10 s explained without --start, predict's JSON entry
    of it (its windows and mean probabilities), which explain's windows must match."""
    shutil.rmtree(out, ignore_errors=True)
    model, meta = load_model(model_path)
    model = model.float().eval()
    classes = json.loads(meta["classes"])
    mean, std = float(meta["mean"]), float(meta["std"])
    p = mrmnet("explain", "--model", model_path, "--out", out, "--threads", "1", *extra, *records, expect=0)
    check(p.returncode == 0, "%s: explain exit status %d" % (label, p.returncode))
    if p.returncode:
        return
    for rec in records:
        name = os.path.basename(rec).rsplit(".", 1)[0] if rec.endswith((".hea", ".mat", ".xml")) else os.path.basename(rec)
        base = os.path.join(out, name)
        j = json.load(open(base + ".json"))
        x = np.load(base + ".input.npy")
        cam = np.load(base + ".gradcam.npy")
        br = np.load(base + ".gradcam_branches.npy")
        sal = np.load(base + ".saliency.npy")
        W = len(j["windows"])
        if windows is not None:  # every window predict analyses, a leading window axis
            want = [(w["start_s"], w["end_s"]) for w in windows["windows"]]
            check([(w["start_s"], w["end_s"]) for w in j["windows"]] == want, "%s %s: predict's windows %s" % (label, name, want))
            check("window_axis" in j and cam.shape == (W, len(j["classes"]), 1000) and x.shape == (W, 12, 1000)
                  and sal.shape == (W, len(j["classes"]), 12, 1000), "%s %s: shapes %s %s" % (label, name, cam.shape, x.shape))
            for c, pr in windows["probabilities"].items():
                check(abs(j["probabilities"][c] - pr) < 1e-4, "%s %s %s: predict's mean probability %g vs %g" % (label, name, c, j["probabilities"][c], pr))
            check(j["labels"] == windows["labels"], "%s %s: predict's labels %s vs %s" % (label, name, j["labels"], windows["labels"]))
            for w in range(W):
                for c, pr in windows["windows"][w]["probabilities"].items():
                    check(abs(j["windows"][w]["probabilities"][c] - pr) < 1e-4, "%s %s window %d %s: predict's probability" % (label, name, w, c))
        else:
            check(W == 1 and cam.shape == (len(j["classes"]), 1000), "%s %s: gradcam shape %s" % (label, name, cam.shape))
            x, cam, br, sal = x[None], cam[None], br[None], sal[None]
        if rec in raw_check:
            raw = raw_wfdb16(rec)
            want = (raw[:, int(round(j["window_start_s"] * 100)):][:, :1000] - mean) / std
            check(rel(x[0], want) < 1e-5, "%s %s: the model input differs from the raw samples (%g)" % (label, name, rel(x[0], want)))
        for w in range(W):
            wname = name if W == 1 else "%s window %g-%g s" % (name, j["windows"][w]["start_s"], j["windows"][w]["end_s"])
            compare_window(label, wname, model, classes, j["classes"], j["windows"][w], x[w], cam[w], br[w], sal[w])
    print("%s: %d recordings" % (label, len(records)), flush=True)


def compare_window(label, name, model, classes, asked, jw, x, cam, br, sal):
    """One window's maps (mrmnet's) against the twin's, with the flips of near-ties kept."""
    with torch.no_grad():
        outs = [o for o in model(torch.tensor(x[None], dtype=torch.float32))[1::2] if o is not None]
    prob = sum(torch.sigmoid(o[0]) for o in outs).numpy() / len(outs)
    ks = [classes.index(cname) for cname in asked]
    got = {k: (cam[q], br[q], sal[q]) for q, k in enumerate(ks)}
    ref = twin_maps(model, x, ks)
    # positions within float32 rounding of a ReLU's 0 or of a max-pool tie may be decided the
    # other way by mrmnet's forward: the four closest of those within 40 steps of the largest
    # difference of the input x gradient are flipped in the twin one at a time, each kept when
    # it brings the twin nearer to mrmnet
    flips, cands = {}, []
    if not all(max(errors(got[k], ref[k])) < TOL for k in ks):
        far = max(ks, key=lambda k: errors(got[k], ref[k])[2])
        at = np.unravel_index(np.abs(got[far][2] - ref[far][3]).argmax(), ref[far][3].shape)[1]
        cands = sorted(n for n in switch.near if abs(n[5] - at) <= 40)[:4]
    for gap, kind, i, c, t, _ in cands:
        trial = {a: list(b) for a, b in flips.items()}
        trial.setdefault(i, []).append((c, t))
        r2 = twin_maps(model, x, ks, trial)
        if sum(max(errors(got[k], r2[k])) for k in ks) < sum(max(errors(got[k], ref[k])) for k in ks):
            flips, ref = trial, r2
            flipped.append("%s %s: %s (call %d) channel %d step %d, %.1e from a tie in the twin" % (label, name, kind, i, c, t, gap))
    for cname, k in zip(asked, ks):
        s = ref[k][0]
        check(abs(jw["probabilities"][cname] - prob[k]) < 1e-5, "%s %s %s: probability" % (label, name, cname))
        check(abs(jw["scores"][cname] - s) < 1e-4 * max(1, abs(s)), "%s %s %s: score %g vs %g" % (label, name, cname, jw["scores"][cname], s))
        e = errors(got[k], ref[k])
        for key, v in zip(("gradcam", "branch", "saliency"), e):
            worst[key] = max(worst[key], v)
        check(max(e) < TOL, "%s %s %s: Grad-CAM %.2e, branches %.2e, input x gradient %.2e (tolerance %g)" % (label, name, cname, *e, TOL))


def randomised_variant(path, seed, **kw):
    torch.manual_seed(seed)
    m = MRMNet(5, 4, **kw)
    g = torch.Generator().manual_seed(seed + 7)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm1d):
                mod.weight.copy_(torch.rand(mod.weight.shape, generator=g) + 0.5)
                mod.bias.copy_(torch.rand(mod.bias.shape, generator=g) * 0.4 - 0.2)
                mod.running_mean.copy_(torch.rand(mod.running_mean.shape, generator=g) * 0.2 - 0.1)
                mod.running_var.copy_(torch.rand(mod.running_var.shape, generator=g) + 0.5)
            elif isinstance(mod, (nn.LayerNorm, ChannelLayerNorm)):
                mod.weight.copy_(torch.rand(mod.weight.shape, generator=g) + 0.5)
    save_model(m, path, classes=["CD", "HYP", "MI", "NORM", "STTC"], mean="0.001", std="0.2",
               leads=json.dumps(["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]))
    return path


fx = os.path.join(SRC, "tests", "fixtures", "ptb-xl")
fixtures = [os.path.join(fx, r) for r in ("00001_lr", "00002_lr", "01000_lr", "00001_hr")]
samples = [os.path.join(SRC, "samples", r) for r in ("00009_lr", "00063_lr")]
default = os.path.join(SRC, "models", "ptbxl-superdiagnostic.safetensors")
run_case("default model, fixtures", default, [fixtures[0], fixtures[2], fixtures[3], samples[0]], os.path.join(TMP, "default"),
         raw_check=[fixtures[0], samples[0]])
v1 = randomised_variant(os.path.join(TMP, "add.safetensors"), 1, combine="add")
run_case("combine=add", v1, fixtures[1:2], os.path.join(TMP, "add"), extra=("--classes", "MI,NORM"))
v2 = randomised_variant(os.path.join(TMP, "low.safetensors"), 2, branches="low", attention="none", fusion=False)
run_case("branches=low", v2, fixtures[2:3], os.path.join(TMP, "low"))

# refusals: an unknown class, and an existing output without --overwrite
p = mrmnet("explain", "--model", default, "--out", os.path.join(TMP, "default"), "--classes", "XYZ", fixtures[0])
check(p.returncode == 2 and "XYZ" in p.stderr, "an unknown class is refused: %d %s" % (p.returncode, p.stderr))
p = mrmnet("explain", "--model", default, "--out", os.path.join(TMP, "default"), fixtures[0])
check(p.returncode == 1 and "--overwrite" in p.stderr, "existing files are not replaced: %s" % p.stderr)

ptb = os.path.join(SHARED, "data", "ptb-xl") if SHARED else ""
if ptb and os.path.isfile(os.path.join(ptb, "ptbxl_database.csv")):
    # held-out records: the test fold (10) of the bundled subset, 100 Hz, and 500 Hz records
    import csv
    rows = list(csv.DictReader(open(os.path.join(ptb, "ptbxl_database.csv"))))
    test = [r for r in rows if r["strat_fold"] == "10"][:2]
    held = [os.path.join(ptb, r["filename_lr"]) for r in test]
    hr = [os.path.join(ptb, r["filename_hr"]) for r in rows[:100] if os.path.isfile(os.path.join(ptb, r["filename_hr"] + ".hea"))][-1:]
    run_case("default model, PTB-XL test fold", default, held + hr, os.path.join(TMP, "shared"), raw_check=held,
             extra=("--classes", "MI,NORM,STTC"))
    cpsc = os.path.join(SHARED, "data", "cpsc2018", "challenge2020_wfdb", "A0005")
    if os.path.isfile(cpsc + ".hea"):
        # 25 s at 500 Hz: one later window (--start), then every window predict analyses
        run_case("default model, CPSC2018 25 s, window at 3 s", default, [cpsc], os.path.join(TMP, "cpsc"),
                 extra=("--start", "3", "--force", "--classes", "NORM,STTC"))
        j = json.load(open(os.path.join(TMP, "cpsc", "A0005.json")))
        check(j["window_start_s"] == 3.0 and j["window_end_s"] == 13.0, "the window at 3 s: %s-%s" % (j["window_start_s"], j["window_end_s"]))
        pj = mrmnet("predict", "--json", "--force", "--threads", "1", "--model", default, cpsc, expect=0)
        pred = json.loads(pj.stdout)[0] if pj.returncode == 0 else None
        check(pred is not None and len(pred["windows"]) == 3, "predict analyses the 25 s recording in 3 windows")
        if pred:
            run_case("default model, CPSC2018 25 s, predict's windows", default, [cpsc], os.path.join(TMP, "cpsc-all"),
                     extra=("--force", "--classes", "NORM,STTC"), windows=pred)
else:
    print("../shared is absent: the held-out PTB-XL and CPSC2018 records are not checked")
print("ReLU inputs or max-pool gaps within %g of 0 that mrmnet's float32 forward decided the other way: %d" % (NEAR, len(flipped)))
for f in flipped:
    print("  " + f)
print("largest relative errors: Grad-CAM %.2e, branches %.2e, input x gradient %.2e" %
      (worst["gradcam"], worst["branch"], worst["saliency"]))
end()
