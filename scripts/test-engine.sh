#!/usr/bin/env bash
# The embeddable engine alone (libmrmnet_engine: C11 + libm), in two builds that share nothing
# with the optimized one but the fixtures its train/test_engine_parity wrote (an image, inputs and
# the evaluation-mode forward's logits):
#   1. x86-64 baseline (-march=x86-64: no AVX, no AVX-512 in the baseline code; the AVX2 and
#      AVX-512 kernels are still built and chosen at run time where the CPU has them);
#   2. aarch64, cross-compiled with Debian's gcc-aarch64-linux-gnu and run under qemu-aarch64
#      (Debian's qemu-user); skipped with a message when either is absent
#      (scripts/install-deps.sh --cross installs them).
# Usage: scripts/test-engine.sh [HOST_BUILD]   (HOST_BUILD: the optimized build, default build/)
set -euo pipefail
cd "$(dirname "$0")/.."
host=${1:-build}
fix=$PWD/$host/tests/engine-fixtures
if [ ! -f "$fix/engine.mrme" ] || [ ! -f "$fix/engine_int8.mrme" ]; then
  mkdir -p "$fix"
  MRM_ENGINE_FIXTURES_OUT="$fix" "$host/tests/train_test_engine_parity" >/dev/null
fi
jobs=$(nproc 2>/dev/null || echo 2)

if [ "$(uname -m)" = x86_64 ]; then
  cmake -S . -B build-engine-x86-64 -DMRM_ENGINE_ONLY=ON -DMRM_NATIVE=OFF -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_FLAGS=-march=x86-64 -DMRM_ENGINE_FIXTURES="$fix" >/dev/null
  cmake --build build-engine-x86-64 -j"$jobs" >/dev/null
  (cd build-engine-x86-64 && ctest --output-on-failure)
fi

if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
  echo "test-engine.sh: aarch64 skipped: aarch64-linux-gnu-gcc or qemu-aarch64 not installed (scripts/install-deps.sh --cross)"
  exit 0
fi
cmake -S . -B build-engine-aarch64 -DMRM_ENGINE_ONLY=ON -DMRM_NATIVE=OFF -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 -DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc \
  -DCMAKE_CROSSCOMPILING_EMULATOR="qemu-aarch64;-cpu;max;-L;/usr/aarch64-linux-gnu" -DMRM_ENGINE_FIXTURES="$fix" >/dev/null
cmake --build build-engine-aarch64 -j"$jobs" >/dev/null
file build-engine-aarch64/tests/engine/engine_test_engine_image | sed 's/,.*//'
(cd build-engine-aarch64 && ctest --output-on-failure)
