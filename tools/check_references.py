"""Checks the reference files of tests/fixtures/model/ without torch: safetensors layout
(header length, 8-byte padding, contiguous offsets in order), the weights' names, dtypes and
shapes against mrmnet-weights.tsv, the metadata, and the outputs' names and shapes.

    /usr/bin/python3 tools/check_references.py [--fixtures tests/fixtures/model] [--tsv ...]
"""
import argparse
import json
import os
import struct
import sys

import numpy as np


def read_header(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0 and 8 + n <= len(raw), "%s: header length %d" % (path, n)
    header = json.loads(raw[8:8 + n].decode("utf-8"), object_pairs_hook=list)
    meta = dict(dict(header).get("__metadata__", []))
    tensors = [(k, dict(v)) for k, v in header if k != "__metadata__"]
    off = 0
    for name, d in tensors:
        b, e = d["data_offsets"]
        size = {"F32": 4, "I64": 8}[d["dtype"]] * int(np.prod(d["shape"], dtype=np.int64))
        assert b == off and e - b == size, "%s: %s: offsets %s" % (path, name, (b, e))
        off = e
    assert 8 + n + off == len(raw), "%s: %d trailing bytes" % (path, len(raw) - 8 - n - off)
    return meta, tensors, raw, 8 + n


def tensor(raw, base, d):
    dt = {"F32": "<f4", "I64": "<i8"}[d["dtype"]]
    b, e = d["data_offsets"]
    return np.frombuffer(raw[base + b:base + e], dtype=dt).reshape(d["shape"])


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fixtures", default=os.path.join(here, "..", "tests", "fixtures", "model"))
    ap.add_argument("--tsv", default=os.path.join(here, "..", "..", "shared", "spec",
                                                  "mrmnet-weights.tsv"))
    a = ap.parse_args()
    want = [ln.rstrip("\n").split("\t") for ln in open(a.tsv)
            if ln.strip() and not ln.startswith("#") and not ln.startswith("name\t")]
    x = np.load(os.path.join(a.fixtures, "ref_input.npy"))
    y = np.load(os.path.join(a.fixtures, "ref_labels.npy"))
    assert x.shape == (4, 12, 1000) and x.dtype == np.float32, x.shape
    assert y.shape == (4, 5) and y.dtype == np.float32 and (y.sum(1) >= 1).all()
    for prefix in ("ref_", "ref_hi_"):
        wpath = os.path.join(a.fixtures, prefix + "weights.safetensors")
        meta, tensors, raw, base = read_header(wpath)
        assert meta["format"] == "mrmnet-1" and meta["n_classes"] == "5", meta
        width, hi = int(meta["width"]), meta["hi_attention"]
        assert json.loads(meta["classes"]) == ["CD", "HYP", "MI", "NORM", "STTC"]
        if prefix == "ref_":
            assert width == 16 and hi == "0"
            got = [[k, d["dtype"], "x".join(map(str, d["shape"])) or "scalar"] for k, d in tensors]
            assert got == want, "weights differ from the table"
            print("%s: %d tensors equal to %s in order" % (wpath, len(got), a.tsv))
        params = [(k, d) for k, d in tensors if d["dtype"] == "F32" and "running_" not in k]
        buffers = [(k, d) for k, d in tensors if d["dtype"] == "I64" or "running_" in k]
        for k, d in tensors:
            if k.endswith("num_batches_tracked"):
                assert int(tensor(raw, base, d)) == 7
        ometa, outs, oraw, obase = read_header(os.path.join(a.fixtures, prefix + "outputs.safetensors"))
        od = dict(outs)
        feat = 2008 * width
        for mode in ("eval", "train"):
            for h in ("1", "2"):
                assert od["%s.out%s" % (mode, h)]["shape"] == [4, 5]
                assert od["%s.feat%s" % (mode, h)]["shape"] == [4, feat]
        for k in ("loss", "loss.bce1", "loss.bce2", "loss.kl_feat", "loss.kl_logits"):
            assert od[k]["shape"] == [] and od[k]["dtype"] == "F32"
        parts = {k: float(tensor(oraw, obase, od[k])) for k in
                 ("loss", "loss.bce1", "loss.bce2", "loss.kl_feat", "loss.kl_logits")}
        total = parts["loss.bce1"] + parts["loss.bce2"] + 0.01 * parts["loss.kl_feat"] + \
            0.1 * parts["loss.kl_logits"]
        assert abs(total - parts["loss"]) < 1e-6, (total, parts)
        # the BCE of head 1 from the stored logits, in numpy
        o1 = tensor(oraw, obase, od["train.out1"]).astype(np.float64)
        bce = np.mean(np.maximum(o1, 0) - o1 * y + np.log1p(np.exp(-np.abs(o1))))
        assert abs(bce - parts["loss.bce1"]) < 1e-6, (bce, parts["loss.bce1"])
        for k, d in params:
            assert od["grad." + k]["shape"] == d["shape"], k
        for k, d in buffers:
            assert od["after." + k]["shape"] == d["shape"] and od["after." + k]["dtype"] == d["dtype"], k
            if k.endswith("num_batches_tracked"):
                n = int(tensor(oraw, obase, od["after." + k]))
                assert n == (9 if ".conv_block3.2." in k else 8), (k, n)
        print("%s: %d params with grad, %d buffers after, loss %.7f = parts, numpy bce1 %.7f ok"
              % (prefix, len(params), len(buffers), parts["loss"], bce))
    print("all checks passed")


if __name__ == "__main__":
    sys.exit(main())
