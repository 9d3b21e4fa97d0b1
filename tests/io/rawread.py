#!/usr/bin/env python3
"""An independent reader of ECG records, for checking `mrmnet read --csv`.

It decodes the raw bytes with numpy (its own small header parser, np.frombuffer per WFDB format)
and reads MATLAB v5 files with scipy.io.loadmat, then prints the same CSV as `mrmnet read --csv`:
a line of signal names, then one line per sample with each signal's physical value
((digital - baseline) / gain; 'nan' for the format's invalid-sample code).

usage: rawread.py RECORD      (RECORD: name, name.hea, or an original CPSC2018 name.mat)
"""
import os
import re
import sys

import numpy as np

INVALID = {16: -32768, 61: -32768, 160: -32768, 24: -8388608, 32: -2147483648, 80: -128, 212: -2048, 310: -512, 311: -512}


def parse_header(path):
    lines = []
    with open(path, "rb") as f:
        for raw in f.read().decode("latin-1").splitlines():
            s = raw.strip()
            if s and not s.startswith("#"):
                lines.append(s)
    rec = lines[0].split()
    nsig = int(rec[1])
    nsamp = int(rec[3]) if len(rec) > 3 else 0
    sigs = []
    for s in lines[1:1 + nsig]:
        t = s.split(None, 8)
        m = re.fullmatch(r"(\d+)(?:x1)?(?::0)?(?:\+(\d+))?", t[1])
        fmt, off = int(m.group(1)), int(m.group(2) or 0)
        gain, baseline, has_base = 200.0, 0, False
        if len(t) > 2:
            g = re.fullmatch(r"([-+0-9.eE]+)(?:\((-?\d+)\))?(?:/(.*))?", t[2])
            gain = float(g.group(1)) or 200.0
            if g.group(2) is not None:
                baseline, has_base = int(g.group(2)), True
        adc_zero = int(t[4]) if len(t) > 4 else 0
        init = int(t[5]) if len(t) > 5 else adc_zero
        if not has_base:
            baseline = adc_zero
        desc = t[8] if len(t) > 8 else ""
        sigs.append(dict(file=t[0], fmt=fmt, off=off, gain=gain, baseline=baseline, init=init, desc=desc))
    return nsamp, sigs


def sign_extend(v, bits):
    v = v.astype(np.int64)
    return np.where(v >= 1 << (bits - 1), v - (1 << bits), v)


def decode(fmt, b, n_values, init):
    """n_values digital values (frame-major stream) from the bytes b; init: per-signal starts for format 8."""
    if fmt == 16:
        return np.frombuffer(b, "<i2", n_values).astype(np.int64)
    if fmt == 61:
        return np.frombuffer(b, ">i2", n_values).astype(np.int64)
    if fmt == 160:
        return np.frombuffer(b, "<u2", n_values).astype(np.int64) - 32768
    if fmt == 32:
        return np.frombuffer(b, "<i4", n_values).astype(np.int64)
    if fmt == 80:
        return np.frombuffer(b, np.uint8, n_values).astype(np.int64) - 128
    if fmt == 24:
        a = np.frombuffer(b, np.uint8, 3 * n_values).reshape(-1, 3).astype(np.int64)
        return sign_extend(a[:, 0] | a[:, 1] << 8 | a[:, 2] << 16, 24)
    if fmt == 212:
        nb = (3 * n_values + 1) // 2
        a = np.frombuffer(b + b"\0\0", np.uint8, nb + (-nb) % 3).reshape(-1, 3).astype(np.int64)
        even = a[:, 0] | (a[:, 1] & 0x0F) << 8
        odd = a[:, 2] | (a[:, 1] & 0xF0) << 4
        return sign_extend(np.stack([even, odd], 1).ravel()[:n_values], 12)
    if fmt in (310, 311):
        ng = (n_values + 2) // 3
        a = np.frombuffer(b + b"\0" * 4, np.uint8, 4 * ng).reshape(-1, 4).astype(np.int64)
        if fmt == 310:
            w0, w1 = a[:, 0] | a[:, 1] << 8, a[:, 2] | a[:, 3] << 8
            s = [(w0 >> 1) & 0x3FF, (w1 >> 1) & 0x3FF, (w0 >> 11) | (w1 >> 11) << 5]
        else:
            w = a[:, 0] | a[:, 1] << 8 | a[:, 2] << 16 | a[:, 3] << 24
            s = [w & 0x3FF, (w >> 10) & 0x3FF, (w >> 20) & 0x3FF]
        return sign_extend(np.stack(s, 1).ravel()[:n_values], 10)
    if fmt == 8:
        k = len(init)
        d = np.frombuffer(b, np.int8, n_values).astype(np.int64).reshape(-1, k)
        return (np.cumsum(d, 0) + np.array(init)).ravel()
    raise SystemExit("rawread: format %d not handled" % fmt)


