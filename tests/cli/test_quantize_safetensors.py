"""The quantised model as a safetensors file (mrmnet quantize --out W8.safetensors), read here from
its raw bytes (the header with json, the tensors with numpy, into PyTorch): a valid safetensors
file (contiguous offsets, known dtypes, int8 weights as I8), the float file's metadata and config
plus "quantization": "int8"; every quantised convolution's dequantised weights (int8 *
weight_scale) within half a step of the float model's weights with the BatchNorm folded (and the
four multi-scale kernels merged), computed here in PyTorch from the float file; its bias the
folded bias. predict, eval and bench take the file, and predict and eval give exactly what the
engine image (.mrme) written by the same quantisation gives; the float model readers refuse it
naming "quantization". Skips without ../shared, numpy or PyTorch."""
import json
import os
import struct
import sys

from cli_testlib import SRC, TMP, check, end, need_mrmnet, need_shared, prepare, run, skip

need_mrmnet()
ptb = need_shared("data/ptb-xl", "ptbxl_database.csv", "no ../shared/data/ptb-xl")
try:
    import numpy as np
    import torch
except ImportError:
    skip("numpy or PyTorch not installed")

DT = {"F32": np.float32, "I8": np.int8, "I64": np.int64}
SIZE = {"F32": 4, "I8": 1, "I64": 8}


