#!/usr/bin/env bash
# The benchmark of mrmnet against its peers, PyTorch (the twin, tools/mrmnet_torch.py) and ONNX
# Runtime (onnxruntime-node), on this machine, with 2 threads each.
#
#   bench/run_bench.sh [--rounds 3] [--quick] [--no-layers] [--one-thread] [--publish] [--out DIR]
#
# 1. builds mrmnet (and bench_layers) in build-bench/;
# 2. exports the twin to ONNX once (bench/peers/export_onnx.py), on the same weights as mrmnet
#    uses (tests/fixtures/model/ref_weights.safetensors);
# 3. checks that mrmnet computes the same function: `mrmnet forward` on the export's check input
#    against the twin's logits (max absolute and relative difference);
# 4. ALTERNATES rounds of: mrmnet bench (2 threads), the PyTorch peer, the ONNX Runtime peer, so
#    that slow drifts of the machine's load hit all three alike; keeps every JSON;
# 5. prints per-round ratios and their medians over the rounds (train step time mrmnet/PyTorch,
#    inference B=1 and B=32 time mrmnet/ORT and mrmnet/PyTorch, peak training memory
#    mrmnet/PyTorch) and writes them to DIR/summary.json;
# 6. (unless --no-layers) times the per-layer decomposition (bench_layers) and draws
#    DIR/layer_time.svg.
# --quick: 1 round with fewer iterations (a smoke run, about 3 minutes on an idle machine).
# --one-thread: also runs mrmnet bench with 1 thread once.
# --publish: copies the charts to docs/img/ (peers.svg, layer_time.svg) and the numbers beside
#   them (bench_summary.json, bench_layers.json) for docs/performance.md.
# A full default run takes about 8-10 minutes on the 2-core machine when it is otherwise idle.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ROUNDS=3
QUICK=0
LAYERS=1
ONE_THREAD=0
PUBLISH=0
OUT="$ROOT/build-bench/bench-out"
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --quick) QUICK=1; ROUNDS=1; shift ;;
    --no-layers) LAYERS=0; shift ;;
    --one-thread) ONE_THREAD=1; shift ;;
    --publish) PUBLISH=1; shift ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "run_bench.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
case "$ROUNDS" in ''|*[!0-9]*|0) echo "run_bench.sh: --rounds wants a positive integer" >&2; exit 2 ;; esac

PY=/usr/bin/python3
WEIGHTS="$ROOT/tests/fixtures/model/ref_weights.safetensors"
BUILD="$ROOT/build-bench"
MRMNET="$BUILD/mrmnet"
PEERS="$OUT/peers"
mkdir -p "$OUT" "$PEERS"

if [ "$QUICK" = 1 ]; then
  MRM_ITERS=2; T_TRAIN=1; T_I1=8; T_I32=2; O_I1=8; O_I32=2
else
  MRM_ITERS=3; T_TRAIN=3; T_I1=20; T_I32=3; O_I1=20; O_I32=3
fi

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

log "build (Release, -march=native) in $BUILD"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
targets=(mrmnet)
[ "$LAYERS" = 1 ] && targets+=(bench_layers)
BUILD_NOTE="built from the working tree"
if ! cmake --build "$BUILD" -j2 --target "${targets[@]}" > "$OUT/build.log" 2>&1; then
  # another change in progress may break the build for a moment: time the last good binaries
  if [ -x "$MRMNET" ] && { [ "$LAYERS" = 0 ] || [ -x "$BUILD/bench_layers" ]; }; then
    BUILD_NOTE="BUILD FAILED (see build.log): timing the previous binaries"
    log "$BUILD_NOTE"
  else
    cat "$OUT/build.log" >&2
    exit 1
  fi
fi

{
  echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "cores: $(nproc)"
  echo "flags: $(grep -m1 -o 'avx512f' /proc/cpuinfo || echo no-avx512)"
  echo "uptime_before: $(uptime)"
  echo "git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(
    [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] && echo ' + uncommitted changes')"
  echo "build: $BUILD_NOTE"
  echo "torch: $($PY -c 'import torch; print(torch.__version__)' 2>/dev/null || echo absent)"
  echo "node: $(node --version 2>/dev/null || echo absent)"
} > "$OUT/machine.txt"

