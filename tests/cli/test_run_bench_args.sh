#!/bin/bash
# bench/run_bench.sh: its options (--plan prints the settings and exits: nothing is built,
# installed or timed): thread lists accepted and refused, the primary thread count of the summary,
# the ONNX Runtime peer's kind, a given binary, the Python that runs the peers.
set -u
SRC=${MRM_SOURCE_DIR:-.}
S="$SRC/bench/run_bench.sh"
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

plan() { bash "$S" "$@" --plan 2>&1; }
out=$(plan) && [ "$(grep '^threads:' <<< "$out")" = "threads: 2" ] && ok || bad "default threads: $out"
out=$(plan --threads 1,2,4,8,16 --quick) && grep -q '^threads: 1 2 4 8 16$' <<< "$out" &&
  grep -q '^primary: 2$' <<< "$out" && grep -q '^rounds: 1$' <<< "$out" && ok || bad "--threads 1,2,4,8,16: $out"
out=$(plan --threads 16,4 --rounds 2) && grep -q '^threads: 16 4$' <<< "$out" && grep -q '^primary: 16$' <<< "$out" &&
  grep -q '^rounds: 2$' <<< "$out" && ok || bad "--threads 16,4: $out"
out=$(plan --build build) && grep -q "^build: $(cd "$SRC" && pwd)/build$" <<< "$out" && ok || bad "--build build: $out"
out=$(plan) && grep -q "^build: $(cd "$SRC" && pwd)/build-bench$" <<< "$out" && ok || bad "default build folder: $out"
for badlist in "" "0" "1,,2" ",2" "2," "a" "1.5" "2,-1" "01" "2000" "1,2,3,4,5,6,7,8,9"; do
  out=$(plan --threads "$badlist"); rc=$?
  [ $rc = 2 ] && grep -q "threads" <<< "$out" && ok || bad "--threads '$badlist' accepted (rc $rc): $out"
done
out=$(plan --threads); [ $? = 2 ] && ok || bad "--threads without a value: $out"
out=$(plan --rounds 0); [ $? = 2 ] && ok || bad "--rounds 0: $out"
out=$(plan) && grep -q '^ort peer: node$' <<< "$out" && grep -q '^layers: 1$' <<< "$out" && ok || bad "default ort peer: $out"
out=$(plan --ort python --mrmnet /opt/kit/bin/mrmnet) && grep -q '^ort peer: python$' <<< "$out" &&
  grep -q '^mrmnet: /opt/kit/bin/mrmnet (given: not built)$' <<< "$out" && grep -q '^layers: 0$' <<< "$out" && ok ||
  bad "--ort python --mrmnet: $out"
out=$(MRM_PYTHON=/opt/py/bin/python3 plan) && grep -q '^python: /opt/py/bin/python3$' <<< "$out" && ok || bad "MRM_PYTHON: $out"
out=$(plan --ort java); [ $? = 2 ] && grep -q "node or python" <<< "$out" && ok || bad "--ort java: $out"
out=$(plan --mrmnet); [ $? = 2 ] && grep -q "needs a file" <<< "$out" && ok || bad "--mrmnet without a value: $out"
out=$(plan --bogus); [ $? = 2 ] && grep -q "unknown option" <<< "$out" && ok || bad "--bogus: $out"
echo "$pass passed, $fail failed"
[ $fail = 0 ]
