"""mrmnet ablate end to end on a tiny random prepared folder: two width-4 variants x two seeds x two
epochs. The outputs' numbers against the run folders' own files (test macro-AUC recomputed from the
saved probabilities with scikit-learn, or by ranks without it; the probabilities against mrmnet
eval; the runs' tensors against a plain mrmnet train), a study killed mid-run and rerun (finished
runs read back untouched, the stopped run resumed, the same results as uninterrupted; a run stopped before its first checkpoint started again), and the
refusals (unknown variant, bad config, another study's runs in the folder)."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
from mrm_testlib import MRMNET, TMP, check, end, make_prepared, read_safetensors, run  # noqa: E402

import numpy as np  # noqa: E402

try:
    from sklearn.metrics import roc_auc_score
except ImportError:
    roc_auc_score = None


def macro_auc(y, p):
    if roc_auc_score is not None:
        return roc_auc_score(y, p, average="macro")
    aucs = []
    for k in range(y.shape[1]):  # Mann-Whitney with average ranks
        s, t = p[:, k], y[:, k] > 0
        order = np.argsort(s, kind="mergesort")
        ranks = np.empty(len(s))
        sv = s[order]
        i = 0
        while i < len(s):
            j = i
            while j + 1 < len(s) and sv[j + 1] == sv[i]:
                j += 1
            ranks[order[i:j + 1]] = (i + j) / 2 + 1
            i = j + 1
        npos, nneg = t.sum(), (~t).sum()
        aucs.append((ranks[t].sum() - npos * (npos + 1) / 2) / (npos * nneg))
    return float(np.mean(aucs))


prep = make_prepared(os.path.join(TMP, "prep"), n=(16, 12, 12), seed=3)
VARIANTS = "released=width=4,cat=width=4,combine=concat"  # two heads and mutual learning; one head
common = ["--data", prep, "--variants", VARIANTS, "--seeds", "1,2", "--epochs", "2", "--threads", "1", "--resamples", "200"]
y_test = np.load(os.path.join(prep, "y_test.npy"))


def fresh(name):
    d = os.path.join(TMP, name)
    shutil.rmtree(d, ignore_errors=True)
    return d


# 1. Refusals before any training: nothing is created.
bad = fresh("bad")
for variants, what in (("released,nosuch", "nosuch"), ("x=width=5", "width"), ("released,released", "twice"),
                       ("a=widht=8", "widht"), ("../up=width=4", "name")):
    rc, _, err = run("ablate", "--data", prep, "--out", bad, "--variants", variants, expect=2)
    check(rc == 2 and what in err, "--variants %s refused naming %s: %s" % (variants, what, err.strip()))
check(not os.path.exists(bad), "a refused study creates nothing")
rc, out, _ = run("ablate", "--list-variants")
check(rc == 0 and all(v in out for v in ("released", "no-attention", "no-fusion", "no-mutual", "high-only", "concat")),
      "--list-variants")
check(run("ablate", "--data", prep, expect=2)[0] == 2, "--out required")
check(run("ablate", "--data", prep, "--out", bad, "--seeds", "1,x", expect=2)[0] == 2, "bad seeds refused")

# 2. The full study, two runs at once.
A = fresh("A")
rc, _, err = run("ablate", *common, "--out", A, "--jobs", "2")
check(rc == 0, "ablate: %s" % err[-500:])
for f in ("ablation.json", "ablation.md", "ablation.svg"):
    check(os.path.isfile(os.path.join(A, f)), f + " written")
J = json.load(open(os.path.join(A, "ablation.json")))
check([v["name"] for v in J["variants"]] == ["released", "cat"], "variants in order")
check(len(J["runs"]) == 4 and J["reference"] == "released" and J["n_test"] == len(y_test), "4 runs, reference, n_test")
aucs = {}
for r in J["runs"]:
    d = os.path.join(A, r["variant"], "seed" + r["seed"])
    check(os.path.normpath(r["dir"]) == os.path.normpath(d), "run folder %s" % d)
    te = json.load(open(os.path.join(d, "test_eval.json")))
    probs = np.load(os.path.join(d, "test_probs.npy"))
    check(probs.shape == y_test.shape and probs.dtype == np.float32, "probabilities (n_test, C) float32")
    want = macro_auc(y_test, probs)
    check(abs(r["test_macro_auc"] - want) < 1e-9 and abs(te["test_macro_auc"] - want) < 1e-9,
          "%s: test macro-AUC %r vs recomputed %r" % (d, r["test_macro_auc"], want))
    check(r["test_macro_auc_p2.5"] <= r["test_macro_auc_p97.5"], "per-run interval ordered")
    aucs[(r["variant"], r["seed"])] = r["test_macro_auc"]
    tensors, meta, raw = read_safetensors(os.path.join(d, "best.safetensors"))
    check(r["best_epoch"] == int(meta["epoch"]) and 1 <= r["best_epoch"] <= 2, "best epoch from best.safetensors")
    check(abs(r["val_macro_auc"] - float(meta["val_macro_auc"])) < 1e-7, "validation macro-AUC from best.safetensors")
    n_params = sum(t.size for k, t in tensors.items() if not re.search(r"running_(mean|var)$|num_batches_tracked$", k))
    check(r["n_params"] == n_params, "n_params %d vs the file's %d" % (r["n_params"], n_params))
    want_combine = "concat" if r["variant"] == "cat" else "mutual"
    check(meta["width"] == "4" and meta["combine"] == want_combine, "the run's variant in its weights")
    hist = [json.loads(line) for line in open(os.path.join(d, "log.jsonl")) if '"epoch"' in line]
    secs = {e["epoch"]: e["seconds"] for e in hist if e.get("type") == "epoch"}
    check(len(secs) == 2 and abs(r["train_seconds"] - sum(secs.values())) < 1e-6, "training seconds = the epochs' own")
    # the saved probabilities are the model's averaged output, as mrmnet eval gives them
    pe = os.path.join(TMP, "eval_probs.npy")
    check(run("eval", "--model", os.path.join(d, "best.safetensors"), "--data", prep, "--predictions", pe, "--resamples", "0")[0] == 0,
          "mrmnet eval")
    check(np.abs(np.load(pe) - probs).max() < 1e-6, "test_probs.npy = mrmnet eval's predictions")
for v in J["variants"]:
    xs = [aucs[(v["name"], s)] for s in ("1", "2")]
    check(abs(v["test_macro_auc_mean"] - np.mean(xs)) < 1e-12 and abs(v["test_macro_auc_sd"] - np.std(xs, ddof=1)) < 1e-12,
          "%s: mean and sd over seeds" % v["name"])
    check(v["test_macro_auc_min"] == min(xs) and v["test_macro_auc_max"] == max(xs), "min and max")
    check(v["test_macro_auc_mean_p2.5"] <= v["test_macro_auc_mean_p97.5"], "interval of the mean ordered")
d = J["variants"][1]["difference_to_reference"]
want = np.mean([aucs[("cat", s)] - aucs[("released", s)] for s in ("1", "2")])
check(abs(d["mean"] - want) < 1e-12, "difference = mean of the paired differences")
check(d["p2.5"] <= d["p97.5"] and d["excludes_zero"] == (d["p2.5"] > 0 or d["p97.5"] < 0), "difference interval")
check("difference_to_reference" not in J["variants"][0], "no difference for the reference")
md = open(os.path.join(A, "ablation.md")).read()
check("| cat | width=4,combine=concat |" in md and "%.4f" % J["variants"][1]["test_macro_auc_mean"] in md, "table row")
check("## Reading" in md and "%+.4f" % d["mean"] in md, "reading section with the difference")
svg = ET.parse(os.path.join(A, "ablation.svg")).getroot()
ns = "{http://www.w3.org/2000/svg}"
check(len(svg.findall(ns + "circle")) == 4, "one dot a run")
check({"released", "cat"} <= {t.text for t in svg.findall(ns + "text")}, "variant labels")

# 3. A run is an ordinary training run: the same tensors as mrmnet train with its options.
plain = fresh("plain")
check(run("train", "--data", prep, "--out", plain, "--width", "4", "--combine", "concat", "--seed", "2", "--epochs", "2",
          "--threads", "1", "--quiet")[0] == 0, "plain train")
_, _, rp = read_safetensors(os.path.join(plain, "best.safetensors"))
_, _, ra = read_safetensors(os.path.join(A, "cat", "seed2", "best.safetensors"))
check(rp == ra, "the study's run (2 jobs) = a plain mrmnet train, tensor for tensor")

# 4. Killed after the first run and during the second, then rerun: finished runs read back untouched,
# the stopped one resumed, the results those of the uninterrupted study.
# (one variant: its runs are those of study A, run for run)
B = fresh("B")
commonB = ["--data", prep, "--variants", "released=width=4", "--seeds", "1,2", "--epochs", "2", "--threads", "1", "--resamples", "200"]
p = subprocess.Popen([MRMNET, "ablate", *commonB, "--out", B, "--jobs", "1"], stderr=subprocess.PIPE, text=True)
killed = False
for line in p.stderr:
    if "released seed 2: epoch 1/2" in line:
        p.send_signal(signal.SIGKILL)
        killed = True
        break
p.wait()
check(killed, "the study was killed during the second run")
s1, s2 = os.path.join(B, "released", "seed1"), os.path.join(B, "released", "seed2")
check(os.path.isfile(os.path.join(s1, "test_eval.json")), "first run finished before the kill")
check(os.path.isfile(os.path.join(s2, "last.safetensors")) and not os.path.exists(os.path.join(s2, "test_eval.json")),
      "second run stopped with a checkpoint")
check(not os.path.exists(os.path.join(B, "ablation.json")), "no summary from a stopped study")
before = {f: (os.stat(os.path.join(s1, f)).st_mtime_ns, open(os.path.join(s1, f), "rb").read())
          for f in ("test_eval.json", "log.jsonl", "best.safetensors", "last.safetensors")}
rc, _, err = run("ablate", *commonB, "--out", B, "--jobs", "2")
check(rc == 0, "rerun: %s" % err[-500:])
check(re.search(r"released seed 1: finished before", err) is not None, "first run skipped")
check(re.search(r"released seed 2: resuming", err) is not None, "second run resumed")
check("released seed 1: training" not in err and "released seed 1: epoch" not in err, "first run not retrained")
after = {f: (os.stat(os.path.join(s1, f)).st_mtime_ns, open(os.path.join(s1, f), "rb").read()) for f in before}
check(before == after, "the finished run's files untouched")
JB = json.load(open(os.path.join(B, "ablation.json")))
check([r["test_macro_auc"] for r in JB["runs"]] == [r["test_macro_auc"] for r in J["runs"][:2]], "same test AUCs as uninterrupted")
for v, s in (("released", "1"), ("released", "2")):
    same = open(os.path.join(A, v, "seed" + s, "test_probs.npy"), "rb").read() == open(os.path.join(B, v, "seed" + s, "test_probs.npy"),
                                                                                         "rb").read()
    check(same, "%s seed %s: the same probabilities as uninterrupted" % (v, s))
check(JB["variants"][0]["test_macro_auc_mean"] == J["variants"][0]["test_macro_auc_mean"], "same summary")

# 5. Rerun of a finished study: everything read back; another study's runs in the folder refused.
rc, _, err = run("ablate", *commonB, "--out", B, "--quiet")
check(rc == 0 and json.load(open(os.path.join(B, "ablation.json")))["variants"] == JB["variants"], "finished study rerun")
rc, _, err = run("ablate", *commonB[:-6], "--epochs", "3", "--threads", "1", "--resamples", "200", "--out", B, expect=1)
check(rc == 1 and "2 epochs" in err, "another epoch count refused: %s" % err.strip())
rc, _, err = run("ablate", "--data", prep, "--variants", "released=width=8", "--seeds", "1", "--epochs", "2", "--out", B, expect=1)
check(rc == 1 and "another config" in err, "another variant under the same name refused: %s" % err.strip())
# 6. A run stopped during its first epoch (a log, no checkpoint) starts again; its folder with
# anything else in it is refused and left as it is.
C = fresh("C")
c1 = os.path.join(C, "released", "seed1")
os.makedirs(c1)
partial = open(os.path.join(B, "released", "seed1", "log.jsonl")).read().splitlines(True)[:3]
open(os.path.join(c1, "log.jsonl"), "w").write("".join(partial))
commonC = commonB[:commonB.index("--seeds")] + ["--seeds", "1"] + commonB[commonB.index("--seeds") + 2:]
open(os.path.join(c1, "notes.txt"), "w").write("mine")
rc, _, err = run("ablate", *commonC, "--out", C, expect=1)
check(rc == 1 and "not empty" in err and open(os.path.join(c1, "notes.txt")).read() == "mine"
      and open(os.path.join(c1, "log.jsonl")).read() == "".join(partial), "a partial run beside another file refused, untouched: %s" % err.strip())
os.remove(os.path.join(c1, "notes.txt"))
rc, _, err = run("ablate", *commonC, "--out", C)
check(rc == 0 and "released seed 1: starting again" in err, "a run stopped before its first checkpoint starts again: %s" % err[-300:])
check(open(os.path.join(C, "released", "seed1", "test_probs.npy"), "rb").read()
      == open(os.path.join(A, "released", "seed1", "test_probs.npy"), "rb").read(), "and gives the uninterrupted run's probabilities")
lines = [json.loads(l) for l in open(os.path.join(c1, "log.jsonl"))]
check(sum(1 for l in lines if l.get("type") == "start") == 1, "one start line in its new log")
end()
