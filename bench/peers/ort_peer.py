"""ONNX Runtime (CPU) peer through ONNX Runtime's Python package: the same measurement and the same
JSON as ort_peer.js (onnxruntime-node), for machines that have Python's onnxruntime but no Node.js
(run_bench.sh --ort python). Times the exported MRM-Net (bench/peers/export_onnx.py) at batch 1
and batch 32 with 2 intra-op threads (or --threads N), after checking that ONNX Runtime's logits
equal the PyTorch twin's on the check input (max |diff| <= 1e-4, else exit 1).

    python3 bench/peers/ort_peer.py [DIR (default build-peers)] [--iters1 N] [--iters32 N] [--threads N]

Session options as ort_peer.js: intra-op threads N, inter-op threads 1, sequential execution,
every graph optimisation, the CPU execution provider only. Input: seeded uniform values in
[-0.5, 0.5), as ort_peer.js (the speed does not depend on them).
"""
import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))


def read_f32(path, shape):
    n = int(np.prod(shape))
    size = os.path.getsize(path)
    if size != 4 * n:
        raise SystemExit("%s: %d bytes, expected %d" % (path, size, 4 * n))
    return np.fromfile(path, "<f4").reshape(shape)


def uniform_input(B):
    return np.random.default_rng(12345).uniform(-0.5, 0.5, (B, 12, 1000)).astype(np.float32)


def time_batch(session, B, warmup, iters):
    feeds = {"x": uniform_input(B)}
    for _ in range(warmup):
        session.run(None, feeds)
    ms = []
    c0 = time.process_time()
    for _ in range(iters):
        t0 = time.perf_counter()
        session.run(None, feeds)
        ms.append((time.perf_counter() - t0) * 1e3)
    cpu_ms = (time.process_time() - c0) * 1e3 / iters
    ms.sort()
    median = ms[len(ms) // 2]
    return {
        "batch": B, "warmup": warmup, "iters": iters, "ms_per_batch_median": median,
        "ms_per_batch_mean": sum(ms) / len(ms), "ms_per_batch_min": ms[0], "cpu_ms_per_batch": cpu_ms,
        "ms_per_record": median / B, "records_per_s": 1000.0 * B / median,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", nargs="?", default=os.path.join(HERE, "..", "..", "build-peers"))
    ap.add_argument("--iters1", type=int, default=20)
    ap.add_argument("--iters32", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    if a.threads < 1 or a.iters1 < 1 or a.iters32 < 1:
        ap.error("--threads, --iters1 and --iters32 want positive integers")
    with open(os.path.join(a.dir, "check.json")) as f:
        info = json.load(f)
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(os.path.join(a.dir, info["model"]), so, providers=["CPUExecutionProvider"])

    x = read_f32(os.path.join(a.dir, info["x"]["file"]), info["x"]["shape"])
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(None, {"x": x})))
    max_diff = 0.0
    for name in ("out1", "out2"):
        want = read_f32(os.path.join(a.dir, info[name]["file"]), info[name]["shape"])
        max_diff = max(max_diff, float(np.abs(got[name].astype(np.float64) - want).max()))
    check = {"max_abs_diff_vs_torch": max_diff, "tolerance": 1e-4, "ok": max_diff <= 1e-4}
    t1 = time_batch(session, 1, 2, a.iters1)
    t32 = time_batch(session, 32, 1, a.iters32)
    report = {
        "peer": "onnxruntime (Python)", "version": {"onnxruntime": ort.__version__, "python": sys.version.split()[0]},
        "threads": a.threads, "check": check, "infer_b1": t1, "infer_b32": t32,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }
    print(json.dumps(report, indent=1))
    if not check["ok"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
