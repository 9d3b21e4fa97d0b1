#!/usr/bin/env python3
"""Writes synthetic SCP-ECG files that use what the sample files do not: custom Huffman tables with
table switching and escapes, reference-beat subtraction (sections 4 and 5), protocol version 1.3,
data without Huffman coding (no section 2). Built from the layout of EN 1064, independently of
the reader; the true samples are written beside the file.

usage: scp_synth.py VARIANT OUT.scp OUT.txt
  VARIANT: custom   v2.0, two custom tables (switching, 16-bit escapes), second differences,
                    reference beats subtracted from type-0 beats
           raw13    v1.3, no section 2 (int16 samples), first differences, no subtraction
           default  v2.0, the default table, no differences, reference beats subtracted
           badcode  as custom, but table 1 lacks the code of -3 that the data use
OUT.txt: "leads samples avm_nV interval_us" then every true sample, lead after lead."""
import math
import struct
import sys


def crc(b):
    c = 0xFFFF
    for x in b:
        c ^= x << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) & 0xFFFF if c & 0x8000 else (c << 1) & 0xFFFF
    return c


def rev(code, n):
    return int(format(code, "0%db" % n)[::-1], 2) if n else 0


class Bits:
    def __init__(self):
        self.bits = []

    def put(self, s):
        self.bits.extend(int(ch) for ch in s)

    def put_value(self, v, n):
        self.put(format(v & ((1 << n) - 1), "0%db" % n))

    def bytes(self):
        b = self.bits + [0] * (-len(self.bits) % 8)
        return bytes(int("".join(map(str, b[i:i + 8])), 2) for i in range(0, len(b), 8))


# custom tables: (prefix string, total bits, mode, base)
T1 = [("0", 1, 1, 0), ("100", 3, 1, 1), ("101", 3, 1, -1), ("1100", 4, 1, 2), ("1101", 4, 1, -2),
      ("11100", 5, 0, 2), ("11101", 21, 1, 0), ("11110", 5, 1, 3), ("11111", 5, 1, -3)]
T2 = [("0", 17, 1, 0), ("10", 2, 1, 0), ("11", 2, 0, 1)]
DEFAULT = [("0", 1, 1, 0)] + [(p, len(p), 1, v) for p, v in [
    ("100", 1), ("101", -1), ("1100", 2), ("1101", -2), ("11100", 3), ("11101", -3), ("111100", 4),
    ("111101", -4), ("1111100", 5), ("1111101", -5), ("11111100", 6), ("11111101", -6), ("111111100", 7),
    ("111111101", -7), ("1111111100", 8), ("1111111101", -8)]] + [("1111111110", 18, 1, 0), ("1111111111", 26, 1, 0)]


