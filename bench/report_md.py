"""Markdown tables of a run of bench/run_bench.sh, for docs/performance.md.

    python3 bench/report_md.py OUT_DIR

Reads OUT_DIR/summary.json, OUT_DIR/round1_mrmnet.json (GFLOP/s convention), and when present
OUT_DIR/mrmnet_1thread.json and OUT_DIR/layers.json; prints the tables.
"""
import json
import os
import statistics
import sys


def load(d, name):
    p = os.path.join(d, name)
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    s = load(d, "summary.json")
    med, rat = s["median"], s["ratios"]
    rounds = s["rounds"]
    # mrmnet's own cases, medians over rounds, 2 threads
    mr = {}
    for r in range(1, rounds + 1):
        for c in load(d, "round%d_mrmnet.json" % r)["cases"]:
            if c["threads"] == 2:
                mr.setdefault(c["case"], []).append(c)

    def mmed(case, key):
        return statistics.median(c[key] for c in mr[case])

    print("| case (2 threads) | mrmnet | PyTorch 1.13 | ONNX Runtime | mrmnet / PyTorch | mrmnet / ORT |")
    print("|---|---|---|---|---|---|")
    print("| training step, batch 96 (ms per step) | %.0f | %.0f | - | %.3f | - |"
          % (med["mrmnet_train_ms_per_step"], med["torch_train_ms_per_step"],
             rat["train_step mrmnet/pytorch"]["median"]))
    print("| inference, batch 1 (ms per record) | %.2f | %.2f | %.2f | %.3f | %.3f |"
          % (med["mrmnet_infer1_ms"], med["torch_infer1_ms"], med["ort_infer1_ms"],
             rat["infer B=1 mrmnet/pytorch"]["median"], rat["infer B=1 mrmnet/ort"]["median"]))
    print("| inference, batch 32 (ms per record) | %.2f | %.2f | %.2f | %.3f | %.3f |"
          % (med["mrmnet_infer32_ms_per_record"], med["torch_infer32_ms_per_record"],
             med["ort_infer32_ms_per_record"], rat["infer B=32 mrmnet/pytorch"]["median"],
             rat["infer B=32 mrmnet/ort"]["median"]))
    print("| peak memory, training (MiB) | %.0f | %.0f | - | %.3f | - |"
          % (med["mrmnet_train_peak_mb"], med["torch_train_peak_mb"],
             rat["train peak memory mrmnet/pytorch"]["median"]))
    print("| peak memory, inference batch 1 (MiB) | %.0f | %.0f | %.0f (whole process) | | |"
          % (med["mrmnet_infer1_peak_mb"], med["torch_infer1_peak_mb"], med["ort_peak_mb"]))
    print()
    print("Spread of the per-round ratios (min .. max over %d rounds):" % rounds)
    print()
    for k, v in rat.items():
        print("- %s: %.3f (%.3f .. %.3f)" % (k, v["median"], v["min"], v["max"]))
    print()
    print("| mrmnet case | threads | ms per record | records/s | GFLOP/s (reference count) | share of peak | peak MiB | CPU use |")
    print("|---|---|---|---|---|---|---|---|")
    for case in ("train", "infer1", "infer32", "eval1", "eval32"):
        if case in mr:
            print("| %s | 2 | %.3f | %.1f | %.1f | %.1f%% | %.0f | %.0f%% |"
                  % (case, mmed(case, "ms_per_record"), mmed(case, "records_per_s"), mmed(case, "gflops"),
                     100 * mmed(case, "peak_share"), mmed(case, "peak_rss_mb"),
                     100 * mmed(case, "cpu_utilisation")))
    one = load(d, "mrmnet_1thread.json")
    if one:
        for c in one["cases"]:
            print("| %s | 1 | %.3f | %.1f | %.1f | %.1f%% | %.0f | %.0f%% |"
                  % (c["case"], c["ms_per_record"], c["records_per_s"], c["gflops"], 100 * c["peak_share"],
                     c["peak_rss_mb"], 100 * c["cpu_utilisation"]))
    print()
    print("Load average (1 min) before each run, per round: " + "; ".join(
        "mrmnet %.1f, PyTorch %.1f, ORT %.1f" % (r.get("load1_before_mrmnet", float("nan")),
                                                 r.get("load1_before_pytorch", float("nan")),
                                                 r.get("load1_before_ort", float("nan")))
        for r in s["per_round"]))
    lay = load(d, "layers.json")
    if lay:
        print()
        print("| block | train forward (ms) | train backward (ms) | share of the step | inference B=%d (ms) |"
              % lay["infer_batch"])
        print("|---|---|---|---|---|")
        tot = sum(b["train_fwd_ms"] + b["train_bwd_ms"] for b in lay["blocks"])
        for b in lay["blocks"]:
            print("| %s | %.0f | %.0f | %.0f%% | %.2f |" % (b["block"], b["train_fwd_ms"], b["train_bwd_ms"],
                                                         100 * (b["train_fwd_ms"] + b["train_bwd_ms"]) / tot,
                                                         b["infer_ms"]))
        sp, w = lay["sum_of_parts"], lay["whole"]
        print("| sum of the blocks | %.0f | %.0f | | %.2f |" % (sp["train_fwd_ms"], sp["train_bwd_ms"], sp["infer_ms"]))
        print("| whole model, measured | %.0f | %.0f | | %.2f |"
              % (w["train_fwd_ms"], w["train_bwd_ms"] + w["adam_ms"], w["infer_ms"]))


if __name__ == "__main__":
    main()
