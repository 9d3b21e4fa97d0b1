#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang, ASan + UBSan) and fuzzes each for a while.
#   tests/fuzz/run.sh [SECONDS [HARNESS...]]    default: 30 s each, every harness
# Environment: MRM_FUZZ_BUILD (build folder, default build-fuzz), MRM_FUZZ_WORK (corpora and
# findings, default $MRM_FUZZ_BUILD/fuzz-work), MRM_FUZZ_JOBS (build jobs, default nproc).
# Each harness starts from its seed corpus (seeds.sh) and the kept regression inputs, with the
# limits the project's readers must respect: 2 GB resident, 1 GB per allocation, 10 s per input.
# A crash, leak, timeout or over-limit allocation stops that harness, leaves the input in
# $MRM_FUZZ_WORK/NAME/ (crash-*, leak-*, timeout-*, oom-*) and makes the script exit non-zero
# after the others have run. Keep such an input in tests/fuzz/regress/NAME/ once it is fixed.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-30}
shift || true
build=${MRM_FUZZ_BUILD:-build-fuzz}
work=${MRM_FUZZ_WORK:-$build/fuzz-work}
command -v clang >/dev/null || { echo "run.sh: clang is needed (scripts/install-deps.sh --fuzz)" >&2; exit 2; }
if [ $# -gt 0 ]; then
  names=("$@")
else
  names=()
  for f in tests/fuzz/fuzz_*.c; do n=$(basename "$f" .c); names+=("${n#fuzz_}"); done
fi
cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMRM_FUZZ=ON >/dev/null
targets=()
for n in "${names[@]}"; do targets+=("fuzz_$n"); done
cmake --build "$build" -j"${MRM_FUZZ_JOBS:-$(nproc)}" --target "${targets[@]}"
failed=()
for n in "${names[@]}"; do
  dir=$work/$n
  mkdir -p "$dir/corpus" "$dir/seeds"
  bash tests/fuzz/seeds.sh "$n" "$dir/seeds"
  seeds=("$dir/seeds")
  [ -d "tests/fuzz/regress/$n" ] && seeds+=("tests/fuzz/regress/$n")
  echo "== fuzz_$n: $secs s" >&2
  # leaks are reported as errors too (ASan's LeakSanitizer)
  if ! "$build/tests/fuzz/fuzz_$n" "$dir/corpus" "${seeds[@]}" -max_total_time="$secs" \
       -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 -max_len=1048576 \
       -artifact_prefix="$dir/" -print_final_stats=1 2> "$dir/log.txt"; then
    tail -n 60 "$dir/log.txt" >&2
    failed+=("$n")
  else
    grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units)' "$dir/log.txt" | tail -n 2 >&2 || true
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "run.sh: findings in: ${failed[*]} (inputs in $work/NAME/)" >&2
  exit 1
fi
