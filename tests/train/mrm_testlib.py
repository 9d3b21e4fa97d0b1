"""Helpers of the train/eval/predict CLI tests: a tiny prepared folder, safetensors reading,
running mrmnet. Not a test itself (no test_ prefix)."""
import json
import os
import struct
import subprocess
import sys

try:
    import numpy as np
except ImportError:
    print("skipped: numpy is not available")
    sys.exit(77)

MRMNET = os.environ.get("MRMNET", "build/mrmnet")
TMP = os.environ.get("MRM_TMPDIR", "/tmp")
SRC = os.environ.get("MRM_SOURCE_DIR", ".")

failures = 0
passes = 0


def check(cond, what):
    global failures, passes
    if cond:
        passes += 1
    else:
        failures += 1
        print("FAIL:", what, flush=True)


def end():
    print("%d passed, %d failed" % (passes, failures))
    sys.exit(1 if failures else 0)


def run(*args, expect=0):
    """Runs mrmnet with args; returns (rc, stdout, stderr)."""
    p = subprocess.run([MRMNET] + [str(a) for a in args], capture_output=True, text=True)
    if expect is not None and p.returncode != expect:
        print("mrmnet", " ".join(map(str, args)), "->", p.returncode, "\n", p.stderr[-3000:], flush=True)
    return p.returncode, p.stdout, p.stderr


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
