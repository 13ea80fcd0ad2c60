"""filter_reduce: the pipeline run where the files are, only results crossing the
network.

One task per file (or per ``files_per_task`` files with the same holders) is
restricted to the workers holding it, with no fallback to one that does not. The
file partials are combined on the cluster in a tree (``split_every`` per combine),
so the client receives one aggregate, plus each file's partial when ``per_file``.

Dask reschedules a task whose worker died on another allowed worker, so a file with
replicas survives its reader's death; a task whose allowed workers are all gone
would wait forever ("no-worker"), so the client watches the connected workers and
reports such files as missing (which file, which holders) and combines the rest. The
same happens to a finished partial whose worker dies before the tree has used it:
Dask recomputes it on a replica, or it is missing.
"""
import time
import uuid

from ..errors import PipelineError
from ..filterreduce.names import DEFAULT_CHUNK, REDUCTIONS
from . import partials, placement
from .job import Job, read_files
from .plugin import check_workers
from .results import DistributedResult

POLL = 0.2


def filter_reduce(client, files, filter=None, reduce=REDUCTIONS, *, backend="auto",
                  parser="native", chunk=DEFAULT_CHUNK, override=False, files_per_task=1,
                  per_file=True, split_every=8, check=True, timeout=None):
    """Filter and reduce the numbers of files held by the cluster's workers; a
    DistributedResult. files: {worker: [paths]} or "worker:path" strings (a worker's
    name or address; a path under several workers has replicas). filter, reduce,
    backend, parser, chunk, override: as for FilterReduce (filter may be a Python
    function: it is sent as source and compiled by each worker, which needs the jit
    extra). check: ask each worker first whether it can run the pipeline, and keep
    files off those that cannot. timeout: seconds before PipelineError."""
    job = Job.make(filter, reduce, backend=backend, parser=parser, chunk=chunk,
                   override=override)
    if not isinstance(split_every, int) or isinstance(split_every, bool) or split_every < 2:
        raise PipelineError(f"split_every is an integer of at least 2, got {split_every!r}")
    wanted = placement.parse(files)
    started = time.perf_counter()
    workers = connected(client)
    refused = {}
    if check:
        refused = {a: v["why"] for a, v in check_workers(client, backend, override).items()
                   if not v["ok"]}
    tasks, missing = placement.assign(wanted, workers, refused, files_per_task)
    run = _Run(client, job, tasks, split_every, per_file, timeout)
    try:
        agg, lost = run.wait(started)
    finally:
        run.cancel()     # a timeout or an interrupt leaves no task behind on the cluster
    missing += lost
    order = {f.path: i for i, f in enumerate(wanted)}
    file_results = tuple(partials.to_result(p) for p in
                         sorted(agg["partials"], key=lambda p: order[p["path"]]))
    missing += [placement.Missing(f["path"], (f["node"],), f["error"]) for f in agg["failed"]]
    total = partials.aggregate_result(agg, seconds=time.perf_counter() - started)
    return DistributedResult(**vars(total), files=file_results,
                             nodes={n: partials.aggregate_result(sub)
                                    for n, sub in sorted(agg["nodes"].items())},
                             missing=tuple(missing))


def connected(client):
    """{address: name} of the workers connected now."""
    return {a: w.get("name") for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}


class _Run:
    """The tasks of one filter_reduce on the cluster, watched until the tree is done."""

    def __init__(self, client, job, tasks, split_every, per_file, timeout):
        self.client, self.split_every, self.timeout = client, split_every, timeout
        self.per_file = per_file
        self.token = uuid.uuid4().hex[:12]
        self.futures = {}                  # Task -> Future of its partials
        for i, task in enumerate(tasks):
            self.futures[task] = client.submit(
                read_files, job, list(task.paths), key=f"pybpf-read-{self.token}-{i}",
                workers=list(task.addresses), allow_other_workers=False, pure=False)
        self.tree, self.generation = None, 0

    def wait(self, started):
        """(aggregate, [Missing])."""
        from distributed import wait
        lost = []
        while True:
            alive = set(connected(self.client))
            stranded = [t for t, f in self.futures.items()
                        if f.status != "finished" and not alive.intersection(t.addresses)]
            errored = [t for t, f in self.futures.items() if f.status == "error"]
            for t in stranded:
                for f in t.files:
                    lost.append(placement.Missing(
                        f.path, f.holders, f"every worker holding it left the cluster "
                        f"while it was read ({', '.join(f.holders)})"))
            for t in errored:
                why = _exception(self.futures[t])
                lost += [placement.Missing(f.path, f.holders, why) for f in t.files]
            for t in set(stranded + errored):
                self.futures.pop(t).cancel()
                self.tree = None
            if self.tree is not None and self.tree.status == "error":
                raise PipelineError(f"combining the partials failed: "
                                    f"{_exception(self.tree)}")
            if self.tree is None:
                self.tree = self._build()
            if self.timeout is not None and time.perf_counter() - started > self.timeout:
                raise PipelineError(f"the cluster did not finish in {self.timeout} s: "
                                    f"{sum(f.status != 'finished' for f in self.futures.values())}"
                                    f" of {len(self.futures)} tasks still running")
            try:
                wait([self.tree], timeout=POLL)
            except TimeoutError:
                pass
            if self.tree.status == "finished":
                return self.tree.result(), lost
            if self.tree.status in ("cancelled", "lost"):
                self.tree = None      # a partial failed under it: rebuild from the rest

    def cancel(self):
        """Release every task of this run (finished ones too: the result is out)."""
        self.client.cancel(list(self.futures.values()) +
                           ([self.tree] if self.tree is not None else []))

    def _build(self):
        """The combine tree over the current partials' futures; its root future."""
        self.generation += 1
        level = [f for f in self.futures.values()] or [None]
        depth = 0
        while len(level) > 1 or depth == 0:
            level = [self.client.submit(
                _combine_lists, *level[i:i + self.split_every], keep_files=self.per_file,
                key=f"pybpf-combine-{self.token}-{self.generation}-{depth}-{i}", pure=False)
                for i in range(0, len(level), self.split_every)]
            depth += 1
        return level[0]


def _combine_lists(*items, keep_files):
    """A combine task: items are a task's list of file partials or aggregates."""
    flat = []
    for item in items:
        if item is None:
            continue
        flat.extend(item if isinstance(item, list) else [item])
    return partials.combine(*flat, keep_files=keep_files)


def _exception(future):
    try:
        return f"its task failed: {future.exception(timeout=5)!r}"
    except Exception as e:           # the scheduler may already have forgotten it
        return f"its task failed ({e.__class__.__name__})"
