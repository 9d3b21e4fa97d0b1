"""PyTorch peer: times the PyTorch twin of MRM-Net (tools/mrmnet_torch.py) with 2 threads (or
--threads N: torch.set_num_threads(N)) and prints JSON.

    /usr/bin/python3 bench/peers/torch_peer.py [--mode all|train|infer1|infer32] [--weights W]
        [--train-iters 3] [--infer1-iters 20] [--infer32-iters 3] [--threads 2]

Modes (each "all" mode runs in its own process, so that its peak RSS is its own):
  train    one training step at batch 96: train-mode forward (dropout 0.2), the full loss of spec
           section 5, backward, Adam step (lr 1e-3);
  infer1   evaluation mode under no_grad, batch 1;
  infer32  evaluation mode under no_grad, batch 32.
Reported: median / mean / min ms per step, ms per record (median / batch), records per second,
CPU time per step (user + system of the process, all threads), peak RSS (getrusage ru_maxrss) in
MiB. Warm-up: 1 step (train, infer32), 2 (infer1).
Input: seeded standard-normal values (the speed does not depend on them).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tools"))
from mrmnet_torch import MRMNet, load_model, mrmnet_loss  # noqa: E402


def timed(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    ms = []
    c0 = time.process_time()
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1e3)
    cpu_ms = (time.process_time() - c0) * 1e3 / iters
    ms.sort()
    return {"warmup": warmup, "iters": iters, "ms_per_step_median": ms[len(ms) // 2],
            "ms_per_step_mean": sum(ms) / len(ms), "ms_per_step_min": ms[0],
            "cpu_ms_per_step": cpu_ms}


def run_mode(mode, a):
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.weights:
        model, _ = load_model(a.weights, dropout=0.2)
    else:
        model = MRMNet(5, 16, False, dropout=0.2)
    g = torch.Generator().manual_seed(1)
    if mode == "train":
        B = 96
        x = torch.randn(B, 12, 1000, generator=g)
        y = (torch.rand(B, model.num_classes, generator=g) < 0.3).float()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
        model.train()

        def step():
            f1, o1, f2, o2 = model(x)
            loss, _ = mrmnet_loss(f1, o1, f2, o2, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        r = timed(step, 1, a.train_iters)
    else:
        B = 1 if mode == "infer1" else 32
        x = torch.randn(B, 12, 1000, generator=g)
        model.eval()

        def step():
            with torch.no_grad():
                model(x)
        r = timed(step, 2 if B == 1 else 1, a.infer1_iters if B == 1 else a.infer32_iters)
    r.update({"mode": mode, "batch": B, "ms_per_record": r["ms_per_step_median"] / B,
              "records_per_s": 1e3 * B / r["ms_per_step_median"],
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0})
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--mode", default="all", choices=["all", "train", "infer1", "infer32"])
    ap.add_argument("--weights", default=os.path.join(ROOT, "tests", "fixtures", "model",
                                                      "ref_weights.safetensors"))
    ap.add_argument("--train-iters", type=int, default=3)
    ap.add_argument("--infer1-iters", type=int, default=20)
    ap.add_argument("--infer32-iters", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    a = ap.parse_args()
    if a.weights and not os.path.exists(a.weights):
        a.weights = None
    if a.mode != "all":
        print(json.dumps(run_mode(a.mode, a)))
        return
    report = {"peer": "pytorch", "torch": torch.__version__, "threads": a.threads,
              "mkldnn": torch.backends.mkldnn.is_available(), "weights": a.weights}
    for mode in ("train", "infer1", "infer32"):
        cmd = [sys.executable, os.path.abspath(__file__), "--mode", mode,
               "--train-iters", str(a.train_iters), "--infer1-iters", str(a.infer1_iters),
               "--infer32-iters", str(a.infer32_iters), "--threads", str(a.threads)]
        if a.weights:
            cmd += ["--weights", a.weights]
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
        report[mode] = json.loads(out.strip().splitlines()[-1])
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
