"""mrmnet train killed with SIGKILL at random moments and resumed: the final weights equal those of
an uninterrupted run, bit for bit. Whatever the moment of the kill (during a step, a validation or
a checkpoint write), the atomic checkpoint leaves either the previous or the next state."""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
from mrm_testlib import MRMNET, TMP, check, end, make_prepared, read_safetensors, run  # noqa: E402

prep = make_prepared(os.path.join(TMP, "prep_kill"), n=(48, 16, 8))
common = ["--data", prep, "--batch", "8", "--width", "4", "--threads", "2", "--quiet", "--epochs", "4"]

full = os.path.join(TMP, "kill_full")
shutil.rmtree(full, ignore_errors=True)
t0 = time.time()
check(run("train", *common, "--out", full)[0] == 0, "uninterrupted run")
duration = time.time() - t0
ref, _, ref_raw = read_safetensors(os.path.join(full, "last.safetensors"))

rng = random.Random(int(os.environ.get("MRM_TEST_SEED", "7")))
for trial in range(3):
    out = os.path.join(TMP, "kill_%d" % trial)
    shutil.rmtree(out, ignore_errors=True)
    kills = 0
    args = [MRMNET, "train", *common, "--out", out]
    for attempt in range(6):
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            p.wait(timeout=rng.uniform(0.15, 0.8) * duration)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            p.wait()
            kills += 1
        if p.returncode == 0:
            break
        # resume when a checkpoint exists, otherwise start again (the folder is not empty: --force)
        if os.path.exists(os.path.join(out, "last.safetensors")):
            args = [MRMNET, "train", "--resume", out, "--quiet"]
        else:
            args = [MRMNET, "train", *common, "--out", out, "--force"]
    if p.returncode != 0:
        p = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    check(p.returncode == 0, "trial %d: the run completes after %d kills" % (trial, kills))
    leftovers = [f for f in os.listdir(out) if ".tmp." in f]
    got, _, raw = read_safetensors(os.path.join(out, "last.safetensors"))
    diff = [k for k in ref_raw if ref_raw[k] != raw.get(k)]
    check(not diff, "trial %d (%d kills): weights equal the uninterrupted run's (differs: %s)"
          % (trial, kills, diff[:3]))
    # the log holds each step once, in order: a resume removes what its checkpoint does not cover
    lines = [json.loads(l) for l in open(os.path.join(out, "log.jsonl"))]
    steps = [l["step"] for l in lines if l["type"] == "step"]
    epochs = [l["epoch"] for l in lines if l["type"] == "epoch"]
    check(steps == list(range(1, 25)) and epochs == [1, 2, 3, 4],
          "trial %d: log.jsonl has steps 1..24 and epochs 1..4 once each (%s, %s)" % (trial, steps, epochs))
    print("trial %d: %d kills, %d leftover temporary files" % (trial, kills, len(leftovers)))
end()
