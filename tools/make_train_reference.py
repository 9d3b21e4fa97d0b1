"""Writes tests/train/ref_adam_steps.safetensors: the PyTorch twin trained for 3 Adam steps
(torch.optim.Adam, lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01 as L2) from
tests/fixtures/model/ref_hi_weights.safetensors on the 4 records of
tests/fixtures/model/ref_input.npy / ref_labels.npy as one batch (3 epochs of one step), dropout
0, in float64. The file holds the state_dict after the 3 steps (float32; BatchNorm statistics
included) and, in its metadata, the loss of each step ("losses", JSON) and how far the same
training in float32 lands from the float64 result ("f32_max_abs", "f32_mean_abs" over the
trainable weights, "f32_bn_max_rel" over the BatchNorm statistics): the scale of rounding noise
that tests/cli/test_train_parity.py allows `mrmnet train` (a few times it).

(A batch of 2 is avoided: BatchNorm over two values per channel in the attention blocks makes
float32 training drift from float64 by up to a full Adam step.)

usage: /usr/bin/python3 tools/make_train_reference.py
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mrmnet_torch as mt  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "tests", "fixtures", "model")
OUT = os.path.join(ROOT, "tests", "train", "ref_adam_steps.safetensors")
STEPS = 3


def train(dtype):
    model, _ = mt.load_model(os.path.join(FIX, "ref_hi_weights.safetensors"), dropout=0.0)
    model = model.to(dtype)
    model.set_dropout(0.0)
    model.train()
    x = torch.from_numpy(np.load(os.path.join(FIX, "ref_input.npy"))).to(dtype)
    y = torch.from_numpy(np.load(os.path.join(FIX, "ref_labels.npy"))).to(dtype)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        feat1, out1, feat2, out2 = model(x)
        loss, _ = mt.mrmnet_loss(feat1, out1, feat2, out2, y)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return model, losses


def main():
    torch.set_num_threads(2)
    m64, losses = train(torch.float64)
    m32, _ = train(torch.float32)
    s64, s32 = m64.state_dict(), m32.state_dict()
    w = [np.abs(s64[k].numpy() - s32[k].double().numpy()) for k in s64
         if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    bn = [float(np.abs(s64[k].numpy() - s32[k].double().numpy()).max() / max(1.0, float(s64[k].abs().max())))
          for k in s64 if k.endswith(("running_mean", "running_var"))]
    sd = {k: (v.float() if v.is_floating_point() else v) for k, v in s64.items()}
    meta = mt.model_metadata(m64, mt.CLASSES_PTBXL_SUPER, losses=json.dumps(losses),
                             f32_max_abs="%.6g" % max(float(a.max()) for a in w),
                             f32_mean_abs="%.6g" % float(np.concatenate([a.ravel() for a in w]).mean()),
                             f32_bn_max_rel="%.6g" % max(bn), source="tools/make_train_reference.py")
    mt.save_safetensors(OUT, sd, meta)
    print("wrote", OUT, "losses", losses, {k: meta[k] for k in ("f32_max_abs", "f32_mean_abs", "f32_bn_max_rel")})


main()
