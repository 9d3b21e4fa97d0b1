#!/usr/bin/env bash
# Packs mrmnet for a machine that cannot build it: the lent 16-core machine of the `device` tool
# (a CUDA image with Python, PyTorch and onnxruntime, without oneDNN or the other libraries
# mrmnet links, and without a network), so that thread scaling from 1 to 16 cores against both
# peers is one prepared command there (scripts/device-bench.sh).
#
#   scripts/device-kit.sh [BUILD_DIR (default build-kit)]
#
# 1. builds mrmnet in BUILD_DIR with -march=x86-64-v4 instead of -march=native: this machine's
#    own tuning may use instructions another AVX-512 CPU lacks (the engine still picks its
#    kernels at run time);
# 2. copies the binary and every shared library it loads, except glibc's own (libc, libm,
#    libpthread, libdl, librt, the loader), into a kit, and checks that with the kit's folder
#    as the library path nothing is missing;
# 3. writes .devkit/mrmnet-kit.tar.xz (about 19 MB; .devkit/ is ignored by git), to be named in
#    the run's `carry`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BUILD="${1:-build-kit}"
KIT="$ROOT/.devkit"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMRM_NATIVE=OFF -DCMAKE_C_FLAGS="-march=x86-64-v4" >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target mrmnet bench_scaling >/dev/null
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/kit/bin" "$stage/kit/lib"
cp "$BUILD/mrmnet" "$BUILD/bench_scaling" "$stage/kit/bin/"
ldd "$BUILD/mrmnet" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*) ;;
    *) cp -L "$lib" "$stage/kit/lib/" ;;
  esac
done
if LD_LIBRARY_PATH="$stage/kit/lib" ldd "$stage/kit/bin/mrmnet" | grep -q 'not found'; then
  echo "device-kit.sh: libraries missing from the kit:" >&2
  LD_LIBRARY_PATH="$stage/kit/lib" ldd "$stage/kit/bin/mrmnet" | grep 'not found' >&2
  exit 1
fi
{
  echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(
    [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && echo ' + uncommitted changes')"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "flags: -O3 -march=x86-64-v4 ($(gcc --version | head -1))"
} > "$stage/kit/BUILD.txt"
mkdir -p "$KIT"
tar -C "$stage" -cJf "$KIT/mrmnet-kit.tar.xz.part" kit
mv "$KIT/mrmnet-kit.tar.xz.part" "$KIT/mrmnet-kit.tar.xz"
echo "$KIT/mrmnet-kit.tar.xz: $(du -h "$KIT/mrmnet-kit.tar.xz" | cut -f1) ($(ls "$stage/kit/lib" | wc -l) libraries)"
