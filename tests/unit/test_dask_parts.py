"""pybpf.dask's parts that need no cluster: where files are, what travels, how
partials combine."""
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from toolbox import fresh_python

pytest.importorskip("distributed")

from pybpf.dask import job, partials, placement, source  # noqa: E402
from pybpf.errors import InputError, PipelineError  # noqa: E402
from pybpf.filterreduce.expr import FilterError  # noqa: E402

LIMIT = 10


def test_worker_path_strings():
    assert placement.split("node1:/data/a.txt") == ("node1", "/data/a.txt")
    assert placement.split("tcp://10.0.0.2:4000:/d/x:y") == ("tcp://10.0.0.2:4000", "/d/x:y")
    assert placement.split("10.0.0.2:4000:/d") == ("10.0.0.2:4000", "/d")
    for bad in ("/data/a.txt", "node1:data/a.txt", "node1", ":/a", "tcp://h:1"):
        with pytest.raises(InputError, match="WORKER:/absolute/path"):
            placement.split(bad)


def test_parse_merges_replicas_in_order():
    files = placement.parse(["b:/2", "a:/1", "c:/2", "b:/2"])
    assert files == [placement.File("/2", ("b", "c")), placement.File("/1", ("a",))]
    assert placement.parse({"a": "/1", "b": ["/1", "/3"]}) == [
        placement.File("/1", ("a", "b")), placement.File("/3", ("b",))]
    with pytest.raises(InputError, match="absolute path"):
        placement.parse({"a": ["rel.txt"]})
    with pytest.raises(InputError, match="no files"):
        placement.parse([])
    with pytest.raises(InputError, match="mapping of worker to paths"):
        placement.parse(5)


WORKERS = {"tcp://10.0.0.2:1": "n0", "tcp://10.0.0.3:1": "n1", "tcp://10.0.0.4:1": None}


def test_assign_resolves_names_and_addresses_and_reports_what_it_cannot_place():
    files = placement.parse(["n0:/a", "n1:/a", "10.0.0.4:1:/b", "gone:/c", "n1:/d",
                             "n0:/e", "n0:/f", "n0:/g"])
    tasks, missing = placement.assign(files, WORKERS, {"tcp://10.0.0.3:1": "not root"},
                                      files_per_task=2)
    assert [m.path for m in missing] == ["/c", "/d"]
    assert "no worker 'gone' is connected" in missing[0].reason
    assert "worker n1 cannot run the pipeline: not root" in missing[1].reason
    placed = {t.paths: t.addresses for t in tasks}
    assert placed == {("/a", "/e"): ("tcp://10.0.0.2:1",), ("/f", "/g"): ("tcp://10.0.0.2:1",),
                      ("/b",): ("tcp://10.0.0.4:1",)}
    with pytest.raises(InputError, match="files_per_task"):
        placement.assign(files, WORKERS, files_per_task=0)


def test_a_replicated_file_may_run_on_any_holder():
    tasks, missing = placement.assign(placement.parse(["n0:/r", "n1:/r"]), WORKERS)
    assert not missing and tasks[0].addresses == ("tcp://10.0.0.2:1", "tcp://10.0.0.3:1")


def _partial(rng, i):
    kept = rng.randrange(0, 50)
    values = [rng.randrange(-10**6, 10**6) for _ in range(kept)]
    p = {"path": f"/f{i}", "worker": f"tcp://w{i % 3}", "name": f"n{i % 3}",
         "error": None, "backend": rng.choice(["syscall", "copyout"]), "parser": "native",
         "filter": "x > 0", "bytes": rng.randrange(1, 10**9), "numbers_seen": kept + 3,
         "numbers_kept": kept, "numbers_out_of_range": rng.randrange(0, 3),
         "sum": sum(values), "min": min(values) if values else None,
         "max": max(values) if values else None, "events": 2, "overridden": 0,
         "seconds": 0.5}
    if rng.random() < 0.1:
        p = partials.failed(p["path"], (p["worker"], p["name"]), "boom")
    return p


def _tree(items, split, keep):
    while len(items) > 1:
        items = [partials.combine(*items[i:i + split], keep_files=keep)
                 for i in range(0, len(items), split)]
    return partials.combine(*items, keep_files=keep)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 40), st.integers(2, 9), st.booleans())