log "export the twin to ONNX"
$PY bench/peers/export_onnx.py --weights "$WEIGHTS" --out "$PEERS" > "$OUT/export.json"

log "same function: mrmnet forward vs the twin on the check input"
$PY - "$PEERS" <<'EOF'
import json, os, sys
import numpy as np
d = sys.argv[1]
info = json.load(open(os.path.join(d, "check.json")))
x = np.fromfile(os.path.join(d, info["x"]["file"]), "<f4").reshape(info["x"]["shape"])
np.save(os.path.join(d, "check_x.npy"), x)
EOF
"$MRMNET" forward --model "$WEIGHTS" --input "$PEERS/check_x.npy" --out "$PEERS/mrmnet_check" --batch 3
$PY - "$PEERS" > "$OUT/parity.json" <<'EOF'
import json, os, sys
import numpy as np
d = sys.argv[1]
info = json.load(open(os.path.join(d, "check.json")))
res = {}
worst = 0.0
for k in ("out1", "out2"):
    want = np.fromfile(os.path.join(d, info[k]["file"]), "<f4").reshape(info[k]["shape"]).astype(np.float64)
    got = np.load(os.path.join(d, "mrmnet_check", k + ".npy")).astype(np.float64)
    diff = np.abs(got - want)
    rel = float(diff.max() / np.abs(want).max())
    res[k] = {"max_abs_diff": float(diff.max()), "max_rel_diff": rel,
              "max_abs_ref": float(np.abs(want).max())}
    worst = max(worst, rel)
res["max_rel_diff"] = worst
res["ok"] = worst < 1e-4
print(json.dumps(res, indent=1))
EOF
cat "$OUT/parity.json" >&2

for r in $(seq 1 "$ROUNDS"); do
  : > "$OUT/round${r}_load.txt"
  echo "mrmnet $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/round${r}_load.txt"
  log "round $r/$ROUNDS: mrmnet (load: $(cut -d' ' -f1-3 /proc/loadavg))"
  "$MRMNET" bench --threads 2 --iters "$MRM_ITERS" --cases train,infer1,infer32,eval1,eval32 \
    --model "$WEIGHTS" --json "$OUT/round${r}_mrmnet.json"
  echo "pytorch $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/round${r}_load.txt"
  log "round $r/$ROUNDS: PyTorch (load: $(cut -d' ' -f1-3 /proc/loadavg))"
  $PY bench/peers/torch_peer.py --weights "$WEIGHTS" --train-iters "$T_TRAIN" \
    --infer1-iters "$T_I1" --infer32-iters "$T_I32" > "$OUT/round${r}_torch.json"
  echo "ort $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/round${r}_load.txt"
  log "round $r/$ROUNDS: ONNX Runtime (load: $(cut -d' ' -f1-3 /proc/loadavg))"
  node bench/peers/ort_peer.js "$PEERS" --iters1 "$O_I1" --iters32 "$O_I32" > "$OUT/round${r}_ort.json"
done
echo "uptime_after: $(uptime)" >> "$OUT/machine.txt"

if [ "$ONE_THREAD" = 1 ]; then
  log "mrmnet with 1 thread"
  "$MRMNET" bench --threads 1 --iters "$MRM_ITERS" --model "$WEIGHTS" --json "$OUT/mrmnet_1thread.json"
fi

log "summary"
$PY - "$OUT" "$ROUNDS" <<'EOF'
import json, os, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def load(name):
    with open(os.path.join(out, name)) as f:
        return json.load(f)
