"""pybpf.dask on a real cluster: a scheduler and three workers, each worker in a
network namespace of its own (a veth pair to the scheduler's) with its own data
directory, all real processes (tools/netcluster.py). The client runs in the
scheduler's namespace (tests/kernel/dask_driver.py, or the CLI).

Results are checked against the single-machine pipeline, the Python reference and
the C loop of the benchmarks on the same files; a worker killed with SIGKILL while
its tasks are queued on it, and unprivileged workers, must be reported, never
dropped; nothing may be left behind.
"""
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("distributed")

from pybpf.filterreduce import FilterReduce, reference, sample  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from netcluster import Cluster  # noqa: E402
from toolbox import tool_path  # noqa: E402

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dask_driver.py")
pytestmark = [pytest.mark.kernel, pytest.mark.timeout(300)]

# node -> files it holds; r.txt is replicated on node1 and node2 (two copies).
LAYOUT = {0: ["a0.txt", "a1.txt"], 1: ["b0.txt", "r.txt"], 2: ["c0.txt", "r.txt"]}
SIZE = 3 << 20
THRESHOLD = 400_000


def _write(dirs):
    seeds = {}
    for node, names in LAYOUT.items():
        for name in names:
            seed = seeds.setdefault(name, len(seeds) + 11)
            sample.generate(os.path.join(dirs[node], name), SIZE, low=0, high=999_999,
                            negatives=0.2, separators=(b"\n", b" ", b","), seed=seed)


def need_iproute2():
    tool_path("ip", "iproute2 (ip) is not installed; the cluster's namespaces need it: run "
                    "the test set-up, bash tools/run-tests")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    need_iproute2()
    base = tmp_path_factory.mktemp("dask")
    dirs = [str(base / f"node{i}") for i in LAYOUT]
    for d in dirs:
        os.makedirs(d)
    _write(dirs)
    return dirs


@pytest.fixture(scope="module")
def cluster(data):
    with Cluster(data, tag=f"{os.getpid()}m") as c:
        yield c
    assert_gone(c)


def assert_gone(c):
    """Nothing of a closed cluster is left: processes, namespaces, its mount point."""
    assert all(p.poll() is not None for p in c.procs.values())
    left = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    assert not left & set(c.nodes + [c.hub])
    assert not os.path.exists(c.mount)


def files_arg(c, layout=LAYOUT):
    return [f"node{n}:{c.path(name)}" for n, names in layout.items() for name in names]


def drive(c, spec, tmp_path):
    spec = dict(spec, scheduler=c.scheduler)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    r = c.run([sys.executable, DRIVER, str(path)], check=False, timeout=240)
    assert r.returncode == 0, f"{r.stderr[-3000:]}\n{c.log_text()}"
    return json.loads(r.stdout)


def local(data, names, flt):
    """{name: (pipeline Result, reference Result)} of the files on this machine."""
    out = {}
    with FilterReduce(flt) as fr:
        for node, held in LAYOUT.items():
            for name in held:
                if name in names and name not in out:
                    path = os.path.join(data[node], name)
                    out[name] = (fr.read(path), reference.read_file(path, fr.filter))
    return out


def totals(results):
    kept = [r for r in results if r.numbers_kept]
    return {"bytes": sum(r.bytes for r in results),
            "numbers_seen": sum(r.numbers_seen for r in results),
            "numbers_kept": sum(r.numbers_kept for r in results),
            "sum": sum(r.sum for r in results),
            "min": min(r.min for r in kept), "max": max(r.max for r in kept)}


def same(doc, want):
    return {k: doc[k] for k in want} == want


@pytest.fixture(scope="module")
def c_loop(tmp_path_factory):
    from pybpf.evaluation import cloop
    return cloop.build(str(tmp_path_factory.mktemp("cloop")))


