"""Hostile or doubtful inputs are refused or reported, each with its reason:
- a header whose signal file is an absolute path, climbs out with '..', or is a symbolic link that
  leads out of the record's folder is refused (read, predict,
  check, prepare), naming the header line;
- checksum mismatches and invalid samples are warnings in read, predict and prepare (counted in
  predict --json and prepare.json), errors with --strict;
- NaN or an infinity in an .npy given to forward / backward is refused, naming the file and the
  first bad element's index;
- an option value out of range names the option and its valid range (exit 2);
- a labels CSV listing a record twice is an error naming both lines; rows without labels are
  dropped and counted;
- predict finds records in subfolders, says "no records found in DIR" for a folder without any, and
  its --json / --csv carry one entry per input, with the error where it failed.
Expected values come from the fixtures' raw bytes and headers (no numpy needed)."""
import csv
import io
import json
import os
import shutil
import struct

from cli_testlib import SRC, TMP, check, end, need_mrmnet, prepare, read_lines, run

need_mrmnet()
FIX = os.path.join(SRC, "tests", "fixtures")
MODEL = os.path.join(SRC, "models", "ptbxl-superdiagnostic.safetensors")
W = os.path.join(FIX, "model", "ref_weights.safetensors")
X = os.path.join(FIX, "model", "ref_input.npy")
Y = os.path.join(FIX, "model", "ref_labels.npy")
PTB = os.path.join(FIX, "ptb-xl")
CORRUPT = os.path.join(FIX, "malformed", "corrupt_lr")


