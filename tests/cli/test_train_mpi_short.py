"""mpirun -np P mrmnet train, short: the multi-process path (communicator, synchronised BatchNorm,
sharded validation) in a few steps, so that it also runs in the sanitizer build; test_train_mpi
holds the long comparisons.

From the same weights, 3 steps with 1 process, 2 and 3 processes (shares of 4 and 5 of a batch of
14) give the same weights, BatchNorm statistics and validation macro-AUC to 1e-5 relative; 2
processes with per-process BatchNorm (--no-sync-bn) train and differ from the synchronised run; a
value that is not finite is found by the process whose part of the split holds it.
Skips without mpirun or an MPI build."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mrm_testlib import MRMNET, TMP, check, end, make_prepared, np, run, skip  # noqa: E402
from mpi_testlib import MPIRUN, fresh, rel, values, mrun  # noqa: E402

if not MPIRUN:
    skip("mpirun is not installed (scripts/install-deps.sh installs Open MPI)")


prep = make_prepared(os.path.join(TMP, "prep"), n=(28, 12, 8))
rc, err = mrun(MRMNET, 2, "--data", prep, "--out", fresh("probe"), "--width", "4", "--steps", "1", "--batch", "8", "--quiet")
if rc and "built without MPI" in err:
    skip("this mrmnet was built without MPI")
check(rc == 0, "a first run with 2 processes")

w0 = os.path.join(TMP, "w0.safetensors")
check(run("init", "--classes", "3", "--width", "4", "--seed", "7", "--out", w0)[0] == 0, "init")
common = ["--data", prep, "--init", w0, "--batch", "14", "--quiet", "--threads", "1", "--lr", "1e-5", "--steps", "3"]
one = fresh("p1")
check(run("train", *common, "--out", one)[0] == 0, "1 process, 3 steps")
ref, mref = values(os.path.join(one, "last.safetensors"))
sref = json.loads(mref["train_state"])
for p in (2, 3):
    d = fresh("p%d" % p)
    check(mrun(MRMNET, p, *common, "--out", d)[0] == 0, "%d processes, 3 steps" % p)
    v, m = values(os.path.join(d, "last.safetensors"))
    e = rel(ref, v)
    s = json.loads(m["train_state"])
    print("%d processes vs 1: %.3g relative" % (p, e))
    check(sorted(v) == sorted(ref) and e <= 1e-5, "%d processes: the same weights as 1 to 1e-5 relative (%.3g)" % (p, e))
    auc = [h["val_macro_auc"] for h in s["history"]]
    auc_ref = [h["val_macro_auc"] for h in sref["history"]]
    check(len(auc) == len(auc_ref) and all(abs(a - b) <= 1e-6 for a, b in zip(auc, auc_ref)),
          "%d processes: the same validation macro-AUCs (%s vs %s)" % (p, auc, auc_ref))
d = fresh("nosync")
check(mrun(MRMNET, 2, *common, "--no-sync-bn", "--out", d)[0] == 0, "2 processes, per-process BatchNorm")
e = rel(ref, values(os.path.join(d, "last.safetensors"))[0])
print("2 processes, --no-sync-bn, vs 1: %.3g relative" % e)
check(e > 1e-4, "per-process BatchNorm statistics make another step (%.3g)" % e)

# each process checks its part of the split for values that are not finite: record 20 of 28 is rank 1's
bad = make_prepared(os.path.join(TMP, "prep_bad"), n=(28, 12, 8))
x = np.load(os.path.join(bad, "X_train.npy"))
x[20, 3, 500] = np.nan
np.save(os.path.join(bad, "X_train.npy"), x)
rc, err = mrun(MRMNET, 2, "--data", bad, "--out", fresh("bad"), "--width", "4", "--steps", "1", "--batch", "8", "--quiet")
check(rc != 0 and "record 20 holds a value that is not finite" in err and "rank 1" in err,
      "2 processes: a value that is not finite in the second process's part is refused by it (%s)" % err.strip()[-300:])
end()
