#!/usr/bin/env bash
# One process with T threads against T processes with one thread each (mpirun), on the same
# training steps: steps per second and the time a step spends in sums over the processes
# (gradients and synchronised BatchNorm, waiting for the slower process included), from the run's
# log.jsonl. The two set-ups alternate, REPEAT times each, so that a machine shared with other
# work loads both alike. Prints one line a run and the medians.
#   bench/mpi_scaling.sh PREP/ [STEPS=6] [BATCH=32] [REPEAT=3] [T=2]
set -euo pipefail
prep=${1:?usage: bench/mpi_scaling.sh PREP/ [STEPS] [BATCH] [REPEAT] [T]}
steps=${2:-6} batch=${3:-32} repeat=${4:-3} t=${5:-2}
mrmnet=${MRMNET:-build/mrmnet}
root=(); [ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
summary() { # log.jsonl -> "steps/s comm_s/step": steps after the first (warm-up), timed by records_per_s
  python3 - "$1" "$batch" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"type":"step"' in l]
b = int(sys.argv[2])
# records_per_s is cumulative over the epoch: the time of steps 2..n is n*b/rps_n - b/rps_1
t = len(rows) * b / rows[-1]["records_per_s"] - b / rows[0]["records_per_s"]
comm = [r.get("comm_s", 0.0) for r in rows[1:]]
print("%.4f %.4f" % ((len(rows) - 1) / t, sum(comm) / len(comm)))
PY
}
for i in $(seq 1 "$repeat"); do
  rm -rf "$tmp/a" "$tmp/b"
  "$mrmnet" train --data "$prep" --out "$tmp/a" --steps "$steps" --batch "$batch" --threads "$t" --quiet 2>/dev/null
  echo "run $i: 1 process x $t threads: $(summary "$tmp/a/log.jsonl")  (steps/s, s in sums a step)"
  mpirun "${root[@]}" --oversubscribe -np "$t" "$mrmnet" train --data "$prep" --out "$tmp/b" --steps "$steps" \
    --batch "$batch" --threads 1 --quiet 2>/dev/null
  echo "run $i: $t processes x 1 thread: $(summary "$tmp/b/log.jsonl")  (steps/s, s in sums a step)"
done
