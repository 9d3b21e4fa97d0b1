"""A prepared folder is never a mix of two preparations. `prepare --force` over an existing folder,
killed with SIGKILL at random moments, leaves it byte for byte either as it was or as the new
preparation; the next prepare removes what a killed one left beside it. `train` and `eval` refuse
a folder that is incomplete or mixed (ids in two splits, counts not those of prepare.json, classes
not those of classes.txt). Synthetic WFDB records (500 Hz, 12 leads) written here with numpy."""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
from mrm_testlib import MRMNET, TMP, check, end, run  # noqa: E402

import numpy as np  # noqa: E402

LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
N = 300


def write_record(d, name, x):
    """x (samples, 12) int16 as a WFDB format-16 record with initial values and checksums."""
    x.astype("<i2").tofile(os.path.join(d, name + ".dat"))
    with open(os.path.join(d, name + ".hea"), "w") as f:
        f.write("%s 12 500 %d\n" % (name, x.shape[0]))
        for j, lead in enumerate(LEADS):
            ck = int(x[:, j].astype(np.int64).sum()) % 65536
            ck = ck - 65536 if ck >= 32768 else ck
            f.write("%s.dat 16 1000(0)/mV 16 0 %d %d 0 %s\n" % (name, int(x[0, j]), ck, lead))


recs = os.path.join(TMP, "recs")
if not os.path.isfile(os.path.join(recs, "labels.csv")):
    shutil.rmtree(recs, ignore_errors=True)
    os.makedirs(recs)
    rng = np.random.default_rng(3)
    rows = ["record,labels,fold"]
    for i in range(N):
        x = (rng.standard_normal((5000, 12)) * 200).astype(np.int16)
        write_record(recs, "r%03d" % i, x)
        labels = ";".join(c for c in "ABC" if rng.random() < 0.4) or "A"
        rows.append("r%03d,%s,%d" % (i, labels, i % 10 + 1))
    open(os.path.join(recs, "labels.csv"), "w").write("\n".join(rows) + "\n")

src = ["--records", recs, "--labels", os.path.join(recs, "labels.csv"), "--threads", "2"]


def prepare(out, folds, *more, expect=0):
    return run("prepare", *src, "--folds", folds, "--out", out, *more, expect=expect)


def snapshot(d):
    return {f: open(os.path.join(d, f), "rb").read() for f in sorted(os.listdir(d))}


ref_a, ref_b = os.path.join(TMP, "ref_a"), os.path.join(TMP, "ref_b")
for d in (ref_a, ref_b):
    shutil.rmtree(d, ignore_errors=True)
check(prepare(ref_a, "1-8/9/10")[0] == 0, "prepare A (folds 1-8/9/10)")
t0 = time.time()
check(prepare(ref_b, "2-9/10/1")[0] == 0, "prepare B (folds 2-9/10/1)")
duration = time.time() - t0
A, B = snapshot(ref_a), snapshot(ref_b)
check(A["ids_val.txt"] != B["ids_val.txt"], "A and B differ")

# 1. kill -9 while preparing B over A: the folder is A or B, never a mix
target = os.path.join(TMP, "target")
rng = random.Random(int(os.environ.get("MRM_TEST_SEED", "11")))
outcomes = {"old": 0, "new": 0}
killed = writing = 0
for trial in range(8):
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(ref_a, target)
    p = subprocess.Popen([MRMNET, "prepare", *src, "--folds", "2-9/10/1", "--out", target, "--force"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # most of a run reads records; the files are written at its end: half the kills aim there
        p.wait(timeout=(rng.uniform(0.05, 1.0) if trial % 2 else rng.uniform(0.85, 1.3)) * duration)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        p.wait()
        killed += 1
        tmp = os.path.join(TMP, "target.tmp.%d" % p.pid)
        writing += os.path.isdir(tmp) and bool(os.listdir(tmp))
    got = snapshot(target)
    state = "old" if got == A else "new" if got == B else "mixed"
    if state == "mixed":
        check(False, "trial %d: the folder mixes two preparations: %s" % (trial, sorted(got)))
    else:
        outcomes[state] += 1
print("kill -9 during prepare: %d of 8 runs killed (%d while writing the new folder); the folder was the old one %d "
      "times, the new one %d times" % (killed, writing, outcomes["old"], outcomes["new"]))
check(killed >= 2, "at least two runs were killed while preparing (%d)" % killed)
# what the killed runs left beside the folder goes with the next prepare
left = [f for f in os.listdir(TMP) if f.startswith("target.")]
check(prepare(target, "2-9/10/1", "--force")[0] == 0, "prepare after the kills")
check(snapshot(target) == B, "the folder is B")
now = [f for f in os.listdir(TMP) if f.startswith("target.")]
check(not now, "leftovers of killed runs removed (%d before, %s after)" % (len(left), now))

# 2. train and eval refuse a mixed or incomplete folder
def mixed(name, edit):
    d = os.path.join(TMP, name)
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(ref_a, d)
    edit(d)
    return d


def replace_text(path, a, b):
    t = open(path).read()
    open(path, "w").write(t.replace(a, b))


def copy_from_b(d, *files):
    for f in files:
        shutil.copy(os.path.join(ref_b, f), os.path.join(d, f))


train_args = ["--width", "4", "--batch", "8", "--steps", "1", "--quiet"]
cases = [
    # the case: B's training arrays beside A's validation and test arrays and prepare.json
    ("mix_train", lambda d: copy_from_b(d, "X_train.npy", "y_train.npy", "ids_train.txt"), "in both the train and the"),
    ("no_val", lambda d: os.remove(os.path.join(d, "X_val.npy")), "X_val.npy"),
    ("no_yval", lambda d: os.remove(os.path.join(d, "y_val.npy")), "incomplete"),
    ("count", lambda d: json.dump(dict(json.load(open(os.path.join(d, "prepare.json"))),
                                       splits={"train": {"records": 7}}), open(os.path.join(d, "prepare.json"), "w")),
     "prepare.json says 7"),
    ("classes", lambda d: open(os.path.join(d, "classes.txt"), "w").write("A\nC\nB\n"), "classes"),
    ("twice", lambda d: replace_text(os.path.join(d, "ids_test.txt"), "r009", "r019"), "twice in the test split"),
]
for name, edit, words in cases:
    d = mixed(name, edit)
    rc, _, err = run("train", "--data", d, "--out", os.path.join(TMP, "run_" + name), *train_args, expect=1)
    check(rc == 1 and words in err, "train refuses %s: %s" % (name, err.strip()[-300:]))
    shutil.rmtree(os.path.join(TMP, "run_" + name), ignore_errors=True)
# eval too (a model of the right classes: init)
model = os.path.join(TMP, "m.safetensors")
run("init", "--classes", "3", "--width", "4", "--out", model)
d = os.path.join(TMP, "mix_train")
rc, _, err = run("eval", "--model", model, "--data", d, "--split", "test", expect=1)
check(rc == 1 and "in both the train and the" in err, "eval refuses a mixed folder: " + err.strip()[-300:])
# the intact folder is accepted
out = os.path.join(TMP, "run_ok")
shutil.rmtree(out, ignore_errors=True)
rc, _, err = run("train", "--data", target, "--out", out, *train_args)
check(rc == 0, "train accepts the folder prepare left: " + err.strip()[-300:])

end()
