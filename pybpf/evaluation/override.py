"""6.2.4 (Figures 6.5, 6.6): one read() of 4 to 160 MB with and without the copy, on
a kernel whose copyout() the pipeline can override (built from kernel-config/).

Each file is read with one read() into one buffer, filled with a marker first, with
no pipeline, with the copyout backend, and with it skipping the copy
(bpf_override_return). The override's reliability is counted, not assumed: the
pages of the buffer the kernel still copied into (any byte no longer the marker)
against the copies the pipeline says it skipped. Each result is checked against the
C loop's (or the Python reader's, without a compiler).
"""
import time

from ..errors import MeasurementError, MissingError
from ..filterreduce import FilterReduce, reference
from ..kernel import cpus
from . import cloop, data
from . import thesis
from .sections import Column, Figure, Section, Series, Table
from .stats import summary

NAME = "6.2.4"
TITLE = "Read latency with and without the copy"
MARKER = 0xA5
READERS = (("copyout", False), ("copyout+override", True))


def plan(grid):
    return [grid.runs * 0.05 * size for size in grid.override_mb]


def _one_read(path, buf):
    with open(path, "rb", buffering=0) as f:
        started = time.perf_counter()
        count = f.readinto(buf)
        return time.perf_counter() - started, count


def _copied_pages(buf, page):
    size = len(buf)
    return sum(1 for i in range(0, size, page)
               if buf[i:i + page].count(MARKER) != min(page, size - i))


def _want(path, exe):
    if exe:
        return cloop.run(exe, path, 1 << 20, data.THRESHOLD)[1]
    res = reference.read_file(path, data.FILTER)
    return {k: getattr(res, k) for k in ("bytes", "numbers_seen", "numbers_kept", "sum",
                                         "min", "max")}


def _size_row(ctx, section, size_mb, readers, exe, tmp):
    path = data.data_file(ctx.cache, size_mb, 50, tmp)
    size, page = size_mb << 20, cpus.page_size()
    want = _want(path, exe)
    buf = bytearray(size)
    row = {"size_mb": size_mb}
    plain = []
    for _ in range(ctx.grid.runs):
        buf[:] = bytes([MARKER]) * size
        plain.append(_one_read(path, buf)[0])
    section.samples[f"plain/{size_mb}"] = plain
    row["plain_ms"] = summary(plain)["mean"] * 1000
    for name, fr in readers.items():
        times, copied, skipped = [], [], []
        for _ in range(ctx.grid.runs):
            buf[:] = bytes([MARKER]) * size
            with fr.tenant(buf) as t:
                seconds, count = _one_read(path, buf)
                res = t.result(expected_bytes=count)
            if count != size or any(getattr(res, k) != v for k, v in want.items()):
                raise MeasurementError(f"{name}: a wrong result for {size_mb} MB")
            times.append(seconds)
            copied.append(_copied_pages(buf, page))
            skipped.append(res.overridden)
        section.samples[f"{name}/{size_mb}"] = times
        s = summary(times)
        row[f"{name}_ms"] = s["mean"] * 1000
        row[f"{name}_sd_ms"] = s["stdev"] * 1000
        if fr.override:
            row["pages_copied"] = max(copied)
            row["copies_skipped"] = min(skipped)
            row["copies"] = res.events
    co, ov = row["copyout_ms"], row["copyout+override_ms"]
    row["saved_ms"] = co - ov
    row["saved"] = (co - ov) / co
    row["thesis_saved"] = thesis.OVERRIDE_SAVING
    row["throughput_mb_s"] = size_mb / (co / 1000)
    row["override_throughput_mb_s"] = size_mb / (ov / 1000)
    row["failures"] = row["pages_copied"]
    return row


def run(ctx):
    grid = ctx.grid
    section = Section(NAME, TITLE, "Figures 6.5, 6.6", runs=grid.runs)
    verdict = ctx.verdicts.get("copyout")
    if not (verdict and verdict.usable and verdict.can_override):
        section.skipped = ("needs copyout() kprobes with bpf_override_return, which only "
                           "a kernel built from kernel-config/ has (the patched 6.1: "
                           "python -m pybpf bench thesis --kernel vm-patched); this "
                           "kernel: " + (verdict.explain() if verdict else "no verdict"))
        ctx.progress.skip()
        return section
    try:
        exe = cloop.build(ctx.workdir)
    except MissingError:
        exe = None
    rows = []
    with data.Tmpfs() as tmp:
        readers = {name: FilterReduce(data.FILTER, backend="copyout", override=override)
                   for name, override in READERS}
        try:
            for size in grid.override_mb:
                rows.append(_size_row(ctx, section, size, readers, exe, tmp))
                r = rows[-1]
                ctx.progress.step(f"{size} MB: {r['saved']:.0%} saved, "
                                  f"{r['pages_copied']} pages copied")
        finally:
            for fr in readers.values():
                fr.close()
    section.tables.append(Table([
        Column("size_mb", "read size [MB]"), Column("plain_ms", "no pipeline [ms]", 1),
        Column("copyout_ms", "copyout [ms]", 1), Column("copyout_sd_ms", "sd", 1),
        Column("copyout+override_ms", "copyout + override [ms]", 1),
        Column("copyout+override_sd_ms", "sd", 1), Column("saved_ms", "saved [ms]", 1),
        Column("saved", "saved [share]", 3), Column("thesis_saved", "thesis", 2, thesis=True),
        Column("throughput_mb_s", "MB/s with copy", 0),
        Column("override_throughput_mb_s", "MB/s without", 0),
        Column("copies_skipped", "copies skipped"), Column("copies", "copies"),
        Column("failures", "override failures (pages copied)")], rows,
        f"one read() per run, {grid.runs} runs per size; the thesis: about "
        f"{thesis.OVERRIDE_SAVING:.0%} saved, unreliable and stopped at "
        f"{thesis.OVERRIDE_GAVE_UP_MB} MB"))
    xs = [r["size_mb"] for r in rows]
    section.figures.append(Figure("override_latency", "One read() with and without the copy",
                                  "read size [MB]", "latency [ms]", [
        Series("no pipeline", [(x, r["plain_ms"], 0) for x, r in zip(xs, rows)]),
        Series("copyout", [(x, r["copyout_ms"], r["copyout_sd_ms"]) for x, r in zip(xs, rows)]),
        Series("copyout + override", [(x, r["copyout+override_ms"], r["copyout+override_sd_ms"])
                                      for x, r in zip(xs, rows)])]))
    section.figures.append(Figure("override_throughput", "Throughput and the override's gain",
                                  "read size [MB]", "MB/s", [
        Series("with the copy", [(x, r["throughput_mb_s"], 0) for x, r in zip(xs, rows)]),
        Series("copy skipped", [(x, r["override_throughput_mb_s"], 0)
                                for x, r in zip(xs, rows)])]))
    saved = [r["saved"] for r in rows]
    failures = sum(r["failures"] for r in rows)
    section.text.append(
        f"Skipping the copy saved {sum(saved) / len(saved):.0%} of a read's time on "
        f"average over the sizes (between {min(saved):.0%} and {max(saved):.0%}; the "
        f"thesis: about {thesis.OVERRIDE_SAVING:.0%}); the override failed "
        f"{failures} times (pages the kernel still copied) over reads up to {max(xs)} MB, "
        f"where the thesis found it unreliable and gave up at "
        f"{thesis.OVERRIDE_GAVE_UP_MB} MB.")
    return section
