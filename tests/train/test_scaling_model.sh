#!/usr/bin/env bash
# The thread-scaling model (bench/bench_scaling.c): its OpenMP interposer against a workload of
# known shape (--self-test: regions, barriers, the serial part, by CPU time), then a short real
# run of the evaluation forward at 1 and 3 threads, whose table must be complete and whose
# 3-thread run must have seen regions of 3 threads.
set -euo pipefail
b="${MRM_BUILD_DIR:?}/bench_scaling"
if [ ! -x "$b" ]; then
    echo "FAIL: $b is not built"
    exit 1
fi
"$b" --self-test
out=$("$b" --case eval --batch 4 --threads 1,3 --steps 2 --top 3)
printf '%s\n' "$out"
pass=0 fail=0
check() {
    if eval "$1"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $2"; fi
}
row1=$(printf '%s\n' "$out" | awk -F'|' '$1 ~ /^ +1 $/ && NF >= 12 {print; exit}')
row3=$(printf '%s\n' "$out" | awk -F'|' '$1 ~ /^ +3 $/ && NF >= 12 {print; exit}')
check '[ -n "$row1" ] && [ -n "$row3" ]' "the table has a row for 1 and for 3 threads"
regions3=$(printf '%s\n' "$row3" | awk -F'|' '{gsub(/ /, "", $10); print $10}')
check '[ -n "$regions3" ] && [ "${regions3%.*}" -gt 0 ]' "the 3-thread run saw parallel regions ($regions3)"
check 'printf "%s\n" "$out" | grep -q "regions by time lost to imbalance"' "the 3-thread run lists its regions"
least3=$(printf '%s\n' "$row3" | awk -F'|' '{gsub(/ /, "", $5); print $5}')
check '[ -n "$least3" ] && [ "$least3" != "nan" ] && [ "$least3" != "-nan" ]' "a least-of model for 3 threads ($least3)"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
