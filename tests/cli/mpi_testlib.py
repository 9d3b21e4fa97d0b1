"""Launching `mrmnet train` under mpirun, for the multi-process tests."""
import os
import shutil
import subprocess

MPIRUN = shutil.which("mpirun")


def mpirun_cmd(p):
    cmd = [MPIRUN, "--oversubscribe", "-np", str(p)]
    if os.geteuid() == 0:
        cmd.insert(1, "--allow-run-as-root")
    return cmd


def mpi_env():
    env = dict(os.environ)
    # Open MPI keeps some allocations until exit: leak reports of the sanitizer build would be its
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    env.setdefault("OMPI_MCA_btl", "self,vader,tcp")
    return env


def mrun(mrmnet, p, *args, timeout=600):
    """mrmnet train under mpirun with p processes; returns (exit status, stderr)."""
    r = subprocess.run(mpirun_cmd(p) + [mrmnet, "train"] + [str(a) for a in args], capture_output=True, text=True,
                       env=mpi_env(), timeout=timeout)
    if r.returncode:
        print("mpirun -np %d mrmnet train %s -> %d\n%s" % (p, " ".join(map(str, args)), r.returncode, r.stderr[-3000:]))
    return r.returncode, r.stderr


def fresh(name):
    """An empty path for a run folder in the test's scratch folder."""
    from mrm_testlib import TMP
    d = os.path.join(TMP, name)
    shutil.rmtree(d, ignore_errors=True)
    return d


def values(path):
    """A weights file's tensors in float64 (the optimizer's moments and integer counters left out), and its metadata."""
    from mrm_testlib import np, read_safetensors
    t, meta, _ = read_safetensors(path)
    return {k: t[k].astype(np.float64) for k in sorted(t) if t[k].dtype != np.int64 and not k.startswith("adam.")}, meta


def rel(a, b):
    """The norm of the difference over the norm of the values, over every tensor."""
    d = sum(float(((a[k] - b[k]) ** 2).sum()) for k in a)
    n = sum(float((a[k] ** 2).sum()) for k in a)
    return (d / n) ** 0.5
