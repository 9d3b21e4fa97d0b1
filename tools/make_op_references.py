#!/usr/bin/python3
"""Writes tests/fixtures/nn/op_references.bin: small inputs, outputs and gradients of the
neural-network ops computed by PyTorch, for tests/nn/test_ops_torch.c.

Run from the repository root with PyTorch installed:  /usr/bin/python3 tools/make_op_references.py

File format (little-endian):
  magic  b"MRMREF1\\n"
  uint32 count, then count records of
      uint32 name_len, name (ASCII), uint32 ndim, uint32 dims[ndim], float32 data[prod(dims)]
Names are "<case>.<tensor>", e.g. "conv_s2.din". Integer settings of a case (kernel size,
stride, ...) are stored as a float32 tensor "<case>.cfg".
"""
import struct
import sys

import torch
import torch.nn.functional as F

torch.set_num_threads(2)
torch.manual_seed(20240617)

OUT = "tests/fixtures/nn/op_references.bin"
records = []


def put(name, t):
    t = torch.as_tensor(t).detach().to(torch.float32).contiguous()
    records.append((name, list(t.shape), t.numpy().tobytes()))


def leaf(*shape, scale=1.0):
    return (torch.randn(*shape) * scale).requires_grad_(True)


def conv_case(name, B, Cin, Lin, Cout, K, stride, pad, groups):
    x = leaf(B, Cin, Lin)
    w = leaf(Cout, Cin // groups, K, scale=0.3)
    y = F.conv1d(x, w, None, stride, pad, 1, groups)
    g = torch.randn_like(y)
    y.backward(g)
    put(name + ".cfg", [B, Cin, Lin, Cout, K, stride, pad, groups])
    for k, v in [("in", x), ("w", w), ("out", y), ("dout", g), ("din", x.grad), ("dw", w.grad)]:
        put(name + "." + k, v)


def batchnorm_case(name, B, C, L):
    bn = torch.nn.BatchNorm1d(C, eps=1e-5, momentum=0.1)
    with torch.no_grad():
        bn.weight.copy_(torch.randn(C))
        bn.bias.copy_(torch.randn(C))
        bn.running_mean.copy_(torch.randn(C))
        bn.running_var.copy_(torch.rand(C) + 0.5)
    put(name + ".cfg", [B, C, L])
    put(name + ".gamma", bn.weight)
    put(name + ".beta", bn.bias)
    put(name + ".running_mean0", bn.running_mean)
    put(name + ".running_var0", bn.running_var)
    x = (torch.randn(B, C, L) * 2 + torch.arange(C).view(1, C, 1)).requires_grad_(True)
    bn.train()
    y = bn(x)
    g = torch.randn_like(y)
    y.backward(g)
    for k, v in [("in", x), ("out", y), ("dout", g), ("din", x.grad), ("dgamma", bn.weight.grad),
                 ("dbeta", bn.bias.grad), ("running_mean1", bn.running_mean),
                 ("running_var1", bn.running_var)]:
        put(name + "." + k, v)
    bn.eval()
    with torch.no_grad():
        put(name + ".out_eval", bn(x))


def unary_case(name, fn, x):
    x = x.clone().requires_grad_(True)
    y = fn(x)
    g = torch.randn_like(y)
    y.backward(g)
    for k, v in [("in", x), ("out", y), ("dout", g), ("din", x.grad)]:
        put(name + "." + k, v)


def main():
    conv_case("conv_s1", 2, 4, 17, 6, 3, 1, 1, 1)
    conv_case("conv_s2", 3, 4, 17, 8, 5, 2, 2, 1)
    conv_case("conv_g", 2, 8, 15, 8, 7, 1, 3, 4)
    conv_case("conv_k33", 2, 4, 41, 4, 33, 2, 16, 1)
    conv_case("conv_1x1", 2, 6, 9, 5, 1, 1, 0, 1)
    conv_case("conv_stem", 2, 12, 30, 16, 11, 1, 5, 1)
    conv_case("conv_long_s1", 3, 16, 40, 24, 33, 1, 16, 1)
    conv_case("conv_long_s2", 2, 16, 45, 36, 33, 2, 16, 1)

    batchnorm_case("bn", 3, 4, 9)
    batchnorm_case("bn_l1", 8, 5, 1)

    # values on a coarse grid so that windows often hold ties (PyTorch: first maximum wins)
    tied = torch.round(torch.randn(2, 3, 13) * 2) / 2
    unary_case("maxpool2", lambda x: F.max_pool1d(x, 2), tied)
    unary_case("maxpool2s1", lambda x: F.max_pool1d(x, 2, 1, 1), tied)
    unary_case("max_time", lambda x: F.adaptive_max_pool1d(x, 1).squeeze(-1), tied)
    unary_case("mean_time", lambda x: F.adaptive_avg_pool1d(x, 1).squeeze(-1), torch.randn(2, 3, 13))
    unary_case("channel_maxmean",
               lambda x: torch.cat([torch.max(x, 1, keepdim=True)[0], torch.mean(x, 1, keepdim=True)], 1),
               tied)
    unary_case("hardsigmoid", F.hardsigmoid, torch.randn(50) * 4)
    unary_case("sigmoid", torch.sigmoid, torch.randn(50) * 4)

    # LayerNorm over channels (the model's ChannelLayerNorm) and plain LayerNorm (L = 1)
    B, C, L = 2, 6, 7
    x, w, b = leaf(B, C, L), leaf(C), leaf(C)
    mean = x.mean(dim=1, keepdim=True)
    var = (x - mean).pow(2).mean(dim=1, keepdim=True)
    y = (x - mean) / torch.sqrt(var + 1e-6) * w[:, None] + b[:, None]
    g = torch.randn_like(y)
    y.backward(g)
    put("ln.cfg", [B, C, L])
    for k, v in [("in", x), ("w", w), ("bias", b), ("out", y), ("dout", g), ("din", x.grad),
                 ("dw", w.grad), ("dbias", b.grad)]:
        put("ln." + k, v)
    x, w, b = leaf(3, 8), leaf(8), leaf(8)
    y = F.layer_norm(x, (8,), w, b, 1e-6)
    g = torch.randn_like(y)
    y.backward(g)
    put("ln_flat.cfg", [3, 8, 1])
    for k, v in [("in", x), ("w", w), ("bias", b), ("out", y), ("dout", g), ("din", x.grad),
                 ("dw", w.grad), ("dbias", b.grad)]:
        put("ln_flat." + k, v)

    # linear
    x, w, b = leaf(3, 6), leaf(4, 6), leaf(4)
    y = F.linear(x, w, b)
    g = torch.randn_like(y)
    y.backward(g)
    put("linear.cfg", [3, 6, 4])
    for k, v in [("in", x), ("w", w), ("bias", b), ("out", y), ("dout", g), ("din", x.grad),
                 ("dw", w.grad), ("dbias", b.grad)]:
        put("linear." + k, v)

    # losses: BCE with logits (mean) and KL4 as the released model computes them
    logits = leaf(4, 5, scale=3.0)
    target = (torch.rand(4, 5) < 0.4).float()
    loss = F.binary_cross_entropy_with_logits(logits, target)
    loss.backward()
    put("bce.cfg", [4, 5])
    for k, v in [("logits", logits), ("y", target), ("loss", loss.reshape(1)), ("dlogits", logits.grad)]:
        put("bce." + k, v)
    for name, B, N, scale in [("kl", 3, 5, 3.0), ("kl_feat", 2, 600, 5.0)]:
        s, t = leaf(B, N, scale=scale), leaf(B, N, scale=scale)
        T = 4.0
        log_ps = F.log_softmax(s / T, dim=1)
        log_pt = F.log_softmax(t / T, dim=1)
        loss = T * T / B * (log_pt.exp() * (log_pt - log_ps)).sum()
        loss.backward()
        put(name + ".cfg", [B, N])
        for k, v in [("s", s), ("t", t), ("loss", loss.reshape(1)), ("ds", s.grad), ("dt", t.grad)]:
            put(name + "." + k, v)

    with open(OUT, "wb") as f:
        f.write(b"MRMREF1\n")
        f.write(struct.pack("<I", len(records)))
        for name, shape, data in records:
            nb = name.encode("ascii")
            f.write(struct.pack("<I", len(nb)) + nb)
            f.write(struct.pack("<I", len(shape)) + struct.pack("<%dI" % len(shape), *shape))
            f.write(data)
    print("wrote %s: %d tensors" % (OUT, len(records)), file=sys.stderr)


if __name__ == "__main__":
    main()
