"""python -m pybpf bench thesis: the thesis's evaluation as one command.

The host run uses --quick (every experiment, a reduced grid) through the real
command line, and checks what the issue asks of the report: it and its plots exist,
every number in it came from this run (the report re-rendered from results.json is
the report; each row's statistics recomputed from its raw samples are the row's; the
run id in report, CSVs and PNGs is this run's), the thesis's numbers are the
thesis's, and the sizes the verifier processed are the ones asked for. The patched
VM run (--kernel vm-patched) checks the override experiment, which only that kernel
runs, and that emulated figures say so.
"""
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

import pytest

from pybpf.evaluation import grid as G
from pybpf.evaluation import cloop, report, thesis
from toolbox import VM_RUN, setup_missing, tail

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def bench(out, *extra, timeout=1200):
    return subprocess.run([sys.executable, "-m", "pybpf", "bench", "thesis", "--quick",
                           "--out", str(out), *extra], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout)


def png_text(path):
    """The tEXt chunks of a PNG, {keyword: text}."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    found, pos = {}, 8
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        if kind == b"tEXt":
            key, _, text = data[pos + 8:pos + 8 + length].partition(b"\0")
            found[key.decode()] = text.decode("latin-1")
        pos += 12 + length
    return found


@pytest.fixture(scope="module")
def host_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("thesis")
    began = time.time()
    proc = bench(out)
    assert proc.returncode == 0, tail(proc.stdout + proc.stderr)
    doc = json.loads((out / "results.json").read_text())
    return out, doc, proc, began


def sections(doc):
    return {s["key"]: s for s in doc["sections"]}


def test_every_experiment_is_in_the_report_with_csv_and_plots(host_run):
    out, doc, proc, _ = host_run
    assert proc.stdout.strip() == str(out / "report.md")
    text = (out / "report.md").read_text()
    for key in ("6.2.1", "6.2.2", "6.2.3", "6.2.4", "6.3", "6.4"):
        assert f"## {key} " in text, key
    assert doc["plots"], doc["plots_missing"]      # the test extra installs matplotlib
    for s in doc["sections"]:
        if s["skipped"]:
            continue
        rows = list(csv.DictReader(open(out / f"{s['slug']}.csv")))
        assert len(rows) == sum(len(t["rows"]) for t in s["tables"]), s["key"]
        assert s["figures"], s["key"]
        for f in s["figures"]:
            assert f"]({f['name']}.png)" in text
            meta = png_text(out / f"{f['name']}.png")
            assert meta.get("Description") == f"pybpf run {doc['run_id']}", f["name"]


def test_progress_names_each_experiment_and_an_eta(host_run):
    _, _, proc, _ = host_run
    for i in range(1, 7):
        assert f"[{i}/6] " in proc.stderr
    assert "ETA" in proc.stderr


def test_the_report_is_rendered_from_this_runs_results(host_run):
    out, doc, _, began = host_run
    assert (out / "report.md").read_text() == report.markdown(doc)
    assert doc["run_id"] in (out / "report.md").read_text()
    started = time.mktime(time.strptime(doc["started"], "%Y-%m-%d %H:%M:%S")) - time.timezone
    assert began - 2 <= started <= time.time()
    assert doc["machine"]["kernel"] == platform.release()
    assert 0.0 <= doc["noise"] <= 1.0
    assert doc["grid"]["name"] == "quick" and doc["emulated"] is False


def test_rows_are_the_statistics_of_their_samples(host_run):
    _, doc, _, _ = host_run
    s = sections(doc)
    rows = s["6.2.1"]["tables"][0]["rows"]
    for row in rows:
        loads = s["6.2.1"]["samples"][f"verify/{row['size']}"]
        assert len(loads) == doc["grid"]["runs"]
        assert row["verify_mean_ms"] == pytest.approx(
            statistics.fmean(g["verify_ms"] for g in loads))
        # pybpf.asm makes the sizes exact: the kernel processed what was asked.
        assert row["verified_insns"] == row["size"]
        assert all(g["verified_insns"] == row["size"] for g in loads)
    for row in s["6.2.2"]["tables"][0]["rows"]:
        samples = s["6.2.2"]["samples"][f"{row['helper']}/{row['buffer']}"]
        assert row["page_ns"] == pytest.approx(statistics.fmean(samples))
    for row in s["6.2.3"]["tables"][0]["rows"]:
        tag = "bare/" if row["work"] == "none" else ""
        one = s["6.2.3"]["samples"][f"one/{tag}{row['pages']}"]
        tailed = s["6.2.3"]["samples"][f"tail/{tag}{row['pages']}"]
        assert row["per_tail_call_ns"] == pytest.approx(
            statistics.fmean((t - o) / row["pages"] for o, t in zip(one, tailed)))
    for row in s["6.3"]["tables"][0]["rows"]:
        key = f"{row['method']}/{row['size_mb']}MB/ff{row['filter_factor']}"
        assert row["total_s"] == pytest.approx(statistics.fmean(s["6.3"]["samples"][key]))


def test_the_thesis_columns_hold_the_thesis_numbers(host_run):
    _, doc, _, _ = host_run
    for row in sections(doc)["6.2.1"]["tables"][0]["rows"]:
        assert (row["thesis_mean_ms"], row["thesis_sd_ms"]) == \
            thesis.VERIFICATION_MS[row["size"]]
        assert row["verify_mean_ms"] != row["thesis_mean_ms"]


def test_measurements_say_what_the_kernel_does(host_run):
    """Properties of the kernel, not of timing: reading a page in 8-byte calls takes
    more calls, and so more time, than in one call of a page; the pipeline checked
    every result (a wrong one fails the run), and its methods all ran."""
    _, doc, _, _ = host_run
    s = sections(doc)
    kernel = {r["buffer"]: r for r in s["6.2.2"]["tables"][0]["rows"]
              if r["helper"] == "bpf_probe_read_kernel"}
    assert kernel[8]["page_ns"] > kernel[4096]["page_ns"] > 0
    methods = {r["method"] for r in s["6.3"]["tables"][0]["rows"]}
    assert {"Python", "syscall/native", "syscall/strtol"} <= methods
    # The C loop needs a compiler: the test set-up installs gcc; the minimal image has
    # none by design, and the report says so.
    if any(shutil.which(c) for c in cloop.COMPILERS):
        assert "C loop" in methods
    else:
        assert any("No C loop in this run: no C compiler" in t for t in s["6.3"]["text"])
    assert {r["method"] for r in s["6.4"]["tables"][0]["rows"]} == methods


def test_the_override_is_skipped_naming_the_kernel_that_runs_it(host_run):
    _, doc, _, _ = host_run
    s = sections(doc)["6.2.4"]
    from pybpf.filterreduce import verdicts
    if verdicts()["copyout"].can_override:
        assert s["skipped"] is None
    else:
        assert "kernel-config/" in s["skipped"] and "--kernel vm-patched" in s["skipped"]


def test_quick_grid_runs_every_experiment_on_a_small_grid():
    assert set(G.QUICK.factors) <= set(thesis.FILTER_FACTORS)
    assert max(G.QUICK.sizes_mb) < min(G.FULL.sizes_mb)


def vm_bench(tmp_path_factory, kernel):
    if subprocess.run([sys.executable, VM_RUN, "--check"], capture_output=True).returncode:
        setup_missing("the VM tier is not installed: bash tools/vm-setup (tools/run-tests "
                      "runs it)")
    out = tmp_path_factory.mktemp(f"thesis-{kernel}")
    proc = bench(out, "--kernel", kernel, timeout=2400)
    log = (out / "output.log").read_text() if (out / "output.log").exists() else ""
    assert proc.returncode == 0, tail(proc.stdout + proc.stderr + log)
    return out, json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def patched_run(tmp_path_factory):
    return vm_bench(tmp_path_factory, "vm-patched")


def test_in_the_stock_vm_the_override_is_skipped_and_the_syscall_backend_runs(
        tmp_path_factory):
    out, doc = vm_bench(tmp_path_factory, "vm-stock")
    assert doc["emulated"] is True and "stock 6.1" in doc["machine"]["environment"]
    assert doc["machine"]["kernel"].startswith("6.1.")
    s = sections(doc)
    assert "--kernel vm-patched" in s["6.2.4"]["skipped"]
    methods = {r["method"] for r in s["6.3"]["tables"][0]["rows"]}
    assert {"syscall/native", "syscall/strtol", "C loop"} <= methods
    assert not any(m.startswith("copy") for m in methods)   # notrace on stock 6.1
    assert (out / "report.md").read_text() == report.markdown(doc)
    assert doc["plots"]          # drawn on the host from the guest's results
    for f in s["6.2.1"]["figures"]:
        assert png_text(out / f"{f['name']}.png")["Description"] == f"pybpf run {doc['run_id']}"


def test_in_the_patched_vm_the_override_skips_every_copy(patched_run):
    out, doc = patched_run
    assert doc["emulated"] is True and "kernel-config/" in doc["machine"]["environment"]
    assert doc["machine"]["kernel"] != platform.release()
    assert report.EMULATED_NOTE in (out / "report.md").read_text()
    s = sections(doc)
    rows = s["6.2.4"]["tables"][0]["rows"]
    assert [r["size_mb"] for r in rows] == list(G.QUICK.override_mb)
    for r in rows:
        assert r["failures"] == 0 and r["copies_skipped"] == r["copies"] > 0, r
    methods = {r["method"] for r in s["6.3"]["tables"][0]["rows"]}
    assert {"copyout/native", "copyout+override/native", "copy_to_iter/native"} <= methods
    for f in s["6.2.4"]["figures"]:
        assert png_text(out / f"{f['name']}.png")["Description"] == f"pybpf run {doc['run_id']}"
