#!/usr/bin/env python3
"""Writes the hand-made seed files of tests/fuzz/corpus/ (small valid and near-valid inputs for
the harnesses whose fixtures are too large to seed from). Run from anywhere; rewrites the files.
Needs only the Python standard library."""
import json
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def out(name, sub, data):
    d = os.path.join(HERE, "corpus", sub)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- MATLAB v5: struct ECG {sex: char, age: double, data: 12 x T} -----------------------------
def el(t, payload):
    n = len(payload)
    if n <= 4 and t != 14:
        return struct.pack("<HH", t, n) + payload + b"\0" * (4 - n)
    return struct.pack("<II", t, n) + payload + b"\0" * ((8 - n % 8) % 8)


def matrix(cls, dims, name, parts):
    flags = el(6, struct.pack("<II", cls, 0))
    d = el(5, struct.pack("<%di" % len(dims), *dims))
    nm = el(1, name.encode())
    body = flags + d + nm + b"".join(parts)
    return struct.pack("<II", 14, len(body)) + body


def mat5(T, data_type, compressed):
    vals = [((s + 1) * 3 + t * 7) % 50 - 25 for t in range(T) for s in range(12)]  # column-major
    if data_type == "double":
        data = el(9, struct.pack("<%dd" % len(vals), *[v / 100 for v in vals]))
    else:  # int16 storage of a double matrix, as MATLAB saves integer-valued data
        data = el(3, struct.pack("<%dh" % len(vals), *vals))
    sex = matrix(4, [1, 4], "", [el(4, "Male".encode("utf-16-le"))])
    age = matrix(6, [1, 1], "", [el(9, struct.pack("<d", 52.0))])
    dat = matrix(6, [12, T], "", [data])
    names = b"".join(n.encode().ljust(8, b"\0") for n in ("sex", "age", "data"))
    ecg = matrix(2, [1, 1], "ECG", [el(5, struct.pack("<i", 8)), el(1, names), sex, age, dat])
    hdr = b"MATLAB 5.0 MAT-file, written by tests/fuzz/make_corpus.py".ljust(116) + b"\0" * 8 + b"\x00\x01IM"
    if compressed:
        z = zlib.compress(ecg)
        return hdr + struct.pack("<II", 15, len(z)) + z
    return hdr + ecg


out("ecg_double.mat", "mat_v5", mat5(20, "double", False))
out("ecg_double_z.mat", "mat_v5", mat5(20, "double", True))
out("ecg_int16_z.mat", "mat_v5", mat5(40, "int16", True))

# ---- MATLAB v4 (Challenge 2020 signal file) with the header the mat_v4 harness derives -------
def mat4(rows, cols):
    vals = [(r * 11 + c * 5) % 200 - 100 for c in range(cols) for r in range(rows)]
    return struct.pack("<5i", 30, rows, cols, 0, 4) + b"val\0" + struct.pack("<%dh" % len(vals), *vals)


out("val_12x50.mat", "mat_v4", mat4(12, 50))
out("val_2x10.mat", "mat_v4", mat4(2, 10))

