"""Data-parallel training across machines, and a process lost mid-run.

Two "hosts" are made on this machine as network namespaces joined by a veth pair (10.231.x.1 and
.2); mpirun runs in the first and starts the second's daemon through a launch agent that enters
the other namespace (as ssh would log in), and the two ranks talk over TCP only (Open MPI's tcp
BTL on the veth). The run equals one process's to 1e-5. Where namespaces cannot be made (no
root, no iproute2) that part is skipped with a message and the fault test runs on one host.

Fault: rank 1 is killed (SIGKILL) in the middle of an epoch; mpirun must end the whole job with
a message naming the lost rank within seconds (no hang), and --resume continues from the last
checkpoint (an epoch's end) to the same weights as an uninterrupted run."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mrm_testlib import MRMNET, TMP, check, end, make_prepared, read_safetensors, run, skip  # noqa: E402
from mpi_testlib import fresh, rel, values  # noqa: E402

MPIRUN = shutil.which("mpirun")
if not MPIRUN:
    skip("mpirun is not installed (scripts/install-deps.sh installs Open MPI)")
ROOT = ["--allow-run-as-root"] if os.geteuid() == 0 else []
env = dict(os.environ)
env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"  # Open MPI's own allocations

prep = make_prepared(os.path.join(TMP, "prep"))  # 40 training records: 5 steps an epoch of 8
w0 = os.path.join(TMP, "w0.safetensors")
check(run("init", "--classes", "3", "--width", "4", "--seed", "3", "--out", w0)[0] == 0, "init")
common = ["--data", prep, "--init", w0, "--batch", "8", "--threads", "1", "--lr", "1e-5", "--quiet"]


# the reference: one process, 4 epochs
ref_dir = fresh("ref")
check(run("train", *common, "--epochs", "4", "--out", ref_dir)[0] == 0, "1 process, 4 epochs")
ref = values(os.path.join(ref_dir, "last.safetensors"))[0]

# ---- two hosts --------------------------------------------------------------------------------
tag = "%d" % (os.getpid() % 100000)
subnet = "10.231.%d" % (os.getpid() % 200 + 20)
ns = ["mrmA" + tag, "mrmB" + tag]
ips = [subnet + ".1", subnet + ".2"]
made = []


def sh(*cmd):
    return subprocess.run(list(cmd), capture_output=True, text=True)


def make_hosts():
    if not shutil.which("ip"):
        return "the ip command (iproute2) is not installed"
    for n in ns:
        r = sh("ip", "netns", "add", n)
        if r.returncode:
            return "network namespaces cannot be created here: " + r.stderr.strip()
        made.append(n)
    va, vb = "mrva" + tag, "mrvb" + tag
    for cmd in (["ip", "link", "add", va, "type", "veth", "peer", "name", vb], ["ip", "link", "set", va, "netns", ns[0]],
                ["ip", "link", "set", vb, "netns", ns[1]], ["ip", "-n", ns[0], "addr", "add", ips[0] + "/24", "dev", va],
                ["ip", "-n", ns[1], "addr", "add", ips[1] + "/24", "dev", vb], ["ip", "-n", ns[0], "link", "set", va, "up"],
                ["ip", "-n", ns[1], "link", "set", vb, "up"], ["ip", "-n", ns[0], "link", "set", "lo", "up"],
                ["ip", "-n", ns[1], "link", "set", "lo", "up"]):
        r = sh(*cmd)
        if r.returncode:
            return "%s: %s" % (" ".join(cmd), r.stderr.strip())
    return None


def drop_hosts():
    for n in made:
        sh("ip", "netns", "del", n)


agent = os.path.join(TMP, "netns_agent.sh")
with open(agent, "w") as f:
    # Open MPI calls it as ssh: the host, then the command line for the remote shell
    f.write('#!/bin/sh\nhost=$1; shift\ncase "$host" in\n%s) ns=%s ;;\n*) ns=%s ;;\nesac\n'
            'exec ip netns exec "$ns" sh -c "$*"\n' % (ips[1], ns[1], ns[0]))
os.chmod(agent, 0o755)


def two_host_cmd(*args):
    return (["ip", "netns", "exec", ns[0], MPIRUN] + ROOT +
            ["--host", "%s:1,%s:1" % tuple(ips), "-np", "2", "--mca", "plm_rsh_agent", agent,
             "--mca", "btl", "self,tcp", "--mca", "btl_tcp_if_include", subnet + ".0/24",
             "--mca", "oob_tcp_if_include", subnet + ".0/24", MRMNET, "train"] + [str(a) for a in args])


def local_cmd(*args):
    return [MPIRUN] + ROOT + ["--oversubscribe", "-np", "2", MRMNET, "train"] + [str(a) for a in args]


try:
    why = make_hosts()
    if why:
        print("skipped: the two-host run:", why)
        launch = local_cmd
        where = "one host"
    else:
        launch = two_host_cmd
        where = "two hosts"
        d = fresh("hosts")
        r = subprocess.run(launch(*common, "--epochs", "4", "--out", d), capture_output=True, text=True, env=env, timeout=600)
        check(r.returncode == 0, "2 ranks on two hosts over TCP: %s" % r.stderr[-2000:])
        if r.returncode == 0:
            v, m = values(os.path.join(d, "last.safetensors"))
            e = rel(ref, v)
            print("two hosts vs 1 process: %.3g relative" % e)
            check(e <= 1e-5, "two hosts: the weights of one process to 1e-5 (%.3g)" % e)
            check(json.loads(m["train_config"])["processes"] == 2, "2 processes recorded")

    # ---- a rank killed in the middle of an epoch ----------------------------------------------
    d = fresh("fault")
    log = os.path.join(d, "log.jsonl")
    p = subprocess.Popen(launch(*common, "--epochs", "4", "--out", d), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, env=env)

    def rank1_pid():
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                e = open("/proc/%s/environ" % pid, "rb").read().split(b"\0")
                c = open("/proc/%s/cmdline" % pid, "rb").read()
            except OSError:
                continue
            if b"OMPI_COMM_WORLD_RANK=1" in e and d.encode() in c and os.path.basename(MRMNET).encode() in c:
                return int(pid)
        return None

    def steps_done():
        try:
            lines = [json.loads(l) for l in open(log) if l.strip()]
        except (OSError, ValueError):
            return 0, 0
        ep = max([l["epoch"] for l in lines if l["type"] == "epoch"] + [0])
        st = max([l["step"] for l in lines if l["type"] == "step"] + [0])
        return ep, st

    killed_at = None
    t0 = time.time()
    while p.poll() is None and time.time() - t0 < 600:
        ep, st = steps_done()
        if ep >= 2 and st >= 12:  # epoch 2 checkpointed, 2 steps into epoch 3 (5 steps an epoch)
            pid = rank1_pid()
            if pid:
                os.kill(pid, signal.SIGKILL)
                killed_at = time.time()
                break
        time.sleep(0.05)
    check(killed_at is not None, "rank 1 found and killed in epoch 3 (%s)" % (steps_done(),))
    try:
        out, _ = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        check(False, "the job hangs after a rank was killed")
    took = time.time() - killed_at if killed_at else -1
    print("%s: the job ended %.1f s after rank 1 was killed, exit %d" % (where, took, p.returncode))
    print("  " + "\n  ".join(l for l in out.splitlines() if "rank 1" in l or "signal" in l)[:600])
    check(p.returncode != 0, "the job fails")
    check(0 <= took <= 20, "within seconds (%.1f s)" % took)
    check("rank 1" in out and ("signal 9" in out or "Killed" in out or "exited" in out),
          "the message names the lost rank: %s" % out[-800:])
    state = json.loads(read_safetensors(os.path.join(d, "last.safetensors"))[1]["train_state"])
    check(state["epochs_done"] == 2 and state["step"] == 10, "the last checkpoint: epoch 2 (%s)" % state["step"])
    r = subprocess.run(launch("--resume", d, "--quiet"), capture_output=True, text=True, env=env, timeout=600)
    check(r.returncode == 0, "--resume after the fault: %s" % r.stderr[-2000:])
    v, m = values(os.path.join(d, "last.safetensors"))
    s = json.loads(m["train_state"])
    e = rel(ref, v)
    check(s["epochs_done"] == 4 and s["step"] == 20 and e <= 1e-5,
          "resumed to the end: 4 epochs, the weights of the uninterrupted run (%.3g)" % e)
    steps = [json.loads(l)["step"] for l in open(log) if '"type":"step"' in l]
    check(steps == list(range(1, 21)), "log.jsonl: each step once (the killed epoch's steps removed)")
finally:
    drop_hosts()
end()
