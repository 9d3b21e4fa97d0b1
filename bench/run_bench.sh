#!/usr/bin/env bash
# The benchmark of mrmnet against its peers, PyTorch (the twin, tools/mrmnet_torch.py) and ONNX
# Runtime (onnxruntime-node), on this machine, with the same thread count for all three (2 by
# default; --threads 1,2,4,8,16 runs every count given).
#
#   bench/run_bench.sh [--threads 2] [--rounds 3] [--quick] [--no-layers] [--one-thread] [--publish]
#                      [--out DIR] [--build DIR] [--mrmnet FILE] [--ort node|python] [--plan]
#
# 0. installs the ONNX Runtime peer's package when bench/node_modules lacks it
#    (cd bench && ONNXRUNTIME_NODE_INSTALL=skip npm ci: the version pinned by package-lock.json);
# 1. builds mrmnet (and bench_layers) in build-bench/;
# 2. exports the twin to ONNX once (bench/peers/export_onnx.py), on the same weights as mrmnet
#    uses (tests/fixtures/model/ref_weights.safetensors);
# 3. checks that mrmnet computes the same function: `mrmnet forward` on the export's check input
#    against the twin's logits (max absolute and relative difference);
# 4. ALTERNATES, in every round and for every thread count T: mrmnet bench --threads T, the
#    PyTorch peer (torch.set_num_threads(T)), the ONNX Runtime peer (intra-op threads T), so that
#    slow drifts of the machine's load hit all three alike; keeps every JSON
#    (round<i>_t<T>_{mrmnet,torch,ort}.json);
# 5. prints, per thread count, per-round ratios and their medians over the rounds (train step
#    time mrmnet/PyTorch, inference B=1 and B=32 time mrmnet/ORT and mrmnet/PyTorch, peak
#    training memory mrmnet/PyTorch), then one table of all thread counts (ms and ratios), and
#    writes them to DIR/summary.json (its top level: the 2-thread run, or the first count given;
#    "by_threads": every count);
# 6. (unless --no-layers) times the per-layer decomposition (bench_layers) and draws
#    DIR/layer_time.svg.
# --quick: 1 round with fewer iterations (a smoke run, about 3 minutes on an idle machine).
# --one-thread: also runs mrmnet bench with 1 thread once.
# --plan: prints the settings it would run with and exits (nothing is built, installed or timed).
# --build DIR: the Release build folder to (re)build and time (default build-bench/; a relative
#   path is taken from the repository root).
# --mrmnet FILE: time this mrmnet binary as it is (built elsewhere, e.g. by scripts/device-kit.sh
#   for a machine without a compiler's dependencies; a relative path is taken from the
#   repository root, as for --build); nothing is built; implies --no-layers.
# --ort python: the ONNX Runtime peer through Python's onnxruntime package
#   (bench/peers/ort_peer.py, the same session options and JSON) instead of onnxruntime-node;
#   nothing is installed with npm. The Python that runs the peers is /usr/bin/python3, or
#   $MRM_PYTHON when set (it needs torch and numpy; with --ort python, onnxruntime too).
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
PLAN=0
THREADS=2
BUILD_ARG=
MRMNET_ARG=
ORT_KIND=node
OUT="$ROOT/build-bench/bench-out"
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) [ $# -ge 2 ] || { echo "run_bench.sh: --rounds needs a value" >&2; exit 2; }
      ROUNDS="$2"; shift 2 ;;
    --threads) [ $# -ge 2 ] || { echo "run_bench.sh: --threads needs a list like 1,2,4" >&2; exit 2; }
      THREADS="$2"; shift 2 ;;
    --plan) PLAN=1; shift ;;
    --build) [ $# -ge 2 ] || { echo "run_bench.sh: --build needs a folder" >&2; exit 2; }
      BUILD_ARG="$2"; shift 2 ;;
    --quick) QUICK=1; ROUNDS=1; shift ;;
    --no-layers) LAYERS=0; shift ;;
    --one-thread) ONE_THREAD=1; shift ;;
    --mrmnet) [ $# -ge 2 ] && [ "${2#-}" = "$2" ] || { echo "run_bench.sh: --mrmnet needs a file" >&2; exit 2; }
      MRMNET_ARG="$2"; shift 2 ;;
    --ort) [ $# -ge 2 ] && [ "${2#-}" = "$2" ] || { echo "run_bench.sh: --ort needs node or python" >&2; exit 2; }
      ORT_KIND="$2"; shift 2 ;;
    --publish) PUBLISH=1; shift ;;
    --out) [ $# -ge 2 ] || { echo "run_bench.sh: --out needs a folder" >&2; exit 2; }
      OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,41p' "$0"; exit 0 ;;
    *) echo "run_bench.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
