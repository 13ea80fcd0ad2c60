"""Smoke test of tools/bench_maps.py: it runs, and its JSON holds what docs/performance.md
quotes. A tiny map and one run keep it fast; no figure is compared with a target,
because timing belongs to the machine, not to the code under test."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from toolbox import load_tool

TOOL = Path(__file__).resolve().parents[2] / "tools" / "bench_maps.py"
ENTRIES = 1000


@pytest.fixture(scope="module")
def bench():
    """The tool as a module, so the in-process run is under the fd-leak check."""
    return load_tool("bench_maps")


def run_json(bench, tmp_path, *extra):
    out = tmp_path / "bench.json"
    status = bench.main(["--entries", str(ENTRIES), "--runs", "1", "--warmup", "0",
                         "--json", str(out), *extra])
    return status, json.loads(out.read_text())


def test_json_has_every_metric_for_both_maps(bench, tmp_path):
    status, doc = run_json(bench, tmp_path)
    assert status == 0
    assert set(doc["maps"]) == {"hash", "array"}
    for kind, result in doc["maps"].items():
        assert set(result["metrics"]) == set(bench.METRICS), kind
        for name, stats in result["metrics"].items():
            assert stats["unit"] == bench.METRICS[name][0]
            assert len(stats["samples"]) == 1
            for key in ("median", "min", "max"):
                value = stats[key]
                assert math.isfinite(value), (kind, name, key, value)
                assert value > 0 or stats["unit"] == "%", (kind, name, key, value)
            assert stats["min"] <= stats["median"] <= stats["max"]


def test_every_measurement_handled_every_entry(bench, tmp_path):
    _, doc = run_json(bench, tmp_path)
    for kind, result in doc["maps"].items():
        assert result["verified"] is True, kind
        # One count per measured operation: the batch read, the iteration, the bare
        # syscall floor (lookups that found their key) ... all saw every entry.
        assert result["counts"] == {m: ENTRIES for m in bench.MEASURES}, kind


def test_ratios_come_from_the_same_run(bench, tmp_path):
    _, doc = run_json(bench, tmp_path)
    for kind, result in doc["maps"].items():
        run = {name: stats["samples"][0] for name, stats in result["metrics"].items()}
        assert run["batch_lookup_ratio"] == pytest.approx(
            run["batch_lookup_per_s"] / run["perkey_lookup_per_s"]), kind
        assert run["batch_update_ratio"] == pytest.approx(
            run["batch_update_per_s"] / run["perkey_update_per_s"]), kind
        # The share of m[k] above the kernel layer is a percentage below 100 (it may
        # be negative when a noisy machine slows the floor's loop more than m[k]'s).
        assert run["lookup_python_share"] < 100, kind


def test_targets_and_machine_are_reported(bench, tmp_path):
    _, doc = run_json(bench, tmp_path, "--maps", "hash")
    assert list(doc["maps"]) == ["hash"]
    assert {t["target"] for t in doc["targets"]} == {t[3] for t in bench.TARGETS}
    assert all(isinstance(t["pass"], bool) for t in doc["targets"])
    machine = doc["machine"]
    assert machine["cores"] >= 1 and machine["kernel"] and machine["python"]
    assert "pybpf" in machine  # the commit measured (None outside a git checkout)
    assert doc["config"]["entries"] == ENTRIES
    assert 0 <= doc["machine_load"]["other_processes_pct"] <= 100


def test_layers_mode(bench, tmp_path):
    out = tmp_path / "layers.json"
    assert bench.main(["--entries", "200", "--runs", "1", "--warmup", "0", "--layers",
                       "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["layers"]
    assert [r["label"] for r in rows][-2] == "m[k] (Map + Codec layers)"
    assert all(r["median"] > 0 for r in rows)


def test_command_line_prints_the_table():
    """As the docs tell readers to run it: a script, from any directory."""
    proc = subprocess.run([sys.executable, str(TOOL), "--entries", "300", "--runs", "1",
                           "--warmup", "0"], capture_output=True, text=True, timeout=120,
                          cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert "batch / per-key read" in proc.stdout
    assert "single lookup < 3 us" in proc.stdout
    assert "values verified: yes" in proc.stdout


def test_bad_arguments_are_refused(bench, capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--maps", "queue"])
    assert e.value.code == 2
    assert "--maps takes hash, array" in capsys.readouterr().err
