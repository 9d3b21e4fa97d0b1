#!/usr/bin/env bash
# Runs on the lent 16-core machine (the `device` tool), in the repository's copy there, with
# .devkit/ carried (scripts/device-kit.sh made it here): mrmnet against PyTorch and ONNX Runtime
# at every thread count, alternating, as bench/run_bench.sh does on this machine.
#
#   scripts/device-bench.sh [--threads 1,2,4,8,16] [--rounds 1] [other run_bench.sh options]
#
# Unpacks the kit into a temporary folder, checks that the binary finds every library and runs
# on this CPU, then bench/run_bench.sh --mrmnet KIT/bin/mrmnet --ort python with the machine's
# python3 (PyTorch and onnxruntime there). Results go to a new folder
# build-bench/device-out/<UTC time>/bench (an earlier run's folder is never reused); when $OUT is
# set (the device tool's folder that comes back, at most 8 files), also as four files there: the
# printed report (report.txt), summary.json and every JSON and log in device-bench.tar.gz (the
# ONNX export left out), packed even when the run fails part way. One round of 1, 2, 4, 8
# and 16 threads should take about 4-5 minutes there (estimated from the timings of issue 15).
# Then, whatever the benchmark's outcome, the kit's bench_scaling (the model of the training step
# on T free cores that docs/performance.md argues from on 2 cores) at the same thread counts,
# 3 steps, at most 3 minutes: scaling_model.txt, beside the measurement it is a model of.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARBALL="$ROOT/.devkit/mrmnet-kit.tar.xz"
[ -f "$TARBALL" ] || { echo "device-bench.sh: $TARBALL is missing (make it with scripts/device-kit.sh and carry .devkit)" >&2; exit 1; }
DEST=$(mktemp -d)
trap 'rm -rf "$DEST"' EXIT
tar -C "$DEST" -xJf "$TARBALL"
export LD_LIBRARY_PATH="$DEST/kit/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if ldd "$DEST/kit/bin/mrmnet" | grep -q 'not found'; then
  ldd "$DEST/kit/bin/mrmnet" | grep 'not found' >&2
  echo "device-bench.sh: the kit lacks a library this machine does not have" >&2
  exit 1
fi
"$DEST/kit/bin/mrmnet" --version >/dev/null 2>&1 || {
  echo "device-bench.sh: the kit's mrmnet does not run here" >&2; exit 1; }
export MRM_PYTHON="${MRM_PYTHON:-$(command -v python3)}"
RES="$ROOT/build-bench/device-out/$(date -u +%Y%m%dT%H%M%SZ)/bench"
mkdir -p "$(dirname "$(dirname "$RES")")"
mkdir "$(dirname "$RES")" # fails, rather than mixing, if that second's folder exists
mkdir "$RES"
pack() {
  [ -n "${OUT:-}" ] || return 0
  [ -f "$RES/summary.json" ] && cp "$RES/summary.json" "$OUT/summary.json"
  tar -C "$(dirname "$RES")" --exclude='*.onnx' --exclude='*.f32' --exclude='*.npy' -czf "$OUT/device-bench.tar.gz" bench
}
trap 'pack; rm -rf "$DEST"' EXIT
cp "$DEST/kit/BUILD.txt" "$RES/kit_build.txt"
{ nproc; grep -m1 'model name' /proc/cpuinfo; grep -m1 -o 'amx_tile' /proc/cpuinfo || true; } > "$RES/cpu.txt"
args=(--threads 1,2,4,8,16 --rounds 1)
set +e
bash bench/run_bench.sh "${args[@]}" "$@" --mrmnet "$DEST/kit/bin/mrmnet" --ort python --no-layers --out "$RES" 2>&1 |
  tee "$RES/report.txt"
rc=${PIPESTATUS[0]}
if [ -n "${OUT:-}" ]; then cp "$RES/report.txt" "$OUT/report.txt"; fi
threads=1,2,4,8,16
for ((i = 1; i <= $#; i++)); do [ "${!i}" = --threads ] && { j=$((i + 1)); threads=${!j}; }; done
timeout 180 "$DEST/kit/bin/bench_scaling" --threads "$threads" --steps 3 --top 15 > "$RES/scaling_model.txt" 2>&1
echo "bench_scaling: exit $? ($RES/scaling_model.txt)"
if [ -n "${OUT:-}" ]; then cp "$RES/scaling_model.txt" "$OUT/scaling_model.txt"; fi
set -e
exit "$rc"