case "$ORT_KIND" in node|python) ;; *) echo "run_bench.sh: --ort wants node or python (got '$ORT_KIND')" >&2; exit 2 ;; esac
case "$ROUNDS" in ''|*[!0-9]*|0*) echo "run_bench.sh: --rounds wants a positive integer" >&2; exit 2 ;; esac
# --threads: positive integers (at most 1024, at most 8 of them: mrmnet bench's limits), commas between
case "$THREADS" in
  ''|,*|*,|*,,*|*[!0-9,]*) echo "run_bench.sh: --threads wants a list of thread counts like 1,2,4 (got '$THREADS')" >&2; exit 2 ;;
esac
IFS=, read -r -a TLIST <<< "$THREADS"
for t in "${TLIST[@]}"; do
  case "$t" in 0*) echo "run_bench.sh: --threads: '$t' is not a positive thread count" >&2; exit 2 ;; esac
  if [ "${#t}" -gt 4 ] || [ "$t" -gt 1024 ]; then echo "run_bench.sh: --threads: $t is more than 1024" >&2; exit 2; fi
done
if [ "${#TLIST[@]}" -gt 8 ]; then echo "run_bench.sh: --threads: at most 8 thread counts" >&2; exit 2; fi
# the thread count whose numbers fill summary.json's top level (charts, report_md.py): 2 if given
PRIMARY=${TLIST[0]}
for t in "${TLIST[@]}"; do [ "$t" = 2 ] && PRIMARY=2; done

