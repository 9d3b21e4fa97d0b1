#!/usr/bin/env bash
# The engine's team runs under ThreadSanitizer: builds tests/train/test_engine_team.c and the
# library it links with -fsanitize=thread into build-tsan/ (or $1) and runs it with
# MRM_TEAM_QUICK=1: the pthread teams of 1-16 threads on the image with the branches apart
# (sub-teams with their own barriers, and every layer shared), the best kernels, batches 1, 3
# and 32, a width-8 model (as under AddressSanitizer); MRM_TEAM_QUICK=0 in the environment runs
# every image and kernel set (hours on a 2-core machine). The runner's OpenMP part is left out
# of that build (libgomp is not instrumented).
# Usage: scripts/tsan-engine-team.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-tsan}
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS=-fsanitize=thread \
  -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread >/dev/null
cmake --build "$dir" -j"$(nproc 2>/dev/null || echo 2)" --target train_test_engine_team >/dev/null
MRM_TEAM_QUICK=${MRM_TEAM_QUICK:-1} TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" "$dir/tests/train_test_engine_team"
