#!/usr/bin/env python3
"""`mrmnet read --csv` against independent decoders.

1. Every fixture record (PTB-XL 100 and 500 Hz, MIT-BIH 100s in format 212, a Challenge 2020
   .hea + MATLAB v4 pair, an original CPSC2018 MATLAB v5 file) is decoded by tests/io/rawread.py
   from the raw bytes (numpy, scipy.io.loadmat) and compared value by value (1e-6 relative).
2. Synthetic records written here with numpy, byte by byte, in every supported format (8, 16, 24,
   32, 61, 80, 160, 212, 310, 311), with invalid-sample codes, several signal files, a 15-signal
   header, byte offsets, a header without a sample count, CRLF line ends: the CSV must equal the
   digital values this script generated, converted with its own gains and baselines.
3. Checksums: a correct one (signed or unsigned) reads "ok"; a wrong one reads "MISMATCH" and
   with --strict fails with exit 1 and a message naming the header, line and field.
Exit 77 when numpy or the mrmnet binary is missing.
"""
import os
import sys

from cli_testlib import SRC, TMP, check, end, need_mrmnet, skip
from cli_testlib import mrmnet as run

try:
    import numpy as np
except ImportError:
    skip("numpy missing")

need_mrmnet("no mrmnet binary (MRMNET)")
sys.path.insert(0, os.path.join(SRC, "tests", "io"))
import rawread  # noqa: E402


def parse_csv(text):
    lines = text.splitlines()
    names = lines[0].split(",")
    vals = np.array([[float(x) for x in l.split(",")] for l in lines[1:]], dtype=float)
    return names, vals.reshape(len(lines) - 1, len(names)).T


def same(a, b):
    return a.shape == b.shape and np.array_equal(np.isnan(a), np.isnan(b)) and \
        np.allclose(a, b, rtol=1e-6, atol=1e-12, equal_nan=True)


def compare(record, names, expected, what):
    r = run("read", "--csv", record)
    check(r.returncode == 0, "%s: exit %d: %s" % (what, r.returncode, r.stderr.strip()))
    if r.returncode:
        return
    got_names, got = parse_csv(r.stdout)
    check(got_names == names, "%s: names %s vs %s" % (what, got_names, names))
    ok = same(got, expected)
    if not ok and got.shape == expected.shape:
        i = np.argwhere(~np.isclose(got, expected, rtol=1e-6, atol=1e-12, equal_nan=True))[0]
        print("  first difference at signal %d sample %d: %r vs %r" % (i[0], i[1], got[tuple(i)], expected[tuple(i)]))
    check(ok, "%s: values differ (shape %s vs %s)" % (what, got.shape, expected.shape))


# ---- 1. fixtures against rawread.py --------------------------------------------------------
fixtures = os.path.join(SRC, "tests", "fixtures")
records = []
for sub in ("ptb-xl", "mitdb", "challenge2020", "cpsc2018"):
    d = os.path.join(fixtures, sub)
    for f in sorted(os.listdir(d)):
        p = os.path.join(d, f)
        if f.endswith(".hea") or (f.endswith(".mat") and not os.path.exists(p[:-4] + ".hea")):
            records.append(p)
check(len(records) >= 7, "expected at least 7 fixture records, found %d" % len(records))
have_scipy = True
try:
    import scipy.io  # noqa: F401
except ImportError:
    have_scipy = False
for p in records:
    if p.endswith(".mat") and not have_scipy:
        print("note: scipy missing, %s not compared" % p)
        continue
    names, data = rawread.read(p)
    compare(p, names, data, os.path.relpath(p, SRC))

# The real data beside the repository, when present: every Challenge 2020 and original CPSC2018
# record there, and every 100th PTB-XL record at 100 Hz and every 20th at 500 Hz.
shared = os.environ.get("MRM_SHARED", "")
if shared and os.path.isdir(os.path.join(shared, "data")):
    data = os.path.join(shared, "data")
    more = []
    for sub, every in (("cpsc2018/challenge2020_wfdb", 1), ("cpsc2018/original_mat", 1), ("ptb-xl/records100/00000", 100),
                       ("ptb-xl/records100/01000", 100), ("ptb-xl/records500/00000", 20), ("mitdb", 1)):
        d = os.path.join(data, sub)
        if not os.path.isdir(d):
            continue
        names = sorted(f for f in os.listdir(d) if f.endswith(".hea") or (f.endswith(".mat") and not
                                                                         os.path.exists(os.path.join(d, f[:-4] + ".hea"))))
        more += [os.path.join(d, f) for f in names[::every]]
    for p in more:
        if p.endswith(".mat") and not have_scipy:
            continue
        names, data_ = rawread.read(p)
        compare(p, names, data_, "shared " + p[len(data) + 1:])
    print("compared %d records of the shared data" % len(more))
else:
    print("note: no shared data, only the fixtures compared")

