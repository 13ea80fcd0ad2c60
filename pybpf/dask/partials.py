"""Partial aggregates: what a worker returns per file and how partials combine.

A file's partial is a small dict (a few hundred bytes whatever the file's size);
:func:`combine` merges any number of file partials and aggregates into one aggregate:
sums of the counts and of the exact sum, min of mins, max of maxes, and the same per
node, so the per-node breakdown survives a tree of combines. A failed file stays in
the aggregate's "failed" list: nothing is dropped on the way up the tree.
"""
import dataclasses

from ..filterreduce.results import Result

COUNTS = ("bytes", "numbers_seen", "numbers_kept", "numbers_out_of_range", "sum",
          "events", "overridden", "seconds")


def from_result(res, where):
    """A file's partial from its Result, read on the worker where = (address, name)."""
    d = dataclasses.asdict(res)
    d.pop("custom")
    d.update(path=d.pop("file"), worker=where[0], name=where[1], error=None)
    return d


def failed(path, where, error):
    return {"path": path, "worker": where[0], "name": where[1], "error": error}


def to_result(partial):
    """The Result of a file partial (file: "node:path")."""
    fields = {f.name for f in dataclasses.fields(Result)}
    values = {k: v for k, v in partial.items() if k in fields}
    return Result(**values, file=f"{node(partial)}:{partial['path']}")


def node(partial):
    return partial["name"] if partial.get("name") not in (None, "") else partial["worker"]


def empty():
    agg = {k: 0 for k in COUNTS}
    agg.update(min=None, max=None, files=0, backends=[], parsers=[], filter=None,
               failed=[], partials=[], nodes={})
    return agg


def _lift(item, keep_files):
    """An aggregate of one file partial (aggregates pass through)."""
    if "nodes" in item:
        return item
    agg = empty()
    agg["partials"] = [item] if keep_files and item.get("error") is None else []
    if item.get("error") is not None:
        agg["failed"] = [{"path": item["path"], "node": node(item), "error": item["error"]}]
        return agg
    for k in COUNTS:
        agg[k] = item[k]
    agg.update(min=item["min"], max=item["max"], files=1, backends=[item["backend"]],
               parsers=[item["parser"]], filter=item["filter"])
    flat = {k: v for k, v in agg.items() if k not in ("nodes", "partials")}
    agg["nodes"] = {node(item): flat}
    return agg


def _merge(a, b):
    """Two aggregates (without their nodes) as one."""
    out = {k: a[k] + b[k] for k in COUNTS}
    for k, pick in (("min", min), ("max", max)):
        vals = [v for v in (a[k], b[k]) if v is not None]
        out[k] = pick(vals) if vals else None
    out.update(files=a["files"] + b["files"],
               backends=sorted(set(a["backends"]) | set(b["backends"])),
               parsers=sorted(set(a["parsers"]) | set(b["parsers"])),
               filter=a["filter"] if a["filter"] is not None else b["filter"],
               failed=a["failed"] + b["failed"],
               partials=a.get("partials", []) + b.get("partials", []))
    return out


def combine(*items, keep_files=False):
    """One aggregate of file partials and aggregates (a task of the combine tree);
    keep_files: carry each file's partial up the tree (under "partials")."""
    total = empty()
    for item in (_lift(i, keep_files) for i in items):
        nodes = dict(total["nodes"])
        for name, sub in item["nodes"].items():
            nodes[name] = _merge(nodes[name], sub) if name in nodes else sub
        total = dict(_merge(total, item), nodes=nodes)
    return total


def aggregate_result(agg, *, seconds=None):
    """A Result of an aggregate: backend and parser name every one used; seconds the
    wall time when given (the processing seconds summed over files otherwise)."""
    return Result(backend=",".join(agg["backends"]) or "none",
                  parser=",".join(agg["parsers"]) or "none", filter=agg["filter"],
                  bytes=agg["bytes"], numbers_seen=agg["numbers_seen"],
                  numbers_kept=agg["numbers_kept"],
                  numbers_out_of_range=agg["numbers_out_of_range"], sum=agg["sum"],
                  min=agg["min"], max=agg["max"], events=agg["events"],
                  overridden=agg["overridden"],
                  seconds=agg["seconds"] if seconds is None else seconds)
