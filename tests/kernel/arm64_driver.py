"""The guest side of tests/kernel/test_arm64_tier.py, run by tools/vm-arm64 inside the
arm64 VM with the guest's own Python (no pytest there: each import costs seconds under
an emulated CPU):

    python3 arm64_driver.py OUTDIR ARGSUM_OBJECT

It only observes: runs pybpf's commands and a kprobe and a uprobe, and writes what they
gave to OUTDIR/arm64.json (with the numbers file it generated, OUTDIR/numbers.txt);
the host test judges, against its own reference computation.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import time

from pybpf import shipped
from pybpf.attach.kprobe import attach_kprobe
from pybpf.attach.uprobe import attach_uprobe
from pybpf.filterreduce import backends
from pybpf.loader import BpfObject

CALLS = 40
READ_BASE = 4000      # read(2) counts READ_BASE + i: no other read of this process's
UMASK_BASE = 0o100    # umask(2) masks UMASK_BASE + i; the old mask goes back after
FILTER = "x >= 500000"


def command(*argv):
    """python3 -m pybpf ARGV...: exit status, stdout parsed as JSON if it is, stderr."""
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "pybpf", *argv], capture_output=True,
                         text=True, stdin=subprocess.DEVNULL)
    try:
        doc = json.loads(run.stdout)
    except ValueError:
        doc = None
    return {"argv": list(argv), "returncode": run.returncode, "json": doc,
            "stdout": run.stdout[-2000:], "stderr": run.stderr[-2000:],
            "seconds": round(time.monotonic() - started, 1)}


def probes(path):
    """Counts and argument sums of the kprobe on vfs_read and the uprobe on libc's
    umask, for CALLS calls each, with what they should be."""
    with BpfObject.open(path) as obj, open("/dev/zero", "rb", buffering=0) as zero:
        obj.variables["tgid"] = os.getpid()
        obj.variables["lo"] = UMASK_BASE
        obj.variables["hi"] = READ_BASE + CALLS
        obj.load()
        with attach_kprobe(obj.programs["sum_vfs_read"], "vfs_read"):
            for i in range(CALLS):
                zero.read(READ_BASE + i)
        with attach_uprobe(obj.programs["sum_umask"], "libc", "umask"):
            old = os.umask(UMASK_BASE)
            for i in range(1, CALLS):
                os.umask(UMASK_BASE + i)
            os.umask(old)
        # struct totals {__u64 calls, sum} per slot: 0 the kprobe's, 1 the uprobe's.
        got = [struct.unpack("=QQ", obj.maps["totals"][i]) for i in (0, 1)]
        # Whether the kernel itself takes a kprobe on _copy_to_iter (the copy_to_iter
        # backend's hook), apart from what pybpf's probe concludes.
        try:
            attach_kprobe(obj.programs["sum_vfs_read"], "_copy_to_iter").close()
            copy_to_iter = {"attached": True}
        except Exception as e:  # the host test reads the kernel's answer
            copy_to_iter = {"attached": False, "error": f"{type(e).__name__}: {e}"}
    return {"kprobe": {"calls": got[0][0], "sum": got[0][1], "want_calls": CALLS,
                       "want_sum": sum(READ_BASE + i for i in range(CALLS))},
            "uprobe": {"calls": got[1][0], "sum": got[1][1], "want_calls": CALLS,
                       "want_sum": sum(UMASK_BASE + i for i in range(CALLS))},
            "kprobe_copy_to_iter": copy_to_iter}


def loads():
    """python3 -m pybpf load of every shipped object. filterreduce's programs of all
    backends share one program array, which the kernel ties to one program type, so it
    loads as the pipeline does: one backend's programs at a time (copyout's without
    the bpf_override_return one, which needs the patched kernel's
    CONFIG_BPF_KPROBE_OVERRIDE)."""
    runs = {}
    for name in shipped.names():
        if name != "filterreduce":
            runs[name] = command("load", shipped.path(name), "--json")
            continue
        for backend in (backends.SyscallBackend(), backends.CopyToIterBackend(),
                        backends.CopyoutBackend(can_skip=False)):
            only = [arg for prog in backend.programs for arg in ("--only", prog)]
            runs[f"{name}/{backend.name}"] = dict(
                command("load", shipped.path(name), "--json", *only),
                programs=list(backend.programs))
    return runs


def main(outdir, argsum):
    report = {"machine": os.uname().machine, "release": os.uname().release,
              "python": sys.version.split()[0]}
    report["probe"] = command("probe", "--json")
    report["load"] = loads()
    try:
        report["probes"] = probes(argsum)
    except Exception as e:  # reported to the host test, which fails on it
        report["probes"] = {"error": f"{type(e).__name__}: {e}"}
    numbers = "/tmp/numbers.txt"   # the guest's own disk: ext4 through the page cache
    report["gen_numbers"] = command("gen-numbers", numbers, "512K", "--negatives", "0.2",
                                    "--filter", FILTER, "--filter-factor", "0.3",
                                    "--seed", "12")
    report["filter"] = FILTER
    report["attach"] = {backend: command("attach", "copyout", numbers, "--filter", FILTER,
                                         "--backend", backend, "--json")
                        for backend in ("syscall", "copy_to_iter")}
    if os.path.exists(numbers):
        shutil.copyfile(numbers, os.path.join(outdir, "numbers.txt"))
    with open(os.path.join(outdir, "arm64.json.tmp"), "w") as f:
        json.dump(report, f, indent=1)
    os.rename(os.path.join(outdir, "arm64.json.tmp"), os.path.join(outdir, "arm64.json"))


if __name__ == "__main__":
    main(*sys.argv[1:])