# ---- safetensors -------------------------------------------------------------------------------
def st(tensors, meta):
    head, blobs, off = {}, b"", 0
    if meta is not None:
        head["__metadata__"] = meta
    for name, dtype, shape, raw in tensors:
        head[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs += raw
        off += len(raw)
    h = json.dumps(head, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + blobs


meta = {"format": "mrmnet-1", "n_classes": "5", "width": "4", "hi_attention": "0"}
out("meta_only_w4.safetensors", "safetensors", st([], meta))
out("two_tensors.safetensors", "safetensors",
    st([("fc1.bias", "F32", [5], struct.pack("<5f", 1, 2, 3, 4, 5)),
        ("BaseBlock.conv_block1.1.num_batches_tracked", "I64", [], struct.pack("<q", 7))], meta))
out("stem_w4.safetensors", "safetensors",
    st([("BaseBlock.conv_block1.0.weight", "F32", [4, 12, 11], struct.pack("<528f", *[0.01] * 528))], None))

# ---- .npy ----------------------------------------------------------------------------------
def npy(shape, n):
    d = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % (
        ", ".join(map(str, shape)) + ("," if len(shape) == 1 else ""))
    h = d + " " * ((64 - (10 + len(d) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + struct.pack("<%df" % n, *range(n))


out("f4_2x3.npy", "npy", npy([2, 3], 6))
out("f4_1d.npy", "npy", npy([5], 5))
out("f4_scalar.npy", "npy", npy([], 1))

# ---- regression inputs: the hostile files of the findings, rebuilt from the seeds -------------
def reg(name, sub, data):
    d = os.path.join(HERE, "regress", sub)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


for w in (128, 512, 1024):  # metadata alone claiming a model (it built the model before checking)
    reg("oom-meta-only-width%d.safetensors" % w, "safetensors",
        st([], {"format": "mrmnet-1", "n_classes": "5", "width": str(w), "hi_attention": "0"}))
reg("oom-stem-only-width128.safetensors", "safetensors",
    st([("BaseBlock.conv_block1.0.weight", "F32", [4, 12, 11], struct.pack("<528f", *[0.01] * 528))],
       {"format": "mrmnet-1", "n_classes": "5", "width": "128"}))

z = mat5(20, "double", True)
hdr, stream = z[:128], z[136:]
# a truncated compressed stream whose tag agrees with the bytes left (read as zeros before)
reg("trunc-zlib-stream.mat", "mat_v5", hdr + struct.pack("<II", 15, len(stream) // 2) + stream[:len(stream) // 2])
# a corrupt stream
bad = bytearray(stream)
for i in range(40, 80):
    bad[i] ^= 0x5A
reg("corrupt-zlib-stream.mat", "mat_v5", hdr + struct.pack("<II", 15, len(bad)) + bytes(bad))
# a compressed element that declares 4 GB inside
tiny = zlib.compress(struct.pack("<II", 14, 0xFFFFFFF0))
reg("oom-declares-4GB.mat", "mat_v5", hdr + struct.pack("<II", 15, len(tiny)) + tiny)
# dimensions 12 x 2^30 over 20 columns of data, plain and compressed
def with_dims(cols, compressed):
    plain = mat5(20, "double", False)
    body = bytearray(plain)
    at = plain.find(struct.pack("<ii", 12, 20))
    body[at + 4:at + 8] = struct.pack("<i", cols)
    if not compressed:
        return bytes(body)
    inner = bytes(body[128:])
    c = zlib.compress(inner)
    return bytes(body[:128]) + struct.pack("<II", 15, len(c)) + c


reg("oom-dims-2e30-plain.mat", "mat_v5", with_dims(1 << 30, False))
reg("oom-dims-2e30-zlib.mat", "mat_v5", with_dims(1 << 30, True))
# a struct that declares three fields and a million elements but holds no field matrices
names = b"".join(n.encode().ljust(8, b"\0") for n in ("sex", "age", "data"))
hollow = matrix(2, [1000, 1000], "ECG", [el(5, struct.pack("<i", 8)), el(1, names)])
c = zlib.compress(hollow)
reg("crash-struct-without-fields.mat", "mat_v5", hdr + struct.pack("<II", 15, len(c)) + c)
hollow1 = matrix(2, [1, 1], "ECG", [el(5, struct.pack("<i", 8)), el(1, names)])
reg("crash-struct-1x1-without-fields.mat", "mat_v5", hdr + hollow1)

# numbers no integer type holds, in id and fold columns (a float-to-integer conversion was UB)
reg("ub-1e300-id-fold.csv", "csv", b"ecg_id,strat_fold,Recording,First_label\n1e300,1e300,A0001,1e300\n-1e300,nan,A0002,inf\n")

# .npy and WFDB headers that claim more data than the file holds
reg("oom-shape-claims-48GB.npy", "npy",
    b"\x93NUMPY\x01\x00" + struct.pack("<H", 118) +
    b"{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 12, 1000), }".ljust(117) + b"\n" + b"\0" * 64)
reg("oom-header-claims-1e12-samples.rec", "wfdb_record",
    b"r 12 500 1000000000000\n" + b"".join(b"r.dat 16 1000/mV 16 0 0 0 0 L%d\n" % i for i in range(12)) + b"\0" + b"\1\2" * 100)
reg("oom-header-claims-1e9-samples-212.rec", "wfdb_record",
    b"r 2 360 1000000000\nr.dat 212 200 11 1024 0 0 0 MLII\nr.dat 212 200 11 1024 0 0 0 V5\n\0" + b"\0" * 300)


# ---- engine images (src/engine/engine_image.h): one Winograd convolution and a head -----------
def engine_image(version, kind):
    """12 x 1000 input -> conv (12 -> 4, ReLU; kind 1: 3 taps, Winograd F(4,3); kind 2: 17 taps,
    FFT; kind 3: the same FFT with three real products a bin) -> head (1 class)."""
    cin, cout, K, L, N = 12, 4, 3 if kind == 1 else 17, 1000, 1
    a64 = lambda n: (n + 63) // 64 * 64
    none = 0xFFFFFFFFFFFFFFFF
    arena = bytearray()

    def put(floats):
        off = a64(len(arena))
        arena.extend(b"\0" * (off - len(arena)))
        arena.extend(struct.pack("<%df" % len(floats), *floats))
        return off, 4 * len(floats)

    def step(op, in0, in1, outb, ints, w):
        ws = [o for o, _ in w] + [none] * (8 - len(w))
        ns = [n for _, n in w] + [0] * (8 - len(w))
        return struct.pack("<4i12ifi8Q8Q", op, in0, in1, outb, *ints, 0.0, 0, *ws, *ns)

    # the transformed weights: 6 points x (12 x 4 + 16 tail); made-up values, zero tails
    n_pts, tail = 6, 16
    u = []
    for e in range(n_pts):
        u += [((e * 7 + i) % 11 - 5) / 20.0 for i in range(cin * cout)] + [0.0] * tail
    if kind in (2, 3):  # the spectra: H = 16 bins x 2 (kind 3: 3) planes x 12 x 4, then 16 zeros
        u = [((i * 5) % 13 - 6) / 40.0 for i in range(16 * kind * cin * cout)] + [0.0] * tail
    conv_w = [put(u), put([0.1, -0.1, 0.0, 0.2])]
    head_w = [put([1.0] * cout), put([0.0] * cout), put([0.5, -0.5, 0.25, 1.0]), put([0.0])]
    #        cin cout k s pad g lin lout relu kind c L
    s0 = step(1, 0, -1, 1, [cin, cout, K, 1, K // 2, 1, L, L, 1, kind, 0, 0], conv_w)
    s1 = step(6, 1, -1, 2, [0, N, 0, 0, 0, 0, 0, 0, 0, 0, cout, 0], head_w)
    bufs = struct.pack("<QII", 0, 12, L) + struct.pack("<QII", 0, cout, L) + struct.pack("<QII", cout * L, N, 1)
    hdr_bytes, step_bytes = 120, len(s0)
    bufs_off = a64(hdr_bytes)
    steps_off = a64(bufs_off + len(bufs))
    meta_off = steps_off + 2 * step_bytes
    weights_off = a64(meta_off)
    total = a64(weights_off + len(arena))
    act = cout * L + 16
    # scratch: mrm_eng_conv_scratch_floats2 of the Winograd step (n Ce Lw + n (cout + 8) Lm + 4 (Lw + 1) x 2)
    ntile = (L + 3) // 4
    lw = (ntile + 63) // 64 * 64
    scratch = n_pts * cin * lw + n_pts * (cout + 8) * lw + 2 * 4 * (lw + 1)
    if kind in (2, 3):  # H (2 (Ce + cout) nbp + 32) + Lx + 4 H: N 32, hop 16, 63 blocks (64 with padding)
        nbp, hop, H = 64, 16, 16
        scratch = H * (2 * (cin + cout) * nbp + 32) + ((nbp - 1) * hop + 32 + 15) // 16 * 16 + 4 * H
    scratch = (scratch + 15) // 16 * 16
    h = b"MRMENG01" + struct.pack("<6I2i9Q2I", version, hdr_bytes, 2, 3, N, 1, 2, -1, bufs_off, steps_off, meta_off,
                                  0, weights_off, total - weights_off, total, act, scratch, 0, step_bytes)
    img = bytearray(total)
    img[0:len(h)] = h
    img[bufs_off:bufs_off + len(bufs)] = bufs
    img[steps_off:steps_off + 2 * step_bytes] = s0 + s1
    img[weights_off:weights_off + len(arena)] = arena
    return bytes(img)


out("winograd_v3.mrme", "engine_image", engine_image(3, 1))
out("winograd_in_v2.mrme", "engine_image", engine_image(2, 1))  # refused: version 2 has no Winograd steps
out("fft_v4.mrme", "engine_image", engine_image(4, 2))
out("fft_in_v3.mrme", "engine_image", engine_image(3, 2))  # refused: versions 2 and 3 have no FFT steps
out("fft3_v5.mrme", "engine_image", engine_image(5, 3))
out("fft3_in_v4.mrme", "engine_image", engine_image(4, 3))  # refused: version 4 has no three-product FFT steps
