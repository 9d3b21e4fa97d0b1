#!/usr/bin/env bash
# Runs every test: the optimized build, then the same tests under AddressSanitizer and
# UndefinedBehaviorSanitizer. Tests that need ../shared or an optional tool skip with a message.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test --cross
scripts/build.sh build
(cd build && ctest --output-on-failure -j2)
scripts/test-engine.sh build   # the engine alone: x86-64 baseline build, aarch64 under qemu
scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMRM_SANITIZE=ON
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j2 -LE slow)
