"""6.2.2 (Figure 6.3): what the helpers cost to get through one 4096-byte page, by the
size of each call's buffer, and what the pipeline's own parsers cost on the same page.

Helpers: a program reads the page with bpf_probe_read_kernel (the page in a map:
kernel memory) or bpf_probe_read_user (the page in this process), size bytes per
call, 4096/size calls; and one calls bpf_strtol on each of the page's 512
eight-byte numbers. Their buffer is a map value, not the stack, so sizes go past the
thesis's 256 bytes (its cap came from the 512-byte stack) up to the whole page.
Each is timed by TEST_RUN, less the time of an empty program.

Parsers: the pipeline itself (its best backend, the native and strtol parsers),
reading a one-page file page_reads times; BPF's run-time statistics give the time
the kernel spent in the pipeline's programs per read (the hook and the stages it
tail-calls), and the wall time of the read is compared with the same read with no
pipeline attached.
"""
import os
import time

from ..errors import MeasurementError
from ..programs import StatsEnabled
from . import microprograms as M
from . import thesis
from .sections import Column, Figure, Section, Series, Table
from .stats import summary

NAME = "6.2.2"
TITLE = "Helper cost per 4096-byte page"


def plan(grid):
    per = grid.runs * grid.repeat * 1e-6
    return [per * 5 * 512 / s for s in grid.helper_sizes] * 2 + [per * 30] + \
        [grid.page_reads * 2e-5 * 3] * 2


def _timed_page(prog, empty, grid):
    """Nanoseconds per page of prog, runs times: each the mean of repeat runs less
    the empty program's."""
    return [M.run_ns(prog, grid.repeat) - M.run_ns(empty, grid.repeat)
            for _ in range(grid.runs)]


