"""The evaluation's parts that need no kernel: the fitted costs and break-even, the
progress estimate, the report's rendering, the grids and the command line's errors."""
import subprocess
import sys

import pytest

from pybpf.errors import MissingError
from pybpf.evaluation import costs, grid as G, progress, report, thesis, vm
from pybpf.evaluation.sections import Column, Section


def _pipeline(rows):
    s = Section("6.3", "t", "f", runs=1)
    s.samples["rows"] = rows
    return s


def _row(method, size, total, load=None):
    return {"method": method, "size_mb": size, "filter_factor": 50, "total_s": total,
            "io_s": 0.001 * size, "load_verify_s": load}


class _Ctx:
    pass


def test_fit_is_the_least_squares_line():
    assert costs._fit([(1, 3.0), (2, 5.0), (3, 7.0)]) == pytest.approx((1.0, 2.0))


def test_break_even_is_the_fixed_cost_over_the_slopes_difference():
    rows = [_row("C loop", 10, 0.10), _row("C loop", 20, 0.20),
            _row("fast", 10, 0.05, load=0.5), _row("fast", 20, 0.10, load=0.5),
            _row("slow", 10, 0.20, load=0.1), _row("slow", 20, 0.40, load=0.1)]
    s = costs.run(_Ctx(), _pipeline(rows))
    table = {r["method"]: r for r in s.tables[0].rows}
    # C: 0.01 s/MB, fast: 0.005 s/MB after 0.5 s: equal at 0.5 / 0.005 = 100 MB.
    assert table["fast"]["break_even_c_mb"] == pytest.approx(100.0)
    assert table["slow"]["break_even_c_mb"] == "never"
    assert "breaks even with the C loop at 100.0 MB" in s.text[0]


def test_costs_need_two_sizes():
    s = costs.run(_Ctx(), _pipeline([_row("C loop", 10, 0.1)]))
    assert s.skipped and "two sizes" in s.skipped


def test_eta_scales_the_plan_by_the_rate_so_far(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    p = progress.Progress([("a", [1.0, 1.0]), ("b", [2.0])], quiet=True)
    p.begin(0)
    now[0] = 110.0
    p.step()
    assert p.eta() == pytest.approx(30.0)     # 10 s per unit, 3 units left
    p.skip()
    assert p.eta() == pytest.approx(10.0)     # 2 units done in 10 s, 2 left


def test_cells_and_skipped_sections_render():
    assert Column("x", "x", 2).cell({"x": 1234.5678}) == "1,234.57"
    assert Column("x", "x").cell({"x": 60000}) == "60,000"
    assert Column("x", "x").cell({}) == "-"
    doc = {"run_id": "r1", "started": "2026-12-01 00:00:00", "seconds": 61,
           "grid": {"name": "quick"}, "machine": {"cpus": 2, "cpu": "c", "memory_gb": 1,
                                                   "kernel": "k", "machine": "m",
                                                   "python": "3", "environment": "e"},
           "noise": 0.0, "emulated": True, "thesis": thesis.SETUP, "plots": False,
           "plots_missing": "no matplotlib",
           "sections": [dict(Section("6.2.4", "t", "f", skipped="needs X").to_dict())]}
    text = report.markdown(doc)
    assert "Not measured on this kernel: needs X." in text
    assert report.EMULATED_NOTE in text and "No plots: no matplotlib." in text
    assert "1 min 1 s" in text


def test_grid_options_replace_sizes_and_runs():
    g = G.FULL.with_options([16, 32], 3)
    assert g.sizes_mb == (16, 32) and g.runs == 3 and g.factors == thesis.FILTER_FACTORS
    assert G.FULL.verify_sizes == tuple(thesis.VERIFICATION_MS)


def test_vm_kernels_need_a_source_checkout(monkeypatch, tmp_path):
    monkeypatch.setattr(vm, "REPO", str(tmp_path))
    with pytest.raises(MissingError, match="source checkout"):
        vm._tool("vm-run")


def test_bad_sizes_are_refused_by_name():
    proc = subprocess.run([sys.executable, "-m", "pybpf", "bench", "thesis", "--sizes",
                           "0,x"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "sizes are whole megabytes" in proc.stderr


def test_bad_runs_are_refused_by_name():
    proc = subprocess.run([sys.executable, "-m", "pybpf", "bench", "thesis", "--runs", "0"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "runs is a whole number of 1 or more" in proc.stderr


def test_noise_of_a_block_too_short_to_tell_is_none(monkeypatch):
    from pybpf.evaluation import stats
    ticks = iter([(100, 1000), (150, 1050)])     # 50 ticks of all CPUs: 0.5 s
    monkeypatch.setattr(stats, "_busy_jiffies", lambda: next(ticks))
    noise = stats.Noise()
    assert noise.share() is None


def test_noise_is_others_share_of_the_cpus(monkeypatch):
    from pybpf.evaluation import stats
    hz = stats.os.sysconf("SC_CLK_TCK")
    ticks = iter([(0, 0), (hz * 3, hz * 10)])    # 10 s of CPU time, 3 s busy
    ours = iter([1.0, 2.0])                      # of which 1 s was ours
    monkeypatch.setattr(stats, "_busy_jiffies", lambda: next(ticks))
    monkeypatch.setattr(stats, "_our_seconds", lambda: next(ours))
    assert stats.Noise().share() == pytest.approx(0.2)
