"""Helpers of the CLI tests that need nothing beyond the standard library: the environment ctest
gives (MRMNET, MRM_SOURCE_DIR, MRM_TMPDIR, MRM_SHARED), pass/fail counting, running mrmnet,
skipping (exit 77). Not a test itself (no test_ prefix). The tests beside it import it directly
(a script's own folder is on sys.path); tests/train/mrm_testlib.py adds the numpy helpers."""
import os
import shutil
import subprocess
import sys

MRMNET = os.environ.get("MRMNET", "build/mrmnet")
SRC = os.environ.get("MRM_SOURCE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TMP = os.environ.get("MRM_TMPDIR", "/tmp")
SHARED = os.environ.get("MRM_SHARED", "")

failures = 0
passes = 0


def skip(why):
    """Prints why and exits 77 (ctest: skipped)."""
    print("skipped:", why)
    sys.exit(77)


def need_mrmnet(why="no mrmnet binary"):
    """Skips unless MRMNET names an executable file."""
    exe = os.environ.get("MRMNET", "")
    if not exe or not os.access(exe, os.X_OK):
        skip(why)


def need_shared(folder, marker, why):
    """MRM_SHARED/folder; skips with why unless MRM_SHARED is set and folder/marker is a file there."""
    d = os.path.join(SHARED, folder)
    if not SHARED or not os.path.isfile(os.path.join(d, marker)):
        skip(why)
    return d


def check(cond, what):
    global failures, passes
    if cond:
        passes += 1
    else:
        failures += 1
        print("FAIL:", what, flush=True)


def end():
    print("%d passed, %d failed" % (passes, failures))
    sys.exit(1 if failures else 0)


def mrmnet(*args, expect=None):
    """Runs mrmnet with args; returns the CompletedProcess (text stdout and stderr). When the exit
    status is not `expect` (None: any is fine), prints the command and its stderr."""
    p = subprocess.run([MRMNET] + [str(a) for a in args], capture_output=True, text=True)
    if expect is not None and p.returncode != expect:
        print("mrmnet", " ".join(map(str, args)), "->", p.returncode, "\n", p.stderr[-3000:], flush=True)
    return p


def run(*args, expect=0):
    """Runs mrmnet with args; returns (rc, stdout, stderr)."""
    p = mrmnet(*args, expect=expect)
    return p.returncode, p.stdout, p.stderr


def prepare(out, *args):
    """mrmnet prepare --out OUT ARGS... after removing OUT; returns the CompletedProcess."""
    shutil.rmtree(out, ignore_errors=True)
    return mrmnet("prepare", "--out", out, *args)


def read_lines(path):
    with open(path) as f:
        return f.read().splitlines()
