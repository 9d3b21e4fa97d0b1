"""A run folder is never overwritten or mixed: train into a non-empty folder refuses; a checkpoint
is checked as a model is (finite values, the run's architecture) and can be used where a model file
can; --init keeps its own width unless another is asked (refused); a resume from an earlier
checkpoint trims log.jsonl to what the checkpoint covers; a folder another process trains in is
refused; a validation split too small for the
metrics is refused unless --no-val. Tiny width-4 models on a random prepared folder."""
import json
import os
import shutil
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
from mrm_testlib import TMP, check, end, make_prepared, read_safetensors, run  # noqa: E402

import numpy as np  # noqa: E402

prep = make_prepared(os.path.join(TMP, "prep"), n=(24, 16, 8))
common = ["--data", prep, "--batch", "8", "--threads", "2", "--quiet"]


def fresh(name):
    d = os.path.join(TMP, name)
    shutil.rmtree(d, ignore_errors=True)
    return d


def rewrite_safetensors(src, dst, change=None, drop=(), meta_change=None):
    """Copies a safetensors file, applying change(name, array) -> array to tensors, dropping names
    and updating the metadata; the layout is written from scratch (independent of mrmnet)."""
    arrays, meta, _ = read_safetensors(src)
    meta = dict(meta)
    if meta_change:
        meta.update(meta_change)
    header, blobs, off = {}, [], 0
    for name, a in arrays.items():
        if name in drop:
            continue
        a = np.array(a)
        if change:
            a = change(name, a)
        b = a.tobytes()
        header[name] = {"dtype": {"float32": "F32", "int64": "I64"}[str(a.dtype)], "shape": list(a.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if meta:
        header["__metadata__"] = meta
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def log_lines(d):
    return [json.loads(l) for l in open(os.path.join(d, "log.jsonl"))]


# 1. train into a finished run's folder refuses, changes nothing, and suggests --resume / --force
a = fresh("a")
check(run("train", *common, "--width", "4", "--out", a, "--epochs", "2")[0] == 0, "first run")
before = {f: open(os.path.join(a, f), "rb").read() for f in sorted(os.listdir(a))}
rc, _, err = run("train", *common, "--width", "4", "--out", a, "--epochs", "1", "--seed", "5", expect=1)
check(rc == 1 and "not empty" in err and "--resume" in err and "--force" in err, "re-run refused: " + err.strip())
after = {f: open(os.path.join(a, f), "rb").read() for f in sorted(os.listdir(a))}
check(before == after, "the refused re-run changed no file of the run")
# a folder holding anything (here a note) is not empty either
n = fresh("note")
os.makedirs(n)
open(os.path.join(n, "README"), "w").write("mine\n")
rc, _, err = run("train", *common, "--width", "4", "--out", n, "--epochs", "1", expect=1)
check(rc == 1 and "README" in err, "a folder with a user's file refused: " + err.strip())
# a folder another process trains in (it holds the folder's lock) is refused, fresh or resumed,
# and nothing of it is touched
import fcntl  # noqa: E402
lk = fresh("locked")
shutil.copytree(a, lk)
before = {f: open(os.path.join(lk, f), "rb").read() for f in sorted(os.listdir(lk))}
fd = os.open(lk, os.O_RDONLY)
fcntl.flock(fd, fcntl.LOCK_EX)
rc, _, err = run("train", "--resume", lk, "--epochs", "3", expect=1)
check(rc == 1 and "another process is training in this folder" in err, "a resume into a locked folder refused: " + err.strip())
rc, _, err = run("train", *common, "--width", "4", "--out", lk, "--epochs", "1", "--force", expect=1)
check(rc == 1 and "another process is training in this folder" in err, "--force into a locked folder refused: " + err.strip())
os.close(fd)
check(before == {f: open(os.path.join(lk, f), "rb").read() for f in sorted(os.listdir(lk))}, "the locked run unchanged")
# --force starts over: a new log (one start line), the old run's files gone first
f = fresh("forced")
shutil.copytree(a, f)
check(run("train", *common, "--width", "4", "--out", f, "--epochs", "1", "--seed", "5", "--force")[0] == 0, "--force")
ll = log_lines(f)
check([l["type"] for l in ll].count("start") == 1 and ll[0]["config"]["seed"] == "5"
      and [l["epoch"] for l in ll if l["type"] == "epoch"] == [1], "--force: only the new run in log.jsonl")
_, mb, _ = read_safetensors(os.path.join(f, "best.safetensors"))
check(mb["epoch"] == "1", "--force: best.safetensors is the new run's")

# 2. last.safetensors works where a model file does (its weights); info says what it is
last = os.path.join(a, "last.safetensors")
plain = os.path.join(TMP, "last_weights.safetensors")
ta, ma, _ = read_safetensors(last)
rewrite_safetensors(last, plain, drop=("adam.m", "adam.v"),
                    meta_change=None)
rc, out, err = run("info", last)
check(rc == 0 and "training checkpoint" in out and "width 4" in out, "info on a checkpoint: " + out[:300] + err)
rc, out, _ = run("info", os.path.join(a, "best.safetensors"))
check(rc == 0 and "kind:          model" in out, "info on a model file says model")
j1, j2 = os.path.join(TMP, "eval_last.json"), os.path.join(TMP, "eval_plain.json")
rc, _, err = run("eval", "--model", last, "--data", prep, "--split", "val", "--json", j1, "--threads", "2")
check(rc == 0 and "training checkpoint" in err, "eval with last.safetensors runs and says what it is: " + err.strip())
rc2, _, err2 = run("eval", "--model", plain, "--data", prep, "--split", "val", "--json", j2, "--threads", "2")
if rc == 0 and rc2 == 0:
    e1, e2 = json.load(open(j1)), json.load(open(j2))
    check(e1["heads"]["average"]["macro_auc"] == e2["heads"]["average"]["macro_auc"],
          "eval of the checkpoint = eval of its weights alone")
# its weights as --init of a new run
i = fresh("init_from_last")
rc, _, err = run("train", *common, "--init", last, "--out", i, "--epochs", "1")
check(rc == 0, "--init last.safetensors: " + err.strip())

# 3. a checkpoint with NaN in the optimizer state is refused, naming the tensor
r = fresh("nan")
shutil.copytree(a, r)
rewrite_safetensors(last, os.path.join(r, "last.safetensors"),
                    change=lambda k, x: np.where(np.arange(x.size).reshape(x.shape) == 7, np.float32(np.nan), x)
                    if k == "adam.v" else x)
rc, _, err = run("train", "--resume", r, "--epochs", "3", expect=1)
check(rc == 1 and "adam.v" in err and "nan" in err.lower(), "NaN in adam.v refused: " + err.strip())
rewrite_safetensors(last, os.path.join(r, "last.safetensors"),
                    change=lambda k, x: -np.abs(x) - 1 if k == "adam.v" else x)
rc, _, err = run("train", "--resume", r, "--epochs", "3", expect=1)
check(rc == 1 and "adam.v" in err and "negative" in err, "negative second moment refused: " + err.strip())
rewrite_safetensors(last, os.path.join(r, "last.safetensors"),
                    change=lambda k, x: x * np.float32(np.inf) if k == "fc1.weight" else x)
rc, _, err = run("train", "--resume", r, "--epochs", "3", expect=1)
check(rc == 1 and "fc1.weight" in err, "infinite weight refused: " + err.strip())
rewrite_safetensors(last, os.path.join(r, "last.safetensors"), meta_change={"lr": "nan"})
rc, _, err = run("train", "--resume", r, "--epochs", "3", expect=1)
check(rc == 1 and "lr" in err, "NaN learning rate refused: " + err.strip())
rewrite_safetensors(last, os.path.join(r, "last.safetensors"),
                    meta_change={"train_config": ma["train_config"].replace('"width":"4"', '"width":"8"')})
rc, _, err = run("train", "--resume", r, "--epochs", "3", expect=1)
check(rc == 1 and "width" in err, "train_config width disagreeing with the weights refused: " + err.strip())

# 4. a checkpoint of another width dropped into a run is refused, naming the field
w8 = fresh("w8")
check(run("train", *common, "--width", "8", "--out", w8, "--epochs", "1")[0] == 0, "width-8 run")
d = fresh("dropped")
shutil.copytree(a, d)
shutil.copy(os.path.join(w8, "last.safetensors"), os.path.join(d, "last.safetensors"))
rc, _, err = run("train", "--resume", d, "--epochs", "3", expect=1)
check(rc == 1 and "width" in err and "not this run's" in err, "another run's checkpoint refused: " + err.strip())
# ... also when best.safetensors is gone: the log's first line tells
os.remove(os.path.join(d, "best.safetensors"))
rc, _, err = run("train", "--resume", d, "--epochs", "3", expect=1)
check(rc == 1 and "width" in err and "log.jsonl" in err, "refused from log.jsonl's start line: " + err.strip())

# 5. --init with another width: refused when --width asks for another; else the model's width
i2 = fresh("init_w")
rc, _, err = run("train", *common, "--init", os.path.join(a, "best.safetensors"), "--width", "8", "--out", i2,
                 "--epochs", "1", expect=1)
check(rc == 1 and "width is '4'" in err and "'8'" in err, "--init width 4 with --width 8 refused: " + err.strip())
rc, _, err = run("train", *common, "--init", os.path.join(a, "best.safetensors"), "--hi-attention", "--out", i2,
                 "--epochs", "1", expect=1)
check(rc == 1 and "attention is 'low'" in err and "'both'" in err, "--init with another --attention refused: " + err.strip())
check(run("train", *common, "--init", os.path.join(a, "best.safetensors"), "--out", i2,
          "--epochs", "1")[0] == 0, "--init without --width")
_, mi, _ = read_safetensors(os.path.join(i2, "best.safetensors"))
check(mi["width"] == "4", "the --init model's width kept")

# 6. resume from an earlier checkpoint: log.jsonl keeps only what the checkpoint covers
e = fresh("earlier")
check(run("train", *common, "--width", "4", "--out", e, "--epochs", "1")[0] == 0, "1 epoch")
ep1 = os.path.join(TMP, "epoch1.safetensors")
shutil.copy(os.path.join(e, "last.safetensors"), ep1)
check(run("train", "--resume", e, "--epochs", "3", "--quiet")[0] == 0, "on to 3 epochs")
steps3 = [l["step"] for l in log_lines(e) if l["type"] == "step"]
check(steps3 == list(range(1, 10)), "9 steps logged: %s" % steps3)
shutil.copy(ep1, os.path.join(e, "last.safetensors"))
check(run("train", "--resume", e, "--epochs", "2", "--quiet")[0] == 0, "resume from the epoch-1 checkpoint")
ll = log_lines(e)
steps = [l["step"] for l in ll if l["type"] == "step"]
epochs = [l["epoch"] for l in ll if l["type"] == "epoch"]
check(steps == list(range(1, 7)) and epochs == [1, 2], "log trimmed then continued: steps %s epochs %s" % (steps, epochs))
check([l["type"] for l in ll].count("resume") == 2 and all(l["step"] <= 3 for l in ll if l["type"] == "resume"),
      "the resume lines of the covered part kept")
# a line cut by a kill is dropped too
with open(os.path.join(e, "log.jsonl"), "a") as fh:
    fh.write('{"type":"step","epoch":3,"st')
check(run("train", "--resume", e, "--epochs", "3", "--quiet")[0] == 0, "resume after a cut line")
ll = log_lines(e)  # json.loads of every line: no cut line left
check([l["step"] for l in ll if l["type"] == "step"] == list(range(1, 10)), "steps 1..9 once each")

# 7. a validation split too small for the metrics is refused, or allowed with --no-val (a warning)
small = fresh("prep_small")
shutil.copytree(prep, small)
yv = np.load(os.path.join(prep, "y_val.npy"))
xv = np.load(os.path.join(prep, "X_val.npy"))
np.save(os.path.join(small, "y_val.npy"), yv[:1])
np.save(os.path.join(small, "X_val.npy"), xv[:1])
open(os.path.join(small, "ids_val.txt"), "w").write("val000\n")
rc, _, err = run("train", "--data", small, "--out", fresh("s1"), "--width", "4", "--batch", "8", "--quiet", expect=1)
check(rc == 1 and "1 record" in err and "--no-val" in err, "1-record validation split refused: " + err.strip())
rc, _, err = run("train", "--data", small, "--out", fresh("s2"), "--width", "4", "--batch", "8", "--quiet",
                 "--epochs", "1", "--no-val")
check(rc == 0 and "no validation" in err, "--no-val trains, with a warning: " + err.strip())
_, ms, _ = read_safetensors(os.path.join(TMP, "s2", "best.safetensors"))
check("thresholds" not in ms and ms["val_macro_auc"] == "null", "--no-val: no thresholds, no validation metric")
same = np.zeros((4, 3), np.float32)
same[:, 0] = 1  # every record positive for A, negative for B and C: no AUC anywhere
np.save(os.path.join(small, "y_val.npy"), same)
np.save(os.path.join(small, "X_val.npy"), xv[:4])
open(os.path.join(small, "ids_val.txt"), "w").write("a\nb\nc\nd\n")
rc, _, err = run("train", "--data", small, "--out", fresh("s3"), "--width", "4", "--batch", "8", "--quiet", expect=1)
check(rc == 1 and "no class with both" in err, "validation without any AUC refused: " + err.strip())
np.save(os.path.join(small, "y_val.npy"), yv[:0])
np.save(os.path.join(small, "X_val.npy"), xv[:0])
open(os.path.join(small, "ids_val.txt"), "w").write("")
rc, _, err = run("train", "--data", small, "--out", fresh("s4"), "--width", "4", "--batch", "8", "--quiet", expect=1)
check(rc == 1 and "0 records" in err, "empty validation split refused: " + err.strip())

end()