def fresh(name):
    d = os.path.join(TMP, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def copy_record(src, dst_dir, name):
    """Copies a one-file WFDB record under a new name (header and signal file renamed)."""
    base = os.path.basename(src)
    text = open(src + ".hea").read().replace(base, name)
    open(os.path.join(dst_dir, name + ".hea"), "w").write(text)
    shutil.copy(src + ".dat", os.path.join(dst_dir, name + ".dat"))


# ---- signal files outside the record's folder ----------------------------------------------------
hd = fresh("hostile")
lines = open(os.path.join(PTB, "00001_lr.hea")).read().splitlines()
for name, target in (("up", "../../../etc/passwd"), ("abs", "/etc/passwd"), ("mid", "x/../../00001_lr.dat")):
    out = [lines[0].replace("00001_lr", name)] + [lines[1].replace("00001_lr.dat", target)] + \
          [l.replace("00001_lr.dat", name + ".dat") for l in lines[2:]]
    open(os.path.join(hd, name + ".hea"), "w").write("\n".join(out) + "\n")
    shutil.copy(os.path.join(PTB, "00001_lr.dat"), os.path.join(hd, name + ".dat"))
    hea = os.path.join(hd, name + ".hea")
    rc, so, se = run("read", hea, expect=1)
    check(rc == 1 and "%s:2: signal 1: file name: '%s' leaves the record's folder" % (hea, target) in se,
          "read refuses signal file %s naming the header line: %s" % (target, se.strip()))
    rc, so, se = run("predict", "--model", MODEL, "--json", hea, expect=1)
    res = json.loads(so) if so.strip() else []
    check(rc == 1 and len(res) == 1 and "leaves the record's folder" in res[0].get("error", "") and "labels" not in res[0],
          "predict refuses %s: %s" % (target, so + se))
# a signal file that is a symbolic link out of the folder is refused; one that stays inside is read
ld = fresh("links")
outside = fresh("links_outside")
shutil.copy(os.path.join(PTB, "00001_lr.dat"), os.path.join(outside, "real.dat"))
for name, target in (("out", os.path.join(outside, "real.dat")), ("in", "inside/real.dat")):
    open(os.path.join(ld, name + ".hea"), "w").write(open(os.path.join(PTB, "00001_lr.hea")).read().replace("00001_lr", name))
    os.makedirs(os.path.join(ld, "inside"), exist_ok=True)
    shutil.copy(os.path.join(PTB, "00001_lr.dat"), os.path.join(ld, "inside", "real.dat"))
    os.symlink(target if target.startswith("/") else os.path.join(ld, target), os.path.join(ld, name + ".dat"))
rc, so, se = run("read", os.path.join(ld, "out.hea"), expect=1)
check(rc == 1 and "is a link that leads out of the record's folder; refused" in se, "read refuses a link out of the folder: " + se.strip())
rc, so, se = run("read", os.path.join(ld, "in.hea"), expect=0)
check(rc == 0, "a link inside the folder is read: " + se.strip())
# a folder of links to records (header and signal file both linked to the record's real folder) is read
fl = fresh("folder_of_links")
for ext in (".hea", ".dat"):
    os.symlink(os.path.join(PTB, "00001_lr" + ext), os.path.join(fl, "00001_lr" + ext))
rc, so, se = run("read", os.path.join(fl, "00001_lr.hea"), expect=0)
check(rc == 0, "a folder of links to a record's files is read: " + se.strip())
rc, so, se = run("predict", "--model", MODEL, "--json", os.path.join(ld, "out.hea"), expect=1)
check(rc == 1 and "leads out of the record's folder" in so, "predict refuses the link out: " + so[-300:])

rc, so, se = run("check", hd, expect=1)
check(rc == 1 and so.count("leaves the record's folder") == 3, "check reports the three: " + so)
# a subfolder inside the record's folder stays allowed
os.makedirs(os.path.join(hd, "ok", "sig"))
open(os.path.join(hd, "ok", "fine.hea"), "w").write(
    "\n".join([lines[0].replace("00001_lr", "fine")] + [l.replace("00001_lr.dat", "sig/fine.dat") for l in lines[1:]]) + "\n")
shutil.copy(os.path.join(PTB, "00001_lr.dat"), os.path.join(hd, "ok", "sig", "fine.dat"))
rc, so, se = run("read", os.path.join(hd, "ok", "fine"))
check(rc == 0 and "12" in so, "a signal file in a subfolder of the record's folder is read: " + se)

# ---- integrity: checksum mismatch and invalid samples ---------------------------------------------
rc, so, se = run("read", CORRUPT, "--csv")
check(rc == 0 and "warning" in se and "signal 5 (AVL): checksum mismatch" in se, "read warns of the checksum: " + se)
rc, so, se = run("read", CORRUPT, "--strict", expect=1)
check(rc == 1 and "checksum" in se, "read --strict refuses it: " + se)
idir = fresh("integrity")
# a record whose lead V1 holds four invalid samples (-32768, format 16's invalid code)
raw = bytearray(open(os.path.join(PTB, "00001_lr.dat"), "rb").read())
for t in (10, 11, 500, 999):
    struct.pack_into("<h", raw, (t * 12 + 6) * 2, -32768)
hl = open(os.path.join(PTB, "00001_lr.hea")).read().replace("00001_lr", "gaps").splitlines()
# the checksum (field 7) covers the invalid codes too: recompute it from the raw bytes
vals = struct.unpack("<%dh" % (len(raw) // 2), raw)
for s in range(12):
    f = hl[1 + s].split()
    f[6] = str(sum(vals[s::12]) & 0xFFFF)
    hl[1 + s] = " ".join(f)
open(os.path.join(idir, "gaps.hea"), "w").write("\n".join(hl) + "\n")
open(os.path.join(idir, "gaps.dat"), "wb").write(raw)
gaps = os.path.join(idir, "gaps")
rc, so, se = run("read", gaps)
check(rc == 0 and "4 invalid samples" in se and "checksum" not in se, "read warns of invalid samples: " + se)
rc, so, se = run("read", gaps, "--strict", expect=1)
check(rc == 1 and "4 invalid samples" in se, "read --strict refuses invalid samples: " + se)

good = os.path.join(PTB, "00002_lr")
rc, so, se = run("predict", "--model", MODEL, "--json", CORRUPT, gaps, good)
res = json.loads(so) if rc == 0 else []
check(rc == 0 and len(res) == 3, "predict labels all three without --strict: " + se)
if len(res) == 3:
    check(res[0]["integrity"] == {"checksum_mismatches": 1, "init_value_mismatches": 0, "invalid_samples": 0},
          "predict --json counts the checksum mismatch: %s" % res[0]["integrity"])
    check(res[1]["integrity"]["invalid_samples"] == 4, "predict --json counts invalid samples")
    check(res[2]["integrity"] == {"checksum_mismatches": 0, "init_value_mismatches": 0, "invalid_samples": 0}, "a clean record")
check("warning: %s: signal 5 (AVL): checksum mismatch" % CORRUPT in se, "predict warns of the checksum: " + se)
check("warning: %s: 4 invalid samples" % gaps in se, "predict warns of invalid samples: " + se)
rc, so, se = run("predict", "--model", MODEL, "--json", "--strict", CORRUPT, gaps, good, expect=1)
res = json.loads(so) if so.strip() else []
check(rc == 1 and [("error" in r) for r in res] == [True, True, False], "predict --strict: two errors, one labelled: " + so)

# prepare: a folder of records with a labels table (folds so that the split is fixed)
pdir = fresh("precords")
for i, r in enumerate(("00001_lr", "00002_lr", "01000_lr")):
    shutil.copy(os.path.join(PTB, r + ".hea"), pdir)
    shutil.copy(os.path.join(PTB, r + ".dat"), pdir)
copy_record(CORRUPT, pdir, "corrupt_lr")
shutil.copy(gaps + ".hea", pdir)
shutil.copy(gaps + ".dat", pdir)
table = os.path.join(pdir, "labels.csv")
open(table, "w").write("record,labels,fold\n00001_lr,NORM,1\ncorrupt_lr,MI,1\ngaps,NORM;MI,1\n00002_lr,MI,2\n"
                       "01000_lr,NORM,3\n")
out = os.path.join(TMP, "prep_integrity")
p = prepare(out, "--records", pdir, "--labels", table, "--folds", "1/2/3")
check(p.returncode == 0, "prepare with warnings succeeds: " + p.stderr[-500:])
if p.returncode == 0:
    pj = json.load(open(os.path.join(out, "prepare.json")))
    check(pj.get("integrity", {}).get("checksum_mismatch") == 1 and pj["integrity"]["invalid_samples"] == 1,
          "prepare.json counts the records: %s" % pj.get("integrity"))
    check(pj["preprocessing"]["nan_samples"] == 4, "prepare.json: 4 invalid samples set to 0")
check("warning: record corrupt_lr: signal 5 (AVL): checksum mismatch" in p.stderr, "prepare warns: " + p.stderr[-500:])
check("warning: record gaps: 4 invalid samples" in p.stderr, "prepare warns of invalid samples")
p = prepare(out, "--records", pdir, "--labels", table, "--folds", "1/2/3", "--strict")
check(p.returncode == 1 and "corrupt_lr" in p.stderr and "checksum" in p.stderr and not os.path.exists(out),
      "prepare --strict refuses: " + p.stderr[-500:])

# ---- labels tables: duplicate rows, rows without labels ------------------------------------------
dup = os.path.join(pdir, "dup.csv")
open(dup, "w").write("record,labels,fold\n00001_lr,NORM,1\n00002_lr,MI,2\n01000_lr,NORM,3\n00001_lr,MI,1\n")
p = prepare(os.path.join(TMP, "prep_dup"), "--records", pdir, "--labels", dup, "--folds", "1/2/3")
check(p.returncode == 1 and "dup.csv:5: record '00001_lr' is listed again (first at line 2)" in p.stderr,
      "a duplicate row names both lines: " + p.stderr[-300:])
nolab = os.path.join(pdir, "nolab.csv")
open(nolab, "w").write("record,labels,fold\n00001_lr,NORM,1\ncorrupt_lr,,1\n00002_lr,MI,2\n01000_lr,NORM,3\ngaps, ,1\n")
out = os.path.join(TMP, "prep_nolab")
p = prepare(out, "--records", pdir, "--labels", nolab, "--folds", "1/2/3")
check(p.returncode == 0, "rows without labels: " + p.stderr[-300:])
if p.returncode == 0:
    pj = json.load(open(os.path.join(out, "prepare.json")))
    check(pj["dropped"]["no_label"] == 2 and pj["records"] == 3 and pj["records_listed"] == 5,
          "two rows without labels dropped and counted: %s %s" % (pj["dropped"], pj["records"]))
    check(read_lines(os.path.join(out, "ids_train.txt")) == ["00001_lr"], "the dropped rows are not in the training split")
    check("2 without a label" in p.stdout, "the summary says so: " + p.stdout)

abs_csv = os.path.join(pdir, "abs.csv")
open(abs_csv, "w").write("record,labels,fold\n00001_lr,NORM,1\n/etc/hostname,MI,2\n")
p = prepare(os.path.join(TMP, "prep_abs"), "--records", pdir, "--labels", abs_csv, "--folds", "1/2/3")
check(p.returncode == 1 and "abs.csv:3: record:" in p.stderr and "leaves the records folder" in p.stderr,
      "an absolute record path in a labels table is refused: " + p.stderr[-300:])
# PTB-XL's table naming a file outside its folder
px = fresh("ptbxl_abs")
shutil.copytree(os.path.join(FIX, "prepare", "ptb-xl"), px, dirs_exist_ok=True)
db = open(os.path.join(px, "ptbxl_database.csv")).read().splitlines()
db[1] = db[1].replace("records100/00000/00001_lr", "../../../../etc/hostname")
open(os.path.join(px, "ptbxl_database.csv"), "w").write("\n".join(db) + "\n")
p = prepare(os.path.join(TMP, "prep_pabs"), "--ptbxl", px)
check(p.returncode == 1 and "ptbxl_database.csv:2: filename_lr: '../../../../etc/hostname' leaves the PTB-XL folder" in p.stderr,
      "PTB-XL's table naming a file outside its folder: " + p.stderr[-300:])

# ---- NaN and infinities in forward / backward inputs ---------------------------------------------
def npy_with(path, src, index, value):
    """Copies the float32 .npy src to path with the element at flat index set to value."""
    data = bytearray(open(src, "rb").read())
    hlen = struct.unpack("<H", data[8:10])[0] + 10
    struct.pack_into("<f", data, hlen + 4 * index, value)
    open(path, "wb").write(data)


bad_x = os.path.join(TMP, "nan_x.npy")
npy_with(bad_x, X, 12000 + 3 * 1000 + 250, float("nan"))  # record 1, lead 3, sample 250
rc, _, se = run("forward", "--model", W, "--input", bad_x, "--out", os.path.join(TMP, "fw"), expect=1)
check(rc == 1 and bad_x + ": element [1, 3, 250]" in se and "nan" in se, "forward refuses NaN: " + se)
rc, _, se = run("backward", "--model", W, "--input", bad_x, "--labels", Y, "--out", os.path.join(TMP, "g.safetensors"), expect=1)
check(rc == 1 and bad_x + ": element [1, 3, 250]" in se, "backward refuses NaN in X: " + se)
inf_x = os.path.join(TMP, "inf_x.npy")
npy_with(inf_x, X, 7, float("-inf"))
rc, _, se = run("forward", "--model", W, "--input", inf_x, "--out", os.path.join(TMP, "fw"), expect=1)
check(rc == 1 and "element [0, 0, 7]" in se and "-inf" in se, "forward refuses -inf: " + se)
bad_y = os.path.join(TMP, "nan_y.npy")
npy_with(bad_y, Y, 1, float("nan"))
rc, _, se = run("backward", "--model", W, "--input", X, "--labels", bad_y, "--out", os.path.join(TMP, "g.safetensors"), expect=1)
check(rc == 1 and bad_y + ": element [0, 1]" in se, "backward refuses NaN in the labels: " + se)
check(not os.path.exists(os.path.join(TMP, "g.safetensors")), "nothing written")

# ---- option values out of range name the option and its range --------------------------------
REC = os.path.join(PTB, "00001_lr")
cases = [
    (["predict", "--model", MODEL, "--threshold", "2", REC], "--threshold: '2' is not a number in [0, 1]"),
    (["predict", "--model", MODEL, "--threshold", "-0.1", REC], "--threshold: '-0.1' is not a number in [0, 1]"),
    (["predict", "--model", MODEL, "--min-seconds", "-5", REC], "--min-seconds: '-5' is not a number in [0, inf)"),
    (["predict", "--model", MODEL, "--batch", "0", REC], "--batch: '0' is not an integer in [1, 4096]"),
    (["train", "--data", "p", "--out", "r", "--lr", "0"], "--lr: '0' is not a number in (0, inf)"),
    (["train", "--data", "p", "--out", "r", "--dropout", "1"], "--dropout: '1' is not a number in [0, 1)"),
    (["train", "--data", "p", "--out", "r", "--beta2", "nan"], "--beta2: 'nan' is not a number in [0, 1)"),
    (["train", "--data", "p", "--out", "r", "--weight-decay", "-1"], "--weight-decay: '-1' is not a number in [0, inf)"),
    (["train", "--data", "p", "--out", "r", "--seed", "-1"], "--seed: '-1' is not an integer in [0, 18446744073709551615]"),
    (["train", "--data", "p", "--out", "r", "--seed", "99999999999999999999"], "--seed: '99999999999999999999' is not an integer"),
    (["train", "--data", "p", "--out", "r", "--epochs", "0"], "--epochs: '0' is not an integer in [1, 1000000]"),
    (["eval", "--model", MODEL, "--data", "p", "--resamples", "-1"], "--resamples: '-1' is not an integer in [0, 100000]"),
    (["eval", "--model", MODEL, "--data", "p", "--seed", "x"], "--seed: 'x' is not an integer"),
    (["prepare", "--records", "d", "--labels", "l", "--out", "o", "--threads", "0"], "--threads: '0' is not an integer in [1, 1024]"),
    (["init", "--classes", "0", "--out", "w"], "--classes: '0' is not an integer in [1, 100000]"),
    (["forward", "--model", W, "--input", X, "--out", "o", "--batch", "-3"], "--batch: '-3' is not an integer in [1, 65536]"),
    (["bench", "--peak", "0"], "--peak: '0' is not a number in (0, inf)"),
    (["bench", "--engine-isa", "sse9"], "--engine-isa: 'sse9' is not a kernel set; the sets: portable, avx2, avx512"),
    (["predict", "--model", MODEL, "--engine-isa", "AVX2", REC], "--engine-isa: 'AVX2' is not a kernel set"),
]
for args, want in cases:
    rc, _, se = run(*args, expect=2)
    check(rc == 2 and want in se, "mrmnet %s: %s -> %d %s" % (args[0], want, rc, se.strip()[:200]))

# ---- predict on folders ---------------------------------------------------------------------------
tree = fresh("tree")
for sub, r in (("a", "00001_lr"), ("a/b", "00002_lr"), ("c", "01000_lr")):
    os.makedirs(os.path.join(tree, sub), exist_ok=True)
    shutil.copy(os.path.join(PTB, r + ".hea"), os.path.join(tree, sub))
    shutil.copy(os.path.join(PTB, r + ".dat"), os.path.join(tree, sub))
os.makedirs(os.path.join(tree, "empty"))
rc, so, se = run("predict", "--model", MODEL, "--json", tree)
res = json.loads(so) if rc == 0 else []
want = [os.path.join(tree, p) for p in ("a/00001_lr.hea", "a/b/00002_lr.hea", "c/01000_lr.hea")]
check(rc == 0 and [r["record"] for r in res] == want, "predict finds records in subfolders: %s %s" % (so[:300], se))
empty = os.path.join(tree, "empty")
rc, so, se = run("predict", "--model", MODEL, "--json", empty, expect=1)
check(rc == 1 and "no records found in " + empty in se, "an empty folder: " + se)
check(json.loads(so) == [{"record": empty, "error": "no records found in " + empty}] if so.strip() else False,
      "its JSON entry: " + so)
rc, so, se = run("predict", "--model", MODEL, "--csv", os.path.join(tree, "c"), empty, os.path.join(tree, "none"), expect=1)
rows = list(csv.reader(io.StringIO(so)))
check(rc == 1 and len(rows) == 4 and rows[0][-1] == "error", "csv: a header and one row an input: %s" % rows)
if len(rows) == 4:
    check(rows[1][-1] == "" and rows[1][-2] != "" or rows[1][1] != "", "the labelled record's row has no error")
    check(rows[2][0] == empty and rows[2][-1] == "no records found in " + empty and rows[2][1] == "", "the empty folder's row")
    check(rows[3][0] == os.path.join(tree, "none") and rows[3][-1] != "", "the missing record's row: %s" % rows[3])
    check(len(set(len(r) for r in rows)) == 1, "every row has every column")
end()