rows = []
for r in range(1, rounds + 1):
    m = {c["case"]: c for c in load("round%d_mrmnet.json" % r)["cases"] if c["threads"] == 2}
    t = load("round%d_torch.json" % r)
    o = load("round%d_ort.json" % r)
    rows.append({
        "mrmnet_train_ms_per_step": m["train"]["ms_per_step_median"],
        "torch_train_ms_per_step": t["train"]["ms_per_step_median"],
        "mrmnet_infer1_ms": m["infer1"]["ms_per_record"],
        "mrmnet_eval1_ms": m["eval1"]["ms_per_record"],
        "torch_infer1_ms": t["infer1"]["ms_per_record"],
        "ort_infer1_ms": o["infer_b1"]["ms_per_record"],
        "mrmnet_infer32_ms_per_record": m["infer32"]["ms_per_record"],
        "mrmnet_eval32_ms_per_record": m["eval32"]["ms_per_record"],
        "torch_infer32_ms_per_record": t["infer32"]["ms_per_record"],
        "ort_infer32_ms_per_record": o["infer_b32"]["ms_per_record"],
        "mrmnet_train_peak_mb": m["train"]["peak_rss_mb"],
        "torch_train_peak_mb": t["train"]["peak_rss_mb"],
        "mrmnet_infer1_peak_mb": m["infer1"]["peak_rss_mb"],
        "torch_infer1_peak_mb": t["infer1"]["peak_rss_mb"],
        "ort_peak_mb": o["peak_rss_mb"],
        "ort_check_max_abs_diff": o["check"]["max_abs_diff_vs_torch"],
        "best_mrmnet_train_ms_per_step": m["train"]["ms_per_step_min"],
        "best_torch_train_ms_per_step": t["train"]["ms_per_step_min"],
        "best_mrmnet_infer1_ms": m["infer1"]["ms_per_step_min"],
        "best_torch_infer1_ms": t["infer1"]["ms_per_step_min"],
        "best_ort_infer1_ms": o["infer_b1"]["ms_per_batch_min"],
        "best_mrmnet_infer32_ms_per_record": m["infer32"]["ms_per_step_min"] / 32,
        "best_torch_infer32_ms_per_record": t["infer32"]["ms_per_step_min"] / 32,
        "best_ort_infer32_ms_per_record": o["infer_b32"]["ms_per_batch_min"] / 32,
        "cpu_mrmnet_train_ms_per_step": m["train"].get("cpu_ms_per_step", float("nan")),
        "cpu_torch_train_ms_per_step": t["train"].get("cpu_ms_per_step", float("nan")),
        "cpu_mrmnet_infer1_ms": m["infer1"].get("cpu_ms_per_step", float("nan")),
        "cpu_torch_infer1_ms": t["infer1"].get("cpu_ms_per_step", float("nan")),
        "cpu_ort_infer1_ms": o["infer_b1"].get("cpu_ms_per_batch", float("nan")),
        "mrmnet_train_cpu_utilisation": m["train"].get("cpu_utilisation", float("nan")),
        "mrmnet_infer1_cpu_utilisation": m["infer1"].get("cpu_utilisation", float("nan")),
    })
    with open(os.path.join(out, "round%d_load.txt" % r)) as f:
        for line in f:
            w = line.split()
            rows[-1]["load1_before_" + w[0]] = float(w[1])