PY=${MRM_PYTHON:-/usr/bin/python3}
WEIGHTS="$ROOT/tests/fixtures/model/ref_weights.safetensors"
BUILD="${BUILD_ARG:-$ROOT/build-bench}"
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
MRMNET="$BUILD/mrmnet"
if [ -n "$MRMNET_ARG" ]; then
  case "$MRMNET_ARG" in /*) MRMNET="$MRMNET_ARG" ;; *) MRMNET="$ROOT/$MRMNET_ARG" ;; esac
  LAYERS=0
fi
PEERS="$OUT/peers"

if [ "$QUICK" = 1 ]; then
  MRM_ITERS=2; T_TRAIN=1; T_I1=8; T_I32=2; O_I1=8; O_I32=2
else
  MRM_ITERS=3; T_TRAIN=3; T_I1=20; T_I32=3; O_I1=20; O_I32=3
fi

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

if [ "$PLAN" = 1 ]; then
  echo "threads: ${TLIST[*]}"
  echo "primary: $PRIMARY"
  echo "rounds: $ROUNDS"
  echo "quick: $QUICK"
  echo "layers: $LAYERS"
  echo "out: $OUT"
  echo "build: $BUILD"
  echo "mrmnet: $MRMNET$([ -n "$MRMNET_ARG" ] && echo ' (given: not built)')"
  echo "ort peer: $ORT_KIND"
  echo "python: $PY"
  echo "iterations: mrmnet $MRM_ITERS; pytorch train $T_TRAIN, infer1 $T_I1, infer32 $T_I32; ort infer1 $O_I1, infer32 $O_I32"
  exit 0
fi

# The ONNX Runtime peer's package (a fresh clone has no bench/node_modules)
if [ "$ORT_KIND" = node ] && [ ! -d "$ROOT/bench/node_modules/onnxruntime-node" ]; then
  command -v npm >/dev/null || { echo "run_bench.sh: npm is not installed (the ONNX Runtime peer needs Node.js and npm)" >&2; exit 1; }
  log "install onnxruntime-node (npm ci in bench/, ONNXRUNTIME_NODE_INSTALL=skip: the CPU build only)"
  if ! (cd "$ROOT/bench" && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund) >&2; then
    echo "run_bench.sh: 'npm ci' in bench/ failed (see above): the ONNX Runtime peer cannot run" >&2
    exit 1
  fi
fi

mkdir -p "$OUT" "$PEERS"
if [ -n "$MRMNET_ARG" ]; then
  [ -x "$MRMNET" ] || { echo "run_bench.sh: --mrmnet $MRMNET_ARG: no such executable" >&2; exit 1; }
  BUILD_NOTE="given binary $MRMNET (not built here)"
else
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
  echo "ort peer: $ORT_KIND$([ "$ORT_KIND" = python ] && echo " (onnxruntime $($PY -c 'import onnxruntime; print(onnxruntime.__version__)' 2>/dev/null || echo absent))")"
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
  for T in "${TLIST[@]}"; do
    F="$OUT/round${r}_t${T}"
    : > "${F}_load.txt"
    echo "mrmnet $(cut -d' ' -f1-3 /proc/loadavg)" >> "${F}_load.txt"
    log "round $r/$ROUNDS, $T thread(s): mrmnet (load: $(cut -d' ' -f1-3 /proc/loadavg))"
    "$MRMNET" bench --threads "$T" --iters "$MRM_ITERS" --cases train,infer1,infer32,eval1,eval32 \
      --model "$WEIGHTS" --json "${F}_mrmnet.json"
    echo "pytorch $(cut -d' ' -f1-3 /proc/loadavg)" >> "${F}_load.txt"
    log "round $r/$ROUNDS, $T thread(s): PyTorch (load: $(cut -d' ' -f1-3 /proc/loadavg))"
    $PY bench/peers/torch_peer.py --weights "$WEIGHTS" --threads "$T" --train-iters "$T_TRAIN" \
      --infer1-iters "$T_I1" --infer32-iters "$T_I32" > "${F}_torch.json"
    echo "ort $(cut -d' ' -f1-3 /proc/loadavg)" >> "${F}_load.txt"
    log "round $r/$ROUNDS, $T thread(s): ONNX Runtime (load: $(cut -d' ' -f1-3 /proc/loadavg))"
    if [ "$ORT_KIND" = python ]; then
      $PY bench/peers/ort_peer.py "$PEERS" --threads "$T" --iters1 "$O_I1" --iters32 "$O_I32" > "${F}_ort.json"
    else
      node bench/peers/ort_peer.js "$PEERS" --threads "$T" --iters1 "$O_I1" --iters32 "$O_I32" > "${F}_ort.json"
    fi
  done
  # the primary thread count also under the names report_md.py reads
  for k in mrmnet torch ort load; do
    ext=json; [ "$k" = load ] && ext=txt
    cp "$OUT/round${r}_t${PRIMARY}_$k.$ext" "$OUT/round${r}_$k.$ext"
  done
done
echo "uptime_after: $(uptime)" >> "$OUT/machine.txt"

if [ "$ONE_THREAD" = 1 ]; then
  log "mrmnet with 1 thread"
  "$MRMNET" bench --threads 1 --iters "$MRM_ITERS" --model "$WEIGHTS" --json "$OUT/mrmnet_1thread.json"
fi

log "summary"
$PY - "$OUT" "$ROUNDS" "$THREADS" "$PRIMARY" <<'EOF'
import json, os, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
tlist, primary = [int(t) for t in sys.argv[3].split(",")], int(sys.argv[4])
def load(name):
    with open(os.path.join(out, name)) as f:
        return json.load(f)

def rows_for(T):
    rows = []
    for r in range(1, rounds + 1):
        m = {c["case"]: c for c in load("round%d_t%d_mrmnet.json" % (r, T))["cases"] if c["threads"] == T}
        t = load("round%d_t%d_torch.json" % (r, T))
        o = load("round%d_t%d_ort.json" % (r, T))
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
            "mrmnet_infer32_cpu_utilisation": m["infer32"].get("cpu_utilisation", float("nan")),
            "mrmnet_eval32_cpu_utilisation": m["eval32"].get("cpu_utilisation", float("nan")),
        })
        with open(os.path.join(out, "round%d_t%d_load.txt" % (r, T))) as f:
            for line in f:
                w = line.split()
                rows[-1]["load1_before_" + w[0]] = float(w[1])
    return rows

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
# the targets of the 2-thread run; at every thread count: ahead of both peers
targets2 = [("training step <= 0.2 of PyTorch", "train_step mrmnet/pytorch", 0.2),
            ("inference B=1 <= 1/3 of ONNX Runtime", "infer B=1 mrmnet/ort", 1 / 3),
            ("inference B=32 <= 1/4 of ONNX Runtime", "infer B=32 mrmnet/ort", 0.25),
            ("peak training memory <= PyTorch", "train peak memory mrmnet/pytorch", 1.0)]
ahead = [("training step ahead of PyTorch", "train_step mrmnet/pytorch", 1.0)] + [
    ("inference B=%s ahead of %s" % (b, n), "infer B=%s mrmnet/%s" % (b, k), 1.0)
    for b in ("1", "32") for k, n in (("ort", "ONNX Runtime"), ("pytorch", "PyTorch"))]

def summarise(T):
    rows = rows_for(T)
    med = {k: statistics.median(row[k] for row in rows) for k in rows[0]}
    s = {"threads": T, "rounds": rounds, "per_round": rows, "median": med, "ratios": {}, "targets": {}}
    print("\n== %d thread%s ==" % (T, "" if T == 1 else "s"))
    print("per-round values and medians (ms per record unless per step)")
    print("%-32s %s %12s" % ("", " ".join("%10s" % ("round %d" % (i + 1)) for i in range(rounds)), "median"))
    for k in rows[0]:
        print("%-32s %s %12.4g" % (k, " ".join("%10.4g" % row[k] for row in rows), med[k]))
    print("\nratios (median over rounds of the per-round ratio; spread min..max; 'best-of' from each side's least step)")
    for name, (a, b) in ratios.items():
        per = [row[a] / row[b] for row in rows]
        s["ratios"][name] = {"median": statistics.median(per), "min": min(per), "max": max(per), "per_round": per}
        print("%-40s %7.3f   (%.3f .. %.3f)" % (name, statistics.median(per), min(per), max(per)))
    print("\ntargets")
    for text, key, lim in (targets2 if T == 2 else []) + ahead:
        v = s["ratios"][key]["median"]
        s["targets"][text] = {"ratio": v, "limit": lim, "met": v <= lim}
        print("  %-40s %6.3f  %s" % (text, v, "met" if v <= lim else "NOT met"))
    return s

by = {T: summarise(T) for T in tlist}
# the table of all thread counts: median ms, mrmnet / peer
print("\n| threads | train step B=96 (ms): mrmnet / PyTorch (ratio) | inference B=1 (ms): mrmnet / ORT / PyTorch (ratios to ORT, PyTorch) "
      "| inference B=32, per record (ms): mrmnet / ORT / PyTorch (ratios) | eval forward B=32 per record, CPU use |")
print("|---|---|---|---|---|")
for T in tlist:
    m, r = by[T]["median"], by[T]["ratios"]
    print("| %d | %.0f / %.0f (%.3f) | %.2f / %.2f / %.2f (%.3f, %.3f) | %.2f / %.2f / %.2f (%.3f, %.3f) | %.2f ms, %.0f%% |" % (
        T, m["mrmnet_train_ms_per_step"], m["torch_train_ms_per_step"], r["train_step mrmnet/pytorch"]["median"],
        m["mrmnet_infer1_ms"], m["ort_infer1_ms"], m["torch_infer1_ms"], r["infer B=1 mrmnet/ort"]["median"],
        r["infer B=1 mrmnet/pytorch"]["median"], m["mrmnet_infer32_ms_per_record"], m["ort_infer32_ms_per_record"],
        m["torch_infer32_ms_per_record"], r["infer B=32 mrmnet/ort"]["median"], r["infer B=32 mrmnet/pytorch"]["median"],
        m["mrmnet_eval32_ms_per_record"], 100 * m["mrmnet_eval32_cpu_utilisation"]))
summary = dict(by[primary])
summary["threads_list"] = tlist
summary["by_threads"] = {str(T): by[T] for T in tlist}
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
