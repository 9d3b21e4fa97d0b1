#!/bin/bash
# mrmnet check: on the fixtures (one deliberately corrupted record), on clean copies, and on copies
# with a truncated signal file and a broken header.
set -u
[ -x "${MRMNET:-}" ] || { echo "skipped: no mrmnet binary"; exit 77; }
SRC=${MRM_SOURCE_DIR:-.}
T=${MRM_TMPDIR:-/tmp}/check
rm -rf "$T" && mkdir -p "$T"
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
expect() { # expect WHAT CONDITION...
    local what=$1; shift
    if "$@"; then ok; else bad "$what"; fi
}

# 1. The fixtures (other areas add theirs too): every record passes but the corrupted copy, which
#    fails on its checksum. Records counted here with find: *.hea, *.mat without a .hea, and the
#    files of the clinical formats (SCP-ECG, DICOM, EDF, XML).
n=0
while IFS= read -r f; do
    case $f in
    *.hea) n=$((n + 1)) ;;
    *.mat) [ -e "${f%.mat}.hea" ] || n=$((n + 1)) ;;
    *) n=$((n + 1)) ;;
    esac
done < <(find "$SRC/tests/fixtures" \( -name '*.hea' -o -name '*.mat' -o -iname '*.scp' -o -name '*.dcm' -o -name '*.edf' \
    -o -iname '*.xml' \) -type f)
expect "fixtures: at least 8 records ($n)" test $n -ge 8
out=$("$MRMNET" check "$SRC/tests/fixtures"); rc=$?
expect "fixtures: exit 1 (got $rc)" test $rc -eq 1
expect "fixtures: summary line (expected $n records): $out" grep -q "^$n records, $((n - 1)) ok, 1 failed\$" <<<"$out"
expect "fixtures: the corrupted record is named with its reason: $out" \
    grep -q '^FAIL .*malformed/corrupt_lr.hea: signal 5 (AVL): checksum mismatch (header 63430, data 63446)$' <<<"$out"
expect "fixtures: exactly one FAIL line" test "$(grep -c '^FAIL' <<<"$out")" -eq 1

# 2. Clean copies pass.
for d in ptb-xl mitdb challenge2020 cpsc2018; do cp -r "$SRC/tests/fixtures/$d" "$T/"; done
out=$("$MRMNET" check "$T"); rc=$?
expect "clean: exit 0 (got $rc): $out" test $rc -eq 0
expect "clean: summary: $out" grep -q '^7 records, 7 ok, 0 failed$' <<<"$out"

# 3. A truncated signal file, a header with a negative gain, a record without its signal file.
mkdir -p "$T/broken/deeper"
head -c 23000 "$T/ptb-xl/00002_lr.dat" > "$T/broken/deeper/00002_lr.dat"
cp "$T/ptb-xl/00002_lr.hea" "$T/broken/deeper/"
sed 's/^00001_lr 12/neg 12/; s/00001_lr.dat/neg.dat/; 3s/1000.0(0)/-1000.0(0)/' "$T/ptb-xl/00001_lr.hea" > "$T/broken/neg.hea"
cp "$T/ptb-xl/00001_lr.dat" "$T/broken/neg.dat"
printf 'lonely 1 100 10\nlonely.dat 16\n' > "$T/broken/lonely.hea"
out=$("$MRMNET" check "$T"); rc=$?
expect "broken: exit 1" test $rc -eq 1
expect "broken: summary: $out" grep -q '^10 records, 7 ok, 3 failed$' <<<"$out"
expect "broken: truncation reported: $out" grep -q '^FAIL .*deeper/00002_lr.hea: .*truncated.*24000.*23000' <<<"$out"
expect "broken: negative gain reported: $out" grep -q '^FAIL .*broken/neg.hea: .*neg.hea:3: signal 2: gain' <<<"$out"
expect "broken: missing signal file reported: $out" grep -q '^FAIL .*lonely.hea: .*lonely.dat.*not found' <<<"$out"

# 4. The real data beside the repository, when present: every record passes (PTB-XL and MIT-BIH
#    checksums, Challenge 2020 v4 files, CPSC2018 v5 files, the clinical formats) but the
#    handheld recorder's SCP file that does not follow the standard, refused with its reason.
if [ -d "${MRM_SHARED:-}/data" ]; then
    out=$("$MRMNET" check "$MRM_SHARED/data"); rc=$?
    expect "shared data: exit 1 (got $rc): $(tail -3 <<<"$out")" test $rc -eq 1
    expect "shared data: only the non-standard SCP file fails: $(grep '^FAIL' <<<"$out" | head -3)" \
        test "$(grep -c '^FAIL' <<<"$out")" -eq 1
    expect "shared data: the non-standard SCP file is named with its reason" \
        grep -q '^FAIL .*healforce_62.SCP: .*not a standard SCP-ECG file' <<<"$out"
    n=$(tail -1 <<<"$out" | sed -n 's/^\([0-9]*\) records, [0-9]* ok, 1 failed$/\1/p')
    expect "shared data: there are many: $(tail -1 <<<"$out")" test "${n:-0}" -ge 100
else
    echo "note: no shared data"
fi

# 5. Usage.
"$MRMNET" check >/dev/null 2>&1; expect "no argument: exit 2" test $? -eq 2
"$MRMNET" check --help >/dev/null; expect "--help: exit 0" test $? -eq 0
"$MRMNET" check "$T/no/such/dir" >/dev/null 2>&1; expect "missing folder: exit 1" test $? -eq 1

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
