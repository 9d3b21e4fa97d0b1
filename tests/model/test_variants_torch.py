"""Every variant of the model against the PyTorch twin (tools/mrmnet_torch.py), computed at test
time (skipped without PyTorch): for each variant, width 4, independent random weights (BatchNorm
and LayerNorm parameters and statistics drawn away from their defaults) and the four reference
PTB-XL records,
  - the twin's weights file loads in mrmnet, and mrmnet's own file of the variant (mrmnet init)
    loads in the twin with load_state_dict(strict=True): the same names, shapes and order;
  - mrmnet forward (evaluation mode, and the fast inference path) gives the float64 logits and
    features to 1e-5 (relative to the largest value);
  - mrmnet backward (training mode, dropout off) gives the float64 loss to 1e-5 and gradients at
    least as close to float64 as PyTorch's own float32 gradients of the same weights and data:
    over all parameters together (relative L2 error, within a factor of 2), and tensor by tensor
    within a factor of 4 plus 1e-5 (a tensor of a few values whose gradient is a sum over
    thousands of products has a float32 rounding of that order in any summation order; PyTorch's
    may be luckier). Where a ReLU input lies closer to 0 than the rounding of the fast convolutions can
    move it (|BN output| < 4e-6), mrmnet may take the other side of the ReLU than float64 does;
    such positions are flipped in the float64 computation one by one (the closest first), each
    kept only if it brings float64 nearer to mrmnet, and the rules apply to float64 with those
    flips. The flips are printed (see docs/parity.md).
"""
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
from mrm_testlib import SRC, TMP, check, end, read_safetensors, run, skip  # noqa: E402

try:
    import numpy as np
    import torch
    import torch.nn as nn
except ImportError:
    skip("PyTorch or numpy not installed")

sys.path.insert(0, os.path.join(SRC, "tools"))
from mrmnet_torch import ChannelLayerNorm, MRMNet, load_model, load_safetensors, save_model  # noqa: E402

torch.set_num_threads(2)
FIX = os.path.join(SRC, "tests", "fixtures", "model")
X = np.load(os.path.join(FIX, "ref_input.npy"))
Y = np.load(os.path.join(FIX, "ref_labels.npy"))
WIDTH = 4

VARIANTS = [
    ("attention=none", dict(attention="none")),
    ("attention=high", dict(attention="high")),
    ("fusion=off", dict(fusion=False)),
    ("attention=both,fusion=off", dict(attention="both", fusion=False)),
    ("branches=high,attention=high", dict(branches="high", attention="high")),
    ("branches=low", dict(branches="low")),
    ("combine=add", dict(combine="add")),
    ("combine=concat", dict(combine="concat")),
    ("lambda_feat=0,lambda_logit=0.5,temperature=2", dict(lambda_feat=0.0, lambda_logit=0.5, temperature=2.0)),
]


def randomise(model, seed):
    g = torch.Generator().manual_seed(seed + 1000)

    def u(t, lo, hi):
        t.copy_(torch.rand(t.shape, generator=g, dtype=torch.float64).mul(hi - lo).add(lo))

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                u(m.weight, 0.5, 1.5)
                u(m.bias, -0.2, 0.2)
                u(m.running_mean, -0.1, 0.1)
                u(m.running_var, 0.5, 1.5)
                m.num_batches_tracked.fill_(7)
            elif isinstance(m, (nn.LayerNorm, ChannelLayerNorm)):
                u(m.weight, 0.5, 1.5)
                u(m.bias, -0.2, 0.2)


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def l2rel(a, b):
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


FLIP_MARGIN = 4e-6


def bn_outputs(model, x):
    """Training-mode BatchNorm outputs of the twin (the ReLUs' inputs), by module name."""
    out, hs = {}, []
    for n, mod in model.named_modules():
        if isinstance(mod, nn.BatchNorm1d):
            hs.append(mod.register_forward_hook(lambda m_, i_, o, n=n: out.__setitem__(n, o.detach())))
    twin_outputs(model, x, Y, True)
    for h in hs:
        h.remove()
    return out


def with_flips(model, flips):
    """Hooks negating the BatchNorm outputs at the given (module, index) positions."""
    mods, hs = dict(model.named_modules()), []
    for n, idx in flips:
        def neg(m_, i_, o, idx=idx):
            o = o.clone()
            o[idx] = -o[idx]
            return o
        hs.append(mods[n].register_forward_hook(neg))
    return hs


def twin_outputs(model, x, y, train):
    """(out1, out2, feat1, feat2, loss, parts, grads by name) of a float64 or float32 twin."""
    dt = next(model.parameters()).dtype
    xt, yt = torch.from_numpy(x).to(dt), torch.from_numpy(y).to(dt)
    model.zero_grad()
    model.train(train)
    model.set_dropout(0.0)
    f1, o1, f2, o2 = model(xt)
    total, parts = model.loss(f1, o1, f2, o2, yt)
    grads = {}
    if train:
        total.backward()
        grads = {n: p.grad.detach().double().numpy() for n, p in model.named_parameters()}
    d = lambda t: None if t is None else t.detach().double().numpy()  # noqa: E731
    return d(o1), d(o2), d(f1), d(f2), float(total), {k: float(v) for k, v in parts.items()}, grads


ONLY = os.environ.get("MRM_VARIANT")  # one variant's name (for debugging), else all