def test_results_equal_the_local_pipeline_the_reference_and_the_c_loop(
        cluster, data, tmp_path, c_loop):
    flt = f"x >= {THRESHOLD}"
    doc = drive(cluster, {"filter": flt, "files": files_arg(cluster)}, tmp_path)
    names = {n for held in LAYOUT.values() for n in held}
    here = local(data, names, flt)
    assert all(p.same_numbers(r) for p, r in here.values())
    want = totals([p for p, _ in here.values()])
    assert doc["complete"] and doc["missing"] == []
    assert same(doc, want), (doc, want)
    assert doc["count"] == want["numbers_kept"]
    assert doc["avg"] == pytest.approx(want["sum"] / want["numbers_kept"])
    # one result per file, r.txt once, each on a node that holds it
    by_name = {os.path.basename(f["file"]): f for f in doc["files"]}
    assert sorted(by_name) == sorted(names) and len(doc["files"]) == len(names)
    assert by_name["r.txt"]["file"].split(":")[0] in ("node1", "node2")
    for f in doc["files"]:
        node, path = f["file"].split(":", 1)
        assert os.path.basename(path) in LAYOUT[int(node[4:])]
    # the per-node breakdown adds up to the total
    assert sum(n["numbers_kept"] for n in doc["nodes"].values()) == doc["numbers_kept"]
    assert set(doc["nodes"]) == {"node0", "node1", "node2"}
    # the C loop (the benchmark's baseline) on the same files
    c_kept = c_sum = 0
    for name in names:
        node = next(n for n, held in LAYOUT.items() if name in held)
        out = json.loads(subprocess.run(
            [c_loop, os.path.join(data[node], name), "65536", str(THRESHOLD)],
            check=True, capture_output=True, text=True).stdout)
        c_kept += out["numbers_kept"]
        c_sum += (out["sum_hi"] << 64) + out["sum_lo"]
    assert (c_kept, c_sum) == (doc["numbers_kept"], doc["sum"])


def test_a_python_filter_travels_as_source_and_is_compiled_on_the_workers(
        cluster, data, tmp_path):
    pytest.importorskip("llvmlite")
    doc = drive(cluster, {"filter": "py:in_range", "files": files_arg(cluster),
                          "options": {"files_per_task": 2}}, tmp_path)
    names = {n for held in LAYOUT.values() for n in held}
    here = local(data, names, "x % 7 == 0 or x > 990000")
    assert doc["complete"]
    assert same(doc, totals([p for p, _ in here.values()]))
    assert doc["filter"].startswith("in_range")


def test_cli_prints_a_local_runs_output_and_the_per_node_breakdown(cluster, data):
    names = files_arg(cluster)
    r = cluster.run([sys.executable, "-m", "pybpf", "attach", "copyout", "--scheduler",
                     cluster.scheduler, *names, "--filter", f"x >= {THRESHOLD}",
                     "--reduce", "count,sum,avg", "--quiet"], check=False)
    assert r.returncode == 0, r.stderr
    for node in ("node0", "node1", "node2"):
        assert f"node {node}: backend" in r.stdout
    assert "total (5 files on 3 nodes)" in r.stdout
    assert r.stdout.count("count ") == 5 + 3 + 1
    j = cluster.run([sys.executable, "-m", "pybpf", "attach", "copyout", "--scheduler",
                     cluster.scheduler, *names, "--filter", f"x >= {THRESHOLD}", "--json"],
                    check=False)
    assert j.returncode == 0, j.stderr
    doc = json.loads(j.stdout)
    here = local(data, {n for held in LAYOUT.values() for n in held}, f"x >= {THRESHOLD}")
    assert same(doc["total"], totals([p for p, _ in here.values()]))
    assert len(doc["files"]) == 5 and doc["total"]["files"] == 5 and doc["missing"] == []
    assert set(doc["nodes"]) == {"node0", "node1", "node2"}


def test_cli_reports_a_file_no_worker_has(cluster):
    r = cluster.run([sys.executable, "-m", "pybpf", "attach", "copyout", "--scheduler",
                     cluster.scheduler, f"node0:{cluster.path('a0.txt')}",
                     f"node0:{cluster.path('b0.txt')}", f"node7:{cluster.path('a1.txt')}",
                     "--json"], check=False)
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    missing = {os.path.basename(m["path"]): m for m in doc["missing"]}
    assert sorted(missing) == ["a1.txt", "b0.txt"]
    assert "no such file" in missing["b0.txt"]["reason"]          # node0 lacks it
    assert "no worker 'node7' is connected" in missing["a1.txt"]["reason"]
    assert doc["total"]["files"] == 1
    assert "pybpf: missing" in r.stderr


