"""Writes tests/train/ref_adam_steps.safetensors: the PyTorch twin trained for 4 Adam steps
(torch.optim.Adam, lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01 as L2) from
tests/fixtures/model/ref_hi_weights.safetensors on tests/fixtures/model/ref_input.npy and
ref_labels.npy in batches of 2 (records 0-1, 2-3, 0-1, 2-3: two epochs without shuffling),
dropout 0, in float64. The file holds the state_dict after the 4 steps (float32; BatchNorm
statistics included) and the loss of each step in its metadata ("losses", JSON).
tests/cli/test_train_parity.py runs `mrmnet train` the same way and compares.

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


def main():
    torch.set_num_threads(2)
    model, _ = mt.load_model(os.path.join(FIX, "ref_hi_weights.safetensors"), dropout=0.0)
    model = model.double()
    model.set_dropout(0.0)
    model.train()
    x = torch.from_numpy(np.load(os.path.join(FIX, "ref_input.npy")).astype(np.float64))
    y = torch.from_numpy(np.load(os.path.join(FIX, "ref_labels.npy")).astype(np.float64))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    losses = []
    for step in range(4):
        b = (step % 2) * 2
        opt.zero_grad()
        feat1, out1, feat2, out2 = model(x[b:b + 2])
        loss, _ = mt.mrmnet_loss(feat1, out1, feat2, out2, y[b:b + 2])
        loss.backward()
        opt.step()
        losses.append(float(loss))
    sd = {k: (v.float() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    meta = mt.model_metadata(model, mt.CLASSES_PTBXL_SUPER, losses=json.dumps(losses),
                             source="tools/make_train_reference.py")
    mt.save_safetensors(OUT, sd, meta)
    print("wrote", OUT, "losses", losses)


main()
