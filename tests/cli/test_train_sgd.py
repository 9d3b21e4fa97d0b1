"""One SGD step with lr 1 (no momentum, no dropout, no shuffling) from given weights: the weight
change is exactly minus the gradient that `mrmnet backward` computes on the same batch, and the
BatchNorm statistics are those it reports."""
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
from mrm_testlib import TMP, check, end, make_prepared, read_safetensors, run  # noqa: E402

import numpy as np  # noqa: E402

prep = make_prepared(os.path.join(TMP, "prep"), n=(6, 6, 6))
w0 = os.path.join(TMP, "w0.safetensors")
check(run("init", "--classes", "3", "--width", "4", "--seed", "11", "--out", w0)[0] == 0, "init")
grads = os.path.join(TMP, "g.safetensors")
check(run("backward", "--model", w0, "--input", os.path.join(prep, "X_train.npy"), "--labels",
          os.path.join(prep, "y_train.npy"), "--out", grads)[0] == 0, "backward")
out = os.path.join(TMP, "run")
shutil.rmtree(out, ignore_errors=True)
check(run("train", "--data", prep, "--out", out, "--init", w0, "--optimizer", "sgd", "--momentum", "0", "--lr", "1",
          "--batch", "6", "--steps", "1", "--no-shuffle", "--dropout", "0", "--threads", "2", "--quiet")[0] == 0, "one SGD step")
W0, _, _ = read_safetensors(w0)
G, _, _ = read_safetensors(grads)
W1, M1, _ = read_safetensors(os.path.join(out, "last.safetensors"))
check(M1["optimizer"] == "sgd" and M1["optimizer_t"] == "1", "one SGD step taken")
n_param = n_buf = 0
worst = 0.0
for name, w in W0.items():
    if name.endswith("running_mean") or name.endswith("running_var") or name.endswith("num_batches_tracked"):
        # the training step's BN statistics are those of the backward's forward
        check(name in G and np.array_equal(W1[name], G[name]), "BN buffer %s after one step" % name)
        n_buf += 1
        continue
    check(name in G, "gradient of %s" % name)
    if name not in G:
        continue
    delta = W1[name].astype(np.float64) - w.astype(np.float64)
    # float32 rounding of w - g: at most half an ulp of the result
    tol = np.spacing(np.abs(W1[name])).astype(np.float64)
    err = np.abs(delta + G[name].astype(np.float64))
    worst = max(worst, float((err / np.maximum(tol, 1e-30)).max()))
    check((err <= tol).all(), "%s: change = -gradient (max err %g)" % (name, float(err.max())))
    n_param += 1
check(n_param > 100 and n_buf > 50, "every tensor compared (%d parameters, %d buffers)" % (n_param, n_buf))
check(any(np.abs(G[k]).max() > 0 for k in G if k in W0 and not k.endswith("num_batches_tracked")), "gradients are not all zero")
print("worst |change + grad| in ulps of the result: %.3g" % worst)
end()
