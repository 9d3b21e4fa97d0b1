"""mrmnet init / info / forward / backward, end to end, against the PyTorch twin's reference
files in tests/fixtures/model/ (read here with numpy only) and against the spec's initialisation
rule. Skips (77) without numpy."""
import json
import os
import struct

from cli_testlib import SRC, TMP, check, end, mrmnet, skip

try:
    import numpy as np
except ImportError:
    skip("numpy missing")

FIX = os.path.join(SRC, "tests", "fixtures", "model")


def run(*args, ok=True):
    return mrmnet(*args, expect=0 if ok else None)


def read_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, d in header.items():
        dt = {"F32": "<f4", "I64": "<i8"}[d["dtype"]]
        b, e = d["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + b:8 + n + e], dtype=dt).reshape(d["shape"])
    return out, meta, header, n


def rel(a, r):
    return float(np.abs(a.astype(np.float64) - r).max() / max(np.abs(r).max(), 1e-30))


ref, _, _, _ = read_safetensors(os.path.join(FIX, "ref_outputs.safetensors"))
W = os.path.join(FIX, "ref_weights.safetensors")
X = os.path.join(FIX, "ref_input.npy")
Y = os.path.join(FIX, "ref_labels.npy")

# forward, eval mode, in batches of 3 (4 records: 3 + 1) and train mode
for mode, extra in (("eval", ["--batch", "3"]), ("train", ["--train-mode"])):
    out = os.path.join(TMP, "fw_" + mode)
    p = run("forward", "--model", W, "--input", X, "--out", out, *extra)
    check(p.returncode == 0, "forward %s: %s" % (mode, p.stderr))
    if p.returncode == 0:
        for k in ("out1", "out2", "feat1", "feat2"):
            a = np.load(os.path.join(out, k + ".npy"))
            r = ref["%s.%s" % (mode, k)]
            check(a.shape == r.shape and a.dtype == np.float32, "%s %s shape %s" % (mode, k, a.shape))
            if a.shape == r.shape:
                e = rel(a, r)
                check(e < 1e-4, "%s %s relative error %.3g" % (mode, k, e))

# the fast path: logits only, equal to the eval references
out = os.path.join(TMP, "fw_fast")
p = run("forward", "--model", W, "--input", X, "--out", out, "--fast", "--batch", "3")
check(p.returncode == 0, "forward --fast: %s" % p.stderr)
if p.returncode == 0:
    for k in ("out1", "out2"):
        e = rel(np.load(os.path.join(out, k + ".npy")), ref["eval." + k])
        check(e < 1e-4, "fast %s relative error %.3g" % (k, e))
check(run("forward", "--model", W, "--input", X, "--out", out, "--fast", "--train-mode", ok=False).returncode == 2,
      "--fast with --train-mode refused")

# backward: loss, gradients (under the parameter names), BN statistics after the step
G = os.path.join(TMP, "grad.safetensors")
p = run("backward", "--model", W, "--input", X, "--labels", Y, "--out", G)
check(p.returncode == 0, "backward: %s" % p.stderr)
if p.returncode == 0:
    g, meta, header, n = read_safetensors(G)
    check(n % 8 == 0, "header length %d is a multiple of 8" % n)
    check(abs(float(g["loss"]) - float(ref["loss"])) < 1e-4 * abs(float(ref["loss"])), "loss %s vs %s" % (g["loss"], ref["loss"]))
    for part in ("bce1", "bce2", "kl_feat", "kl_logits"):
        check(abs(float(g["loss." + part]) - float(ref["loss." + part])) < 1e-4 * max(1, abs(float(ref["loss." + part]))), part)
    weights, _, wheader, _ = read_safetensors(W)
    ngrad = nstat = 0
    for name, w in weights.items():
        check(name in g and g[name].shape == w.shape, "%s in the gradient file" % name)
        if name not in g:
            continue
        if "running_" in name or "num_batches" in name:
            r = ref["after." + name]
            if r.dtype == np.int64:
                check(int(g[name]) == int(r), "%s %s vs %s" % (name, g[name], r))
            else:
                check(rel(g[name], r) < 1e-4, "%s" % name)
            nstat += 1
        else:
            r = ref["grad." + name].astype(np.float64)
            # float32 vs float64 reference: see tests/model/test_model_parity.c
            e = rel(g[name], r)
            e2 = float(np.linalg.norm(g[name] - r) / max(np.linalg.norm(r), 1e-30))
            check(e < 3e-2 and e2 < 1e-2, "grad %s: %.3g %.3g" % (name, e, e2))
            ngrad += 1
    check(ngrad == 154 and nstat == 126, "compared %d gradients, %d statistics" % (ngrad, nstat))
    # offsets contiguous, in the order of the header
    prev_end = 0
    for name, d in header.items():
        check(d["data_offsets"][0] == prev_end, "%s starts where the previous tensor ends" % name)
        prev_end = d["data_offsets"][1]

# init: PyTorch-default rule, deterministic for a seed, the weights table's names and order
A = os.path.join(TMP, "a.safetensors")
B = os.path.join(TMP, "b.safetensors")
C = os.path.join(TMP, "c.safetensors")
check(run("init", "--classes", "71", "--seed", "5", "--out", A).returncode == 0, "init")
check(run("init", "--classes", "71", "--seed", "5", "--out", B).returncode == 0, "init again")
check(run("init", "--classes", "71", "--seed", "6", "--out", C).returncode == 0, "init other seed")
check(open(A, "rb").read() == open(B, "rb").read(), "same seed, same file")
check(open(A, "rb").read() != open(C, "rb").read(), "other seed, other file")
a, meta, _, _ = read_safetensors(A)
check(meta.get("format") == "mrmnet-1" and meta.get("n_classes") == "71" and meta.get("width") == "16", "metadata %s" % meta)
table = [ln.split("\t") for ln in open(os.path.join(SRC, "..", "shared", "spec", "mrmnet-weights.tsv"))
         if not ln.startswith("#") and not ln.startswith("name")] if os.path.exists(
    os.path.join(SRC, "..", "shared", "spec", "mrmnet-weights.tsv")) else None
if table:
    names = [t[0] for t in table]
    check(list(a.keys()) == names, "tensor names and order = the weights table")
nparams = sum(v.size for k, v in a.items() if "running_" not in k and "num_batches" not in k)
check(nparams == 1792526, "N=71 parameter count %d" % nparams)
for name, v in a.items():
    if name.endswith("num_batches_tracked"):
        check(v.shape == () and int(v) == 0, name)
    elif name.endswith("running_var") or (name.endswith(".weight") and v.ndim == 1):
        check(np.all(v == 1), name + " is 1")
    elif name.endswith("running_mean") or (name.endswith(".bias") and not name.startswith("fc")):
        check(np.all(v == 0), name + " is 0")
    else:
        # conv and linear weights: fan_in = cin/groups * k; linear biases: the weight's cin
        fan_in = a[name[:-5] + ".weight"].shape[1] if name.endswith(".bias") else int(np.prod(v.shape[1:]))
        bound = 1 / np.sqrt(fan_in)
        check(np.abs(v).max() <= bound, "%s within +-1/sqrt(%d)" % (name, fan_in))
        if v.size >= 100:
            check(np.abs(v).max() > 0.9 * bound, "%s spans +-1/sqrt(%d)" % (name, fan_in))
        if v.size > 1000:
            check(abs(v.std() - bound / np.sqrt(3)) < 0.05 * bound, "%s uniform std" % name)

p = run("info", A)
check(p.returncode == 0 and "1792526" in p.stdout and "width 16" in p.stdout, "info: %s" % p.stdout)
check(run("init", "--classes", "5", "--width", "4", "--hi-attention", "--out", C).returncode == 0, "init width 4")
p = run("info", C, "--tensors")
check(p.returncode == 0 and "BaseBlock.layer1.6.conv2.weight" in p.stdout and "16x16x3" in p.stdout, "info hi_attention")

# info describes the branches and heads each variant has (width 8: 32/64 channels, 502/251 steps)
for variant, expect in (("branches=high", "high only (32 channels x 502 steps); one head on its 32 pooled features"),
                        ("branches=low", "low only (64 channels x 251 steps); one head on its 64 pooled features"),
                        ("combine=add", "high (32 x 502) and low (64 x 251); a head on each branch's pooled features (32, 64), one output"),
                        ("combine=concat", "one head on their concatenated pooled features (96)"),
                        ("combine=mutual", "mean of the two heads' probabilities")):
    V = os.path.join(TMP, "info_variant.safetensors")
    if os.path.exists(V):
        os.remove(V)
    ok = run("init", "--classes", "3", "--width", "8", "--variant", variant, "--out", V).returncode == 0
    p = run("info", V)
    check(ok and p.returncode == 0 and expect in " ".join(p.stdout.split()), "info of %s: %s" % (variant, p.stdout[:400]))

# errors: clear messages, exit 1 for bad input, 2 for bad usage
p = run("forward", "--model", W, "--input", Y, "--out", TMP, ok=False)
check(p.returncode == 1 and "expected (B, 12, 1000)" in p.stderr, "forward with labels as input: %s" % p.stderr)
p = run("backward", "--model", W, "--input", X, "--labels", X, "--out", G, ok=False)
check(p.returncode == 1 and "expected (4, 5)" in p.stderr, "backward with bad labels: %s" % p.stderr)
p = run("info", X, ok=False)
check(p.returncode == 1 and "ref_input.npy" in p.stderr, "info on an npy file: %s" % p.stderr)
p = run("init", "--classes", "5", "--width", "6", "--out", C, ok=False)
check(p.returncode == 2, "width 6 refused")
p = run("init", "--out", C, ok=False)
check(p.returncode == 2, "init without --classes")

end()
