"""Every command that writes checks what it writes. With standard output on /dev/full (every write
fails with ENOSPC), each command exits non-zero and says "cannot write standard output: No space left
on device"; with /dev/full as an output path, the message names that path and the reason, and
/dev/full stays a device (it is written in place, never replaced by a renamed temporary file).
Where this process may mount (root, unshare -m), the same on a full tmpfs and on a read-only one:
the error names the user's path (never a temporary file), no partial or temporary file is left,
and output paths are refused before any work is done."""
import os
import re
import shutil
import stat
import subprocess

from cli_testlib import MRMNET, SRC, TMP, check, end, need_mrmnet, prepare, run

need_mrmnet()
FIX = os.path.join(SRC, "tests", "fixtures")
MODEL = os.path.join(SRC, "models", "ptbxl-superdiagnostic.safetensors")
REC = os.path.join(FIX, "ptb-xl", "00001_lr")
W = os.path.join(FIX, "model", "ref_weights.safetensors")
X = os.path.join(FIX, "model", "ref_input.npy")
Y = os.path.join(FIX, "model", "ref_labels.npy")
ENOSPC = "No space left on device"

prep = os.path.join(TMP, "prep")
p = prepare(prep, "--ptbxl", os.path.join(FIX, "prepare", "ptb-xl"))
check(p.returncode == 0, "prepare the fixture folder: " + p.stderr[-500:])


def to_file(args, stdout_path):
    """Runs mrmnet args with standard output on stdout_path; returns (rc, stderr)."""
    with open(stdout_path, "w") as f:
        q = subprocess.run([MRMNET] + args, stdout=f, stderr=subprocess.PIPE, text=True)
    return q.returncode, q.stderr


# ---- standard output on /dev/full ---------------------------------------------------------------
writers = [
    ["--help"],
    ["--version"],
    ["read", REC],
    ["read", REC, "--csv"],
    ["check", os.path.join(FIX, "ptb-xl")],
    ["info", MODEL],
    ["info", MODEL, "--tensors"],
    ["predict", "--model", MODEL, REC],
    ["predict", "--model", MODEL, "--csv", REC],
    ["predict", "--model", MODEL, "--json", REC],
    ["eval", "--model", MODEL, "--data", prep, "--resamples", "0"],
    ["prepare", "--ptbxl", os.path.join(FIX, "prepare", "ptb-xl"), "--out", os.path.join(TMP, "prep_full")],
    ["read", "--help"],
]
for args in writers:
    shutil.rmtree(os.path.join(TMP, "prep_full"), ignore_errors=True)  # prepare refuses a prepared folder
    rc, err = to_file(args, "/dev/full")
    what = "mrmnet " + " ".join(os.path.basename(a) for a in args) + " > /dev/full"
    check(rc != 0, what + ": exit status %d, expected non-zero" % rc)
    check("cannot write standard output: " + ENOSPC in err, what + ": message: " + err[-300:])
# the same commands into a regular file succeed (the check is not a false alarm)
for args in writers[2:5]:
    rc, err = to_file(args, os.path.join(TMP, "ok.txt"))
    check(rc == 0 and os.path.getsize(os.path.join(TMP, "ok.txt")) > 0, "mrmnet %s > file: %d %s" % (args[0], rc, err[-300:]))


# ---- /dev/full as an output path -----------------------------------------------------------------
def is_device(path):
    return stat.S_ISCHR(os.stat(path).st_mode)


outputs = [
    ["init", "--classes", "3", "--out", "/dev/full"],
    ["backward", "--model", W, "--input", X, "--labels", Y, "--out", "/dev/full"],
    ["eval", "--model", MODEL, "--data", prep, "--resamples", "0", "--json", "/dev/full"],
    ["eval", "--model", MODEL, "--data", prep, "--resamples", "0", "--predictions", "/dev/full"],
    ["eval", "--model", MODEL, "--data", prep, "--resamples", "0", "--roc", "/dev/full"],
    ["export", "--model", MODEL, "--engine", "/dev/full"],
    ["export", "--model", MODEL, "--c-source", "/dev/full"],
    ["quantize", "--model", MODEL, "--data", prep, "--calib", "8", "--out", "/dev/full"],
]
for args in outputs:
    rc, _, err = run(*args, expect=1)
    what = "mrmnet %s %s" % (args[0], " ".join(a for a in args if a.startswith("--")))
    check(rc == 1, what + " to /dev/full: exit status %d" % rc)
    check("/dev/full: write failed: " + ENOSPC in err, what + ": message: " + err[-300:])
    check(is_device("/dev/full"), what + ": /dev/full is still a device")
