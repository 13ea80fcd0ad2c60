#!/usr/bin/env python3
"""The filter-reduce pipeline against user space, in one run on one machine.

For files of 4 to 160 MB at filter factors 0, 25, 50, 75 and 100 % (the share of
numbers the filter drops, as in the thesis's evaluation), it times reading each file
and computing count, sum, min and max of the numbers the filter keeps:

- the pipeline, with every backend and parser this kernel has, in-process (after
  the pipeline is loaded: FilterReduce.read) and as a whole command
  (``python -m pybpf attach copyout FILE``: interpreter, load, verify, attach, read);
- a C loop (pybpf/evaluation/fr_cloop.c, cc -O2): read() and the same parse, filter and
  reduction in user space;
- the pure-Python reader (pybpf.filterreduce.reference: re, int, the filter as a
  Python function).

Every run's result is checked against the reference, so a fast wrong answer fails the
benchmark. Reported as medians of --runs runs and as ratios to the C loop from the
same run. The data files are generated once and cached outside the repository
(--cache, default ~/.cache/pybpf/bench-filterreduce), keyed by their parameters.
Needs root.

    python tools/bench_filterreduce.py [--sizes 4,16,64,160] [--factors 0,25,50,75,100]
        [--runs 5] [--chunk 65536] [--python-max-mb 16] [--json FILE] [--markdown FILE]
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchhost import cpu_model, report  # noqa: E402
from pybpf.evaluation import cloop  # noqa: E402
from pybpf.evaluation.data import FILTER, THRESHOLD, data_file  # noqa: E402,F401
from pybpf.filterreduce import FilterReduce, reference, verdicts  # noqa: E402
from pybpf.kernel import system  # noqa: E402

THESIS = ("thesis (2021, kernel 5.x, copyout kprobe with bpf_strtol): the eBPF "
          "filter-reduce took about 3x the time of user space, up to 5x at filter "
          "factor 100 %; bpf_override_return saved about 20 % of a read's latency")


def build_cloop(out):
    return cloop.build(out)


def timed(fn, runs):
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        value = fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples), value


def c_loop(exe, path, chunk, runs):
    """(in-process seconds, whole-process seconds, result) of the C loop: medians;
    in-process is what the program measures from open() to the end of its loop."""
    inner = []

    def run():
        seconds, doc = cloop.run(exe, path, chunk, THRESHOLD)
        inner.append(seconds)
        return doc
    whole, d = timed(run, runs)
    return statistics.median(inner), whole, d


def command(path, backend, parser, chunk, runs):
    argv = [sys.executable, "-m", "pybpf", "attach", "copyout", path, "--filter", FILTER,
            "--backend", backend, "--parser", parser, "--chunk", str(chunk), "--json",
            "--quiet"]
    out = {}

    def run():
        out["doc"] = json.loads(subprocess.run(argv, check=True, capture_output=True,
                                               text=True, cwd=ROOT).stdout)[0]
    seconds, _ = timed(run, runs)
    return seconds, out["doc"]


agrees = cloop.agrees


def measure(args):
    found = verdicts()
    usable = [name for name, v in found.items() if v.usable]
    variants = [(b, p, False) for b in usable for p in args.parsers]
    if "copyout" in usable and found["copyout"].can_override:
        variants += [("copyout", p, True) for p in args.parsers]
    cache = os.path.expanduser(args.cache)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as build:
        cloop = build_cloop(build)
        if args.tmpfs:
            system.mount("tmpfs", tmp, "tmpfs")
        readers = {}
        try:
            for backend, parser, override in variants:
                readers[(backend, parser, override)] = FilterReduce(
                    FILTER, backend=backend, parser=parser, chunk=args.chunk,
                    override=override)
            for size in args.sizes:
                for factor in args.factors:
                    path = data_file(cache, size, factor, tmp if args.tmpfs else None)
                    want = reference.read_file(path, FILTER)
                    row = {"size_mb": size, "filter_factor": factor,
                           "numbers": want.numbers_seen, "kept": want.numbers_kept}
                    c_seconds, c_whole, c_doc = c_loop(cloop, path, args.chunk, args.runs)
                    if not agrees(c_doc, want):
                        raise SystemExit(f"the C loop disagrees with the reference on {path}")
                    row["c_loop_s"], row["c_loop_command_s"] = c_seconds, c_whole
                    if size <= args.python_max_mb:
                        py_seconds, _ = timed(lambda: reference.read_file(path, FILTER), 1)
                        row["python_s"] = py_seconds
                    row["pipeline"] = {}
                    for (backend, parser, override), fr in readers.items():
                        name = f"{backend}{'+override' if override else ''}/{parser}"
                        seconds, res = timed(lambda: fr.read(path), args.runs)
                        if not res.same_numbers(want):
                            raise SystemExit(f"{name} disagrees with the reference on "
                                             f"{path}")
                        entry = {"in_process_s": seconds,
                                 "vs_c_loop": seconds / c_seconds}
                        if "python_s" in row:
                            entry["python_speedup"] = row["python_s"] / seconds
                        if size in args.command_sizes and not override:
                            cmd_s, doc = command(path, backend, parser, args.chunk,
                                                 max(1, args.runs // 2))
                            if not agrees(doc, want):
                                raise SystemExit(f"the command disagrees on {path}")
                            entry["command_s"] = cmd_s
                            entry["command_vs_c_loop"] = cmd_s / c_whole
                        row["pipeline"][name] = entry
                    rows.append(row)
                    print(_row_text(row), flush=True)
        finally:
            for fr in readers.values():
                fr.close()
            if args.tmpfs:
                subprocess.run(["umount", tmp], check=True)
    return {"machine": machine(), "date": datetime.date.today().isoformat(),
            "filter": FILTER, "chunk": args.chunk, "runs": args.runs, "rows": rows,
            "thesis": THESIS}


def machine():
    return {"kernel": platform.release(), "cpus": os.cpu_count(),
            "cpu": cpu_model(), "python": platform.python_version()}


def _row_text(row):
    parts = [f"{row['size_mb']:>4} MB ff{row['filter_factor']:>3}: C {row['c_loop_s']:.3f} s"]
    for name, e in row["pipeline"].items():
        parts.append(f"{name} {e['in_process_s']:.3f} s ({e['vs_c_loop']:.2f}x C)")
    if "python_s" in row:
        parts.append(f"Python {row['python_s']:.2f} s")
    return "; ".join(parts)


def markdown(doc):
    names = sorted({n for r in doc["rows"] for n in r["pipeline"]})
    m = doc["machine"]
    out = [f"Measured {doc['date']} on {m['cpus']} CPUs ({m['cpu']}), Linux {m['kernel']}, "
           f"Python {m['python']}; filter `{doc['filter']}`, {doc['chunk']}-byte reads, "
           f"medians of {doc['runs']} runs, the C loop from the same run.", "",
           "In-process (the pipeline loaded once; each read of the file timed), as the "
           "time of the C loop's:", "",
           "| size | filter factor | C loop | " + " | ".join(names) + " |",
           "|---|---|---|" + "---|" * len(names)]
    for r in doc["rows"]:
        cells = [f"{r['pipeline'][n]['in_process_s']:.3f} s ({r['pipeline'][n]['vs_c_loop']:.2f}x)"
                 for n in names]
        out.append(f"| {r['size_mb']} MB | {r['filter_factor']} % | {r['c_loop_s']:.3f} s | "
                   + " | ".join(cells) + " |")
    py = [r for r in doc["rows"] if "python_s" in r]
    if py:
        out += ["", "Against the pure-Python reader (the same files):", "",
                "| size | filter factor | Python | " + " | ".join(
                    f"{n} speed-up" for n in names) + " |",
                "|---|---|---|" + "---|" * len(names)]
        for r in py:
            out.append(f"| {r['size_mb']} MB | {r['filter_factor']} % | {r['python_s']:.2f} s | "
                       + " | ".join(f"{r['pipeline'][n]['python_speedup']:.0f}x"
                                    for n in names) + " |")
    cmd = [r for r in doc["rows"] if any("command_s" in e for e in r["pipeline"].values())]
    if cmd:
        out += ["", "Whole process (`python -m pybpf attach copyout FILE`: interpreter, "
                "load, verification, attach, read), against the C loop's whole process:", "",
                "| size | filter factor | C loop | " + " | ".join(names) + " |",
                "|---|---|---|" + "---|" * len(names)]
        for r in cmd:
            out.append(f"| {r['size_mb']} MB | {r['filter_factor']} % | "
                       f"{r['c_loop_command_s']:.3f} s | "
                       + " | ".join(f"{r['pipeline'][n]['command_s']:.3f} s "
                                    f"({r['pipeline'][n]['command_vs_c_loop']:.1f}x)"
                                    if "command_s" in r["pipeline"][n] else "-"
                                    for n in names) + " |")
    out += ["", f"Beside it, the {doc['thesis']}."]
    return "\n".join(out) + "\n"


def _ints(text):
    return [int(x) for x in text.split(",") if x]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=_ints, default=[4, 16, 64, 160], help="MB, comma-separated")
    p.add_argument("--factors", type=_ints, default=[0, 25, 50, 75, 100],
                   help="filter factors in percent")
    p.add_argument("--parsers", default="native,strtol", type=lambda s: s.split(","))
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--chunk", type=int, default=65536, help="bytes per read()")
    p.add_argument("--python-max-mb", type=int, default=16,
                   help="time the Python reader on files up to this size (it is slow)")
    p.add_argument("--command-sizes", type=_ints, default=[64],
                   help="sizes (MB) at which the whole command is timed too")
    p.add_argument("--cache", default=os.environ.get("PYBPF_BENCH_CACHE",
                                                     "~/.cache/pybpf/bench-filterreduce"))
    p.add_argument("--tmpfs", action="store_true",
                   help="read each file from a tmpfs copy (in a VM: files on the host's "
                        "9p share do not go through the page cache the same way)")
    p.add_argument("--json", help="write the results as JSON to this file")
    p.add_argument("--markdown", help="write the tables as Markdown to this file")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0:
        print("bench_filterreduce: needs root (the pipeline loads BPF programs)",
              file=sys.stderr)
        return 1
    doc = measure(args)
    report(doc, markdown(doc), args.json, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
