"""Exports the PyTorch twin of MRM-Net (evaluation mode) to ONNX for the ONNX Runtime peer, with a
dynamic batch axis, and writes a check input and the twin's outputs on it so that the runner can
verify ONNX Runtime against PyTorch.

    /usr/bin/python3 bench/peers/export_onnx.py [--weights W.safetensors] [--out build-peers]

Writes OUT/mrmnet.onnx (input "x" (B, 12, 1000) float32; outputs "out1", "out2" (B, N) logits),
OUT/check.json (shapes, file names) and OUT/check_{x,out1,out2}.f32 (raw little-endian float32).
Without --weights it uses tests/fixtures/model/ref_weights.safetensors.
"""
import argparse
import inspect
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tools"))
from mrmnet_torch import load_model  # noqa: E402


class Logits(torch.nn.Module):
    """The twin without the feature outputs: x -> (out1, out2)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        _, out1, _, out2 = self.model(x)
        return out1, out2


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--weights", default=os.path.join(ROOT, "tests", "fixtures", "model",
                                                      "ref_weights.safetensors"))
    ap.add_argument("--out", default=os.path.join(ROOT, "build-peers"))
    ap.add_argument("--opset", type=int, default=13)
    ap.add_argument("--check-batch", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(2)
    os.makedirs(a.out, exist_ok=True)
    model, meta = load_model(a.weights)
    net = Logits(model).eval()
    path = os.path.join(a.out, "mrmnet.onnx")
    x = torch.randn(2, 12, 1000, generator=torch.Generator().manual_seed(0))
    # the TorchScript exporter, as PyTorch 1.13 has it: newer PyTorch (2.9 on) would otherwise
    # trace with dynamo, a different graph for ONNX Runtime to time
    extra = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        extra["dynamo"] = False
    with torch.no_grad():
        torch.onnx.export(net, (x,), path + ".tmp", input_names=["x"],
                          output_names=["out1", "out2"], opset_version=a.opset,
                          dynamic_axes={"x": {0: "batch"}, "out1": {0: "batch"},
                                        "out2": {0: "batch"}},
                          do_constant_folding=True, **extra)
    os.replace(path + ".tmp", path)
    try:
        import onnx
        onnx.checker.check_model(onnx.load(path))
        checked = True
    except ImportError:
        checked = False

    xc = torch.randn(a.check_batch, 12, 1000, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        o1, o2 = net(xc)
    for name, t in (("x", xc), ("out1", o1), ("out2", o2)):
        t.numpy().astype("<f4").tofile(os.path.join(a.out, "check_%s.f32" % name))
    info = {"model": "mrmnet.onnx", "weights": os.path.abspath(a.weights), "opset": a.opset,
            "onnx_checker": checked, "n_classes": model.num_classes,
            "x": {"file": "check_x.f32", "shape": list(xc.shape)},
            "out1": {"file": "check_out1.f32", "shape": list(o1.shape)},
            "out2": {"file": "check_out2.f32", "shape": list(o2.shape)}}
    with open(os.path.join(a.out, "check.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(json.dumps({"onnx": os.path.abspath(path), "bytes": os.path.getsize(path),
                      "onnx_checker": checked, "opset": a.opset}))


if __name__ == "__main__":
    main()