check(not [f for f in os.listdir("/dev") if f.startswith("full.tmp")], "no temporary file beside /dev/full")
# commands that write into a folder refuse /dev/full as that folder
for args in (["explain", "--model", MODEL, "--threads", "1", "--out", "/dev/full", REC],
             ["report", "--model", MODEL, "--threads", "1", "--out", "/dev/full", REC]):
    rc, so, err = run(*args, expect=1)
    check(rc == 1 and "/dev/full: not a folder" in err and is_device("/dev/full"), "mrmnet %s --out /dev/full: %d %s" % (args[0], rc, err[-300:]))
# an output path that is a folder, or in a missing folder, is refused before the work
rc, so, err = run("eval", "--model", MODEL, "--data", prep, "--json", TMP, expect=1)
check(rc == 1 and TMP + ": cannot write: it is a folder" in err and so == "", "eval --json FOLDER: " + err[-300:])
rc, so, err = run("eval", "--model", MODEL, "--data", prep, "--roc", os.path.join(TMP, "none", "r.svg"), expect=1)
check(rc == 1 and "none/r.svg: cannot write" in err and "No such file or directory" in err and so == "",
      "eval --roc in a missing folder: " + err[-300:])


# ---- a full file system and a read-only one (needs the right to mount: root and unshare) ---------
def can_mount():
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    d = os.path.join(TMP, "probe_mnt")
    os.makedirs(d, exist_ok=True)
    q = subprocess.run(["unshare", "-m", "sh", "-c", 'mount -t tmpfs -o size=64k none "$0" && mount -o remount,ro "$0"', d],
                       capture_output=True, text=True)
    return q.returncode == 0


# Mounts a tmpfs of 256 KB on $D, fills it (full) or makes it read-only (ro) or leaves it empty (tight), runs the command (standard output
# into $STDOUT), then records its exit status and the folder's listing beside it.
SCRIPT = r'''
D=$1; MODE=$2; STDOUT=$3; RES=$4; shift 4
mount -t tmpfs -o size=256k none "$D" || exit 99
mkdir -p "$D/sub"
if [ "$MODE" = ro ]; then mount -o remount,ro "$D" || exit 99; fi
if [ "$MODE" = full ]; then dd if=/dev/zero of="$D/fill" bs=4k 2>/dev/null; fi
if [ -n "$STDOUT" ]; then "$@" >"$STDOUT" 2>"$RES.err"; else "$@" >"$RES.out" 2>"$RES.err"; fi
echo $? >"$RES.rc"
(cd "$D" && find . -mindepth 1 | sort) >"$RES.ls"
'''


def in_mount(mode, args, stdout_name=""):
    """Runs mrmnet args with a tmpfs at TMP/mnt in mode 'full' or 'ro'; '@' in args is that folder.
    Returns (rc, stdout, stderr, listing of the folder afterwards)."""
    d = os.path.join(TMP, "mnt")
    os.makedirs(d, exist_ok=True)
    res = os.path.join(TMP, "res")
    for ext in (".rc", ".err", ".out", ".ls"):
        if os.path.exists(res + ext):
            os.remove(res + ext)
    args = [a.replace("@", d) for a in args]
    sout = os.path.join(d, stdout_name) if stdout_name else ""
    q = subprocess.run(["unshare", "-m", "sh", "-c", SCRIPT, "sh", d, mode, sout, res, MRMNET] + args,
                       capture_output=True, text=True)
    if q.returncode != 0 or not os.path.exists(res + ".rc"):
        return -1, "", q.stderr, ""
    rd = lambda ext: open(res + ext).read() if os.path.exists(res + ext) else ""  # noqa: E731
    return int(rd(".rc")), rd(".out"), rd(".err"), rd(".ls")


if not can_mount():
    print("skipped: full and read-only file systems (needs root and unshare -m to mount a tmpfs)")
