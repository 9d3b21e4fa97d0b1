#!/bin/bash
# mrmnet prepare on the committed fixtures (no ../shared needed): a ten-record PTB-XL folder, a
# users' records table, and a CPSC2018 folder built from the CPSC fixtures. Expected ids and classes
# are written out by hand from the fixture's ptbxl_database.csv rows; where numpy is present, every
# task's output is also compared with tools/reference_labels.py. Error paths: usage, missing files,
# broken records, bad folds.
set -u
SRC=${MRM_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
MRMNET=${MRMNET:?MRMNET not set}
TMP=${MRM_TMPDIR:-/tmp}/prepare_fixture
FIX=$SRC/tests/fixtures/prepare
PY=/usr/bin/python3
rm -rf "$TMP" && mkdir -p "$TMP"
pass=0
fail=0
check() { # check "what" command...
    local what=$1
    shift
    if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $what"; fi
}
same() { [ "$1" == "$2" ] || { echo "  got:      $(echo "$1" | tr '\n' ' ')"; echo "  expected: $(echo "$2" | tr '\n' ' ')"; return 1; }; }

# ---- PTB-XL superdiagnostic ------------------------------------------------------------------
OUT=$TMP/super
"$MRMNET" prepare --ptbxl "$FIX/ptb-xl" --task superdiagnostic --out "$OUT" >"$TMP/log" 2>&1
check "prepare superdiagnostic: $(tail -3 "$TMP/log")" test $? -eq 0
check "classes" same "$(cat "$OUT/classes.txt")" "$(printf 'CD\nHYP\nMI\nNORM\nSTTC')"
check "train ids" same "$(cat "$OUT/ids_train.txt")" "$(printf '1\n22\n32\n45\n50')"
check "val ids (17 has no diagnostic label)" same "$(cat "$OUT/ids_val.txt")" "$(printf '8\n39')"
check "test ids" same "$(cat "$OUT/ids_test.txt")" "$(printf '63\n65')"
check "X_train size" test "$(stat -c %s "$OUT/X_train.npy")" -eq $((128 + 5 * 12 * 1000 * 4))
check "y_val size" test "$(stat -c %s "$OUT/y_val.npy")" -eq $((128 + 2 * 5 * 4))
check "no temporary files left" test -z "$(ls "$OUT" | grep -v -E '^(X|y|ids)_(train|val|test)\.(npy|txt)$|^classes.txt$|^prepare.json$')"
check "prepare.json dropped" grep -q '"no_label": 1' "$OUT/prepare.json"
check "prepare.json split" grep -q '"split": "folds 1-8/9/10 (strat_fold)"' "$OUT/prepare.json"
check "summary line" grep -q "ptb-xl superdiagnostic: 9 records (train 5, val 2, test 2), 5 classes" "$TMP/log"
# y_val: record 8 = MI, record 39 = MI + STTC (float32 little-endian 1.0 = 00 00 80 3f)
yv=$(od -A n -t x1 -j 128 "$OUT/y_val.npy" | tr -d ' \n')
one=0000803f
zero=00000000
check "y_val bytes" same "$yv" "$zero$zero$one$zero$zero$zero$zero$one$zero$one"

# ---- against the independent reference, every task (numpy needed) -----------------------------
if $PY -c 'import numpy' 2>/dev/null; then
    for task in all diagnostic subdiagnostic superdiagnostic form rhythm; do
        "$MRMNET" prepare --ptbxl "$FIX/ptb-xl" --task $task --out "$TMP/t_$task" >/dev/null 2>&1
        check "prepare $task" test $? -eq 0
        $PY "$SRC/tools/reference_labels.py" "$FIX/ptb-xl" $task "$TMP/r_$task" >/dev/null
        $PY - "$TMP/t_$task" "$TMP/r_$task" <<'EOF'
import json, sys
import numpy as np
a, b = sys.argv[1], sys.argv[2]
ok = open(a + "/classes.txt").read() == open(b + "/classes.txt").read()
ref = json.load(open(b + "/reference.json"))
ours = json.load(open(a + "/prepare.json"))
ok &= abs(ours["mean"] - ref["mean"]) <= 1e-5 * max(1, abs(ref["mean"])) and abs(ours["std"] - ref["std"]) <= 1e-5 * ref["std"]
for s in ("train", "val", "test"):
    ok &= open(a + "/ids_%s.txt" % s).read() == open(b + "/ids_%s.txt" % s).read()
    ok &= bool((np.load(a + "/y_%s.npy" % s) == np.load(b + "/y_%s.npy" % s)).all())
    x, y = np.load(a + "/X_%s.npy" % s), np.load(b + "/X_%s.npy" % s)
    ok &= x.shape == y.shape and (x.size == 0 or float(np.abs(x - y).max()) <= 1e-5)
sys.exit(0 if ok else 1)
EOF
        check "$task equals tools/reference_labels.py" test $? -eq 0
    done
else
    echo "numpy absent: reference comparison skipped"
fi

# ---- options and errors ----------------------------------------------------------------------
"$MRMNET" prepare --ptbxl "$FIX/ptb-xl" --task rhythm --labels-only --folds 1-6/7/8-10 --out "$TMP/lo" >/dev/null 2>&1
check "labels-only with folds" test $? -eq 0
check "labels-only writes no X" test ! -e "$TMP/lo/X_train.npy"
check "folds 1-6/7/8-10: test ids" same "$(cat "$TMP/lo/ids_test.txt")" "$(printf '8\n17\n39\n63\n65')"
"$MRMNET" prepare --ptbxl "$FIX/ptb-xl" --out "$TMP/x" >/dev/null 2>&1
check "default task superdiagnostic" same "$(cat "$TMP/x/classes.txt" | wc -l)" 5
"$MRMNET" prepare --ptbxl "$FIX/ptb-xl" --hr --out "$TMP/hr" >"$TMP/log" 2>&1
check "500 Hz records missing: error names the table line and record" grep -q "ptbxl_database.csv:3: record 8: signal files not found" "$TMP/log"
"$MRMNET" prepare --ptbxl "$FIX/ptb-xl" --hr --skip-missing --folds 1-8/9/10 --out "$TMP/hr" >"$TMP/log" 2>&1
check "--hr --skip-missing runs" test $? -eq 0
check "--hr keeps records 1 and 63" same "$(cat "$TMP/hr/ids_train.txt" "$TMP/hr/ids_test.txt")" "$(printf '1\n63')"
check "--hr resampled 500 Hz" grep -q '"source_sampling_rate": 500.0' "$TMP/hr/prepare.json"
check "--hr missing count" grep -q '"missing": 7' "$TMP/hr/prepare.json"
"$MRMNET" prepare --ptbxl "$FIX/ptb-xl" --out "$TMP/x" --folds 1-9/9/10 >"$TMP/log" 2>&1
check "overlapping folds: usage error" test $? -eq 2
"$MRMNET" prepare --ptbxl "$FIX/ptb-xl" >"$TMP/log" 2>&1
check "no --out: usage error" test $? -eq 2
"$MRMNET" prepare --ptbxl "$FIX/ptb-xl" --cpsc "$FIX" --out "$TMP/x" >"$TMP/log" 2>&1
check "two sources: usage error" test $? -eq 2
"$MRMNET" prepare --ptbxl "$FIX/ptb-xl" --bogus --out "$TMP/x" >"$TMP/log" 2>&1
check "unknown option: usage error" test $? -eq 2
"$MRMNET" prepare --help >"$TMP/log" 2>&1
check "--help" grep -q -- "--skip-missing" "$TMP/log"

# a broken copy: a truncated signal file, and a bad strat_fold
BAD=$TMP/bad
mkdir -p "$BAD/records100/00000"
cp "$FIX/ptb-xl/scp_statements.csv" "$FIX/ptb-xl/ptbxl_database.csv" "$BAD/"
cp "$FIX"/ptb-xl/records100/00000/* "$BAD/records100/00000/"
head -c 1000 "$FIX/ptb-xl/records100/00000/00022_lr.dat" >"$BAD/records100/00000/00022_lr.dat"
"$MRMNET" prepare --ptbxl "$BAD" --out "$TMP/failed" >"$TMP/log" 2>&1
check "truncated record: failure naming it ($(tail -1 "$TMP/log"))" grep -q "record 22" "$TMP/log"
rm "$BAD/records100/00000/00032_lr.dat"
"$MRMNET" prepare --ptbxl "$BAD" --out "$TMP/failed" >"$TMP/log" 2>&1
check "absent signal file: named ($(tail -1 "$TMP/log"))" grep -q "ptbxl_database.csv:6: record 32: .*00032_lr.dat'*: not found" "$TMP/log"
"$MRMNET" prepare --ptbxl "$BAD" --skip-missing --out "$TMP/failed" >"$TMP/log" 2>&1
check "absent signal file skipped, truncated one still an error" grep -q "record 22" "$TMP/log"
cp "$FIX/ptb-xl/records100/00000/00022_lr.dat" "$BAD/records100/00000/"
"$MRMNET" prepare --ptbxl "$BAD" --skip-missing --out "$TMP/skipped" >"$TMP/log" 2>&1
check "absent signal file skipped and counted" grep -q '"missing": 1' "$TMP/skipped/prepare.json"
sed -i 's/,3,records100\/00000\/00001_lr/,eleven,records100\/00000\/00001_lr/' "$BAD/ptbxl_database.csv"
"$MRMNET" prepare --ptbxl "$BAD" --out "$TMP/failed" >"$TMP/log" 2>&1
check "bad strat_fold: file:line ($(tail -1 "$TMP/log"))" grep -q "ptbxl_database.csv:2: strat_fold: 'eleven' is not an integer" "$TMP/log"

# ---- an existing prepared folder is replaced only when asked, and only whole ---------------------
"$MRMNET" prepare --ptbxl "$FIX/ptb-xl" --task rhythm --out "$OUT" >"$TMP/log" 2>&1
check "re-prepare refused: $(tail -1 "$TMP/log")" grep -q "already holds a prepared dataset.*--force" "$TMP/log"
check "refused: the folder unchanged" same "$(cat "$OUT/classes.txt")" "$(printf 'CD\nHYP\nMI\nNORM\nSTTC')"
"$MRMNET" prepare --ptbxl "$FIX/ptb-xl" --task superdiagnostic --folds 1-4/9/7,10,11 --out "$OUT" --force >"$TMP/log" 2>&1
check "--force replaces: $(tail -1 "$TMP/log")" test $? -eq 0
check "--force: the new folds' test ids" same "$(cat "$OUT/ids_test.txt")" "$(printf '50\n63\n65')"
check "--force: the new folds' train ids" same "$(cat "$OUT/ids_train.txt")" "$(printf '1\n22\n32\n45')"
check "--force: no folder left beside it" test -z "$(ls "$TMP" | grep -E '^super\.(tmp|old)\.')"
check "--force: a fold without records named" grep -q "warning: --folds: fold 11 (test) holds no record" "$TMP/log"
"$MRMNET" prepare --ptbxl "$FIX/ptb-xl" --folds 1-8/11/9,10 --out "$TMP/noval" >"$TMP/log" 2>&1
check "an empty validation split: prepared, with a warning" grep -q "warning: the val split has 0 records" "$TMP/log"
"$MRMNET" prepare --ptbxl "$FIX/ptb-xl" --folds 1,2,4-8/3/9,10 --out "$TMP/oneval" >"$TMP/log" 2>&1
check "a validation split of one record: warned of" grep -q "warning: the val split has 1 record: too few" "$TMP/log"
echo "my notes" >"$OUT/notes.txt"
"$MRMNET" prepare --ptbxl "$FIX/ptb-xl" --out "$OUT" --force >"$TMP/log" 2>&1
check "a folder with a user's file is not replaced: $(tail -1 "$TMP/log")" grep -q "notes.txt" "$TMP/log"
check "the user's file kept" test -f "$OUT/notes.txt"
mkdir -p "$TMP/empty"
"$MRMNET" prepare --ptbxl "$FIX/ptb-xl" --out "$TMP/empty/" >/dev/null 2>&1
check "an empty folder (with a trailing /) is filled" test -f "$TMP/empty/prepare.json"

# ---- users' records --------------------------------------------------------------------------
"$MRMNET" prepare --records "$FIX/ptb-xl" --labels "$FIX/records_labels.csv" --seed 3 --out "$TMP/rec" >"$TMP/log" 2>&1
check "records: $(tail -2 "$TMP/log")" test $? -eq 0
check "records: 9 kept (the row without labels dropped before the split), 7/0/2" grep -q "records records: 9 records (train 7, val 0, test 2), 5 classes" "$TMP/log"
check "records: the row without labels counted" grep -q '"no_label": 1' "$TMP/rec/prepare.json"
check "records: random split stated" grep -q '"split": "random 80/10/10, seed 3"' "$TMP/rec/prepare.json"
check "records: ids are record paths" grep -q "^records100/00000/000" "$TMP/rec/ids_train.txt"
"$MRMNET" prepare --records "$FIX/ptb-xl" --labels "$FIX/records_labels.csv" --seed 3 --out "$TMP/rec2" >/dev/null 2>&1
check "records: the seed fixes the split" cmp -s "$TMP/rec/ids_train.txt" "$TMP/rec2/ids_train.txt"
"$MRMNET" prepare --records "$FIX/ptb-xl" --out "$TMP/x" >"$TMP/log" 2>&1
check "records without --labels: usage error" test $? -eq 2

# ---- CPSC2018 from the CPSC fixtures ---------------------------------------------------------
if [ -f "$SRC/tests/fixtures/challenge2020/A0002.hea" ] && [ -f "$SRC/tests/fixtures/cpsc2018/A1980.mat" ]; then
    C=$TMP/cpsc
    mkdir -p "$C/wfdb" "$C/mat"
    cp "$FIX/cpsc2018/REFERENCE.csv" "$FIX/cpsc2018/icbeb_database.csv" "$C/"
    ln -s "$SRC/tests/fixtures/challenge2020/A0002.hea" "$SRC/tests/fixtures/challenge2020/A0002.mat" "$C/wfdb/"
    ln -s "$SRC/tests/fixtures/cpsc2018/A1980.mat" "$C/mat/"
    "$MRMNET" prepare --cpsc "$C" --out "$TMP/c" >"$TMP/log" 2>&1
    check "cpsc: missing records named" grep -q "REFERENCE.csv:3: record A0003: signal files not found" "$TMP/log"
    "$MRMNET" prepare --cpsc "$C" --skip-missing --out "$TMP/c" >"$TMP/log" 2>&1
    check "cpsc --skip-missing: $(tail -2 "$TMP/log")" test $? -eq 0
    check "cpsc: nine ICBEB classes" same "$(cat "$TMP/c/classes.txt" | tr '\n' ' ')" "1AVB AFIB CLBBB CRBBB NORM PAC STD_ STE_ VPC "
    check "cpsc: both in train (folds 7 and 6)" same "$(cat "$TMP/c/ids_train.txt")" "$(printf 'A0002\nA1980')"
    check "cpsc: 2 missing" grep -q '"missing": 2' "$TMP/c/prepare.json"
    # y_train: A0002 NORM (index 4), A1980 PAC (index 5)
    yt=$(od -A n -t x1 -j 128 "$TMP/c/y_train.npy" | tr -d ' \n')
    check "cpsc: y_train bytes" same "$yt" "$zero$zero$zero$zero$one$zero$zero$zero$zero$zero$zero$zero$zero$zero$one$zero$zero$zero"
    rm "$C/icbeb_database.csv"
    "$MRMNET" prepare --cpsc "$C" --skip-missing --out "$TMP/c2" >/dev/null 2>&1
    check "cpsc without folds: random split" grep -q '"split": "random 80/10/10, seed 1 (no icbeb_database.csv)"' "$TMP/c2/prepare.json"
else
    echo "CPSC fixtures absent: CPSC part skipped"
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
