"""Writes the reference tensors of the PyTorch twin (tools/mrmnet_torch.py) that the C model is
checked against: tests/fixtures/model/ (see tools/README.md for every file and name).

    /usr/bin/python3 tools/make_model_references.py [--shared ../shared] [--out tests/fixtures/model]

Everything is computed in float64 from float32 weights and a float32 input (the stored values),
then rounded to float32 once, so the references are the exact function of the stored inputs.
"""
import argparse
import ast
import collections
import csv
import os
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mrmnet_torch import (CLASSES_PTBXL_SUPER, ChannelLayerNorm, MRMNet,  # noqa: E402
                          load_safetensors, mrmnet_loss, save_model, save_safetensors)

RECORDS = [1, 8, 39, 45]          # PTB-XL ecg_id: NORM, MI, MI+STTC, CD+HYP
INPUT_MEAN, INPUT_STD = 0.0, 0.2  # x = (mV - 0) / 0.2
NUM_BATCHES_TRACKED = 7


def read_ptbxl_100hz(shared, ecg_id):
    """(12, 1000) float64 mV from records100/<k>000/<id>_lr.{hea,dat} (format 16, gain 1000,
    baseline 0 checked in the header)."""
    base = os.path.join(shared, "ptb-xl", "records100", "%02d000" % (ecg_id // 1000),
                        "%05d_lr" % ecg_id)
    lines = [ln.split() for ln in open(base + ".hea") if ln.strip() and not ln.startswith("#")]
    assert lines[0][1:4] == ["12", "100", "1000"], lines[0]
    for sig in lines[1:13]:
        assert sig[1] == "16" and sig[2].startswith("1000") and "(0)" in sig[2], sig
    raw = np.fromfile(base + ".dat", dtype="<i2")
    assert raw.size == 12 * 1000
    return raw.reshape(1000, 12).T.astype(np.float64) / 1000.0


def superdiagnostic_labels(shared, ids):
    st = {}
    for r in csv.DictReader(open(os.path.join(shared, "ptb-xl", "scp_statements.csv"))):
        st[r[""]] = r
    rows = {int(r["ecg_id"]): r for r in
            csv.DictReader(open(os.path.join(shared, "ptb-xl", "ptbxl_database.csv")))}
    y = np.zeros((len(ids), len(CLASSES_PTBXL_SUPER)), np.float32)
    for i, e in enumerate(ids):
        for code in ast.literal_eval(rows[e]["scp_codes"]):
            s = st.get(code)
            if s and s["diagnostic"] in ("1", "1.0") and s["diagnostic_class"]:
                y[i, CLASSES_PTBXL_SUPER.index(s["diagnostic_class"])] = 1.0
    return y


def randomised_model(width, hi_attention, seed, n_classes=5):
    """PyTorch-default conv/linear init, then BN and LayerNorm parameters and BN running
    statistics drawn away from their defaults."""
    torch.manual_seed(seed)
    model = MRMNet(n_classes, width, hi_attention, dropout=0.0)
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
                m.num_batches_tracked.fill_(NUM_BATCHES_TRACKED)
            elif isinstance(m, (nn.LayerNorm, ChannelLayerNorm)):
                u(m.weight, 0.5, 1.5)
                u(m.bias, -0.2, 0.2)
    return model


def intermediates(model, x0):
    """Eval-mode activations of ONE record (1, 12, 1000) at the main joints (for debugging)."""
    bb = model.BaseBlock
    out = collections.OrderedDict()
    with torch.no_grad():
        s = bb.conv_block4(bb.conv_block3(bb.conv_block2(bb.conv_block1(x0))))
        out["eval0.stem"] = s[0]
        hi, lo = bb.BaseScale1(s), bb.BaseScale2(s)
        out["eval0.scale1"], out["eval0.scale2"] = hi[0], lo[0]
        hi, lo = bb.layer1(hi), bb.layer2(lo)
        out["eval0.layer1"], out["eval0.layer2"] = hi[0], lo[0]
    return out


def make_references(model, x32, y32, with_intermediates):
    """Returns the ordered tensors of ref_*outputs.safetensors (float64 values; stored F32)."""
    model = model.double()
    x, y = torch.from_numpy(x32).double(), torch.from_numpy(y32).double()
    ref = collections.OrderedDict()

    model.eval()
    with torch.no_grad():
        f1, o1, f2, o2 = model(x)
    ref["eval.out1"], ref["eval.out2"], ref["eval.feat1"], ref["eval.feat2"] = o1, o2, f1, f2
    with torch.no_grad():
        total, parts = mrmnet_loss(f1, o1, f2, o2, y)
    ref["eval.loss"] = total
    for k in ("bce1", "bce2", "kl_feat", "kl_logits"):
        ref["eval.loss." + k] = parts[k]
    if with_intermediates:
        ref.update(intermediates(model, x[:1]))

    model.train()
    model.set_dropout(0.0)
    model.zero_grad()
    f1, o1, f2, o2 = model(x)
    total, parts = mrmnet_loss(f1, o1, f2, o2, y)
    total.backward()
    ref["train.out1"], ref["train.out2"] = o1.detach(), o2.detach()
    ref["train.feat1"], ref["train.feat2"] = f1.detach(), f2.detach()
    ref["loss"] = total.detach()
    for k in ("bce1", "bce2", "kl_feat", "kl_logits"):
        ref["loss." + k] = parts[k].detach()
    for name, p in model.named_parameters():
        ref["grad." + name] = p.grad
    for name, b in model.named_buffers():
        ref["after." + name] = b
    return ref


def write_variant(out_dir, prefix, width, hi, seed, x, y, with_intermediates):
    model = randomised_model(width, hi, seed)
    wpath = os.path.join(out_dir, prefix + "weights.safetensors")
    save_model(model, wpath, CLASSES_PTBXL_SUPER, task="superdiagnostic", mean="0", std="1",
               source="tools/make_model_references.py seed %d" % seed)
    # Reload: the references are computed from exactly the stored float32 values.
    stored, _ = load_safetensors(wpath)
    model = MRMNet(5, width, hi, dropout=0.0)
    model.load_state_dict(stored, strict=True)
    ref = make_references(model, x, y, with_intermediates)
    save_safetensors(os.path.join(out_dir, prefix + "outputs.safetensors"), ref,
                     {"format": "mrmnet-ref-1", "weights": prefix + "weights.safetensors",
                      "input": "ref_input.npy", "labels": "ref_labels.npy",
                      "precision": "float64 computation, stored as float32",
                      "train_dropout": "0"})
    print("%s: width %d hi_attention %d: loss %.9f (bce1 %.6f bce2 %.6f kl_feat %.6f "
          "kl_logits %.6f), %d tensors" % (prefix, width, hi, float(ref["loss"]),
                                           float(ref["loss.bce1"]), float(ref["loss.bce2"]),
                                           float(ref["loss.kl_feat"]),
                                           float(ref["loss.kl_logits"]), len(ref)))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shared", default=os.path.join(here, "..", "..", "shared", "data"))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "model"))
    ap.add_argument("--hi-width", type=int, default=4,
                    help="width of the hi_attention variant (small, to keep the fixture small)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    os.makedirs(args.out, exist_ok=True)

    x = np.stack([read_ptbxl_100hz(args.shared, e) for e in RECORDS])
    x = ((x - INPUT_MEAN) / INPUT_STD).astype(np.float32)
    y = superdiagnostic_labels(args.shared, RECORDS)
    assert (y.sum(axis=1) >= 1).all()
    np.save(os.path.join(args.out, "ref_input.npy"), x)
    np.save(os.path.join(args.out, "ref_labels.npy"), y)
    print("input", x.shape, "labels", y.tolist())

    write_variant(args.out, "ref_", 16, False, 0, x, y, True)
    write_variant(args.out, "ref_hi_", args.hi_width, True, 1, x, y, False)


if __name__ == "__main__":
    main()