def test_any_combine_tree_equals_the_flat_sums(seed, n, split, keep):
    rng = random.Random(seed)
    parts = [_partial(rng, i) for i in range(n)]
    rng.shuffle(parts)
    agg = _tree(list(parts), split, keep)
    good = [p for p in parts if p["error"] is None]
    assert agg["files"] == len(good)
    for k in ("bytes", "numbers_seen", "numbers_kept", "numbers_out_of_range", "sum"):
        assert agg[k] == sum(p[k] for p in good)
    mins = [p["min"] for p in good if p["min"] is not None]
    assert agg["min"] == (min(mins) if mins else None)
    assert sorted(f["path"] for f in agg["failed"]) == \
        sorted(p["path"] for p in parts if p["error"] is not None)
    assert sorted(p["path"] for p in agg["partials"]) == \
        (sorted(p["path"] for p in good) if keep else [])
    for name, sub in agg["nodes"].items():
        mine = [p for p in good if p["name"] == name]
        assert sub["numbers_kept"] == sum(p["numbers_kept"] for p in mine)
        assert sub["files"] == len(mine)
    res = partials.aggregate_result(agg, seconds=2.0)
    assert res.count == agg["numbers_kept"] and res.seconds == 2.0
    if res.count:
        assert res.avg == agg["sum"] / agg["numbers_kept"]


def test_a_partial_is_small_whatever_the_file():
    import pickle
    p = _partial(random.Random(1), 0)
    p.update(bytes=160 << 20, sum=2**100)
    assert len(pickle.dumps(p)) < 600


def _helper(x):
    return x * 2


def keep(x):
    return _helper(x) % LIMIT == 0 and abs(x) > 1


def test_a_filter_function_travels_with_its_callees_and_constants():
    name, text = source.portable(keep)
    assert name == "keep"
    ns = {}
    exec(text, ns)
    assert ns["LIMIT"] == 10
    assert [ns["keep"](x) for x in range(-12, 12)] == [keep(x) for x in range(-12, 12)]


def test_what_cannot_travel_is_refused_on_the_client():
    table = [1, 2]

    def uses_list(x):
        return x in table

    with pytest.raises(InputError, match="'table', a list: only integer constants"):
        source.portable(uses_list)
    with pytest.raises(InputError, match="not a def statement"):
        source.portable(lambda x: x > 1)
    with pytest.raises(InputError, match="expression string or a Python function"):
        source.portable(len)


def test_job_checks_on_the_client():
    j = job.Job.make("x >= 3", "sum,count")
    assert (j.filter, j.function, j.reductions) == ("x >= 3", None, ("sum", "count"))
    assert hash(j) == hash(job.Job.make("x >= 3", ("sum", "count")))
    with pytest.raises(FilterError):
        job.Job.make("x >=", "sum")
    with pytest.raises(PipelineError, match="unknown reduction 'median'"):
        job.Job.make(None, "median")
    j = job.Job.make(keep)
    assert j.function == "keep" and "def _helper" in j.filter


def test_a_custom_reduce_is_refused():
    pytest.importorskip("llvmlite")
    from pybpf.filterreduce import Reduce

    def step(s, x):
        s.n += 1

    with pytest.raises(InputError, match="no rule for combining its state"):
        job.Job.make(None, Reduce(state={"n": 0}, step=step))


# -- the dependency -------------------------------------------------------------------

def _python(code):
    return fresh_python(["-c", code])


def test_the_core_and_the_cli_never_import_dask():
    out = _python("import sys, pybpf, pybpf.filterreduce, pybpf.cli, pybpf.loader\n"
                  "from pybpf.cli import filterreduce\n"
                  "print(any(m.split('.')[0] in ('distributed', 'dask') for m in sys.modules))")
    assert out.stdout.strip() == "False", out.stderr


def test_without_distributed_pybpf_dask_and_scheduler_say_what_to_install():
    out = _python("import sys; sys.modules['distributed'] = None\n"
                  "from pybpf.errors import DependencyError\n"
                  "try:\n    import pybpf.dask\nexcept DependencyError as e:\n    print(e)\n")
    assert "pip install 'pybpf[dask]'" in out.stdout, out.stderr
    out = _python("import sys; sys.modules['distributed'] = None\n"
                  "from pybpf.cli import main\n"
                  "sys.exit(main(['attach', 'copyout', '--scheduler', 'tcp://x:1', 'n:/a']))")
    assert out.returncode == 1 and "pip install 'pybpf[dask]'" in out.stderr, out.stderr