def _helper_rows(ctx, section):
    grid = ctx.grid
    rows = []
    with M.Pages(M.PAGE_TEXT) as pages, M.empty() as empty:
        for user in (False, True):
            helper = "bpf_probe_read_" + ("user" if user else "kernel")
            for size in grid.helper_sizes:
                with M.read_page(pages, size, user) as prog:
                    ns = _timed_page(prog, empty, grid)
                s = summary(ns)
                section.samples[f"{helper}/{size}"] = ns
                rows.append({"helper": helper, "buffer": size, "calls": M.PAGE // size,
                             "page_ns": s["mean"], "page_sd_ns": s["stdev"],
                             "call_ns": s["mean"] / (M.PAGE // size),
                             "past_thesis_cap": size > thesis.HELPER_BUFFER_CAP})
                ctx.progress.step(f"{helper} {size} B: {s['mean']:.0f} ns/page")
        with M.strtol_page(pages) as prog:
            ns = _timed_page(prog, empty, grid)
        s = summary(ns)
        section.samples["bpf_strtol/8"] = ns
        numbers = M.PAGE // M.NUMBER_FIELD
        rows.append({"helper": "bpf_strtol", "buffer": M.NUMBER_FIELD, "calls": numbers,
                     "page_ns": s["mean"], "page_sd_ns": s["stdev"],
                     "call_ns": s["mean"] / numbers, "past_thesis_cap": False})
        ctx.progress.step(f"bpf_strtol: {s['mean'] / numbers:.0f} ns/number")
    return rows


def _read_loop(fd, buf, reads):
    started = time.perf_counter()
    for _ in range(reads):
        os.preadv(fd, [buf], 0)
    return (time.perf_counter() - started) / reads * 1e9


def _parser_rows(ctx, section):
    """The pipeline's cost per one-page read, per parser, on the best backend."""
    from ..filterreduce import FilterReduce
    grid, rows = ctx.grid, []
    backend = ctx.best_backend
    if backend is None:
        return rows, "no pipeline backend works on this kernel: " + ctx.backend_why
    path = os.path.join(ctx.workdir, "page.txt")
    with open(path, "wb") as f:
        f.write(M.PAGE_TEXT)
    buf = bytearray(M.PAGE)
    fd = os.open(path, os.O_RDONLY)
    try:
        plain = [_read_loop(fd, buf, grid.page_reads) for _ in range(grid.runs)]
        section.samples["read/plain"] = plain
        for parser in ("native", "strtol"):
            with FilterReduce("x >= 0", backend=backend, parser=parser) as fr:
                kernel_ns, wall_ns = [], []
                for _ in range(grid.runs):
                    with StatsEnabled(), fr.tenant(buf) as tenant:
                        progs = fr.pipeline.hook_programs()
                        before = sum(p.info().run_time_ns for p in progs)
                        wall_ns.append(_read_loop(fd, buf, grid.page_reads))
                        after = sum(p.info().run_time_ns for p in progs)
                        res = tenant.result(expected_bytes=grid.page_reads * M.PAGE)
                    if res.numbers_seen != grid.page_reads * (M.PAGE // M.NUMBER_FIELD):
                        raise MeasurementError(f"the {parser} parser saw {res.numbers_seen} "
                                          f"numbers in {grid.page_reads} pages")
                    kernel_ns.append((after - before) / grid.page_reads)
            section.samples[f"pipeline/{parser}/kernel_ns"] = kernel_ns
            section.samples[f"pipeline/{parser}/wall_ns"] = wall_ns
            k, w, p = summary(kernel_ns), summary(wall_ns), summary(plain)
            rows.append({"parser": f"{backend}/{parser}", "kernel_ns": k["mean"],
                         "kernel_sd_ns": k["stdev"], "read_ns": w["mean"],
                         "plain_read_ns": p["mean"], "added_ns": w["mean"] - p["mean"],
                         "number_ns": k["mean"] / (M.PAGE // M.NUMBER_FIELD)})
            ctx.progress.step(f"pipeline {parser}: {k['mean']:.0f} ns/page")
    finally:
        os.close(fd)
    return rows, None


def run(ctx):
    grid = ctx.grid
    section = Section(NAME, TITLE, "Figure 6.3", runs=grid.runs)
    rows = _helper_rows(ctx, section)
    section.tables.append(Table([
        Column("helper", "helper"), Column("buffer", "buffer [bytes]"),
        Column("calls", "calls per page"), Column("page_ns", "per page [ns]", 0),
        Column("page_sd_ns", "sd [ns]", 0), Column("call_ns", "per call [ns]", 1)], rows,
        f"TEST_RUN of {grid.repeat} runs, {grid.runs} times per point, less an empty "
        f"program; the thesis's figure gives no numbers in its text "
        f"({thesis.RUNS['helpers']} calls per point, buffers up to "
        f"{thesis.HELPER_BUFFER_CAP} bytes)"))
    parser_rows, why = _parser_rows(ctx, section)
    if parser_rows:
        section.tables.append(Table([
            Column("parser", "pipeline backend/parser"),
            Column("kernel_ns", "in the kernel per page [ns]", 0),
            Column("kernel_sd_ns", "sd [ns]", 0),
            Column("number_ns", "per number [ns]", 1),
            Column("read_ns", "read() with it [ns]", 0),
            Column("plain_read_ns", "read() without [ns]", 0),
            Column("added_ns", "added to a read [ns]", 0)], parser_rows,
            f"a one-page file (512 numbers) read {grid.page_reads} times per run; BPF's "
            f"run-time statistics (BPF_ENABLE_STATS) of the pipeline's programs"))
    else:
        section.text.append(f"The pipeline's parsers were not measured: {why}.")
    series = []
    for helper in ("bpf_probe_read_kernel", "bpf_probe_read_user"):
        series.append(Series(helper, [(r["buffer"], r["page_ns"], r["page_sd_ns"])
                                      for r in rows if r["helper"] == helper]))
    xs = grid.helper_sizes
    strtol = next(r for r in rows if r["helper"] == "bpf_strtol")
    series.append(Series("bpf_strtol, 512 numbers", [(x, strtol["page_ns"], 0) for x in xs]))
    for r in parser_rows:
        series.append(Series(f"pipeline {r['parser']} (whole page)",
                             [(x, r["kernel_ns"], 0) for x in xs]))
    section.figures.append(Figure("helpers", "Cost of one 4096-byte page",
                                  "helper buffer [bytes]", "ns per page", series,
                                  logx=True, logy=True))
    k = {r["buffer"]: r for r in rows if r["helper"] == "bpf_probe_read_kernel"}
    small, cap, whole = k[min(k)], k.get(thesis.HELPER_BUFFER_CAP), k[max(k)]
    text = (f"Reading a page with bpf_probe_read_kernel costs {small['page_ns']:,.0f} ns "
            f"in {small['buffer']}-byte calls")
    if cap:
        text += f", {cap['page_ns']:,.0f} ns in the thesis's 256-byte ones"
    text += (f" and {whole['page_ns']:,.0f} ns in one call of {whole['buffer']} bytes "
             f"({cap['page_ns'] / whole['page_ns'] if cap else 0:.1f}x less than at 256): "
             f"the cost is per call, and the 256-byte cap was the stack's, which a map "
             f"buffer removes. bpf_strtol costs {strtol['call_ns']:.0f} ns per number, "
             f"{strtol['page_ns']:,.0f} ns for a page of 512.")
    native = next((r for r in parser_rows if r["parser"].endswith("/native")), None)
    if native:
        ratio = strtol["page_ns"] / native["kernel_ns"]
        text += (f" The pipeline's native parser gets through the whole page (reading it "
                 f"in, parsing, filtering, reducing) in {native['kernel_ns']:,.0f} ns, "
                 + (f"{ratio:.1f}x less than" if ratio >= 1 else f"{1 / ratio:.1f}x more than")
                 + " bpf_strtol alone takes for its numbers.")
    section.text.append(text)
    return section
