"""mrmnet bench: the table and the JSON agree with each other and with the counting convention,
the timer measures real time (the timed steps fit inside the command's own wall time), each case
runs in its own process (the peak memory of an inference case after the training case is not
the training case's), and bad options are refused."""
import json
import os
import time

from cli_testlib import SRC, TMP, check, end, mrmnet, need_mrmnet

need_mrmnet("MRMNET not set")


def close(a, b, rel=1e-6):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-12)


def run(args):
    return mrmnet("bench", *args)


os.makedirs(TMP, exist_ok=True)
out = os.path.join(TMP, "bench.json")
if os.path.exists(out):
    os.remove(out)

weights = os.path.join(SRC, "tests", "fixtures", "model", "ref_weights.safetensors")
t0 = time.monotonic()
p = run(["--threads", "1", "--iters", "1", "--warmup", "0", "--cases", "train,infer1,eval1",
         "--model", weights, "--json", out])
elapsed_ms = (time.monotonic() - t0) * 1e3
check(p.returncode == 0, "bench runs: rc %d, stderr %s" % (p.returncode, p.stderr))
d = json.load(open(out)) if os.path.exists(out) else {"cases": []}
cases = {c["case"]: c for c in d["cases"]}
check(sorted(cases) == ["eval1", "infer1", "train"], "the three asked cases: %s" % sorted(cases))
check(d.get("classes") == 5, "the weights' own 5 classes: %s" % d.get("classes"))
check(d.get("gflop_per_record_forward") == 1.76 and d.get("gflop_per_record_train") == 5.28,
      "counting convention in the JSON")
total_timed = 0.0
for name, c in cases.items():
    B = {"train": 96, "infer1": 1, "eval1": 1}[name]
    check(c["batch"] == B and c["threads"] == 1, "%s: batch %d threads %d" % (name, c["batch"], c["threads"]))
    check(c["iters"] == (4 if B == 1 else 1), "%s: batch-1 cases run 4x the steps (%d)" % (name, c["iters"]))
    check(c["ms_per_step_min"] <= c["ms_per_step_median"],
          "%s: min <= median" % name)
    check(close(c["ms_per_record"], c["ms_per_step_median"] / B), "%s: ms per record" % name)
    check(close(c["records_per_s"] * c["ms_per_record"], 1000.0), "%s: records per second" % name)
    gf = 5.28 if name == "train" else 1.76
    check(close(c["gflops"], c["records_per_s"] * gf), "%s: GFLOP/s on the reference count" % name)
    check(close(c["peak_share"], c["gflops"] / 167.5), "%s: share of one thread's peak" % name)
    check(c["ms_per_step_min"] > 0.01, "%s: a step takes time (%g ms)" % (name, c["ms_per_step_min"]))
    # the model's parameters alone are 7 MB; nothing here needs more than 4 GB
    check(7.0 < c["peak_rss_mb"] < 4096.0, "%s: peak memory %g MiB" % (name, c["peak_rss_mb"]))
    total_timed += c["ms_per_step_mean"] * c["iters"]
    # one thread cannot use more CPU time than wall time (small slack for clock granularity);
    # the utilisation divides by the whole timed span, which holds the steps and the gaps between
    # them (preemption on a loaded machine), so it is at most CPU time / summed step time
    check(0 < c["cpu_ms_per_step"] <= c["ms_per_step_mean"] * 1.05 + 0.5 and
          0 < c["cpu_utilisation"] <= c["cpu_ms_per_step"] / c["ms_per_step_mean"] * (1 + 1e-6) + 1e-9,
          "%s: CPU time %g ms within wall %g ms" % (name, c["cpu_ms_per_step"], c["ms_per_step_mean"]))
    check(any(line.split()[:3] == [name, "1", str(B)] for line in p.stdout.splitlines()),
          "%s: a row in the table" % name)
# the timed steps happened inside this command: their sum cannot exceed its wall time
check(0 < total_timed < elapsed_ms, "timed %g ms within the command's %g ms" % (total_timed, elapsed_ms))
if "train" in cases and "infer1" in cases:
    tr, inf = cases["train"], cases["infer1"]
    check(isinstance(tr.get("loss"), float) and 0.0 < tr["loss"] < 100.0, "train: finite loss %s" % tr.get("loss"))
    # batch-96 activations need hundreds of MB; a batch-1 engine in a fresh process does not
    check(tr["peak_rss_mb"] > 200.0, "train peak %g MiB holds the batch-96 activations" % tr["peak_rss_mb"])
    check(inf["peak_rss_mb"] < tr["peak_rss_mb"] / 4,
          "infer1 peak %g MiB is its own, not train's %g" % (inf["peak_rss_mb"], tr["peak_rss_mb"]))
    check(inf["ms_per_step_median"] < tr["ms_per_step_median"], "one record is faster than a training step")

# --peak changes the share only; a random model of 3 classes
p = run(["--threads", "1", "--iters", "1", "--warmup", "0", "--cases", "infer1", "--classes", "3",
         "--peak", "100", "--json", out])
check(p.returncode == 0, "random model: rc %d %s" % (p.returncode, p.stderr))
d = json.load(open(out))
check(d["classes"] == 3 and d["model"] is None, "random model of 3 classes")
c = d["cases"][0]
check(close(c["peak_share"], c["gflops"] / 100.0), "--peak 100")

# infer256 (the engine at batch 256, for thread scaling) runs when named, at batch 256, and
# is left out of the default set
p = run(["--threads", "1", "--iters", "1", "--warmup", "0", "--cases", "infer256", "--model", weights,
         "--json", out])
check(p.returncode == 0, "infer256: rc %d %s" % (p.returncode, p.stderr))
d = json.load(open(out))
c = d["cases"][0] if d["cases"] else {}
check(len(d["cases"]) == 1 and c.get("case") == "infer256" and c.get("batch") == 256 and c.get("iters") == 1,
      "infer256: one case at batch 256, one step: %s" % c)
check(close(c.get("ms_per_record", 0), c.get("ms_per_step_median", -1) / 256), "infer256: ms per record")
check(c.get("engine_isa") is not None, "infer256 runs the engine")
p = run(["--help"])
check(p.returncode == 0 and "infer256" in p.stdout and "only when named" in p.stdout, "--help names infer256")

# bad usage: 2; work that fails: 1, with the cause named
for args, rc, text in [(["--threads", "0"], 2, "--threads"), (["--threads", "1,"], 2, "--threads"),
                       (["--cases", "train,bogus"], 2, "--cases"), (["--iters", "x"], 2, "--iters"),
                       (["--peak", "-3"], 2, "--peak"), (["--frobnicate"], 2, "--frobnicate"),
                       (["--model", os.path.join(TMP, "absent.safetensors")], 1, "absent.safetensors"),
                       (["--cases", "infer1", "--iters", "1", "--threads", "1",
                         "--json", os.path.join(TMP, "no", "such", "dir", "b.json")], 1, "b.json")]:
    p = run(args)
    check(p.returncode == rc and text in p.stderr,
          "%s: rc %d (want %d), stderr %r" % (args, p.returncode, rc, p.stderr.strip()))

# a damaged weight file: the child's error comes back through the pipe
bad = os.path.join(TMP, "bad.safetensors")
with open(bad, "wb") as f:
    f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
p = run(["--cases", "infer1", "--iters", "1", "--threads", "1", "--model", bad])
check(p.returncode == 1 and "bad.safetensors" in p.stderr, "damaged weights: %d %r" % (p.returncode, p.stderr))

end()
