#!/usr/bin/env bash
# Installs the Debian 12 packages mrmnet needs, skipping those already present.
#   scripts/install-deps.sh          build and run
#   scripts/install-deps.sh --test   also what the tests use (numpy, scikit-learn, scipy, libmatio, chromium;
#                                    Open MPI for the multi-process training tests, iproute2 for their two-host run)
#   scripts/install-deps.sh --peers  also the reference peers for parity and benchmarks (PyTorch)
#   scripts/install-deps.sh --fuzz   also clang, its libFuzzer runtime and OpenMP (tests/fuzz/run.sh)
#   scripts/install-deps.sh --cross  also the aarch64 cross compiler and qemu-user (the engine's
#                                    aarch64 tests, scripts/test-engine.sh)
set -euo pipefail
# libopenmpi-dev and openmpi-bin: data-parallel training (mpirun -np P mrmnet train); optional for the build
pkgs=(gcc make cmake pkg-config libdnnl-dev zlib1g-dev libsamplerate0-dev libjansson-dev libxml2-dev libedf-dev
      libopenmpi-dev openmpi-bin)
for a in "$@"; do
  case "$a" in
    --test) pkgs+=(python3 python3-numpy python3-sklearn python3-scipy python3-pydicom biosig-tools libmatio-dev chromium python3-pil iproute2) ;;
    --fuzz) pkgs+=(clang libclang-rt-14-dev libomp-dev) ;;
    --cross) pkgs+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user) ;;
    --peers) pkgs+=(python3 python3-numpy python3-sklearn python3-scipy python3-torch python3-onnx nodejs npm) ;;
    *) echo "install-deps.sh: unknown option $a" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${pkgs[@]}"; do
  # a Node.js installed outside Debian (it ships its own npm) conflicts with Debian's npm package
  case "$p" in nodejs|npm) if command -v "${p/nodejs/node}" >/dev/null 2>&1; then continue; fi ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "installing: ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
