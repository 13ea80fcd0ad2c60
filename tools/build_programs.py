#!/usr/bin/env python3
"""Compile programs/*.bpf.c into BPF objects shipped inside the package, one set per
target architecture.

setup.py runs this when a wheel is built, so an installed pybpf needs no clang:
the objects land in pybpf/bpf/<machine>/ of the wheel (pybpf.shipped picks the running
CPU's). For a source tree (tests, development) run it with --inplace to put them in
pybpf/bpf/ beside the sources.

    python tools/build_programs.py [--inplace | --output DIR] [--clang clang]
                                   [--arch MACHINE ...]

One set per architecture, not one per byte order: kprobe programs read their arguments
from the architecture's pt_regs (PT_REGS_PARM1...), and the syscall numbers a program
compares with (<asm/unistd.h>) are the architecture's too.
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = os.path.join(ROOT, "programs")


class Target:
    """One architecture the wheel ships objects for: its os.uname().machine name,
    clang's BPF target (the byte order: bpfel or bpfeb), bpf_tracing.h's name for its
    pt_regs (__TARGET_ARCH_*), and its GNU triplet, which names where Debian puts its
    kernel headers (<asm/unistd.h>, <asm/ptrace.h>)."""

    def __init__(self, machine, clang_target, tracing_arch, triplet, cross_package):
        self.machine, self.clang_target = machine, clang_target
        self.tracing_arch, self.triplet = tracing_arch, triplet
        self.cross_package = cross_package

    def include_dir(self):
        """The architecture's <asm/*.h>: the build machine's own multiarch directory
        (linux-libc-dev) for its own architecture, else Debian's cross headers
        (linux-libc-dev-<arch>-cross). None when neither is installed."""
        candidates = [f"/usr/{self.triplet}/include"]
        if os.uname().machine == self.machine:
            candidates.insert(0, f"/usr/include/{self.triplet}")
        for path in candidates:
            if os.path.exists(os.path.join(path, "asm", "unistd.h")):
                return path
        return None

    def flags(self):
        """-g for BTF (map definitions need it), -O2 (the verifier wants optimised
        code), the byte order, the pt_regs layout and the architecture's headers
        (-target bpf does not look in any multiarch directory by itself, and
        <linux/bpf.h> includes <asm/types.h>)."""
        include = self.include_dir()
        if include is None:
            package = ("linux-libc-dev" if os.uname().machine == self.machine
                       else self.cross_package)
            raise SystemExit(
                f"building pybpf's BPF programs for {self.machine} needs that "
                f"architecture's kernel headers (<asm/unistd.h>): apt-get install "
                f"{package}")
        return ["-g", "-O2", "-target", self.clang_target, "-Wall", "-Werror",
                f"-D__TARGET_ARCH_{self.tracing_arch}", "-I", include]


# The architectures pybpf's syscall table knows (pybpf/kernel/syscall.py) and Debian
# has cross headers for; s390x is the big-endian one.
TARGETS = {t.machine: t for t in (
    Target("x86_64", "bpfel", "x86", "x86_64-linux-gnu", "linux-libc-dev-amd64-cross"),
    Target("aarch64", "bpfel", "arm64", "aarch64-linux-gnu", "linux-libc-dev-arm64-cross"),
    Target("riscv64", "bpfel", "riscv", "riscv64-linux-gnu", "linux-libc-dev-riscv64-cross"),
    Target("ppc64le", "bpfel", "powerpc", "powerpc64le-linux-gnu",
           "linux-libc-dev-ppc64el-cross"),
    Target("s390x", "bpfeb", "s390", "s390x-linux-gnu", "linux-libc-dev-s390x-cross"),
)}


def available():
    """The machines to build for by default: the build machine's own, and every other
    one whose kernel headers are installed (a plain ``pip install .`` needs no cross
    headers; tools/run-tests installs them all, and tests/unit/test_shipped.py checks
    that the source tree has every architecture). Says on stderr which are left out."""
    machines = []
    for machine, target in sorted(TARGETS.items()):
        if machine == os.uname().machine or target.include_dir() is not None:
            machines.append(machine)
        else:
            print(f"build_programs: no {machine} objects: its kernel headers are not "
                  f"installed (apt-get install {target.cross_package})", file=sys.stderr)
    return machines


def build(output, clang="clang", machines=None):
    """Compile every programs/*.bpf.c into output/<machine>/ for each machine (default:
    available()); returns the object paths."""
    sources = sorted(glob.glob(os.path.join(SOURCES, "*.bpf.c")))
    if not sources:
        return []
    if shutil.which(clang) is None:
        raise SystemExit(f"building pybpf's BPF programs needs {clang} (and libbpf-dev "
                         f"for <bpf/bpf_helpers.h>): apt-get install clang libbpf-dev")
    # -g made DWARF for clang to derive BTF from; the kernel and pybpf read only .BTF
    # and .BTF.ext, which llvm-strip -g keeps (libbpf-tools ship theirs so): a third
    # of each object, five architectures' worth in the wheel.
    strip = shutil.which("llvm-strip")
    # Exactly what this build makes: objects left by an earlier build or layout (a
    # reused setuptools build/ directory, a flat pybpf/bpf/) would ship as well.
    for stale in glob.glob(os.path.join(output, "**", "*.bpf.o"), recursive=True):
        os.remove(stale)
    objects = []
    for machine in machines or available():
        target = TARGETS[machine]
        flags = target.flags()
        outdir = os.path.join(output, machine)
        os.makedirs(outdir, exist_ok=True)
        for src in sources:
            obj = os.path.join(outdir, os.path.basename(src)[:-2] + ".o")
            subprocess.run([clang, *flags, "-c", src, "-o", obj], check=True)
            if strip:
                subprocess.run([strip, "-g", obj], check=True)
            objects.append(obj)
    return objects


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inplace", action="store_true",
                    help="write into pybpf/bpf/ of this source tree")
    ap.add_argument("--output", help="directory for the objects")
    ap.add_argument("--clang", default=os.environ.get("CLANG", "clang"))
    ap.add_argument("--arch", action="append", choices=sorted(TARGETS),
                    help="build for this machine (repeatable; default: this one and "
                         "every other whose kernel headers are installed)")
    args = ap.parse_args(argv)
    output = args.output or os.path.join(ROOT, "pybpf", "bpf")
    if not (args.inplace or args.output):
        ap.error("give --inplace or --output DIR")
    for obj in build(output, args.clang, args.arch):
        print(obj)


if __name__ == "__main__":
    sys.exit(main())