else:
    # standard output into a file on a full disk
    for args in (["read", REC, "--csv"], ["predict", "--model", MODEL, "--csv", REC], ["info", MODEL, "--tensors"]):
        rc, _, err, _ = in_mount("full", args, "out.txt")
        check(rc == 1 and "cannot write standard output: " + ENOSPC in err,
              "mrmnet %s > file on a full disk: %d %s" % (args[0], rc, err[-300:]))
    # output files on a full disk: the user's path and the reason, nothing left behind
    cases = [
        (["init", "--classes", "3", "--out", "@/w.safetensors"], "@/w.safetensors"),
        (["backward", "--model", W, "--input", X, "--labels", Y, "--out", "@/g.safetensors"], "@/g.safetensors"),
        (["eval", "--model", MODEL, "--data", prep, "--resamples", "0", "--predictions", "@/p.npy"], "@/p.npy"),
        (["forward", "--model", W, "--input", X, "--out", "@/sub"], "@/sub/out1.npy"),
        (["explain", "--model", MODEL, "--threads", "1", "--out", "@/sub", REC], "@/sub/00001_lr.gradcam.npy"),
        (["report", "--model", MODEL, "--threads", "1", "--out", "@/sub", REC], "@/sub/00001_lr.html"),
        (["export", "--model", MODEL, "--engine", "@/m.mrme"], "@/m.mrme"),
        (["export", "--model", MODEL, "--c-source", "@/m.c"], "@/m.c"),
        (["quantize", "--model", MODEL, "--data", prep, "--calib", "8", "--out", "@/q.mrme"], "@/q.mrme"),
    ]
    d = os.path.join(TMP, "mnt")
    for args, path in cases:
        path = path.replace("@", d)
        rc, _, err, ls = in_mount("full", args)
        check(rc == 1 and path + ": write failed: " + ENOSPC in err,
              "mrmnet %s on a full disk names %s: %d %s" % (args[0], path, rc, err[-300:]))
        check(".tmp." not in err, "mrmnet %s: the message does not name the temporary file" % args[0])
        check(os.path.basename(path) not in ls and ".tmp." not in ls,
              "mrmnet %s on a full disk leaves no file: %s" % (args[0], ls.split()))
    # explain's files of a recording are written one by one: when one fails (here the third, on a
    # 256 KB file system the first two fit in), those written before it are removed again
    rc, _, err, ls = in_mount("tight", ["explain", "--model", MODEL, "--threads", "1", "--out", "@/sub", REC])
    path = os.path.join(d, "sub", "00001_lr.saliency.npy")
    check(rc == 1 and path + ": write failed: " + ENOSPC in err, "mrmnet explain filling the disk names %s: %d %s" % (path, rc, err[-300:]))
    check(ls.split() == ["./sub"], "mrmnet explain filling the disk leaves none of the record's files: %s" % ls.split())
    # training into a full disk stops naming the run folder's file that could not be written
    rc, _, err, ls = in_mount("full", ["train", "--data", prep, "--out", "@/run", "--epochs", "1", "--width", "4", "--quiet"])
    check(rc == 1 and re.search(re.escape(os.path.join(d, "run")) + r"/[a-z_.]+: write failed: " + ENOSPC, err) is not None,
          "mrmnet train on a full disk names the file: %d %s" % (rc, err[-300:]))
    check(".tmp." not in ls, "mrmnet train on a full disk leaves no temporary file: %s" % ls.split())
    # a read-only folder: refused before the work, naming the path and the reason
    ro_cases = [
        ["init", "--classes", "3", "--out", "@/w.safetensors"],
        ["backward", "--model", W, "--input", X, "--labels", Y, "--out", "@/g.safetensors"],
        ["forward", "--model", W, "--input", X, "--out", "@/sub"],
        ["forward", "--model", W, "--input", X, "--out", "@/new/deeper"],
        ["eval", "--model", MODEL, "--data", prep, "--json", "@/r.json"],
        ["eval", "--model", MODEL, "--data", prep, "--roc", "@/r.svg"],
        ["prepare", "--ptbxl", os.path.join(FIX, "prepare", "ptb-xl"), "--out", "@/prep"],
        ["train", "--data", prep, "--out", "@/run", "--epochs", "1", "--width", "4", "--quiet"],
        ["bench", "--json", "@/b.json", "--iters", "1", "--cases", "infer1", "--threads", "1"],
        ["explain", "--model", MODEL, "--threads", "1", "--out", "@/sub", REC],
        ["explain", "--model", MODEL, "--threads", "1", "--out", "@/new", REC],
        ["report", "--model", MODEL, "--threads", "1", "--out", "@/sub", REC],
        ["export", "--model", MODEL, "--engine", "@/m.mrme"],
        ["export", "--model", MODEL, "--c-source", "@/m.c"],
        ["quantize", "--model", MODEL, "--data", prep, "--calib", "8", "--out", "@/q.mrme"],
    ]
    for args in ro_cases:
        path = next(a for a in args if a.startswith("@")).replace("@", d)
        rc, so, err, ls = in_mount("ro", args)
        what = "mrmnet %s into a read-only folder" % args[0]
        check(rc == 1 and path in err and "Read-only file system" in err, what + ": %d %s" % (rc, err[-300:]))
        check(so == "" and "epoch" not in err and "/" not in so, what + ": refused before the work: " + so[-200:])
        check(ls.split() == ["./sub"], what + ": nothing written: %s" % ls.split())
end()
