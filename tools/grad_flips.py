"""Why a gradient of mrmnet differs from float64 more than PyTorch's float32 one does: runs
`mrmnet backward` and the PyTorch twin (float64 and float32) on the same weights and records,
lists the ReLU inputs that lie within FLIP_MARGIN of 0 in float64, flips them one by one in the
float64 computation (closest first, kept when it brings float64 nearer to mrmnet) and prints,
per tensor, the relative L2 error of mrmnet and of PyTorch float32 against float64 before and
after the flips (docs/parity.md).

    /usr/bin/python3 tools/grad_flips.py --mrmnet build/mrmnet --width 32 --attention both \\
        [--seed 1] [--records 4] [--out /tmp/flips]
"""
import argparse
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from mrmnet_torch import ChannelLayerNorm, MRMNet, load_safetensors, save_model  # noqa: E402

FLIP_MARGIN = 4e-6


def randomised(kw, width, seed):
    torch.manual_seed(seed)
    m = MRMNet(5, width, dropout=0.0, **kw)
    g = torch.Generator().manual_seed(seed + 1000)

    def u(t, lo, hi):
        t.copy_(torch.rand(t.shape, generator=g, dtype=torch.float64).mul(hi - lo).add(lo))

    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm1d):
                u(mod.weight, 0.5, 1.5), u(mod.bias, -0.2, 0.2)
                u(mod.running_mean, -0.1, 0.1), u(mod.running_var, 0.5, 1.5)
            elif isinstance(mod, (nn.LayerNorm, ChannelLayerNorm)):
                u(mod.weight, 0.5, 1.5), u(mod.bias, -0.2, 0.2)
    return m


def grads(model, x, y, hooks=()):
    dt = next(model.parameters()).dtype
    model.zero_grad()
    model.train()
    model.set_dropout(0.0)
    f1, o1, f2, o2 = model(torch.from_numpy(x).to(dt))
    t, _ = model.loss(f1, o1, f2, o2, torch.from_numpy(y).to(dt))
    t.backward()
    return {n: p.grad.detach().double().numpy() for n, p in model.named_parameters()}


def read_st(path):
    t, _ = load_safetensors(path)
    return {k: v.double().numpy() for k, v in t.items()}


def l2rel(a, b):
    return float(np.linalg.norm((a - b).ravel()) / max(np.linalg.norm(b.ravel()), 1e-30))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mrmnet", default="build/mrmnet")
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--attention", default="both")
    ap.add_argument("--fusion", default="on")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--records", type=int, default=4)
    ap.add_argument("--out", default="/tmp/grad_flips")
    a = ap.parse_args()
    torch.set_num_threads(2)
    fix = os.path.join(HERE, "..", "tests", "fixtures", "model")
    x = np.load(os.path.join(fix, "ref_input.npy"))[:a.records]
    y = np.load(os.path.join(fix, "ref_labels.npy"))[:a.records]
    os.makedirs(a.out, exist_ok=True)
    np.save(os.path.join(a.out, "x.npy"), x)
    np.save(os.path.join(a.out, "y.npy"), y)
    kw = dict(attention=a.attention, fusion=a.fusion == "on")
    w = os.path.join(a.out, "w.safetensors")
    save_model(randomised(kw, a.width, a.seed), w)
    stored, _ = load_safetensors(w)
    t64 = MRMNet(5, a.width, dropout=0.0, **kw).double()
    t64.load_state_dict(stored, strict=True)
    t32 = MRMNet(5, a.width, dropout=0.0, **kw)
    t32.load_state_dict(stored, strict=True)
    g = os.path.join(a.out, "g.safetensors")
    subprocess.run([a.mrmnet, "backward", "--model", w, "--input", os.path.join(a.out, "x.npy"), "--labels",
                    os.path.join(a.out, "y.npy"), "--out", g], check=True, capture_output=True)
    gc = read_st(g)
    g64, g32 = grads(t64, x, y), grads(t32, x, y)
    names = list(g64)
    flat = lambda d: np.concatenate([d[n].ravel() for n in names])  # noqa: E731
    C, T = flat(gc), flat(g32)
    print("width %d, %s: all gradients: mrmnet %.2e, PyTorch float32 %.2e (relative L2 against float64)"
          % (a.width, kw, l2rel(C, flat(g64)), l2rel(T, flat(g64))))
    # the ReLU inputs near 0 (BatchNorm outputs, training mode)
    outs, hs = {}, []
    for n, mod in t64.named_modules():
        if isinstance(mod, nn.BatchNorm1d):
            hs.append(mod.register_forward_hook(lambda m_, i_, o, n=n: outs.__setitem__(n, o.detach())))
    grads(t64, x, y)
    for h in hs:
        h.remove()
    cands = sorted((float(abs(z[tuple(i)])), n, tuple(int(v) for v in i))
                   for n, z in outs.items() for i in np.argwhere(z.abs().numpy() < FLIP_MARGIN))
    print("%d ReLU inputs within %.0e of 0 in float64" % (len(cands), FLIP_MARGIN))
    mods = dict(t64.named_modules())
    kept, gf = [], g64
    for c in cands:
        hs = []
        for _, n, idx in kept + [c]:
            def neg(m_, i_, o, idx=idx):
                o = o.clone()
                o[idx] = -o[idx]
                return o
            hs.append(mods[n].register_forward_hook(neg))
        gt = grads(t64, x, y)
        for h in hs:
            h.remove()
        if l2rel(C, flat(gt)) < 0.5 * l2rel(C, flat(gf)):
            kept.append(c)
            gf = gt
            print("  flipped: %s%s, float64 value %.2e" % (c[1], list(c[2]), c[0]))
    print("after %d flips: mrmnet vs float64 with the flips %.2e" % (len(kept), l2rel(C, flat(gf))))
    print("%-55s %10s %10s %10s %8s %8s" % ("tensor", "mrmnet", "torch f32", "mrmnet/fl", "ratio", "after"))
    rows = []
    for n in names:
        c0, t, c1 = l2rel(gc[n], g64[n]), l2rel(g32[n], g64[n]), l2rel(gc[n], gf[n])
        rows.append((c0 / max(t, 1e-12), n, c0, t, c1))
    for r, n, c0, t, c1 in sorted(rows, reverse=True)[:12]:
        print("%-55s %10.2e %10.2e %10.2e %8.1f %8.1f" % (n, c0, t, c1, r, c1 / max(t, 1e-12)))


if __name__ == "__main__":
    main()