def read_st(path):
    """(metadata, {name: torch tensor}) from the raw bytes, checking the layout."""
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    check(8 + n <= len(b), f"{path}: header length {n}")
    h = json.loads(b[8:8 + n].decode("utf-8"))
    meta = h.pop("__metadata__", {})
    data = b[8 + n:]
    out, end_prev = {}, 0
    for name, e in sorted(h.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        s, t = e["data_offsets"]
        check(e["dtype"] in DT, f"{name}: dtype {e['dtype']}")
        numel = int(np.prod(e["shape"])) if e["shape"] else 1
        check(s == end_prev and t - s == numel * SIZE[e["dtype"]], f"{name}: offsets {s}, {t}")
        end_prev = t
        a = np.frombuffer(data[s:t], dtype=DT[e["dtype"]]).reshape(e["shape"])
        out[name] = torch.from_numpy(a.copy())
    check(end_prev == len(data), f"{path}: {len(data) - end_prev} bytes after the last tensor")
    return meta, out


prep = os.path.join(TMP, "prep")
p = prepare(prep, "--ptbxl", ptb, "--task", "superdiagnostic")
check(p.returncode == 0, "prepare: " + p.stderr[-500:])
model = os.path.join(SRC, "models", "ptbxl-superdiagnostic.safetensors")
w8 = os.path.join(TMP, "w8.safetensors")
img = os.path.join(TMP, "w8.mrme")
for out in (w8, img):
    rc, so, se = run("quantize", "--model", model, "--data", prep, "--out", out, "--calib", "64")
    check(rc == 0, "quantize: " + se[-500:])
    if rc:
        sys.exit(end())

fmeta, ft = read_st(model)
qmeta, qt = read_st(w8)
check(qmeta.get("quantization") == "int8", f"metadata quantization: {qmeta.get('quantization')}")
for k, v in fmeta.items():
    check(qmeta.get(k) == v, f"metadata {k}: {qmeta.get(k)!r} vs the float file's {v!r}")
for k in ("n_classes", "width", "attention", "fusion", "branches", "combine"):
    check(k in qmeta, f"config key {k} missing")

q = sorted(n[: -len(".weight")] for n, t in qt.items() if t.dtype == torch.int8)
check(len(q) >= 30, f"{len(q)} quantised convolutions")
check("BaseBlock.conv_block1.0.weight" in qt and qt["BaseBlock.conv_block1.0.weight"].dtype == torch.float32,
      "the first convolution stays float")
order = list(ft.keys())  # the float file's tensors in data order = state_dict order
eps = 1e-5
worst = 0.0
for P in q:
    w8t, ws, bias, isc = (qt[P + s] for s in (".weight", ".weight_scale", ".bias", ".input_scale"))
    check(ws.dtype == torch.float32 and bias.dtype == torch.float32 and isc.numel() == 1 and float(isc) > 0,
          f"{P}: scale tensors")
    if P.endswith(".ms"):  # the merged multi-scale convolution: mean of conv1..conv4 centred in 33 taps
        base = P[: -len(".ms")]
        w = torch.zeros(ft[base + ".conv4.weight"].shape)
        for j in range(1, 5):
            wk = ft[f"{base}.conv{j}.weight"]
            off = (33 - wk.shape[2]) // 2
            w[:, :, off:off + wk.shape[2]] += 0.25 * wk
        after = order.index(base + ".conv4.weight")
        removed = [f"{base}.conv{j}.weight" for j in range(1, 5)]
    else:
        w = ft[P + ".weight"].clone()
        after = order.index(P + ".weight")
        removed = []
    bn = next(n[: -len(".running_var")] for n in order[after:] if n.endswith(".running_var"))
    g, b, mu, var = (ft[bn + s] for s in (".weight", ".bias", ".running_mean", ".running_var"))
    s = g / torch.sqrt(var + eps)
    wf = w * s[:, None, None]
    bf = b - mu * s
    for n in removed + [bn + x for x in (".weight", ".bias", ".running_mean", ".running_var")]:
        check(n not in qt, f"{P}: {n} (folded) still in the file")
    check(tuple(w8t.shape) == tuple(wf.shape), f"{P}: shape {tuple(w8t.shape)} vs {tuple(wf.shape)}")
    deq = w8t.float() * ws[:, None, None]
    err = ((deq - wf).abs() / ws[:, None, None]).max().item()  # in steps
    worst = max(worst, err)
    check(err <= 0.5 + 1e-3, f"{P}: dequantised weights {err:.4f} steps from the float ones")
    check(int(w8t.abs().amax()) == 127, f"{P}: largest |int8| {int(w8t.abs().amax())}")
    check(torch.allclose(bias, bf, rtol=1e-5, atol=1e-6), f"{P}: bias is not the folded bias")
print(f"{len(q)} quantised convolutions; dequantised weights at most {worst:.4f} steps from the folded float ones")
check(os.path.getsize(w8) < 0.3 * os.path.getsize(model), "int8 file not smaller than 0.3 x the float file")

# predict, eval and bench take it; predict and eval give what the image gives
recs = os.path.join(SRC, "samples")
r1 = run("predict", "--model", w8, recs, "--json")
r2 = run("predict", "--model", img, recs, "--json")
check(r1[0] == 0 and r2[0] == 0, "predict: " + r1[2][-300:] + r2[2][-300:])
check(r1[1] == r2[1] and len(r1[1]) > 100, "predict: the safetensors file and the image disagree")
if r1[0] == 0:
    print("predict on", len(json.loads(r1[1])), "records: identical to the image's")
# every kernel set the CPU runs (--engine-isa), others refused naming the set: the same labels and
# probabilities within 1e-3 (the int8 sums are exact; float epilogues and layers may round apart)
ran = []
for isa in ("portable", "avx2", "avx512", "avx512vnni", "neondot"):
    rc, so, se = run("predict", "--model", w8, recs, "--json", "--engine-isa", isa, expect=None)
    if rc == 1 and f"this CPU lacks the {isa} kernels" in se:
        continue
    check(rc == 0, f"predict --engine-isa {isa}: {rc} {se[-300:]}")
    if rc or r1[0]:
        continue
    ran.append(isa)
    a, b = json.loads(r1[1]), json.loads(so)
    d = max(abs(x["probabilities"][k] - y["probabilities"][k]) for x, y in zip(a, b) for k in x["probabilities"])
    check(len(a) == len(b) and [x["labels"] for x in a] == [y["labels"] for y in b] and d < 1e-3,
          f"predict --engine-isa {isa}: probabilities {d:.2e} from the default kernels'")
check("portable" in ran, "predict --engine-isa portable did not run")
check(not (os.uname().machine == "x86_64" and "neondot" in ran), "predict --engine-isa neondot ran on x86-64")
print("predict --engine-isa: the same labels with", ", ".join(ran))
e1 = run("eval", "--model", w8, "--data", prep, "--split", "test")
e2 = run("eval", "--model", img, "--data", prep, "--split", "test")
check(e1[0] == 0 and e2[0] == 0, "eval: " + e1[2][-300:] + e2[2][-300:])
check(e1[1].replace(w8, "M") == e2[1].replace(img, "M") and "macro" in e1[1].lower(),
      "eval: the safetensors file and the image disagree")
b1 = run("bench", "--model", w8, "--cases", "infer1", "--iters", "1", "--warmup", "0", "--threads", "1")
check(b1[0] == 0, "bench: " + b1[2][-300:])
bj = os.path.join(TMP, "bench-portable.json")
b2 = run("bench", "--model", w8, "--cases", "infer1", "--iters", "1", "--warmup", "0", "--threads", "1",
         "--engine-isa", "portable", "--json", bj)
check(b2[0] == 0 and "the infer cases ran the engine's portable kernels" in b2[1], "bench --engine-isa: " + b2[2][-300:])
if b2[0] == 0:
    check(json.load(open(bj))["cases"][0].get("engine_isa") == "portable", "bench --engine-isa: the JSON's engine_isa")

# float consumers refuse it, naming the field
for cmd in (["info", w8], ["train", "--data", prep, "--out", os.path.join(TMP, "run"), "--init", w8, "--epochs", "1"]):
    rc, so, se = run(*cmd, expect=None)
    check(rc != 0 and "'quantization'" in se and "w8.safetensors" in se, f"{cmd[0]}: {rc} {se[-300:]}")
sys.exit(end())