ratios = {
    "train_step mrmnet/pytorch": ("mrmnet_train_ms_per_step", "torch_train_ms_per_step"),
    "infer B=1 mrmnet/ort": ("mrmnet_infer1_ms", "ort_infer1_ms"),
    "infer B=1 mrmnet/pytorch": ("mrmnet_infer1_ms", "torch_infer1_ms"),
    "infer B=32 mrmnet/ort": ("mrmnet_infer32_ms_per_record", "ort_infer32_ms_per_record"),
    "infer B=32 mrmnet/pytorch": ("mrmnet_infer32_ms_per_record", "torch_infer32_ms_per_record"),
    "train peak memory mrmnet/pytorch": ("mrmnet_train_peak_mb", "torch_train_peak_mb"),
    # the same from each side's best (least) step of the round: less sensitive to other work
    "best-of train_step mrmnet/pytorch": ("best_mrmnet_train_ms_per_step", "best_torch_train_ms_per_step"),
    "best-of infer B=1 mrmnet/ort": ("best_mrmnet_infer1_ms", "best_ort_infer1_ms"),
    "best-of infer B=1 mrmnet/pytorch": ("best_mrmnet_infer1_ms", "best_torch_infer1_ms"),
    "best-of infer B=32 mrmnet/ort": ("best_mrmnet_infer32_ms_per_record", "best_ort_infer32_ms_per_record"),
    "best-of infer B=32 mrmnet/pytorch": ("best_mrmnet_infer32_ms_per_record", "best_torch_infer32_ms_per_record"),
    # CPU time (all threads) per step: the work each side does, spinning threads included
    "cpu-time train_step mrmnet/pytorch": ("cpu_mrmnet_train_ms_per_step", "cpu_torch_train_ms_per_step"),
    "cpu-time infer B=1 mrmnet/ort": ("cpu_mrmnet_infer1_ms", "cpu_ort_infer1_ms"),
    "cpu-time infer B=1 mrmnet/pytorch": ("cpu_mrmnet_infer1_ms", "cpu_torch_infer1_ms"),
}
med = {k: statistics.median(row[k] for row in rows) for k in rows[0]}
summary = {"rounds": rounds, "per_round": rows, "median": med, "ratios": {}}
print("\nper-round values and medians (2 threads; ms per record unless per step)")
print("%-32s %s %12s" % ("", " ".join("%10s" % ("round %d" % (i + 1)) for i in range(rounds)), "median"))
for k in rows[0]:
    print("%-32s %s %12.4g" % (k, " ".join("%10.4g" % row[k] for row in rows), med[k]))
print("\nratios (median over rounds of the per-round ratio; spread min..max; 'best-of' from each side's least step)")
for name, (a, b) in ratios.items():
    per = [row[a] / row[b] for row in rows]
    summary["ratios"][name] = {"median": statistics.median(per), "min": min(per), "max": max(per),
                               "per_round": per}
    print("%-40s %7.3f   (%.3f .. %.3f)" % (name, statistics.median(per), min(per), max(per)))
targets = [("training step <= 1/3 of PyTorch", "train_step mrmnet/pytorch", 1 / 3),
           ("inference B=1 <= 1/2 of ONNX Runtime", "infer B=1 mrmnet/ort", 0.5),
           ("peak training memory <= PyTorch", "train peak memory mrmnet/pytorch", 1.0)]
summary["targets"] = {}
print("\ntargets")
for text, key, lim in targets:
    v = summary["ratios"][key]["median"]
    summary["targets"][text] = {"ratio": v, "limit": lim, "met": v <= lim}
    print("  %-40s %6.3f  %s" % (text, v, "met" if v <= lim else "NOT met"))
summary["parity"] = load("parity.json")
with open(os.path.join(out, "summary.json.tmp"), "w") as f:
    json.dump(summary, f, indent=1)
os.replace(os.path.join(out, "summary.json.tmp"), os.path.join(out, "summary.json"))
print("\nsame function: max relative difference of the logits vs the twin: %.3g"
      % summary["parity"]["max_rel_diff"])
EOF
$PY bench/plot_peers.py "$OUT/summary.json" "$OUT/peers.svg"

if [ "$LAYERS" = 1 ]; then
  log "per-layer decomposition (bench_layers, 2 threads)"
  OMP_NUM_THREADS=2 "$BUILD/bench_layers" --json "$OUT/layers.json" > "$OUT/layers.txt"
  cat "$OUT/layers.txt"
  $PY bench/plot_layers.py "$OUT/layers.json" "$OUT/layer_time.svg"
fi
if [ "$PUBLISH" = 1 ]; then
  mkdir -p "$ROOT/docs/img"
  cp "$OUT/peers.svg" "$ROOT/docs/img/peers.svg"
  cp "$OUT/summary.json" "$ROOT/docs/img/bench_summary.json"
  if [ "$LAYERS" = 1 ]; then
    cp "$OUT/layer_time.svg" "$ROOT/docs/img/layer_time.svg"
    cp "$OUT/layers.json" "$ROOT/docs/img/bench_layers.json"
  fi
  log "published the charts and numbers to docs/img/"
fi
log "done: $OUT"