def encode_custom(vals, out):
    table = 1
    for k, v in enumerate(vals):
        want = 2 if (k // 50) % 2 else 1  # alternate tables every 50 values
        if want != table:
            out.put("11100" if table == 1 else "11")
            table = want
        if table == 1:
            hit = [p for p, tb, m, b in T1 if m == 1 and tb == len(p) and b == v]
            if hit:
                out.put(hit[0])
            else:
                out.put("11101")
                out.put_value(v, 16)
        else:
            if v == 0:
                out.put("10")
            else:
                out.put("0")
                out.put_value(v, 16)


def encode_default(vals, out):
    for v in vals:
        hit = [p for p, tb, m, b in DEFAULT if tb == len(p) and b == v and (v != 0 or p == "0")]
        if hit:
            out.put(hit[0])
        elif -128 <= v <= 127:
            out.put("1111111110")
            out.put_value(v, 8)
        else:
            out.put("1111111111")
            out.put_value(v, 16)


def diff(x, order):
    if order == 0:
        return list(x)
    if order == 1:
        return [x[0]] + [x[i] - x[i - 1] for i in range(1, len(x))]
    return x[:2] + [x[i] - 2 * x[i - 1] + x[i - 2] for i in range(2, len(x))]


def section(sid, body, version):
    if len(body) % 2:
        body += b"\0"
    length = 16 + len(body)
    reserved = b"SCPECG" if sid == 0 and version >= 20 else b"\0" * 6
    head = struct.pack("<HIBB", sid, length, version, version) + reserved
    return bytearray(b"\0\0" + head + body)


def main():
    variant, out_scp, out_txt = sys.argv[1:4]
    version = 13 if variant == "raw13" else 20
    n_leads, n, interval, avm = 3, 2500, 2000, 5000
    ids = [1, 2, 3]
    # true samples: a rhythm of beats plus slow waves, in units of avm nV
    beats = [300, 800, 1300, 1800, 2300]
    types = [0, 0, 1, 0, 0]
    x = []
    for l in range(n_leads):
        s = []
        for i in range(1, n + 1):
            v = 40 * math.sin(2 * math.pi * i / 700.0 + l) + 7 * math.sin(i / 13.0 * (l + 1))
            for b in beats:
                v += (300 - 60 * l) * math.exp(-((i - b) / 6.0) ** 2) - 50 * math.exp(-((i - b - 60) / 25.0) ** 2)
            s.append(int(round(v)))
        x.append(s)
    refsub = variant in ("custom", "default", "badcode")
    R, F = 200, 80
    ref = []
    for l in range(n_leads):
        ref.append([int(round((300 - 60 * l) * math.exp(-((j - F) / 6.0) ** 2) - 50 * math.exp(-((j - F - 60) / 25.0) ** 2)))
                    for j in range(1, R + 1)])
    zones = [(t, b - 60, b, b + 100) for t, b in zip(types, beats)]
    resid = [list(s) for s in x]
    if refsub:
        for l in range(n_leads):
            for t, sb, fc, se in zones:
                if t != 0:
                    continue
                for i in range(sb, se + 1):
                    j = i - fc + F
                    if 1 <= j <= R:
                        resid[l][i - 1] -= ref[l][j - 1]
    rdiff = {"custom": 2, "raw13": 1, "default": 0, "badcode": 2}[variant]
    fdiff = {"custom": 1, "raw13": 0, "default": 0, "badcode": 1}[variant]

    def enc(vals):
        if variant == "raw13":
            return b"".join(struct.pack("<h", v) for v in vals)
        bits = Bits()
        (encode_default if variant == "default" else encode_custom)(vals, bits)
        return bits.bytes()

    # section 1
    s1 = b""
    s1 += struct.pack("<BH", 2, 6) + b"SYN-1\0"
    s1 += struct.pack("<BHHB", 4, 3, 63, 1)
    s1 += struct.pack("<BHB", 8, 1, 2)
    s1 += struct.pack("<BHHBB", 25, 4, 2020, 6, 15)
    s1 += struct.pack("<BHBBB", 26, 3, 8, 30, 5)
    s1 += struct.pack("<BH", 255, 0)
    # section 2
    s2 = None
    if variant == "default":
        s2 = struct.pack("<H", 19999)
    elif variant != "raw13":
        t1 = [c for c in T1 if not (variant == "badcode" and c[3] == -3 and c[2] == 1)]
        s2 = struct.pack("<H", 2)
        for t in (t1, T2):
            s2 += struct.pack("<H", len(t))
            for p, tb, m, b in t:
                s2 += struct.pack("<BBBhI", len(p), tb, m, b, rev(int(p, 2), len(p)))
    # section 3
    flags = (1 if refsub else 0) | 4 | (n_leads << 3)
    s3 = struct.pack("<BB", n_leads, flags) + b"".join(struct.pack("<IIB", 1, n, i) for i in ids)
    # sections 4, 5
    s4 = s5 = None
    if refsub:
        s4 = struct.pack("<HHH", R * interval // 1000, F, len(zones))
        s4 += b"".join(struct.pack("<HIII", t, sb, fc, se) for t, sb, fc, se in zones)
        s4 += b"".join(struct.pack("<II", sb, se) for t, sb, fc, se in zones)
        data = [enc(diff(ref[l], fdiff)) for l in range(n_leads)]
        s5 = struct.pack("<HHBB", avm, interval, fdiff, 0) + b"".join(struct.pack("<H", len(d)) for d in data) + b"".join(data)
    data = [enc(diff(resid[l], rdiff)) for l in range(n_leads)]
    s6 = struct.pack("<HHBB", avm, interval, rdiff, 0) + b"".join(struct.pack("<H", len(d)) for d in data) + b"".join(data)

    bodies = {1: s1, 2: s2, 3: s3, 4: s4, 5: s5, 6: s6}
    secs = {i: section(i, b, version) for i, b in bodies.items() if b is not None}
    n_ptr = 12
    # section 0 size is fixed; place the others after it
    pos = 6 + 16 + 10 * n_ptr
    ptrs = b""
    layout = []
    for i in range(n_ptr):
        if i == 0:
            ptrs += struct.pack("<HII", 0, 16 + 10 * n_ptr, 7)
        elif i in secs:
            ptrs += struct.pack("<HII", i, len(secs[i]), pos + 1)
            layout.append(secs[i])
            pos += len(secs[i])
        else:
            ptrs += struct.pack("<HII", i, 0, 0)
    s0 = section(0, ptrs, version)
    body = bytearray()
    for s in [s0] + layout:
        s[0:2] = struct.pack("<H", crc(s[2:]))
        body += s
    f = bytearray(b"\0\0" + struct.pack("<I", 6 + len(body))) + body
    f[0:2] = struct.pack("<H", crc(f[2:]))
    open(out_scp, "wb").write(f)
    with open(out_txt, "w") as t:
        t.write("%d %d %d %d\n" % (n_leads, n, avm, interval))
        for l in range(n_leads):
            t.write("\n".join(str(v) for v in x[l]) + "\n")


main()
