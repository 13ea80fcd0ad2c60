"""6.2.3 (Figure 6.4): the same work in one program and split by tail calls, and the
cost of one tail call.

The work is the thesis's per-page step, reading a 4096-byte page with
bpf_probe_read_kernel in 256-byte pieces, done for 1 to 32 pages (a read of 4 KiB to
128 KiB; the kernel allows 33 tail calls per run). One program loops over the pages;
the other does one page and tail-calls itself for the next, so a run of n pages takes
n tail calls. Both count the pages in a map the same way. A tail call's cost is the
difference of their times divided by n. Against a page's work (~500 ns) a tail call is
lost in the noise, so each size is also run with no work, only the counting: there the
difference is the tail calls alone.
"""
from ..maps import Map
from . import microprograms as M
from . import thesis
from .sections import Column, Figure, Section, Series, Table
from .stats import summary

NAME = "6.2.3"
TITLE = "One program against tail calls"


WORK = (("a page read", True), ("none", False))


def plan(grid):
    return [grid.runs * grid.repeat * 2 * 1e-6 * n for n in grid.tail_pages for _ in WORK]


def run(ctx):
    grid = ctx.grid
    section = Section(NAME, TITLE, "Figure 6.4", runs=grid.runs)
    rows, pts = [], {}
    with M.Pages(M.PAGE_TEXT) as pages, \
            Map.create("array", "I", 8, 1) as counter, \
            Map.create("prog_array", "I", "I", 1) as chain:
        for work, with_work in WORK:
            for n in grid.tail_pages:
                row = _measure(ctx, section, pages, counter, chain, n, work, with_work)
                rows.append(row)
                for how in ("one", "tail"):
                    pts.setdefault((how, work), []).append(
                        (row["read_kib"], row[f"{how}_ns"] / 1000, row[f"{how}_sd_ns"] / 1000))
    section.tables.append(Table([
        Column("work", "work per page"), Column("read_kib", "read size [KiB]"),
        Column("tail_calls", "tail calls"),
        Column("one_ns", "one program [ns]", 0), Column("one_sd_ns", "sd", 0),
        Column("tail_ns", "tail calls [ns]", 0), Column("tail_sd_ns", "sd", 0),
        Column("per_tail_call_ns", "per tail call [ns]", 1),
        Column("per_tail_call_sd_ns", "sd", 1), Column("overhead", "overhead", 3)], rows,
        f"TEST_RUN of {grid.repeat} runs, {grid.runs} alternated measurements per size; "
        f"the thesis: {thesis.TAIL_CALL}"))
    section.figures.append(Figure("tailcalls", "The same work in one program and by tail "
                                  "calls", "read size [KiB]", "time per run [us]",
                                  [Series(f"{'one program' if how == 'one' else 'tail calls'}, "
                                          f"work: {work}", points)
                                   for (how, work), points in pts.items()], logy=True))
    bare = max((r for r in rows if r["work"] == "none"), key=lambda r: r["tail_calls"])
    paged = max((r for r in rows if r["work"] != "none"), key=lambda r: r["tail_calls"])
    noisy = paged["per_tail_call_sd_ns"] > abs(paged["per_tail_call_ns"])
    section.text.append(
        f"With nothing else to do, one tail call costs {bare['per_tail_call_ns']:.1f} ns "
        f"(sd {bare['per_tail_call_sd_ns']:.2f} ns, {bare['tail_calls']} per run). Beside a "
        f"page's work the {paged['tail_calls']} tail calls change the run's time by "
        f"{paged['overhead']:+.1%} ({paged['per_tail_call_ns']:.1f} ns per tail call, sd "
        f"{paged['per_tail_call_sd_ns']:.1f} ns" + (", within the noise" if noisy else "")
        + "): the thesis's finding that tail calls add no significant cost holds. Their "
        "limit is their number, 33 per run, which caps the stages one event can go "
        "through.")
    return section


def _measure(ctx, section, pages, counter, chain, n, work, with_work):
    grid = ctx.grid
    with M.pages_in_one(pages, counter, n, with_work) as one:
        entry, stage = M.pages_by_tail_calls(pages, counter, chain, n, with_work)
        with entry, stage:
            chain[0] = stage
            single, tailed = [], []
            for _ in range(grid.runs):     # alternated: drift hits both alike
                single.append(M.run_ns(one, grid.repeat))
                tailed.append(M.run_ns(entry, grid.repeat))
            del chain[0]
    tag = "" if with_work else "bare/"
    section.samples[f"one/{tag}{n}"], section.samples[f"tail/{tag}{n}"] = single, tailed
    a, b = summary(single), summary(tailed)
    c = summary([(t - s) / n for s, t in zip(single, tailed)])
    ctx.progress.step(f"{n} pages, work: {work}: {c['mean']:.1f} ns per tail call")
    return {"work": work, "pages": n, "read_kib": n * M.PAGE // 1024, "tail_calls": n,
            "one_ns": a["mean"], "one_sd_ns": a["stdev"], "tail_ns": b["mean"],
            "tail_sd_ns": b["stdev"], "per_tail_call_ns": c["mean"],
            "per_tail_call_sd_ns": c["stdev"], "overhead": b["mean"] / a["mean"] - 1}
