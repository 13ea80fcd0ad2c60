#!/usr/bin/env python3
"""pybpf.dask's pushdown against the obvious Dask alternatives, on three nodes.

The cluster is tools/netcluster.py's: a scheduler and three workers (one thread
each), every worker in its own netns and mount namespace with one file of
numbers. For each file size, the same filter (x >= 500000) and reductions (count,
sum, min, max) are computed three ways, from a client in the scheduler's netns:

- pushdown: pybpf.dask.filter_reduce, the kernel pipeline on each node, partials
  combined on the cluster;
- dask.bag: ``dask.bag.read_text(path)`` on the node holding the
  file (computed with workers= that node), ``map(int).filter(...)``, then count, sum,
  min and max: Python parsing on the workers;
- raw: each file's bytes read on its node and sent to the client, which parses them
  with the pure-Python reader.

Reported per method: wall time (median of --runs; the pushdown's first run, which
loads the pipeline on every worker, separately) and the bytes that crossed the
network (the veth counters of the three nodes, received + sent, idle heartbeats
included; the idle rate is measured and reported too). Beside them, the single-node
ratio of the Python reader's time to the pipeline's on the same file, which the
pushdown/dask.bag ratio is compared with. Every method's answer must be the same.
Data is generated once into --cache (default ~/.cache/pybpf/bench-dask). Needs root.

    python tools/bench_dask.py [--sizes 16,160] [--runs 3] [--json F] [--markdown F]
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]
from benchhost import cpu_model, report  # noqa: E402
from netcluster import Cluster, veth_bytes  # noqa: E402

FILTER = "x >= 500000"
NODES = 3
GEN_VERSION = 1


def data_dirs(cache, size_mb):
    """NODES directories with one file each of size_mb MB (newline-separated)."""
    from pybpf.filterreduce import sample
    dirs = []
    for i in range(NODES):
        d = os.path.join(cache, f"v{GEN_VERSION}-{size_mb}MB", f"node{i}")
        path = os.path.join(d, f"data{i}.txt")     # a name of its own: not a replica
        if not os.path.exists(path):
            os.makedirs(d, exist_ok=True)
            sample.generate(path + ".tmp", size_mb << 20, low=0, high=999_999,
                            separators=(b"\n",), seed=100 * size_mb + i)
            os.rename(path + ".tmp", path)
        dirs.append(d)
    return dirs


# -- the client side (in the hub netns) -------------------------------------------------

def _bag_file(path):
    import dask.bag as db
    nums = db.read_text(path).map(int).filter(lambda x: x >= 500000)
    return [nums.count(), nums.sum(), nums.min(), nums.max()]


def _read_raw(path):
    with open(path, "rb") as f:
        return f.read()


def client_main(spec):
    from distributed import Client
    from pybpf.dask import filter_reduce
    from pybpf.filterreduce import reference
    client = Client(spec["scheduler"], timeout=30)
    nodes, files = spec["nodes"], spec["files"]          # netns names; "name:path"
    holders = {n["name"]: a for a, n in client.scheduler_info()["workers"].items()}

    def measured(fn):
        before = sum(veth_bytes(ns) for ns in nodes)
        t = time.perf_counter()
        value = fn()
        seconds = time.perf_counter() - t
        return seconds, sum(veth_bytes(ns) for ns in nodes) - before, value

    def pushdown():
        r = filter_reduce(client, files, FILTER, "count,sum,min,max")
        assert r.complete, r.missing
        return (r.count, r.sum, r.min, r.max)

    def bag():
        futures = []
        for f in files:
            name, path = f.split(":", 1)
            futures.append(client.compute(_bag_file(path), workers=[holders[name]],
                                          allow_other_workers=False))
        parts = client.gather(futures)
        kept = [p for p in parts if p[0]]
        return (sum(p[0] for p in parts), sum(p[1] for p in parts),
                min(p[2] for p in kept), max(p[3] for p in kept))

    def raw():
        count = total = 0
        low = high = None
        futures = [client.submit(_read_raw, f.split(":", 1)[1], pure=False,
                                 workers=[holders[f.split(":", 1)[0]]],
                                 allow_other_workers=False) for f in files]
        for fut in futures:
            r = reference.compute([fut.result()], FILTER)
            fut.release()
            count, total = count + r.count, total + r.sum
            low = r.min if low is None else min(low, r.min)
            high = r.max if high is None else max(high, r.max)
        return (count, total, low, high)

    out = {}
    before = sum(veth_bytes(ns) for ns in nodes)
    time.sleep(2.0)
    out["idle_bytes_per_s"] = (sum(veth_bytes(ns) for ns in nodes) - before) / 2.0
    out["pushdown_first"] = measured(pushdown)[:2]
    answers = {}
    for name, fn, runs in (("pushdown", pushdown, spec["runs"]), ("dask.bag", bag, 1),
                           ("raw", raw, 1)):
        samples = [measured(fn) for _ in range(runs)]
        answers[name] = samples[0][2]
        out[name] = {"seconds": statistics.median(s[0] for s in samples),
                     "bytes": statistics.median(s[1] for s in samples),
                     "runs": runs}
    assert len({tuple(a) for a in answers.values()}) == 1, answers
    out["answer"] = list(answers["pushdown"])
    client.close()
    json.dump(out, sys.stdout)


# -- the orchestrator -------------------------------------------------------------------

def single_node_ratio(path):
    """(pipeline seconds, Python reader seconds) on one file, on this machine."""
    from pybpf.filterreduce import FilterReduce, reference
    with FilterReduce(FILTER) as fr:
        fr.read(path)
        t = time.perf_counter()
        res = fr.read(path)
        pipe = time.perf_counter() - t
    t = time.perf_counter()
    ref = reference.read_file(path, FILTER)
    py = time.perf_counter() - t
    assert res.same_numbers(ref)
    return pipe, py


def measure(args):
    rows = []
    for size in args.sizes:
        dirs = data_dirs(args.cache, size)
        pipe, py = single_node_ratio(os.path.join(dirs[0], "data0.txt"))
        with Cluster(dirs, tag=f"{os.getpid()}b") as c:
            spec = {"scheduler": c.scheduler, "nodes": c.nodes, "runs": args.runs,
                    "files": [f"{n}:{c.path(f'data{i}.txt')}" for i, n in enumerate(c.names)]}
            r = c.run([sys.executable, os.path.abspath(__file__), "--client",
                       json.dumps(spec)], timeout=3600, check=False)
            if r.returncode:
                sys.exit(f"bench_dask: the client failed:\n{r.stderr[-3000:]}\n"
                         f"{c.log_text()}")
            doc = json.loads(r.stdout)
        doc.update(size_mb=size, files=NODES, single_pipeline_s=pipe, single_python_s=py)
        rows.append(doc)
        print(_row_text(doc), file=sys.stderr)
    return {"date": datetime.date.today().isoformat(), "cpu": cpu_model(),
            "cpus": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(), "filter": FILTER, "rows": rows}


def _row_text(d):
    p, b, r = d["pushdown"], d["dask.bag"], d["raw"]
    return (f"{d['files']} x {d['size_mb']} MB: pushdown {p['seconds']:.2f} s "
            f"{p['bytes'] / d['files'] / 1e3:.1f} KB/file; dask.bag {b['seconds']:.1f} s "
            f"{b['bytes'] / d['files'] / 1e3:.1f} KB/file; raw {r['seconds']:.1f} s "
            f"{r['bytes'] / d['files'] / 1e6:.1f} MB/file; bag/pushdown "
            f"{b['seconds'] / p['seconds']:.1f}x, single-node Python/pipeline "
            f"{d['single_python_s'] / d['single_pipeline_s']:.1f}x")


def markdown(doc):
    lines = [f"Measured {doc['date']} on {doc['cpu']} ({doc['cpus']} CPUs), Linux "
             f"{doc['kernel']}, Python {doc['python']}; filter `{doc['filter']}`, count, "
             f"sum, min and max; {NODES} nodes with one file each; one worker thread "
             f"per node. Bytes: the three nodes' veth counters (received + sent), "
             f"heartbeats included.", "",
             "| files | pushdown first run | pushdown (warm) | its traffic per file | "
             "dask.bag | its traffic per file | raw to client | its traffic per file | "
             "dask.bag / pushdown | single node: Python / pipeline | idle traffic |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for d in doc["rows"]:
        p, b, r, n = d["pushdown"], d["dask.bag"], d["raw"], d["files"]
        lines.append(
            f"| {n} x {d['size_mb']} MB | {d['pushdown_first'][0]:.2f} s | "
            f"{p['seconds']:.2f} s | {p['bytes'] / n / 1e3:.1f} KB | {b['seconds']:.1f} s | "
            f"{b['bytes'] / n / 1e3:.1f} KB | {r['seconds']:.1f} s | "
            f"{r['bytes'] / n / 1e6:.1f} MB | {b['seconds'] / p['seconds']:.1f}x | "
            f"{d['single_python_s'] / d['single_pipeline_s']:.1f}x | "
            f"{d['idle_bytes_per_s'] / 1e3:.1f} KB/s |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")],
                    default=[16, 160], help="MB per file (default 16,160)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/pybpf/bench-dask"))
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    ap.add_argument("--client", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.client:
        return client_main(json.loads(args.client))
    doc = measure(args)
    report(doc, markdown(doc), args.json, args.markdown)


if __name__ == "__main__":
    main()
