#!/usr/bin/env python3
"""Object loading: pybpf against libbpf (`bpftool prog loadall`), in one run.

For a few objects (small; with BTF, maps, global data and subprograms; with CO-RE
against the kernel's BTF) it measures:

- open + relocate: pybpf parsing the ELF and BTF and resolving CO-RE, no kernel;
- whole load: everything from the file to loaded programs, (a) pybpf in-process
  (BpfObject.open().load()), (b) `python -m pybpf load` as a command, and
  (c) `bpftool prog loadall` as a command (its process start is cheap, Python's is not;
  both command timings are end to end, which is what a user waits for).

Each number is the median of --runs runs. Needs root, clang and bpftool.

    python tools/bench_load.py [--runs 7] [--json FILE]
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pybpf.btf import Btf  # noqa: E402
from pybpf.btf import core  # noqa: E402
from pybpf.kernel import system  # noqa: E402
from pybpf.loader import BpfObject  # noqa: E402
from pybpf.objfile import ObjectFile  # noqa: E402

OBJECTS = [  # (label, source)
    ("small: one tracepoint, one map", "programs/readcount.bpf.c"),
    ("BTF, maps, globals, subprograms", "tests/progs/loader/globals.bpf.c"),
    ("CO-RE: 53 relocations on vmlinux", "tests/progs/core/core_perf.bpf.c"),
]


def compile_objects(out):
    paths = []
    for label, src in OBJECTS:
        obj = os.path.join(out, os.path.basename(src)[:-2] + ".o")
        subprocess.run(["clang", "-O2", "-g", "-target", "bpf", "-c", os.path.join(ROOT, src),
                        "-o", obj, "-I/usr/include/x86_64-linux-gnu"], check=True)
        paths.append((label, obj))
    return paths


def timed(fn, runs):
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), min(samples), max(samples)


def open_and_relocate(path):
    """Parse and resolve CO-RE; the kernel's BTF comes from the process cache, as it
    does for every load after the first."""
    spec = ObjectFile.from_path(path)
    ext = spec.btf_ext
    if ext is not None and any(ext.core_relos.values()):
        cache = core.CoreCache(Btf.vmlinux())
        for section, relos in ext.core_relos.items():
            if relos and section in spec.code:
                core.relocate_section(bytes(spec.code[section]), relos, spec.btf, cache,
                                      section=section)


def load_in_process(path):
    with BpfObject.open(path) as obj:
        obj.load()


def run_command(cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def bpftool_loadall(path, pin_root):
    pin = os.path.join(pin_root, "bench")
    run_command(["bpftool", "prog", "loadall", path, pin])
    shutil.rmtree(pin)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args(argv)
    if not system.is_bpffs(system.BPFFS_DEFAULT):
        system.mount("bpf", system.BPFFS_DEFAULT, "bpf")
    pin_root = tempfile.mkdtemp(prefix="pybpf-bench-", dir=system.BPFFS_DEFAULT)
    Btf.vmlinux()  # warm the process cache once, as a long-running user would
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, path in compile_objects(tmp):
            load_in_process(path)  # warm-up (imports, caches)
            row = {
                "object": label,
                "size_bytes": os.path.getsize(path),
                "open_relocate_ms": timed(lambda: open_and_relocate(path), args.runs),
                "pybpf_in_process_ms": timed(lambda: load_in_process(path), args.runs),
                "pybpf_command_ms": timed(lambda: run_command(
                    [sys.executable, "-m", "pybpf", "load", path]), args.runs),
                "bpftool_command_ms": timed(lambda: bpftool_loadall(path, pin_root), args.runs),
            }
            for key in list(row):
                if key.endswith("_ms"):
                    row[key] = [round(v * 1000, 2) for v in row[key]]
            row["ratio_in_process"] = round(row["pybpf_in_process_ms"][0] /
                                            row["bpftool_command_ms"][0], 2)
            row["ratio_command"] = round(row["pybpf_command_ms"][0] /
                                         row["bpftool_command_ms"][0], 2)
            results.append(row)
    os.rmdir(pin_root)
    print(f"{'object':34} {'open+reloc':>10} {'pybpf in-proc':>13} {'pybpf cmd':>10} "
          f"{'bpftool':>8} {'ratio in-proc':>13} {'ratio cmd':>9}   (ms, medians)")
    for r in results:
        print(f"{r['object']:34} {r['open_relocate_ms'][0]:>10.2f} "
              f"{r['pybpf_in_process_ms'][0]:>13.2f} {r['pybpf_command_ms'][0]:>10.2f} "
              f"{r['bpftool_command_ms'][0]:>8.2f} {r['ratio_in_process']:>13.2f} "
              f"{r['ratio_command']:>9.2f}")
    doc = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "kernel": platform.release(), "python": platform.python_version(),
           "runs": args.runs, "results": results}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
