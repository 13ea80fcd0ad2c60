"""6.3 (Figures 6.7-6.9): the pipeline against filter-reduce in user space, for the
thesis's filter factors and read sizes, with each method's time split into I/O,
load+verify and processing.

Every file is read from a private tmpfs (memory, as the thesis's cached reads were),
in 64 KiB read() calls. Methods: every backend and parser this kernel runs (with the
override too where it can skip copies), the C loop of fr_cloop.c, and the
pure-Python reader. I/O is the time of the same read() loop doing nothing with the
data; processing is a method's time beyond it; load+verify is what creating the
pipeline takes (loading, verifying and attaching its programs), once per run of a
command whatever the file's size, so it is measured apart. Every result is checked
against the C loop's (and the C loop against the Python reader where that runs).
"""
import time

from ..errors import MeasurementError, MissingError
from ..filterreduce import FilterReduce, reference
from . import cloop, data
from . import thesis
from .sections import Column, Figure, Section, Series, Table
from .stats import summary, timed

NAME = "6.3"
TITLE = "Filter-reduce in the kernel against user space"
CHUNK = 64 << 10
LAYERS = ("I/O", "load+verify", "processing")


def plan(grid, variants=4):
    per_mb = 0.01 * grid.runs * (2 + variants * 2)
    return [per_mb * size + (0.1 * size if size <= grid.python_max_mb else 0)
            for size in grid.sizes_mb for _ in grid.factors] + [0.5 * variants]


def variants(ctx):
    """[(name, FilterReduce arguments)] of what this kernel runs."""
    out = []
    for name, verdict in ctx.verdicts.items():
        if not verdict.usable:
            continue
        for parser in ("native", "strtol"):
            out.append((f"{name}/{parser}", {"backend": name, "parser": parser}))
            if name == "copyout" and verdict.can_override:
                out.append((f"{name}+override/{parser}",
                            {"backend": name, "parser": parser, "override": True}))
    return out


def _read_only(path):
    buf = bytearray(CHUNK)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass


def _loads(ctx, chosen, section):
    """{variant: summary of seconds to create its pipeline}."""
    out = {}
    for name, kwargs in chosen:
        samples = []
        for _ in range(min(ctx.grid.runs, 3)):
            started = time.perf_counter()
            FilterReduce(data.FILTER, chunk=CHUNK, **kwargs).close()
            samples.append(time.perf_counter() - started)
        section.samples[f"load/{name}"] = samples
        out[name] = summary(samples)
    ctx.progress.step("pipelines loaded and verified")
    return out


def _point(ctx, section, size, factor, readers, exe, tmp):
    grid = ctx.grid
    path = data.data_file(ctx.cache, size, factor, tmp)
    io, _ = timed(lambda: _read_only(path), grid.runs)
    key = f"{size}MB/ff{factor}"
    section.samples[f"io/{key}"] = io
    totals = {}
    want = None
    if size <= grid.python_max_mb:
        py, want = timed(lambda: reference.read_file(path, data.FILTER, chunk=CHUNK), 1)
        totals["Python"] = py
    if exe:
        runs = [cloop.run(exe, path, CHUNK, data.THRESHOLD) for _ in range(grid.runs)]
        if want is not None and not cloop.agrees(runs[0][1], want):
            raise MeasurementError(f"the C loop disagrees with the Python reader on {path}")
        totals["C loop"] = [s for s, _ in runs]
        check = runs[0][1]
    else:
        check = None
    for name, fr in readers.items():
        samples, res = timed(lambda: fr.read(path), grid.runs)
        if (check is not None and not all(getattr(res, k) == check[k] for k in check
                                          if k in ("bytes", "numbers_seen", "numbers_kept",
                                                   "sum", "min", "max"))) or \
                (want is not None and not res.same_numbers(want)):
            raise MeasurementError(f"{name} disagrees with the user-space result on {path}")
        totals[name] = samples
    rows = []
    io_s = summary(io)
    for method, samples in totals.items():
        section.samples[f"{method}/{key}"] = samples
        t = summary(samples)
        rows.append({"size_mb": size, "filter_factor": factor, "method": method,
                     "total_s": t["mean"], "total_sd_s": t["stdev"], "io_s": io_s["mean"],
                     "processing_s": max(0.0, t["mean"] - io_s["mean"])})
    return rows


