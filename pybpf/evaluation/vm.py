"""--kernel vm-stock and vm-patched: the same run inside the VM tiers the tests use
(tools/vm-run: Debian's stock 6.1, or the 6.1 built from kernel-config/), under
QEMU's software emulation. Needs a source checkout (tools/ is not installed).

The host prepares what the guest cannot: the data files (the guest sees the cache
read-only) and, for vm-patched, the kernel (tools/build-kernel, cached). The guest
writes results.json and the report into the output directory, shared read-write with
it; the host then draws the plots from results.json (matplotlib under emulation takes
minutes) and writes the report again with them.
"""
import json
import os
import shlex
import subprocess
import sys

from ..errors import MissingError
from . import data, runner

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KERNELS = {"vm-stock": "Debian's stock 6.1 in a QEMU VM (software emulation)",
           "vm-patched": "the 6.1 built from kernel-config/ in a QEMU VM (software "
                         "emulation)"}


def _tool(name):
    path = os.path.join(REPO, "tools", name)
    if not os.path.exists(path):
        raise MissingError(f"--kernel vm-* boots the project's VM tier ({path}), which "
                           f"only a source checkout has: run it from a clone of pybpf, "
                           f"or use --kernel host")
    return path


def patched_kernel():
    """The patched kernel's image, built (and cached) if it is not yet."""
    tool = _tool("build-kernel")
    found = subprocess.run([sys.executable, tool, "--print-path"], capture_output=True,
                           text=True)
    if found.returncode != 0:
        print("bench thesis: building the patched kernel (cached afterwards; ~15 min "
              "on 2 CPUs)", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, tool], check=True, stdout=subprocess.DEVNULL)
        found = subprocess.run([sys.executable, tool, "--print-path"], capture_output=True,
                               text=True, check=True)
    return found.stdout.strip().splitlines()[-1]


def prepare(grid):
    """Generate the data files the guest will read."""
    cache = data.cache_dir()
    for size in grid.sizes_mb:
        for factor in grid.factors:
            data.data_file(cache, size, factor)
    for size in grid.override_mb:
        data.data_file(cache, size, 50)


def run(kernel, out, argv, grid, timeout):
    """Boot kernel's VM and run `python -m pybpf bench thesis ARGV --kernel host` in it;
    returns its exit status."""
    vm_run = _tool("vm-run")
    prepare(grid)
    out = os.path.abspath(out)
    os.makedirs(out, exist_ok=True)
    inner = [sys.executable, "-m", "pybpf", "bench", "thesis", *argv, "--out", out,
             "--kernel", "host", "--environment", KERNELS[kernel], "--emulated", "--no-plots"]
    command = (f"cd {shlex.quote(REPO)} && PYBPF_BENCH_CACHE={shlex.quote(data.cache_dir())} "
               + " ".join(shlex.quote(a) for a in inner))
    vm_argv = [sys.executable, vm_run, "--results", out, "--timeout", str(timeout),
               "--command", command]
    if kernel == "vm-patched":
        vm_argv += ["--kernel", patched_kernel(), "--marker", "patched"]
    status = subprocess.run(vm_argv).returncode
    if status == 0:       # plotting under emulation takes minutes: the host draws
        with open(os.path.join(out, "results.json")) as f:
            runner.finish(out, json.load(f))
    return status
