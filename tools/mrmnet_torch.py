"""PyTorch twin of MRM-Net (spec /work/shared/spec/mrmnet.md, sections 3-5).

The twin computes the same function as the released model and has the same state_dict
(names, shapes, order) as the weights table mrmnet-weights.tsv: only the modules the forward
pass uses are built. It is the reference the C implementation is checked against, the
training peer and the benchmark peer.

    model = MRMNet(num_classes=5, mid_channels=16, dropout=0.2)   # the released model
    feat1, out1, feat2, out2 = model(x)            # x: (B, 12, 1000)
    total, parts = model.loss(feat1, out1, feat2, out2, y)

Variants (the keys of the C library's mrm_model_config, same names and values):
    MRMNet(5, 16, attention="none", fusion=False, branches="both", combine="concat",
           lambda_feat=0.01, lambda_logit=0.1, temperature=4.0)
attention: low (released) | high | both | none; fusion: True | False; branches: both | high |
low; combine: mutual | add | concat. feat1/feat2 are the high/low branch outputs (None when the
branch is absent); out1 is the first output (head 1, or the only one), out2 the second (None
for one-output variants). hi_attention=True is the older spelling of attention="both".

Weights files: our safetensors format (save_safetensors / load_safetensors /
save_model / load_model), metadata key "format" = "mrmnet-1".
"""
import collections
import json
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------
# building blocks (spec section 3)


def conv1d(cin, cout, k, stride=1, groups=1):
    """Conv(cin->cout, k, stride, pad k//2), no bias."""
    return nn.Conv1d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False)


class BasicBlock(nn.Module):
    """(B, cin, L) -> (B, c, L): relu(bn2(conv2(relu(bn1(conv1 x)))) + shortcut(x)).
    shortcut = x, or downsample = Conv(cin->c, 1) -> BN when cin != c."""

    def __init__(self, cin, c):
        super().__init__()
        self.conv1 = conv1d(cin, c, 3)
        self.bn1 = nn.BatchNorm1d(c)
        self.conv2 = conv1d(c, c, 3)
        self.bn2 = nn.BatchNorm1d(c)
        self.downsample = nn.Sequential(conv1d(cin, c, 1), nn.BatchNorm1d(c)) if cin != c else None

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(h + shortcut)