def test_a_timeout_names_itself_and_leaves_no_task_behind(cluster, tmp_path):
    doc = drive(cluster, {"filter": "x > 1", "files": files_arg(cluster),
                          "expect_timeout": 0.001}, tmp_path)
    assert doc["error"] and "did not finish in 0.001 s" in doc["error"]
    assert doc["left"] == []


def test_a_worker_killed_mid_job(data, tmp_path):
    """node2 dies with its tasks queued on it: r.txt (also on node1) is read there,
    c0.txt (only on node2) is reported missing; the rest counted as usual."""
    with Cluster(data, tag=f"{os.getpid()}k") as c:
        victim = c.procs["node2"].pid
        spec = {"filter": f"x >= {THRESHOLD}", "files": files_arg(c),
                "kill": {"victim": "node2", "pid": victim, "busy": "node1",
                         "gate": str(tmp_path / "gate")}}
        doc = drive(c, spec, tmp_path)
        assert c.procs["node2"].poll() == -9
    assert_gone(c)
    assert doc["queued_on_victim"] >= 1
    assert not doc["complete"]
    assert [(os.path.basename(m["path"]), m["holders"]) for m in doc["missing"]] == \
        [("c0.txt", ["node2"])]
    assert "left the cluster" in doc["missing"][0]["reason"]
    by_name = {os.path.basename(f["file"]): f for f in doc["files"]}
    assert sorted(by_name) == ["a0.txt", "a1.txt", "b0.txt", "r.txt"]
    assert by_name["r.txt"]["file"].startswith("node1:")
    here = local(data, set(by_name), f"x >= {THRESHOLD}")
    assert same(doc, totals([p for p, _ in here.values()]))


def test_workers_that_cannot_run_the_pipeline(data, tmp_path):
    """node1 runs as nobody: the check says why, b0.txt (only there) is missing with
    that reason, r.txt is read on node2; with the preload, node1 does not start."""
    with Cluster(data, tag=f"{os.getpid()}u", users={1: 65534}) as c:
        verdicts = drive(c, {"check_only": True}, tmp_path)["verdicts"]
        assert verdicts["node0"]["ok"] and verdicts["node2"]["ok"]
        assert not verdicts["node1"]["ok"] and "run it as root" in verdicts["node1"]["why"]
        doc = drive(c, {"filter": None, "files": files_arg(c)}, tmp_path)
    assert_gone(c)
    missing = {os.path.basename(m["path"]): m["reason"] for m in doc["missing"]}
    assert list(missing) == ["b0.txt"]
    assert "worker node1 cannot run the pipeline" in missing["b0.txt"]
    by_name = {os.path.basename(f["file"]): f for f in doc["files"]}
    assert by_name["r.txt"]["file"].startswith("node2:")

    c = Cluster(data, tag=f"{os.getpid()}p", users={1: 65534}, preload=True)
    c.start(expect=2)
    try:
        c.procs["node1"].wait(timeout=60)          # closed itself, saying why
        assert "node1 cannot run the filter-reduce pipeline: the filter-reduce " \
               "pipeline loads and attaches BPF programs: run it as root" in c.log("node1")
        verdicts = drive(c, {"check_only": True}, tmp_path)["verdicts"]
        assert sorted(verdicts) == ["node0", "node2"]
    finally:
        c.close()
    assert_gone(c)


def test_the_benchmark_runs_and_its_methods_agree(tmp_path):
    """tools/bench_dask.py at 1 MB a file: every method gives the same answer (it
    checks that itself) and the JSON holds what docs/dask.md quotes."""
    need_iproute2()
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "bench_dask.py"),
                        "--sizes", "1", "--runs", "1", "--cache", str(tmp_path / "data"),
                        "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    (row,) = json.loads(out.read_text())["rows"]
    assert row["size_mb"] == 1 and row["files"] == 3 and row["answer"][0] > 0
    for method in ("pushdown", "dask.bag", "raw"):
        assert row[method]["seconds"] > 0 and row[method]["bytes"] > 0
    # the raw method moves the files (3 MiB); the pushdown only partials
    assert row["raw"]["bytes"] > 3 << 20 > 50 * row["pushdown"]["bytes"]