for i, (name, kw) in enumerate(VARIANTS):
    if ONLY and name != ONLY:
        continue
    tmp = os.path.join(TMP, "v%d" % i)
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    torch.manual_seed(100 + i)
    twin = MRMNet(5, WIDTH, dropout=0.0, **kw)
    randomise(twin, 100 + i)
    wpath = os.path.join(tmp, "w.safetensors")
    save_model(twin, wpath, ["CD", "HYP", "MI", "NORM", "STTC"])
    stored, _ = load_safetensors(wpath)
    t64 = MRMNet(5, WIDTH, dropout=0.0, **kw).double()
    t64.load_state_dict(stored, strict=True)
    t32 = MRMNet(5, WIDTH, dropout=0.0, **kw)
    t32.load_state_dict(stored, strict=True)

    # mrmnet's own file of the variant loads strictly in the twin
    own = os.path.join(tmp, "own.safetensors")
    rc, _, err = run("init", "--classes", "5", "--width", str(WIDTH), "--variant", name, "--out", own)
    check(rc == 0, "%s: mrmnet init: %s" % (name, err.strip()))
    if rc == 0:
        try:
            back, meta = load_model(own)
            same = list(back.state_dict().keys()) == list(twin.state_dict().keys())
            check(same, "%s: the twin's state_dict order equals mrmnet's" % name)
            check(back.config() == twin.config(), "%s: metadata %s vs %s" % (name, dict(back.config()), dict(twin.config())))
        except Exception as e:  # strict load failed
            check(False, "%s: the twin cannot load mrmnet's file strictly: %s" % (name, e))

    # forward, evaluation mode and the fast path
    o1, o2, f1, f2, loss_e, _, _ = twin_outputs(t64, X, Y, False)
    want = {"out1.npy": o1, "out2.npy": o2, "feat1.npy": f1, "feat2.npy": f2}
    for mode in ("eval", "fast"):
        d = os.path.join(tmp, mode)
        rc, _, err = run("forward", "--model", wpath, "--input", os.path.join(FIX, "ref_input.npy"), "--out", d,
                         *(["--fast"] if mode == "fast" else []))
        check(rc == 0, "%s: forward %s: %s" % (name, mode, err.strip()))
        if rc:
            continue
        for f, ref in want.items():
            p = os.path.join(d, f)
            if ref is None or (mode == "fast" and f.startswith("feat")):
                check(not os.path.exists(p), "%s: %s: no %s for this variant" % (name, mode, f))
                continue
            e = rel(np.load(p), ref)
            check(e <= 1e-5, "%s: %s %s: relative error %.2e vs float64" % (name, mode, f, e))

    # backward: loss and gradients
    g = os.path.join(tmp, "g.safetensors")
    rc, _, err = run("backward", "--model", wpath, "--input", os.path.join(FIX, "ref_input.npy"), "--labels",
                     os.path.join(FIX, "ref_labels.npy"), "--out", g)
    check(rc == 0, "%s: backward: %s" % (name, err.strip()))
    if rc:
        continue
    got, _, _ = read_safetensors(g)
    _, _, _, _, loss64, parts64, g64 = twin_outputs(t64, X, Y, True)
    _, _, _, _, _, _, g32 = twin_outputs(t32, X, Y, True)
    check(abs(float(got["loss"]) - loss64) <= 1e-5 * max(1.0, abs(loss64)),
          "%s: loss %.9g vs %.9g" % (name, float(got["loss"]), loss64))
    for k in ("bce1", "bce2", "kl_feat", "kl_logits"):
        check(abs(float(got["loss." + k]) - parts64[k]) <= 1e-5 * max(1.0, abs(parts64[k])),
              "%s: loss.%s %.9g vs %.9g" % (name, k, float(got["loss." + k]), parts64[k]))
    names = list(g64)
    check(all(n in got for n in names), "%s: a gradient for every parameter" % name)
    if not all(n in got for n in names):
        continue
    allc = np.concatenate([got[n].astype(np.float64).ravel() for n in names])
    all32 = np.concatenate([g32[n].ravel() for n in names])
    flat = lambda g: np.concatenate([g[n].ravel() for n in names])  # noqa: E731
    all64 = flat(g64)
    g64_plain, all64_plain = g64, all64  # PyTorch's float32 is measured against float64 without flips
    if l2rel(allc, all64) > 2 * l2rel(all32, all64) + 1e-7:
        # ReLU inputs within the rounding of the fast convolutions: try them on the other side
        cands = []
        for n, z in bn_outputs(t64, X).items():
            a = z.abs().numpy()
            for i in np.argwhere(a < FLIP_MARGIN):
                cands.append((float(a[tuple(i)]), n, tuple(int(v) for v in i)))
        kept = []
        for a, n, idx in sorted(cands):
            hs = with_flips(t64, [(k[1], k[2]) for k in kept] + [(n, idx)])
            _, _, _, _, _, _, gf = twin_outputs(t64, X, Y, True)
            for h in hs:
                h.remove()
            if l2rel(allc, flat(gf)) < 0.5 * l2rel(allc, all64):
                kept.append((a, n, idx))
                g64, all64 = gf, flat(gf)
        for a, n, idx in kept:
            print("%s: ReLU input %s%s = %.2e in float64: mrmnet takes the other side" % (name, n, list(idx), a))
    ec, et = l2rel(allc, all64), l2rel(all32, all64_plain)
    check(ec <= 2 * et + 1e-7, "%s: gradients, relative L2 error %.2e (PyTorch float32 %.2e)" % (name, ec, et))
    worst = (0.0, "")
    for n in names:
        c, t = l2rel(got[n], g64[n]), l2rel(g32[n], g64_plain[n])
        ratio = c / max(t, 1e-7)
        if ratio > worst[0]:
            worst = (ratio, "%s %.2e vs %.2e" % (n, c, t))
        check(c <= 4 * t + 1e-5, "%s: %s: relative L2 error %.2e, PyTorch float32 %.2e" % (name, n, c, t))
    print("%s: gradients %.2e (float32 PyTorch %.2e); worst tensor ratio %.1f (%s)" % (name, ec, et, worst[0], worst[1]))
end()
