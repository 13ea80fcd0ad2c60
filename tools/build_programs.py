#!/usr/bin/env python3
"""Compile programs/*.bpf.c into BPF objects shipped inside the package.

setup.py runs this when a wheel is built, so an installed pybpf needs no clang:
the objects land in pybpf/bpf/ of the wheel. For a source tree (tests, development)
run it with --inplace to put them in pybpf/bpf/ beside the sources.

    python tools/build_programs.py [--inplace | --output DIR] [--clang clang]
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = os.path.join(ROOT, "programs")
MULTIARCH = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}
# bpf_tracing.h's name for the architecture whose pt_regs kprobe programs read.
TARGET_ARCH = {"x86_64": "x86", "aarch64": "arm64", "riscv64": "riscv", "s390x": "s390",
               "ppc64le": "powerpc"}


def clang_flags():
    """-g for BTF (map definitions need it), -O2 (the verifier wants optimised code),
    the multiarch include dir, since -target bpf does not look there by itself
    and <linux/bpf.h> includes <asm/types.h>, and the target architecture, whose
    pt_regs layout kprobe programs read arguments from (PT_REGS_PARM1...)."""
    flags = ["-g", "-O2", "-target", "bpf", "-Wall", "-Werror"]
    machine = os.uname().machine
    if machine in TARGET_ARCH:
        flags.append(f"-D__TARGET_ARCH_{TARGET_ARCH[machine]}")
    multiarch = MULTIARCH.get(machine)
    if multiarch:
        flags += ["-I", f"/usr/include/{multiarch}"]
    return flags


def build(output, clang="clang"):
    """Compile every programs/*.bpf.c into output; returns the object paths."""
    sources = sorted(glob.glob(os.path.join(SOURCES, "*.bpf.c")))
    if not sources:
        return []
    if shutil.which(clang) is None:
        raise SystemExit(f"building pybpf's BPF programs needs {clang} (and libbpf-dev "
                         f"for <bpf/bpf_helpers.h>): apt-get install clang libbpf-dev")
    os.makedirs(output, exist_ok=True)
    objects = []
    for src in sources:
        obj = os.path.join(output, os.path.basename(src)[:-2] + ".o")
        subprocess.run([clang, *clang_flags(), "-c", src, "-o", obj], check=True)
        objects.append(obj)
    return objects


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inplace", action="store_true",
                    help="write into pybpf/bpf/ of this source tree")
    ap.add_argument("--output", help="directory for the objects")
    ap.add_argument("--clang", default=os.environ.get("CLANG", "clang"))
    args = ap.parse_args(argv)
    output = args.output or os.path.join(ROOT, "pybpf", "bpf")
    if not (args.inplace or args.output):
        ap.error("give --inplace or --output DIR")
    for obj in build(output, args.clang):
        print(obj)


if __name__ == "__main__":
    sys.exit(main())
