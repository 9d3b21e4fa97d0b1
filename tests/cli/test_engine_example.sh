#!/usr/bin/env bash
# examples/label_ecg.c built as the README says, linking only libmrmnet_engine, from an engine
# image file and from the C source of `mrmnet export --c-source`: the probabilities it prints for
# a sample record equal those of `mrmnet predict` (to 1e-4).
set -euo pipefail
cd "$MRM_SOURCE_DIR"
T=$MRM_TMPDIR
rm -rf "$T"/*
M=models/ptbxl-superdiagnostic.safetensors
# a sanitizer build's library needs the sanitizers' runtimes at link time
SAN=""
if grep -q "^MRM_SANITIZE:BOOL=ON" "$MRM_BUILD_DIR/CMakeCache.txt" 2>/dev/null; then SAN="-fsanitize=address,undefined"; fi
"$MRMNET" export --model $M --engine "$T/model.mrme" --c-source "$T/model.c"
cc $SAN -std=c11 -O2 -Wall -Wextra -Werror -Iinclude examples/label_ecg.c "$MRM_BUILD_DIR/libmrmnet_engine.a" -lm -o "$T/label_ecg"
cc $SAN -std=c11 -O2 -Wall -Wextra -Werror -Iinclude -DEMBEDDED_MODEL examples/label_ecg.c "$T/model.c" \
  "$MRM_BUILD_DIR/libmrmnet_engine.a" -lm -o "$T/label_ecg_embedded"
"$T/label_ecg" "$T/model.mrme" samples/00009_lr.dat 1000 > "$T/file.txt"
"$T/label_ecg_embedded" samples/00009_lr.dat 1000 > "$T/embedded.txt"
cmp "$T/file.txt" "$T/embedded.txt"
"$MRMNET" predict --model $M samples/00009_lr --csv > "$T/predict.csv"
cat "$T/file.txt"
# predict's CSV: record,<classes>,labels,error; the example: "<class> <p>[  *]" per line
python3 - "$T/predict.csv" "$T/file.txt" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
head, row = rows[0], rows[1]
ex = {l.split()[0]: float(l.split()[1]) for l in open(sys.argv[2]) if l.strip()}
labels = set(row[head.index("labels")].split(";")) - {""}
n = 0
for k, name in enumerate(head[1:head.index("labels")], 1):
    assert abs(float(row[k]) - ex[name]) <= 1e-3, (name, row[k], ex[name])
    n += 1
starred = {l.split()[0] for l in open(sys.argv[2]) if l.rstrip().endswith("*")}
assert starred == labels, (starred, labels)
print(f"{n} classes agree with mrmnet predict; labels {sorted(labels)}")
print("1 passed, 0 failed")
PY
