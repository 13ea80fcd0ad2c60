#!/usr/bin/env python3
"""The jit's costs, in one run on one machine: compile time and pipeline throughput.

- Compile time of a ten-line filter, from Python source to a loaded program, warm
  (llvmlite initialised by an earlier compile in the process) and cold (the first in
  a fresh interpreter), split into its parts: checking the subset and building the
  IR, the BPF object (optimise, emit), the host JIT and its check against Python,
  and loading the object into the kernel (verifier included). The same for a whole
  program (jit.program: a tracepoint counter with a map) and for
  FilterReduce(filter=fn) against FilterReduce(filter="expression").
- Throughput of the pipeline with that function as the filter against the same
  filter as a built-in expression, on the same file, runs alternated, as a ratio of
  medians (target: within 1.2x). Results are checked against each other.

    python tools/bench_jit.py [--runs 9] [--size-mb 64] [--json FILE] [--markdown FILE]
"""
import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))

from benchhost import report  # noqa: E402
from pybpf import jit  # noqa: E402
from pybpf.filterreduce import FilterReduce, sample  # noqa: E402
from pybpf.jit.functions import define  # noqa: E402
from pybpf.jit.subset import check  # noqa: E402
from pybpf.jit.target import HostCode, bpf_object  # noqa: E402

EXPRESSION = "(x % 7 == 0 and x > 1000) or 200000 <= x < 300000 or x % 1000 == 999"
SOURCE = '''
def keep(x):
    """The EXPRESSION above, as a ten-line function."""
    if x % 7 == 0:
        if x > 1000:
            return True
    if 200000 <= x:
        if x < 300000:
            return True
    r = x % 1000
    return r == 999
'''
COUNTER = '''
from pybpf import jit
calls = jit.Map("hash", max_entries=1024)

def count(ctx):
    calls[jit.tgid()] += 1
'''


def median_ms(samples):
    return round(statistics.median(samples) * 1000, 1)


def compile_parts(runs):
    """Median milliseconds of each part of jit.compile + load, warm, and of the whole
    public path (jit.compile, then a load and one run in the kernel)."""
    from pybpf.jit.irgen import Module
    parts = {k: [] for k in ("check the subset", "build the IR", "BPF object (optimise, "
                             "emit)", "host JIT", "host check (200 inputs)",
                             "load + verify + one TEST_RUN", "total")}
    names = list(parts)
    namespace = define(SOURCE)
    warm = jit.compile("keep", source=SOURCE)
    for _ in range(runs):
        t = [time.perf_counter()]
        checked = check("keep", source=SOURCE, env=namespace)
        t.append(time.perf_counter())
        module = Module("bench", "<string>")
        module.add(checked)
        module.add_license()
        ir_module = module.finish()
        t.append(time.perf_counter())
        bpf_object(ir_module)
        t.append(time.perf_counter())
        HostCode(ir_module)
        t.append(time.perf_counter())
        warm.check_on_host(jit.default_samples(1))
        t.append(time.perf_counter())
        warm.test_run(5)
        t.append(time.perf_counter())
        for i in range(len(t) - 1):
            parts[names[i]].append(t[i + 1] - t[i])
    for _ in range(runs):
        t0 = time.perf_counter()
        jit.compile("keep", source=SOURCE).test_run(5)
        parts["total"].append(time.perf_counter() - t0)
    return {k: median_ms(v) for k, v in parts.items()}


def cold_compile(runs):
    """Median seconds of a fresh interpreter compiling and loading the filter, minus
    the same interpreter importing pybpf.jit and exiting."""
    script = ("import time, sys; t = time.perf_counter(); from pybpf import jit; "
              "f = jit.compile('keep', source=sys.argv[1]); f.test_run(5); "
              "print(time.perf_counter() - t)")
    samples = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", script, SOURCE], check=True,
                             capture_output=True, text=True, cwd=ROOT)
        samples.append(float(out.stdout))
    return median_ms(samples)