def run(ctx):
    grid = ctx.grid
    section = Section(NAME, TITLE, "Figures 6.7, 6.8, 6.9", runs=grid.runs)
    chosen = variants(ctx)
    try:
        exe = cloop.build(ctx.workdir)
    except MissingError as e:
        exe = None
        section.text.append(f"No C loop in this run: {e}.")
    loads = _loads(ctx, chosen, section) if chosen else {}
    rows = []
    readers = {}
    try:
        for name, kwargs in chosen:
            readers[name] = FilterReduce(data.FILTER, chunk=CHUNK, **kwargs)
        with data.Tmpfs() as tmp:
            for size in grid.sizes_mb:
                for factor in grid.factors:
                    rows += _point(ctx, section, size, factor, readers, exe, tmp)
                    ctx.progress.step(f"{size} MB ff{factor}")
    finally:
        for fr in readers.values():
            fr.close()
    for r in rows:
        load = loads.get(r["method"])
        r["load_verify_s"] = load["mean"] if load else None   # user space: none
        c = next((x for x in rows if x["method"] == "C loop" and x["size_mb"] == r["size_mb"]
                  and x["filter_factor"] == r["filter_factor"]), None)
        r["vs_c_loop"] = r["total_s"] / c["total_s"] if c else None
        r["thesis_vs_c_loop"] = None if r["load_verify_s"] is None else (
            thesis.SLOWDOWN_FF100 if r["filter_factor"] == 100 else thesis.SLOWDOWN)
    section.tables.append(Table([
        Column("size_mb", "size [MB]"), Column("filter_factor", "ff [%]"),
        Column("method", "method"), Column("io_s", "I/O [s]", 4),
        Column("load_verify_s", "load+verify [s]", 4),
        Column("processing_s", "processing [s]", 4), Column("total_s", "read total [s]", 4),
        Column("total_sd_s", "sd [s]", 4), Column("vs_c_loop", "/ C loop"),
        Column("thesis_vs_c_loop", "thesis / C loop", 0, thesis=True)], rows,
        f"{grid.runs} runs per point (the Python reader 1, up to {grid.python_max_mb} MB); "
        f"'read total' excludes load+verify, which a command pays once; the thesis: "
        f"{thesis.RUNS['pipeline']} runs per point"))
    section.samples["rows"] = rows
    section.samples["loads"] = {k: v for k, v in loads.items()}
    _figures(section, rows, grid)
    _conclude(section, rows, grid)
    return section


def _figures(section, rows, grid):
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for factor in grid.factors:
        series = []
        for m in methods:
            pick = [r for r in rows if r["method"] == m and r["filter_factor"] == factor]
            for layer, key in zip(LAYERS, ("io_s", "load_verify_s", "processing_s")):
                series.append(Series(f"{m}|{layer}", [(i, r[key] or 0.0, 0)
                                                      for i, r in enumerate(pick)]))
        section.figures.append(Figure(
            f"pipeline_ff{factor}", f"Stacked cost, filter factor {factor} %", "file size",
            "seconds", series, kind="stacked",
            categories=[f"{s} MB" for s in grid.sizes_mb], stacks=list(LAYERS)))
    big = max(grid.sizes_mb)
    series = [Series(m, [(r["filter_factor"], r["vs_c_loop"], 0) for r in rows
                         if r["method"] == m and r["size_mb"] == big and r["vs_c_loop"]])
              for m in methods if m != "C loop"]
    series.append(Series(f"thesis: about {thesis.SLOWDOWN:.0f}x, "
                         f"{thesis.SLOWDOWN_FF100:.0f}x at ff100",
                         [(f, thesis.SLOWDOWN, 0) for f in grid.factors[:-1]]
                         + [(100, thesis.SLOWDOWN_FF100, 0)], thesis=True))
    section.figures.append(Figure("pipeline_vs_c", f"Time against the C loop, {big} MB",
                                  "filter factor [%]", "time / C loop's", series,
                                  logy=True))


def _conclude(section, rows, grid):
    big = max(grid.sizes_mb)
    ratios = {}
    for r in rows:
        if r["size_mb"] == big and r["vs_c_loop"] and r["method"] not in ("C loop",):
            ratios.setdefault(r["method"], []).append(r["vs_c_loop"])
    if not ratios:
        return
    parts = [f"{m} {min(v):.2f}-{max(v):.2f}x" for m, v in ratios.items()]
    section.text.append(
        f"At {big} MB, over the filter factors, the time of each method against the C "
        f"loop's: {'; '.join(parts)}. The thesis measured about {thesis.SLOWDOWN:.0f}x "
        f"for its eBPF filter-reduce (up to {thesis.SLOWDOWN_FF100:.0f}x at ff100).")
