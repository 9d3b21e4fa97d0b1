#!/usr/bin/env python3
"""Data larger than memory: `prepare` streams the records into the arrays and `train` maps them,
so both run under a memory limit smaller than the prepared set, with the same files and the same
weights as without the limit. The set is the shared PTB-XL subset's records listed REPEATS times
(tools/big_ptbxl.py); the limit is a cgroup of our own (tests/cli/memlimit.py, v2 or v1). Checks:
the limit bites (a process allocating twice it is killed, and so is `prepare --in-memory`, which
holds every record); `prepare` under it succeeds, its peak stays under it, and its files equal
`prepare --in-memory`'s byte for byte; `train` under it gives the weights of a run without it.

Environment (the defaults keep it short; docs/data.md gives the larger demonstration):
  MRM_BOUNDED_REPEATS   copies of the subset (4: about 380 MB of arrays)
  MRM_BOUNDED_LIMIT_MB  the limit (96)
  MRM_BOUNDED_TRAIN     train arguments after --data/--out (a few steps of a narrow model)
Skipped (77) without ../shared, the mrmnet binary, or the right to create a memory cgroup."""
import filecmp
import os
import shutil
import sys

from cli_testlib import MRMNET, SRC, TMP, check, end, need_mrmnet, need_shared, skip
import memlimit

PTBXL = need_shared(os.path.join("data", "ptb-xl"), "ptbxl_database.csv", "no shared PTB-XL data")
need_mrmnet()
REPEATS = int(os.environ.get("MRM_BOUNDED_REPEATS", "4"))
LIMIT = int(os.environ.get("MRM_BOUNDED_LIMIT_MB", "96")) << 20
TRAIN = os.environ.get("MRM_BOUNDED_TRAIN", "--steps 4 --width 4 --batch 8 --threads 2 --seed 5 --quiet").split()
MB = 1 << 20

probe = memlimit.MemoryCgroup(LIMIT)
if not probe.ok:
    skip("no memory cgroup: " + probe.why)
print("cgroup v%d at %s, limit %d MB" % (probe.version, probe.dir, LIMIT // MB))


def limited(argv, what):
    """Runs argv in a fresh cgroup with the limit; returns (rc, out, err, maxrss, seconds, cgroup peak)."""
    cg = memlimit.MemoryCgroup(LIMIT)
    try:
        rc, out, err, rss, dt = cg.run(argv)
        peak = cg.peak()
    finally:
        cg.remove()
    print("%s under %d MB: exit %d, %.1f s, peak resident %.1f MB, cgroup peak %s" %
          (what, LIMIT // MB, rc, dt, rss / MB, "%.1f MB" % (peak / MB) if peak is not None else "n/a"), flush=True)
    return rc, out, err, rss, dt, peak


try:
    # the limit bites: a process that allocates (and touches) twice the limit is killed
    rc = probe.run([sys.executable, "-c", "b = bytearray(%d)" % (2 * LIMIT)])[0]
    check(rc != 0, "a process allocating twice the limit was not stopped (exit %d): the cgroup does not limit" % rc)
finally:
    probe.remove()

sys.path.insert(0, os.path.join(SRC, "tools"))
import big_ptbxl  # noqa: E402

big = os.path.join(TMP, "big_ptbxl")
shutil.rmtree(big, ignore_errors=True)
rows = big_ptbxl.make(PTBXL, big, REPEATS)
streamed, in_memory = os.path.join(TMP, "prep_streamed"), os.path.join(TMP, "prep_in_memory")
for d in (streamed, in_memory):
    shutil.rmtree(d, ignore_errors=True)

# prepare, streamed, under the limit
rc, out, err, rss, dt, peak = limited([MRMNET, "prepare", "--ptbxl", big, "--out", streamed, "--threads", "2"], "prepare")
check(rc == 0, "prepare under the limit failed (%d): %s" % (rc, err[-2000:]))
X_bytes = sum(os.path.getsize(os.path.join(streamed, "X_%s.npy" % s)) for s in ("train", "val", "test")) if rc == 0 else 0
print("%d rows listed, arrays %.1f MB" % (rows, X_bytes / MB))
check(X_bytes > 2 * LIMIT, "the prepared set (%.1f MB) is not well above the limit (%d MB)" % (X_bytes / MB, LIMIT // MB))
check(peak is None or peak <= LIMIT, "cgroup peak %s above the limit" % peak)

# the former way holds every record: under the limit it is killed; without it, the same files
rc2, _, err2, _, _, _ = limited([MRMNET, "prepare", "--ptbxl", big, "--out", in_memory, "--threads", "2", "--in-memory"],
                                "prepare --in-memory")
check(rc2 != 0, "prepare --in-memory fitted under the limit: the set is not larger than the memory allowed")
shutil.rmtree(in_memory, ignore_errors=True)
rc3, _, err3, rss3, dt3 = memlimit.run_measured([MRMNET, "prepare", "--ptbxl", big, "--out", in_memory, "--threads", "2",
                                                 "--in-memory"])
print("prepare --in-memory without a limit: exit %d, %.1f s, peak resident %.1f MB" % (rc3, dt3, rss3 / MB))
check(rc3 == 0, "prepare --in-memory failed: %s" % err3[-2000:])
if rc == 0 and rc3 == 0:
    names = sorted(os.listdir(in_memory))
    check(names == sorted(os.listdir(streamed)), "file lists differ: %r vs %r" % (names, sorted(os.listdir(streamed))))
    same = [n for n in names if filecmp.cmp(os.path.join(in_memory, n), os.path.join(streamed, n), shallow=False)]
    check(same == names, "streamed and in-memory files differ: %r" % sorted(set(names) - set(same)))
    print("streamed == in-memory, byte for byte: %d files" % len(same))
shutil.rmtree(in_memory, ignore_errors=True)
shutil.rmtree(big, ignore_errors=True)

# train on the mapped arrays under the limit, and without it: the same weights
if rc == 0:
    runs = {}
    for name in ("limited", "free"):
        run = os.path.join(TMP, "run_" + name)
        shutil.rmtree(run, ignore_errors=True)
        argv = [MRMNET, "train", "--data", streamed, "--out", run] + TRAIN
        for s in ("train", "val"):  # out of the page cache: the run reads (and is charged for) what it maps
            fd = os.open(os.path.join(streamed, "X_%s.npy" % s), os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
        if name == "limited":
            r = limited(argv, "train")
        else:
            r = memlimit.run_measured(argv)
            print("train without a limit: exit %d, %.1f s, peak resident %.1f MB" % (r[0], r[4], r[3] / MB))
        check(r[0] == 0, "train (%s) failed (%d): %s" % (name, r[0], r[2][-2000:]))
        runs[name] = run
    if all(os.path.exists(os.path.join(r, "last.safetensors")) for r in runs.values()):
        for f in ("last.safetensors", "best.safetensors"):
            check(filecmp.cmp(os.path.join(runs["limited"], f), os.path.join(runs["free"], f), shallow=False),
                  "%s differs between the limited and the free run" % f)
    for r in runs.values():
        shutil.rmtree(r, ignore_errors=True)
shutil.rmtree(streamed, ignore_errors=True)
end()
