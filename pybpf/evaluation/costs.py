"""6.4 (Figure 6.10): how each cost grows with the file, and the size from which
filter-reduce in the kernel beats the user-space loop, if there is one.

From the 6.3 measurements (no new ones): for each method, a least-squares line of
read time against size over the filter factors' mean, giving seconds per MB; the
pipeline adds its load+verify once. In-kernel filter-reduce breaks even with a
user-space method at load+verify / (user's s/MB - pipeline's s/MB), when the
pipeline's slope is the smaller; otherwise it never does.
"""
from . import thesis
from .sections import Column, Figure, Section, Series, Table

NAME = "6.4"
TITLE = "Cost as the file grows, and the break-even size"


def plan(grid):
    return [0.01]


def _fit(points):
    """(intercept, slope) of the least-squares line through [(x, y)]."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
    return my - slope * mx, slope


def run(ctx, measured):
    section = Section(NAME, TITLE, "Figure 6.10", runs=measured.runs)
    rows = measured.samples.get("rows", [])
    sizes = sorted({r["size_mb"] for r in rows})
    if len(sizes) < 2:
        section.skipped = "needs 6.3's measurements at two sizes or more"
        return section
    fits = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        points = []
        for size in sizes:
            pick = [r["total_s"] for r in rows if r["method"] == method and
                    r["size_mb"] == size]
            if pick:
                points.append((size, sum(pick) / len(pick)))
        if len(points) >= 2:
            load = next(r["load_verify_s"] for r in rows if r["method"] == method) or 0.0
            fits[method] = (points, _fit(points), load)
    io_points = [(s, next(r["io_s"] for r in rows if r["size_mb"] == s)) for s in sizes]
    io_fit = _fit(io_points)
    table = []
    users = [m for m in ("C loop", "Python") if m in fits]
    for method, (_, (_, slope), load) in fits.items():
        row = {"method": method, "load_verify_s": load, "s_per_mb": slope,
               "mb_per_s": 1 / slope if slope > 0 else None,
               "processing_s_per_mb": slope - io_fit[1]}
        for user in users:
            if method in users:
                continue
            u_slope = fits[user][1][1]
            key = "break_even_c_mb" if user == "C loop" else "break_even_python_mb"
            row[key] = load / (u_slope - slope) if u_slope > slope else "never"
        table.append(row)
    section.samples["fits"] = {m: {"points": p, "intercept": f[0], "slope": f[1],
                                   "load": load} for m, (p, f, load) in fits.items()}
    section.tables.append(Table([
        Column("method", "method"), Column("load_verify_s", "fixed: load+verify [s]", 4),
        Column("s_per_mb", "read [s/MB]", 5), Column("mb_per_s", "throughput [MB/s]", 0),
        Column("processing_s_per_mb", "of which processing [s/MB]", 5),
        Column("break_even_c_mb", "breaks even with C at [MB]", 1),
        Column("break_even_python_mb", "with Python at [MB]", 2)], table,
        f"least-squares over {', '.join(map(str, sizes))} MB (the mean over filter "
        f"factors); I/O alone: {io_fit[1]:.5f} s/MB; the thesis: {thesis.BREAK_EVEN}"))
    top = max(sizes) * 8
    series = [Series("I/O (read() alone)", [(0, io_fit[0], 0), (top, io_fit[0] + io_fit[1] * top, 0)])]
    for method, (_, (_, slope), load) in fits.items():
        fixed = load if method not in users else 0.0
        series.append(Series(f"{method} (fixed + per MB)",
                             [(0, fixed, 0), (top, fixed + slope * top, 0)]))
    section.figures.append(Figure("costs", "Total cost as the file grows (fitted lines, "
                                  f"extrapolated to {top} MB)", "file size [MB]",
                                  "seconds", series))
    best = min((r for r in table if r["method"] not in users), key=lambda r: r["s_per_mb"],
               default=None)
    if best and "C loop" in fits:
        be = best.get("break_even_c_mb")
        section.text.append(
            f"The fastest in-kernel method, {best['method']}, reads "
            f"{best['mb_per_s']:.0f} MB/s against the C loop's "
            f"{1 / fits['C loop'][1][1]:.0f} MB/s, after {best['load_verify_s'] * 1000:.0f} "
            f"ms of load+verify: " + (f"it breaks even with the C loop at {be:.1f} MB."
                                     if isinstance(be, float) else
                                     "it never catches up with the C loop on this kernel."))
    return section
