"""``python -m pybpf attach copyout --scheduler ADDR WORKER:PATH...``: the pipeline
run on the Dask workers that hold the files (pybpf.dask; the dask extra).

The text output is a local run's (one block per file, named node:path), then the
per-node breakdown, the total, and the files that were not read; --json prints one
object: "files" (a local run's list), "total", "nodes" and "missing". Exit status 0
when every file was read, 1 when some are missing.
"""
import sys

from ..errors import DependencyError, PipelineError
from ..filterreduce.results import Result, parse_reductions
from . import emit_json


def run(args, flt, reduce, describe):
    if args.pin:
        raise PipelineError("--pin leaves a pipeline on this machine; with --scheduler "
                            "the pipelines run on the workers and go with each job")
    if not args.files:
        raise PipelineError("--scheduler needs the files, as WORKER:/path/on/worker ...")
    try:
        from distributed import Client
        from ..dask import filter_reduce
    except ImportError:
        raise DependencyError("--scheduler needs Dask's distributed scheduler, the dask "
                              "extra: pip install 'pybpf[dask]'") from None
    with Client(args.scheduler, timeout=args.connect_timeout) as client:
        res = filter_reduce(client, args.files, flt, reduce, backend=args.backend,
                            parser=args.parser, chunk=args.chunk, override=args.override)
    reductions = parse_reductions(reduce)
    if args.json:
        emit_json({"files": [r.to_dict(reductions) for r in res.files],
                   "total": dict(Result.to_dict(res, reductions), files=len(res.files)),
                   "nodes": {n: r.to_dict(reductions) for n, r in res.nodes.items()},
                   "missing": [m.to_dict() for m in res.missing]})
    else:
        for r in res.files:
            print(describe(r, reductions))
        for name, r in res.nodes.items():
            print(describe(r.replace(file=f"node {name}"), reductions))
        print(describe(res.replace(file=f"total ({len(res.files)} files on "
                                        f"{len(res.nodes)} nodes)"), reductions))
    for m in res.missing:
        print(f"pybpf: missing {m.path} (held by {', '.join(m.holders)}): {m.reason}",
              file=sys.stderr)
    return 0 if res.complete else 1