# A known value by hand: 100s.dat starts with bytes e3 33 f3: MLII = 0x3e3 = 995, V5 = 0x3f3 = 1011,
# both at gain 200, baseline 1024.
r = run("read", "--csv", os.path.join(fixtures, "mitdb", "100s"))
first = [float(x) for x in r.stdout.splitlines()[1].split(",")]
check(abs(first[0] - (995 - 1024) / 200) < 1e-12 and abs(first[1] - (1011 - 1024) / 200) < 1e-12, "100s first frame %s" % first)

# ---- 2. synthetic records in every format ------------------------------------------------
rng = np.random.default_rng(20240101)
BITS = {8: 8, 16: 16, 24: 24, 32: 32, 61: 16, 80: 8, 160: 16, 212: 12, 310: 10, 311: 10}
INVALID = rawread.INVALID


def encode(fmt, stream):
    """Bytes of a frame-major stream of digital values in a WFDB format (format 8: differences)."""
    v = np.asarray(stream, dtype=np.int64)
    n = len(v)
    if fmt == 16:
        return v.astype("<i2").tobytes()
    if fmt == 61:
        return v.astype(">i2").tobytes()
    if fmt == 160:
        return (v + 32768).astype("<u2").tobytes()
    if fmt == 32:
        return v.astype("<i4").tobytes()
    if fmt == 80:
        return (v + 128).astype(np.uint8).tobytes()
    if fmt == 24:
        u = v & 0xFFFFFF
        return np.stack([u & 0xFF, u >> 8 & 0xFF, u >> 16], 1).astype(np.uint8).tobytes()
    if fmt == 212:
        u = np.concatenate([v & 0xFFF, np.zeros(n % 2, np.int64)]).reshape(-1, 2)
        b = np.stack([u[:, 0] & 0xFF, (u[:, 0] >> 8) | (u[:, 1] >> 8) << 4, u[:, 1] & 0xFF], 1)
        return b.astype(np.uint8).tobytes()[:(3 * n + 1) // 2]
    if fmt in (310, 311):
        u = np.concatenate([v & 0x3FF, np.zeros(-n % 3, np.int64)]).reshape(-1, 3)
        if fmt == 310:
            w0 = u[:, 0] << 1 | (u[:, 2] & 0x1F) << 11
            w1 = u[:, 1] << 1 | (u[:, 2] >> 5) << 11
            b = np.stack([w0 & 0xFF, w0 >> 8, w1 & 0xFF, w1 >> 8], 1)
            tail = [0, 2, 4][n % 3]
        else:
            w = u[:, 0] | u[:, 1] << 10 | u[:, 2] << 20
            b = np.stack([w & 0xFF, w >> 8 & 0xFF, w >> 16 & 0xFF, w >> 24], 1)
            tail = [0, 2, 3][n % 3]
        out = b.astype(np.uint8).tobytes()
        return out[:len(out) - 4 + tail] if tail else out
    raise ValueError(fmt)


def digital_values(fmt, n, k, with_invalid=True):
    """(n, k) digital values valid for the format, with a few invalid codes."""
    bits = BITS[fmt]
    lo, hi = -(1 << (bits - 1)) + 1, (1 << (bits - 1)) - 1
    if fmt == 8:
        start = rng.integers(-1000, 1000, k)
        diffs = rng.integers(-128, 128, (n, k))
        return start, start + np.cumsum(diffs, 0)
    d = rng.integers(lo, hi + 1, (n, k))
    d[0] = rng.integers(-100, 100, k)
    if with_invalid and fmt in INVALID:
        d[rng.integers(1, n, 3), rng.integers(0, k, 3)] = INVALID[fmt]
    return None, d


def physical(d, fmt, gain, baseline):
    p = (d - baseline) / gain
    if fmt in INVALID:
        p = np.where(d == INVALID[fmt], np.nan, p)
    return p


def signal_line(fname, fmt_field, gain, baseline, units, adc_res, adc_zero, init, checksum, desc):
    g = "%s(%d)/%s" % (repr(gain), baseline, units) if baseline is not None else "%s/%s" % (repr(gain), units)
    return "%s %s %s %d %d %d %d 0 %s" % (fname, fmt_field, g, adc_res, adc_zero, init, checksum, desc)


def write_record(folder, name, files, n, fs=250, eol="\n", give_n=True, checksums_signed=True):
    """files: list of (file name, format, k, offset). Returns names, expected physical (S, n)."""
    os.makedirs(folder, exist_ok=True)
    lines, names, expected = [], [], []
    total = sum(f[2] for f in files)
    s_index = 0
    for fname, fmt, k, offset in files:
        start, d = digital_values(fmt, n, k)
        if fmt == 8:
            diffs = np.diff(np.vstack([start, d]), axis=0)
            raw = diffs.astype(np.int8).tobytes()
        else:
            raw = encode(fmt, d.ravel())
        with open(os.path.join(folder, fname), "wb") as f:
            f.write(bytes(rng.integers(0, 256, offset, dtype=np.uint8)) + raw)
        for j in range(k):
            s_index += 1
            gain = float(rng.choice([200.0, 1000.0, 12.5, 2.5e6]))
            baseline = int(rng.integers(-50, 50))
            init = int(start[j]) if fmt == 8 else int(d[0, j])
            csum = int(d[:, j].sum()) & 0xFFFF
            if checksums_signed and csum >= 32768:
                csum -= 65536
            fmt_field = "%d" % fmt + ("+%d" % offset if offset else "")
            if s_index % 3 == 0:
                fmt_field = "%dx1:0" % fmt + ("+%d" % offset if offset else "")
            desc = "lead %d of %s" % (s_index, fname)
            lines.append(signal_line(fname, fmt_field, gain, baseline, "mV", BITS[fmt], 0, init, csum, desc) + "  ")
            names.append(desc)
            expected.append(physical(d[:, j], fmt, gain, baseline))
    head = "%s %d %d%s" % (name, total, fs, " %d" % n if give_n else "")
    with open(os.path.join(folder, name + ".hea"), "w", newline="") as f:
        f.write(eol.join(["# synthetic record", head] + lines + ["#Age: 61", "# Sex: F", ""]))
    return names, np.array(expected)


syn = os.path.join(TMP, "synthetic")
for fmt in sorted(BITS):
    for n in (101, 100, 99):  # 3 signals x n: every remainder of the packed formats
        name = "f%d_%d" % (fmt, n)
        names, exp = write_record(syn, name, [(name + ".dat", fmt, 3, 0)], n)
        compare(os.path.join(syn, name), names, exp, "format %d, 3 signals x %d" % (fmt, n))
        rn, rd = rawread.read(os.path.join(syn, name))
        check(rn == names and same(rd, exp), "rawread.py itself on format %d x %d" % (fmt, n))
    # one signal alone, odd count, no sample count in the header (derived from the file size)
    name = "g%d" % fmt
    names, exp = write_record(syn, name, [(name + ".dat", fmt, 1, 0)], 7, give_n=False, eol="\r\n")
    compare(os.path.join(syn, name), names, exp, "format %d, 1 signal, no sample count, CRLF" % fmt)

# several signal files, byte offsets, mixed formats
names, exp = write_record(syn, "multi", [("multi_a.dat", 16, 2, 0), ("multi_b.dat", 212, 3, 0),
                                         ("multi_c.dat", 24, 1, 512), ("multi_d.dat", 8, 2, 0)], 333)
compare(os.path.join(syn, "multi"), names, exp, "four signal files in four formats")
r = run("read", os.path.join(syn, "multi"))
check(r.returncode == 0 and r.stdout.count(" ok ") >= 8 and "MISMATCH" not in r.stdout,
      "multi: summary should show every checksum ok:\n" + r.stdout)
check("age:      61" in r.stdout and "sex:      F" in r.stdout, "multi: comments Age/Sex parsed:\n" + r.stdout)

# 15 signals in one file
names, exp = write_record(syn, "wide", [("wide.dat", 16, 15, 0)], 250, checksums_signed=False)
compare(os.path.join(syn, "wide"), names, exp, "15 signals")
check(len(names) == 15, "15 names")

# ---- 3. checksum mismatch and --strict ---------------------------------------------------
hea = open(os.path.join(syn, "wide.hea")).read().split("\n")
parts = hea[3].split(" ")  # line 4 = signal 2 (line 1 is a comment)
parts[6] = str((int(parts[6]) + 1) % 65536)
hea[3] = " ".join(parts)
with open(os.path.join(syn, "wide_bad.hea"), "w") as f:
    f.write("\n".join(hea).replace("wide ", "wide_bad ", 1))
r = run("read", os.path.join(syn, "wide_bad"))
check(r.returncode == 0 and r.stdout.count("MISMATCH") == 1, "one MISMATCH in the summary:\n" + r.stdout + r.stderr)
r = run("read", "--strict", os.path.join(syn, "wide_bad"))
check(r.returncode == 1 and "wide_bad.hea:4" in r.stderr and "checksum" in r.stderr and r.stderr.startswith("mrmnet read: "),
      "--strict fails naming file:line and checksum: %d %r" % (r.returncode, r.stderr))
r = run("read", "--strict", "--csv", os.path.join(SRC, "tests", "fixtures", "ptb-xl", "00001_lr"))
check(r.returncode == 0, "--strict passes a good record")
# "wide" has good checksums but holds invalid-sample codes: a warning, an error with --strict
r = run("read", "--csv", os.path.join(syn, "wide"))
check(r.returncode == 0 and "warning" in r.stderr and "invalid sample" in r.stderr, "invalid samples warned: %r" % r.stderr)
r = run("read", "--strict", "--csv", os.path.join(syn, "wide"))
check(r.returncode == 1 and "invalid sample" in r.stderr and r.stdout == "", "--strict refuses invalid samples: %r" % r.stderr)

# usage errors
check(run("read").returncode == 2, "no argument: exit 2")
check(run("read", "--bogus", "x").returncode == 2, "unknown option: exit 2")
check(run("read", "--help").returncode == 0, "--help: exit 0")
r = run("read", os.path.join(syn, "no_such_record"))
check(r.returncode == 1 and "no_such_record" in r.stderr, "missing record: exit 1 naming it: %r" % r.stderr)

end()
