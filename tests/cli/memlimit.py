"""Runs a command under a memory limit in a cgroup of its own (a child of this process's cgroup:
the limits above still apply) and measures its peak memory. cgroup v2 (memory.max, memory.peak)
or v1's memory controller (memory.limit_in_bytes, memory.max_usage_in_bytes); needs the right to
create a cgroup there (root, or a delegated subtree). Not a test itself (no test_ prefix)."""
import os
import subprocess
import time


def _mounts():
    with open("/proc/mounts") as f:
        for line in f:
            dev, mnt, fstype, opts = line.split()[:4]
            yield mnt, fstype, opts.split(",")


def _own_paths():
    v2, v1 = None, None
    with open("/proc/self/cgroup") as f:
        for line in f:
            hid, ctrls, path = line.rstrip("\n").split(":", 2)
            if hid == "0" and ctrls == "":
                v2 = path
            elif "memory" in ctrls.split(","):
                v1 = path
    return v2, v1


class MemoryCgroup:
    """One child cgroup with a limit. `why` says why none could be made (then `ok` is False)."""

    def __init__(self, limit_bytes, name="mrmnet-memtest"):
        self.limit = limit_bytes
        self.dir = None
        self.version = 0
        self.why = ""
        v2, v1 = _own_paths()
        tries = []
        for mnt, fstype, opts in _mounts():
            if fstype == "cgroup2" and v2 is not None:
                tries.append((2, os.path.join(mnt, v2.lstrip("/"))))
            elif fstype == "cgroup" and "memory" in opts and v1 is not None:
                tries.append((1, os.path.join(mnt, v1.lstrip("/"))))
        if not tries:
            self.why = "no cgroup memory controller is mounted"
        for version, parent in tries:
            d = os.path.join(parent, "%s-%d-%d" % (name, os.getpid(), int(time.time() * 1000) % 1000000))
            try:
                os.mkdir(d)
            except OSError as e:
                self.why = "cannot create a cgroup in %s: %s" % (parent, e.strerror)
                continue
            knob = "memory.max" if version == 2 else "memory.limit_in_bytes"
            try:
                with open(os.path.join(d, knob), "w") as f:
                    f.write(str(limit_bytes))
                if version == 1:  # no swap on top of the limit, where swap accounting exists
                    sw = os.path.join(d, "memory.memsw.limit_in_bytes")
                    if os.path.exists(sw):
                        with open(sw, "w") as f:
                            f.write(str(limit_bytes))
                elif os.path.exists(os.path.join(d, "memory.swap.max")):
                    with open(os.path.join(d, "memory.swap.max"), "w") as f:
                        f.write("0")
            except OSError as e:
                self.why = "%s: %s (no memory controller there)" % (os.path.join(d, knob), e.strerror)
                os.rmdir(d)
                continue
            self.dir, self.version = d, version
            break

    @property
    def ok(self):
        return self.dir is not None

    def peak(self):
        """Peak memory of the cgroup so far (bytes; page cache included), or None."""
        for knob in ("memory.peak", "memory.max_usage_in_bytes"):
            p = os.path.join(self.dir, knob)
            if os.path.exists(p):
                with open(p) as f:
                    return int(f.read().split()[0])
        return None

    def run(self, argv, **kw):
        """Runs argv inside the cgroup; returns (returncode, stdout, stderr, maxrss_bytes, seconds)."""
        procs = os.path.join(self.dir, "cgroup.procs")

        def enter():
            with open(procs, "w") as f:
                f.write(str(os.getpid()))

        return run_measured(argv, preexec_fn=enter, **kw)

    def remove(self):
        if self.dir:
            for _ in range(50):
                try:
                    os.rmdir(self.dir)
                    break
                except OSError:
                    time.sleep(0.1)
            self.dir = None


def run_measured(argv, preexec_fn=None, env=None):
    """Runs argv; returns (returncode, stdout, stderr, maxrss_bytes, seconds). returncode < 0: the
    signal that killed it. maxrss is the child's peak resident set (ru_maxrss), file pages included."""
    import tempfile

    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:
        t0 = time.time()
        p = subprocess.Popen(argv, stdout=fo, stderr=fe, text=True, preexec_fn=preexec_fn, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        dt = time.time() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        return p.returncode, fo.read(), fe.read(), ru.ru_maxrss * 1024, dt
