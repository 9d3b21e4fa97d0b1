"""Helpers of the train/eval/predict CLI tests: a tiny prepared folder, safetensors reading (numpy;
skips with 77 without it), and cli_testlib's check/end/run. Not a test itself (no test_ prefix)."""
import json
import os
import struct
import sys

# check, end, run and the environment come from tests/cli/cli_testlib.py (no numpy needed there)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cli"))
from cli_testlib import MRMNET, SRC, TMP, check, end, run, skip  # noqa: E402,F401

try:
    import numpy as np
except ImportError:
    skip("numpy is not available")


def make_prepared(d, n=(40, 24, 20), classes=("A", "B", "C"), seed=0):
    """A prepared folder with random signals in which class k shifts lead k by 0.7."""
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(seed)
    c = len(classes)
    for split, m in zip(("train", "val", "test"), n):
        y = (rng.random((m, c)) < 0.35).astype(np.float32)
        y[np.arange(m), rng.integers(0, c, m)] = 1
        x = rng.standard_normal((m, 12, 1000)).astype(np.float32)
        for k in range(c):
            x[:, k, :] += 0.7 * y[:, k:k + 1]
        np.save(os.path.join(d, "X_%s.npy" % split), x)
        np.save(os.path.join(d, "y_%s.npy" % split), y)
        with open(os.path.join(d, "ids_%s.txt" % split), "w") as f:
            f.write("".join("%s%03d\n" % (split, i) for i in range(m)))
    with open(os.path.join(d, "classes.txt"), "w") as f:
        f.write("".join(k + "\n" for k in classes))
    with open(os.path.join(d, "prepare.json"), "w") as f:
        json.dump({"task": "toy", "mean": 0.0, "std": 1.0}, f)
    return d


def read_safetensors(path):
    """(tensors as numpy arrays by name, metadata dict, raw bytes by name)."""
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    meta = h.pop("__metadata__", {})
    arrays, raw = {}, {}
    for k, v in h.items():
        s, e = v["data_offsets"]
        r = b[8 + n + s:8 + n + e]
        raw[k] = r
        dt = {"F32": "<f4", "I64": "<i8"}[v["dtype"]]
        arrays[k] = np.frombuffer(r, dtype=dt).reshape(v["shape"])
    return arrays, meta, raw
