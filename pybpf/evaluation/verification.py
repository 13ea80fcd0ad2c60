"""6.2.1 (Table 6.1, Figure 6.2): how long the verifier takes by program size, and
what the JIT costs.

The thesis grew its programs by unrolling loops in C. Here the verifier does the
repeating: a loop of a helper call and three instructions, walked once per turn
(bounded loops, 5.3+), so the number of instructions it processes is chosen exactly
and read back from the kernel (verified_insns, 5.16+; the log's count before).
The kernel measures its own verification time (the log's statistics, BPF_LOG_STATS);
the rest of the load (the JIT, allocation, kallsyms) is the wall time of
BPF_PROG_LOAD minus that. Since the loop is a few instructions long whatever its
size, the JIT's share is then measured where it depends on length: straight-line
programs of 1k-100k instructions, as long for the JIT as for the verifier.
"""
import re
import time

from . import microprograms as M
from . import thesis
from .sections import Column, Figure, Section, Series, Table
from .stats import summary

NAME = "6.2.1"
TITLE = "Verification and JIT by program size"
PER_TURN = 4        # instructions the verifier processes per turn of counted_loop
OVERHEAD = 4        # ... and outside the loop


def plan(grid):
    """Predicted cost of each point (seconds, roughly: the verifier's ~0.8 us/insn)."""
    return [grid.runs * size * 1e-6 for size in grid.verify_sizes] + \
        [grid.runs * 0.01 * max(1, n // 10_000) for n in grid.jit_lengths]


def _stats(log):
    found = {}
    m = re.search(r"verification time (\d+) usec", log)
    if m:
        found["verify_ms"] = int(m.group(1)) / 1000
    m = re.search(r"processed (\d+) insns", log)
    if m:
        found["processed"] = int(m.group(1))
    return found


def _load(code):
    started = time.perf_counter()
    prog = M.load(code, M.LOG_STATS)
    wall_ms = (time.perf_counter() - started) * 1000
    got = _stats(prog.verifier_log)
    info = prog.info()
    got["verified_insns"] = info.verified_insns or got.get("processed")
    got["jited_len"] = info.jited_len
    got["xlated_insns"] = info.xlated_len // 8
    got["load_ms"] = wall_ms
    got["verify_ms"] = got.get("verify_ms", wall_ms)
    got["rest_ms"] = wall_ms - got["verify_ms"]
    return prog, got


def run(ctx):
    grid = ctx.grid
    section = Section(NAME, TITLE, "Table 6.1, Figure 6.2", runs=grid.runs)
    rows, verify_pts, run_pts, thesis_pts = [], [], [], []
    for size in grid.verify_sizes:
        turns = (size - OVERHEAD) // PER_TURN
        loads, exec_ns, code = [], [], M.counted_loop(turns)
        for _ in range(grid.runs):
            prog, got = _load(code)
            with prog:
                exec_ns.append(M.run_ns(prog, max(1, grid.repeat // 100)))
            loads.append(got)
        section.samples[f"verify/{size}"] = loads
        section.samples[f"exec_ns/{size}"] = exec_ns
        v = summary([g["verify_ms"] for g in loads])
        rest = summary([g["rest_ms"] for g in loads])
        ex = summary([n / 1e6 for n in exec_ns])
        t_mean, t_sd = thesis.VERIFICATION_MS.get(size, (None, None))
        rows.append({"size": size, "verified_insns": loads[0]["verified_insns"],
                     "verify_mean_ms": v["mean"], "verify_sd_ms": v["stdev"],
                     "rest_mean_ms": rest["mean"], "exec_mean_ms": ex["mean"],
                     "thesis_mean_ms": t_mean, "thesis_sd_ms": t_sd,
                     "vs_thesis": v["mean"] / t_mean if t_mean else None})
        verify_pts.append((loads[0]["verified_insns"], v["mean"], v["stdev"]))
        run_pts.append((loads[0]["verified_insns"], ex["mean"], ex["stdev"]))
        if t_mean:
            thesis_pts.append((size, t_mean, t_sd))
        ctx.progress.step(f"{size:,} insns: {v['mean']:.1f} ms")
    jit_rows = []
    for length in grid.jit_lengths:
        loads, code = [], M.straight_line(length)
        for _ in range(grid.runs):
            prog, got = _load(code)
            prog.close()
            loads.append(got)
        section.samples[f"jit/{length}"] = loads
        rest = summary([g["rest_ms"] * 1000 for g in loads])
        v = summary([g["verify_ms"] * 1000 for g in loads])
        jit_rows.append({"length": length, "jited_bytes": loads[0]["jited_len"],
                         "verify_us": v["mean"], "rest_mean_us": rest["mean"],
                         "rest_sd_us": rest["stdev"],
                         "rest_ns_per_insn": rest["mean"] * 1000 / length,
                         "thesis_jit_us": thesis.JIT_US[0]})
        ctx.progress.step(f"JIT of {length:,} insns: {rest['mean']:.0f} us")
    section.tables.append(Table([
        Column("size", "size (thesis LOC)"), Column("verified_insns", "verified_insns"),
        Column("verify_mean_ms", "verification, mean [ms]"),
        Column("verify_sd_ms", "sd [ms]"),
        Column("thesis_mean_ms", "thesis mean [ms]", thesis=True),
        Column("thesis_sd_ms", "thesis sd [ms]", thesis=True),
        Column("vs_thesis", "ours / thesis"),
        Column("rest_mean_ms", "rest of the load [ms]", 3),
        Column("exec_mean_ms", "one run of it [ms]", 3)], rows,
        f"{grid.runs} loads per size; the verifier's own time (BPF_LOG_STATS); the "
        f"thesis: {thesis.RUNS['verification']} loads per size"))
    section.tables.append(Table([
        Column("length", "program length [insns]"), Column("jited_bytes", "JIT output [bytes]"),
        Column("verify_us", "verification [us]", 0),
        Column("rest_mean_us", "load minus verification [us]", 0),
        Column("rest_sd_us", "sd [us]", 0),
        Column("rest_ns_per_insn", "per instruction [ns]", 1),
        Column("thesis_jit_us", "thesis JIT [us]", 1, thesis=True)], jit_rows,
        "straight-line programs: the JIT's cost is in the load outside verification"))
    section.figures.append(Figure(
        "verification", "Verification time by program size", "processed instructions",
        "time [ms]", [Series("verification (ours)", verify_pts),
                      Series("one run of the program (ours)", run_pts),
                      Series("verification (thesis, 5.7)", thesis_pts, thesis=True)]))
    ratios = [r["vs_thesis"] for r in rows if r["vs_thesis"]]
    big = rows[-1]
    per = [r["verify_mean_ms"] * 1000 / r["verified_insns"] for r in rows]
    theirs = [mean * 1000 / size for size, (mean, _) in thesis.VERIFICATION_MS.items()]
    shape = ("linear in the instructions processed" if max(per) / min(per) < 1.5 else
             "not linear in the instructions processed")
    section.text.append(
        f"At {big['verified_insns']:,} processed instructions the verifier took "
        f"{big['verify_mean_ms']:.1f} ms"
        + (f"; {min(ratios):.2f}-{max(ratios):.2f}x the thesis's times" if ratios else "")
        + f". The cost is {shape}: {min(per):.2f}-{max(per):.2f} us per instruction "
        f"over the sizes. The thesis called its growth exponential, but its own Table 6.1 "
        f"is linear too: {min(theirs):.2f}-{max(theirs):.2f} us per instruction.")
    j = jit_rows[-1]
    section.text.append(
        f"Loading a {j['length']:,}-instruction program outside verification (the JIT and "
        f"the rest) took {j['rest_mean_us']:.0f} us, {j['rest_ns_per_insn']:.1f} ns per "
        f"instruction; the thesis's {thesis.JIT_US[0]} us is that of a short program. The "
        f"JIT runs once per load, not per call of the hooked function as the thesis has it.")
    return section