def program_compile(runs):
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        prog = jit.program("count", "tracepoint/syscalls/sys_enter_getpid", source=COUNTER)
        prog.load().close()
        samples.append(time.perf_counter() - t0)
    return median_ms(samples)


def setup_times(runs):
    out = {}
    for name, flt in (("expression", EXPRESSION), ("jit", None)):
        samples = []
        for _ in range(runs):
            t0 = time.perf_counter()
            FilterReduce(flt or jit.compile("keep", source=SOURCE)).close()
            samples.append(time.perf_counter() - t0)
        out[name] = median_ms(samples)
    return out


def throughput(path, runs):
    times = {"expression": [], "jit": []}
    results = {}
    with FilterReduce(EXPRESSION) as expr, \
            FilterReduce(jit.compile("keep", source=SOURCE)) as fn:
        for _ in range(runs):
            for name, fr in (("expression", expr), ("jit", fn)):
                res = fr.read(path)
                times[name].append(res.seconds)
                results[name] = res
    a, b = results["expression"], results["jit"]
    if not a.same_numbers(b):
        raise SystemExit(f"the jit filter and the expression disagree: {a} {b}")
    size = os.path.getsize(path)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"file_mb": size >> 20, "kept": a.numbers_kept, "seen": a.numbers_seen,
            "backend": a.backend,
            "expression_mb_s": round(size / med["expression"] / 1e6, 1),
            "jit_mb_s": round(size / med["jit"] / 1e6, 1),
            "jit_over_expression": round(med["jit"] / med["expression"], 3),
            "ratio_spread": [round(j / e, 3) for j, e in zip(times["jit"], times["expression"])]}


def data_path(size_mb):
    cache = os.path.expanduser("~/.cache/pybpf/bench-jit")
    path = os.path.join(cache, f"v1-{size_mb}MB.txt")
    if not os.path.exists(path):
        os.makedirs(cache, exist_ok=True)
        sample.generate(path + ".tmp", size_mb << 20, seed=size_mb)
        os.rename(path + ".tmp", path)
    return path


def markdown(doc):
    c, t = doc["compile_ms"], doc["throughput"]
    lines = [f"Machine: {doc['machine']}; {doc['date']}; {doc['runs']} runs, medians.", "",
             "| jit.compile of a ten-line filter, warm | ms |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in c.items()]
    lines += [f"| cold (fresh interpreter, import included) | {doc['cold_ms']} |",
              f"| jit.program + load (tracepoint counter, one map) | {doc['program_ms']} |",
              f"| FilterReduce(expression) set-up | {doc['setup_ms']['expression']} |",
              f"| FilterReduce(jit function) set-up | {doc['setup_ms']['jit']} |", "",
              f"| {t['file_mb']} MB, backend {t['backend']} | MB/s |", "|---|---|",
              f"| built-in expression | {t['expression_mb_s']} |",
              f"| jit function | {t['jit_mb_s']} |",
              f"| jit / expression (time) | {t['jit_over_expression']}x (runs: "
              f"{min(t['ratio_spread'])}-{max(t['ratio_spread'])}) |"]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=9)
    p.add_argument("--size-mb", type=int, default=64)
    p.add_argument("--json")
    p.add_argument("--markdown")
    args = p.parse_args(argv)
    doc = {"machine": f"{platform.node()} {platform.machine()}, Linux {platform.release()}, "
                      f"{os.cpu_count()} CPUs, llvmlite "
                      f"{__import__('llvmlite').__version__}",
           "date": datetime.date.today().isoformat(), "runs": args.runs,
           "compile_ms": compile_parts(args.runs), "cold_ms": cold_compile(min(args.runs, 5)),
           "program_ms": program_compile(args.runs), "setup_ms": setup_times(args.runs),
           "throughput": throughput(data_path(args.size_mb), args.runs)}
    report(doc, markdown(doc), args.json, args.markdown)


if __name__ == "__main__":
    main()
