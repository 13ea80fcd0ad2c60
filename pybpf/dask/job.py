"""What travels to a worker, and what the worker does with it.

A :class:`Job` is plain data (the filter as text, the backend and parser asked for),
so it pickles small and the same Job is the key of the worker's cached reader: the
pipeline is loaded, verified and attached once per worker process and job, not once
per file. :func:`read_files` is the task body; it returns one partial per file
(partials.py), a failed one carrying the error, so one bad file does not hide the
others' results.
"""
import collections
import dataclasses
import os
import socket
import threading
from typing import Optional, Tuple

from ..errors import Error, InputError
from ..filterreduce import expr
from ..filterreduce.custom import Reduce
from ..filterreduce.reader import DEFAULT_CHUNK, FilterReduce
from ..filterreduce.results import REDUCTIONS, parse_reductions
from . import partials, source

# Readers a worker keeps loaded (one per distinct job), least recently used first out.
CACHED_READERS = 4


@dataclasses.dataclass(frozen=True)
class Job:
    filter: Optional[str]            # an expression, or a function's source (function=)
    function: Optional[str]          # the filter function's name in that source
    reductions: Tuple[str, ...]
    backend: str = "auto"
    parser: str = "native"
    chunk: int = DEFAULT_CHUNK
    override: bool = False

    @classmethod
    def make(cls, filter=None, reduce=REDUCTIONS, *, backend="auto", parser="native",
             chunk=DEFAULT_CHUNK, override=False):
        """A Job, with what can be checked without a kernel checked here, on the
        client: the expression's syntax, the reductions, a function's source."""
        if isinstance(reduce, Reduce):
            raise InputError("a custom Reduce has no rule for combining its state across "
                             "nodes; use the built-in reductions (count, sum, min, max, "
                             "avg) with pybpf.dask, or FilterReduce on each node")
        function = None
        if callable(filter):
            function, filter = source.portable(filter)
        elif filter is not None:
            filter = str(expr.parse(filter))
        return cls(filter, function, parse_reductions(reduce), backend, parser, chunk,
                   override)

    def filter_object(self):
        """What FilterReduce takes: the expression, or the function compiled here."""
        if self.function is None:
            return self.filter
        from .. import jit
        return jit.compile(self.function, source=self.filter)


class _Readers:
    """The worker process's loaded pipelines, by job; each used by one thread at a time."""

    def __init__(self):
        self.lock = threading.Lock()
        self.readers = collections.OrderedDict()    # Job -> (FilterReduce, Lock)

    def get(self, job):
        with self.lock:
            entry = self.readers.get(job)
            if entry is None:
                reader = FilterReduce(job.filter_object(), job.reductions,
                                      backend=job.backend, parser=job.parser,
                                      chunk=job.chunk, override=job.override)
                entry = self.readers[job] = (reader, threading.Lock())
                while len(self.readers) > CACHED_READERS:
                    self.readers.popitem(last=False)[1][0].close()
            self.readers.move_to_end(job)
            return entry

    def close(self):
        with self.lock:
            while self.readers:
                self.readers.popitem()[1][0].close()


READERS = _Readers()


def read_files(job, paths):
    """Run on a worker: each path through the pipeline; a list of partials."""
    where = _worker_identity()
    try:
        reader, lock = READERS.get(job)
    except Error as e:
        return [partials.failed(p, where, f"this worker cannot run the pipeline: {e}")
                for p in paths]
    out = []
    with lock:
        for path in paths:
            try:
                out.append(partials.from_result(reader.read(path), where))
            except Error as e:
                out.append(partials.failed(path, where, str(e)))
    return out


def _worker_identity():
    """(address, name) of the worker running this task; the host and pid outside one."""
    try:
        from distributed import get_worker
        w = get_worker()
        return w.address, str(w.name)
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}", None