class SqueezeExcite(nn.Module):
    """(B, c, L) -> (B, c, 1) channel scale s = sigmoid(W2 relu(W1 GAP(h))), no biases."""

    def __init__(self, c, reduction=4):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(c, c // reduction, bias=False), nn.ReLU(),
                                nn.Linear(c // reduction, c, bias=False))

    def forward(self, h):
        return torch.sigmoid(self.fc(h.mean(dim=2))).unsqueeze(2)


class SEBlock(nn.Module):
    """("SEBasicBlock") (B, c, L) -> (B, c, L): x + h * s, h = relu(bn1(groupconv_k3(x))),
    16 channels a group, s = SqueezeExcite(h)."""

    def __init__(self, c):
        super().__init__()
        self.group_conv3x3 = conv1d(c, c, 3, groups=c // 16)
        self.bn1 = nn.BatchNorm1d(c)
        self.se = SqueezeExcite(c)

    def forward(self, x):
        h = F.relu(self.bn1(self.group_conv3x3(x)))
        return x + h * self.se(h)


class GateBlock(nn.Module):
    """("ECALayerBlock") (B, c, L) -> (B, c, L): x + h * hardsigmoid(GAP(h)),
    h = relu(bn1(groupconv_k7(x))), 16 channels a group. The gate has no parameters.
    (The module name group_conv3x3 is the released one, although the kernel is 7.)"""

    def __init__(self, c):
        super().__init__()
        self.group_conv3x3 = conv1d(c, c, 7, groups=c // 16)
        self.bn1 = nn.BatchNorm1d(c)

    def forward(self, x):
        h = F.relu(self.bn1(self.group_conv3x3(x)))
        g = torch.clamp(h.mean(dim=2, keepdim=True) + 3.0, 0.0, 6.0) / 6.0
        return x + h * g


class ChannelLayerNorm(nn.Module):
    """(B, C, L) -> (B, C, L): at every time step, normalise the C values by their mean and
    biased variance (eps inside the square root), then per-channel weight and bias."""

    def __init__(self, c, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(dim=1, keepdim=True)
        var = (x - mean).pow(2).mean(dim=1, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight[:, None] + self.bias[:, None]


def stem_block(cin, cout, k):
    """(B, cin, L) -> (B, cout, L+1): Conv(k, pad k//2) -> BN -> ReLU -> MaxPool(2, 1, pad 1)."""
    return nn.Sequential(conv1d(cin, cout, k), nn.BatchNorm1d(cout), nn.ReLU(),
                         nn.MaxPool1d(kernel_size=2, stride=1, padding=1))


class MultiScale(nn.Module):
    """("BaseScale") (B, cin, L) -> (B, cout, (L / stride) / 2):
    shortcut  conv_block = Conv(k3, stride) -> BN -> ReLU -> MaxPool(2)
    + multi-scale path: mean of conv1..conv4 (k 3, 13, 23, 33, stride) -> bn -> ReLU
      -> MaxPool(2) -> Dropout(p)."""

    def __init__(self, cin, cout, stride, dropout):
        super().__init__()
        self.conv_block = nn.Sequential(conv1d(cin, cout, 3, stride), nn.BatchNorm1d(cout),
                                        nn.ReLU(), nn.MaxPool1d(2))
        self.conv1 = conv1d(cin, cout, 3, stride)
        self.conv2 = conv1d(cin, cout, 13, stride)
        self.conv3 = conv1d(cin, cout, 23, stride)
        self.conv4 = conv1d(cin, cout, 33, stride)
        self.bn = nn.BatchNorm1d(cout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        m = (self.conv1(x) + self.conv2(x) + self.conv3(x) + self.conv4(x)) / 4.0
        m = self.dropout(F.max_pool1d(F.relu(self.bn(m)), 2))
        return self.conv_block(x) + m


def attention_branch(c, hi_attention):
    """Residual blocks of a branch at c channels: BasicBlock x3, or with attention
    BasicBlock, Gate, SE, BasicBlock, Gate, SE, BasicBlock."""
    if not hi_attention:
        return nn.Sequential(BasicBlock(c, c), BasicBlock(c, c), BasicBlock(c, c))
    return nn.Sequential(BasicBlock(c, c), GateBlock(c), SEBlock(c), BasicBlock(c, c),
                         GateBlock(c), SEBlock(c), BasicBlock(c, c))


class Backbone(nn.Module):
    """("BaseBlock") (B, 12, 1000) -> high (B, 4w, 502), low (B, 8w, 251), w = width
    (None for a branch the variant does not have)."""

    def __init__(self, width, hi_attention, dropout, lo_attention=True, hi=True, lo=True):
        super().__init__()
        w = width
        self.conv_block1 = stem_block(12, w, 11)
        self.conv_block2 = stem_block(w, 2 * w, 7)
        self.conv_block3 = stem_block(2 * w, 4 * w, 5)
        self.conv_block4 = stem_block(4 * w, 4 * w, 3)
        self.BaseScale1 = MultiScale(4 * w, 4 * w, 1, dropout) if hi else None
        self.BaseScale2 = MultiScale(4 * w, 8 * w, 2, dropout) if lo else None
        self.layer1 = attention_branch(4 * w, hi_attention) if hi else None
        self.layer2 = attention_branch(8 * w, lo_attention) if lo else None

    def forward(self, x):
        x = self.conv_block4(self.conv_block3(self.conv_block2(self.conv_block1(x))))
        hi = self.layer1(self.BaseScale1(x)) if self.layer1 is not None else None
        lo = self.layer2(self.BaseScale2(x)) if self.layer2 is not None else None
        return hi, lo


class BranchAttention(nn.Module):
    """("Fusion_block") (B, c, L) -> (B, c, L), one branch:
    l1 = sigmoid(M(max_t x) + M(mean_t x)) * x,  M = Conv(c->c/8,1) -> Conv(c/8->c,1) -> BN
    l2 = sigmoid(BN(Conv(2->1, k7)([max_c x, mean_c x]))) * x
    out = layer1(ChannelLayerNorm(concat[l1, l2]))."""

    def __init__(self, c):
        super().__init__()
        self.conv_block2 = nn.Sequential(conv1d(2, 1, 7), nn.BatchNorm1d(1))
        self.conv_block3 = nn.Sequential(conv1d(c, c // 8, 1), conv1d(c // 8, c, 1),
                                         nn.BatchNorm1d(c))
        self.norm1 = ChannelLayerNorm(2 * c)
        self.layer1 = nn.Sequential(BasicBlock(2 * c, c), GateBlock(c), SEBlock(c),
                                    BasicBlock(c, c))

    def forward(self, x):
        # M is applied twice: in training its BN sees each call's own batch statistics.
        a = self.conv_block3(x.amax(dim=2, keepdim=True)) + \
            self.conv_block3(x.mean(dim=2, keepdim=True))
        l1 = torch.sigmoid(a) * x
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        l2 = torch.sigmoid(self.conv_block2(pooled)) * x
        return self.layer1(self.norm1(torch.cat([l1, l2], dim=1)))


ATTENTION = ("low", "both", "high", "none")
BRANCHES = ("both", "high", "low")
COMBINE = ("mutual", "add", "concat")


class MRMNet(nn.Module):
    """(B, 12, 1000) -> feat1 (B, 4w*502), out1 (B, N), feat2 (B, 8w*251), out2 (B, N).
    Released model: out1 = fc1(LayerNorm(GAP(high))), out2 = fc2(LayerNorm(GAP(low))).
    Variants: see the module's docstring."""

    def __init__(self, num_classes=5, mid_channels=16, hi_attention=False, dropout=0.2,
                 attention=None, fusion=True, branches="both", combine="mutual",
                 lambda_feat=0.01, lambda_logit=0.1, temperature=4.0):
        super().__init__()
        w = mid_channels
        if w % 4 or w <= 0:
            raise ValueError("mid_channels must be a positive multiple of 4")
        if attention is None:
            attention = "both" if hi_attention else "low"
        if attention not in ATTENTION or branches not in BRANCHES or combine not in COMBINE:
            raise ValueError("attention %r, branches %r, combine %r" % (attention, branches, combine))
        if branches != "both" and combine != "mutual":
            raise ValueError("combine %r needs both branches" % combine)
        has_hi, has_lo = branches in ("both", "high"), branches in ("both", "low")
        att_hi = attention in ("both", "high") and has_hi
        att_lo = attention in ("both", "low") and has_lo
        attention = ("both" if att_lo else "high") if att_hi else ("low" if att_lo else "none")
        if branches != "both" or combine != "mutual":
            lambda_feat = lambda_logit = 0.0
        self.num_classes, self.mid_channels = num_classes, w
        self.hi_attention = att_hi
        self.attention, self.fusion, self.branches, self.combine = attention, bool(fusion), branches, combine
        self.lambda_feat, self.lambda_logit, self.temperature = float(lambda_feat), float(lambda_logit), float(temperature)
        self.BaseBlock = Backbone(w, att_hi, dropout, att_lo, has_hi, has_lo)
        if fusion:
            self.Fusion_block1 = BranchAttention(4 * w) if has_hi else None
            self.Fusion_block2 = BranchAttention(8 * w) if has_lo else None
        if combine == "concat":
            self.conv_norm = nn.LayerNorm(12 * w, eps=1e-6)
            self.fc = nn.Linear(12 * w, num_classes)
        else:
            if has_hi:
                self.conv_norm1 = nn.LayerNorm(4 * w, eps=1e-6)
            if has_lo:
                self.conv_norm2 = nn.LayerNorm(8 * w, eps=1e-6)
            if has_hi:
                self.fc1 = nn.Linear(4 * w, num_classes)
            if has_lo:
                self.fc2 = nn.Linear(8 * w, num_classes)

    def config(self):
        """The variant as the metadata keys of the C library (strings)."""
        return collections.OrderedDict([
            ("n_classes", str(self.num_classes)), ("width", str(self.mid_channels)),
            ("attention", self.attention), ("fusion", "on" if self.fusion else "off"),
            ("branches", self.branches), ("combine", self.combine),
            ("lambda_feat", _num(self.lambda_feat)), ("lambda_logit", _num(self.lambda_logit)),
            ("temperature", _num(self.temperature))])

    def num_outputs(self):
        return 2 if self.branches == "both" and self.combine == "mutual" else 1

    def set_dropout(self, p):
        """Dropout probability of the multi-scale path (training mode only)."""
        for s in (self.BaseBlock.BaseScale1, self.BaseBlock.BaseScale2):
            if s is not None:
                s.dropout.p = p

    def forward(self, x):
        hi, lo = self.BaseBlock(x)
        if self.fusion:
            hi = self.Fusion_block1(hi) if hi is not None else None
            lo = self.Fusion_block2(lo) if lo is not None else None
        feat1 = hi.flatten(1) if hi is not None else None
        feat2 = lo.flatten(1) if lo is not None else None
        if self.combine == "concat":
            out = self.fc(self.conv_norm(torch.cat([hi.mean(dim=2), lo.mean(dim=2)], dim=1)))
            return feat1, out, feat2, None
        out1 = self.fc1(self.conv_norm1(hi.mean(dim=2))) if hi is not None else None
        out2 = self.fc2(self.conv_norm2(lo.mean(dim=2))) if lo is not None else None
        if self.combine == "add":
            return feat1, out1 + out2, feat2, None
        if out1 is None:
            return feat1, out2, feat2, None
        return feat1, out1, feat2, out2

    def loss(self, feat1, out1, feat2, out2, y):
        """mrmnet_loss with this variant's weights; one-output variants: BCE only."""
        if out2 is None:
            bce = F.binary_cross_entropy_with_logits(out1, y)
            z = bce.new_zeros(())
            return bce, {"bce1": bce, "bce2": z, "kl_feat": z, "kl_logits": z}
        return mrmnet_loss(feat1, out1, feat2, out2, y, self.lambda_feat, self.lambda_logit,
                           self.temperature)


def _num(x):
    """Shortest decimal text that reads back the same double (as the C library writes)."""
    for p in range(1, 18):
        t = "%.*g" % (p, x)
        if float(t) == x:
            return t
    return "%.17g" % x


# ---------------------------------------------------------------------------------------------
# loss (spec section 5)

TEMPERATURE = 4.0


def kl4(s, t, T=TEMPERATURE):
    """KL4(s | t) = T^2 / B * sum_b sum_j p_t (log p_t - log p_s), p = softmax(./T) over each
    sample's whole (flattened) vector. Gradients flow into both s and t."""
    B = s.shape[0]
    log_ps = F.log_softmax(s.reshape(B, -1) / T, dim=1)
    log_pt = F.log_softmax(t.reshape(B, -1) / T, dim=1)
    return T * T / B * (log_pt.exp() * (log_pt - log_ps)).sum()


def mrmnet_loss(feat1, out1, feat2, out2, y, lambda_feat=0.01, lambda_logit=0.1, T=TEMPERATURE):
    """total = bce1 + bce2 + 0.01 * kl_feat + 0.1 * kl_logits, where
    bce = BCE with logits (mean over batch x classes), kl_feat = KL4(f1|f2) + KL4(f2|f1),
    kl_logits = KL4(o1|o2) + KL4(o2|o1). Returns (total, dict of the parts). A weight of 0
    turns its term off (reported as 0)."""
    bce1 = F.binary_cross_entropy_with_logits(out1, y)
    bce2 = F.binary_cross_entropy_with_logits(out2, y)
    z = bce1.new_zeros(())
    kl_feat = kl4(feat1, feat2, T) + kl4(feat2, feat1, T) if lambda_feat > 0 else z
    kl_logits = kl4(out1, out2, T) + kl4(out2, out1, T) if lambda_logit > 0 else z
    # the C library multiplies by the float32 weight; the same value here
    wf, wl = float(np.float32(lambda_feat)), float(np.float32(lambda_logit))
    total = bce1 + bce2 + wf * kl_feat + wl * kl_logits
    return total, {"bce1": bce1, "bce2": bce2, "kl_feat": kl_feat, "kl_logits": kl_logits}


# ---------------------------------------------------------------------------------------------
# safetensors, written and read by hand:
#   8 bytes little-endian u64 header length n, n bytes JSON header (padded with spaces to a
#   multiple of 8), then the raw little-endian data of every tensor, in header order.
#   Header: {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}}
#   offsets relative to the start of the data section.

_DTYPES = {"F32": (np.float32, torch.float32), "F64": (np.float64, torch.float64),
           "I64": (np.int64, torch.int64), "I32": (np.int32, torch.int32)}
_TORCH_TO_ST = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64",
                torch.int32: "I32"}


def save_safetensors(path, tensors, metadata=None):
    """Writes an ordered {name: tensor} (float64 tensors are stored as F32 unless they are
    numpy float64 arrays) atomically; metadata is {str: str}."""
    header = collections.OrderedDict()
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs, offset = [], 0
    for name, t in tensors.items():
        if isinstance(t, torch.Tensor):
            t = t.detach().cpu()
            st = _TORCH_TO_ST.get(t.dtype)
            if t.dtype == torch.float64:
                st = "F32"
            if st is None:
                raise ValueError("%s: unsupported dtype %s" % (name, t.dtype))
            arr = t.numpy()
        else:
            arr = np.asarray(t)
            st = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64",
                  np.dtype(np.int64): "I64", np.dtype(np.int32): "I32"}[arr.dtype]
        # (astype keeps 0-d scalars 0-d; np.ascontiguousarray would make them 1-d)
        arr = arr.astype(np.dtype(_DTYPES[st][0]).newbyteorder("<"), copy=False)
        data = arr.tobytes(order="C")
        header[name] = {"dtype": st, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_safetensors(path):
    """Returns (OrderedDict name -> torch tensor in file order, metadata dict)."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError("%s: too short for a safetensors header" % path)
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise ValueError("%s: header length %d beyond the file" % (path, n))
    header = json.loads(raw[8:8 + n].decode("utf-8"), object_pairs_hook=collections.OrderedDict)
    base = 8 + n
    meta = header.pop("__metadata__", {}) or {}
    out = collections.OrderedDict()
    for name, d in header.items():
        dt = _DTYPES[d["dtype"]][0]
        b, e = d["data_offsets"]
        count = int(np.prod(d["shape"])) if d["shape"] else 1
        if not (0 <= b <= e <= len(raw) - base) or e - b != count * np.dtype(dt).itemsize:
            raise ValueError("%s: tensor %s: bad data_offsets" % (path, name))
        arr = np.frombuffer(raw, dtype=np.dtype(dt).newbyteorder("<"), count=count,
                            offset=base + b).reshape(d["shape"]).astype(dt)
        out[name] = torch.from_numpy(arr.copy())
    return out, dict(meta)


CLASSES_PTBXL_SUPER = ["CD", "HYP", "MI", "NORM", "STTC"]


def model_metadata(model, classes=None, **extra):
    meta = collections.OrderedDict()
    meta["format"] = "mrmnet-1"
    meta.update(model.config())
    if classes is not None:
        meta["classes"] = json.dumps(list(classes), separators=(",", ":"))
    for k, v in extra.items():
        meta[k] = str(v)
    return meta


def save_model(model, path, classes=None, **extra_meta):
    """Saves the state_dict (F32, I64 num_batches_tracked) and metadata."""
    sd = collections.OrderedDict((k, v.float() if v.is_floating_point() else v)
                                 for k, v in model.state_dict().items())
    save_safetensors(path, sd, model_metadata(model, classes, **extra_meta))


def load_model(path, dropout=0.2):
    """Builds the twin from a weights file's metadata and loads it (strict). Returns
    (model, metadata)."""
    tensors, meta = load_safetensors(path)
    if "n_classes" in meta:
        n = int(meta["n_classes"])
    else:
        n = next(tensors[k] for k in ("fc1.weight", "fc2.weight", "fc.weight") if k in tensors).shape[0]
    width = int(meta.get("width", tensors["BaseBlock.conv_block1.0.weight"].shape[0]))
    if "attention" in meta:
        attention = meta["attention"]
    elif "hi_attention" in meta:
        attention = "both" if meta["hi_attention"] == "1" else "low"
    else:
        hi = "BaseBlock.layer1.1.group_conv3x3.weight" in tensors
        lo = "BaseBlock.layer2.1.group_conv3x3.weight" in tensors
        attention = ("both" if lo else "high") if hi else ("low" if lo else "none")
    fusion = meta.get("fusion", "on") in ("on", "1")
    model = MRMNet(n, width, dropout=dropout, attention=attention, fusion=fusion,
                   branches=meta.get("branches", "both"), combine=meta.get("combine", "mutual"),
                   lambda_feat=float(meta.get("lambda_feat", 0.01)),
                   lambda_logit=float(meta.get("lambda_logit", 0.1)),
                   temperature=float(meta.get("temperature", 4.0)))
    model.load_state_dict(tensors, strict=True)
    return model, meta


def weights_table(model):
    """[(name, dtype, shape string)] as mrmnet-weights.tsv writes them."""
    rows = []
    for k, v in model.state_dict().items():
        dt = "I64" if v.dtype == torch.int64 else "F32"
        rows.append((k, dt, "x".join(str(s) for s in v.shape) if v.dim() else "scalar"))
    return rows


if __name__ == "__main__":
    # Self-check: state_dict against the weights table, batch-1 forward, safetensors round trip.
    import sys
    import tempfile
    tsv = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "spec", "mrmnet-weights.tsv")
    torch.set_num_threads(2)
    model = MRMNet(5, 16)
    want = [tuple(line.rstrip("\n").split("\t")) for line in open(tsv)
            if line.strip() and not line.startswith("#") and not line.startswith("name\t")]
    got = weights_table(model)
    ok = got == want
    print("state_dict vs %s: %d vs %d entries, %s" % (tsv, len(got), len(want),
                                                    "equal, in order" if ok else "DIFFERENT"))
    if not ok:
        for i, (a, b) in enumerate(zip(got, want)):
            if a != b:
                print("  first difference at %d: %s vs %s" % (i, a, b))
                break
    nparams = sum(p.numel() for p in model.parameters())
    print("parameters: %d" % nparams)
    model.eval()
    with torch.no_grad():
        f1, o1, f2, o2 = model(torch.randn(1, 12, 1000))
    print("batch 1: feat1 %s out1 %s feat2 %s out2 %s" % (tuple(f1.shape), tuple(o1.shape),
                                                         tuple(f2.shape), tuple(o2.shape)))
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "w.safetensors")
        save_model(model, p, CLASSES_PTBXL_SUPER)
        m2, meta = load_model(p)
        same = all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                      m2.state_dict().values()))
        print("safetensors round trip:", "equal" if same else "DIFFERENT", meta)
    sys.exit(0 if ok and same else 1)