def bytes_per_stream(fmt, n):
    per = {16: 2, 61: 2, 160: 2, 32: 4, 24: 3, 80: 1, 8: 1}
    if fmt in per:
        return per[fmt] * n
    if fmt == 212:
        return (3 * n + 1) // 2
    return 4 * (n // 3) + [0, 2, 4 if fmt == 310 else 3][n % 3]


def values_in_bytes(fmt, nb):
    per = {16: 2, 61: 2, 160: 2, 32: 4, 24: 3, 80: 1, 8: 1}
    if fmt in per:
        return nb // per[fmt]
    if fmt == 212:
        return nb // 3 * 2 + (nb % 3 >= 2)
    if fmt == 310:
        return nb // 4 * 3 + (nb % 4 >= 2)
    return nb // 4 * 3 + [0, 0, 1, 2][nb % 4]


def read_wfdb(hea):
    nsamp, sigs = parse_header(hea)
    folder = os.path.dirname(hea)
    groups = []  # [first, count]
    for i, s in enumerate(sigs):
        if i and s["file"] == sigs[i - 1]["file"]:
            groups[-1][1] += 1
        else:
            groups.append([i, 1])
    raws = []
    for first, k in groups:
        s = sigs[first]
        with open(os.path.join(folder, s["file"]), "rb") as f:
            raws.append(f.read()[s["off"]:])
    if nsamp == 0:
        nsamp = min(values_in_bytes(sigs[g[0]]["fmt"], len(r)) // g[1] for g, r in zip(groups, raws))
    out = np.zeros((len(sigs), nsamp))
    for (first, k), raw in zip(groups, raws):
        fmt = sigs[first]["fmt"]
        dig = decode(fmt, raw, nsamp * k, [sigs[first + j]["init"] for j in range(k)]).reshape(nsamp, k)
        for j in range(k):
            s = sigs[first + j]
            d = dig[:, j]
            phys = (d - s["baseline"]) / s["gain"]
            if fmt in INVALID:
                phys[d == INVALID[fmt]] = np.nan
            out[first + j] = phys
    return [s["desc"] or "signal%d" % (i + 1) for i, s in enumerate(sigs)], out


def read_mat_v5(path):
    import scipy.io
    ecg = scipy.io.loadmat(path)["ECG"][0, 0]
    return ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"], np.asarray(ecg["data"], float)


def read(path):
    base = path[:-4] if path.endswith((".hea", ".mat")) else path
    if os.path.exists(base + ".hea"):
        return read_wfdb(base + ".hea")
    return read_mat_v5(base + ".mat")


def main():
    names, data = read(sys.argv[1])
    w = sys.stdout.write
    w(",".join(names) + "\n")
    for t in range(data.shape[1]):
        w(",".join("nan" if np.isnan(v) else "%.9g" % v for v in data[:, t]) + "\n")


if __name__ == "__main__":
    main()
