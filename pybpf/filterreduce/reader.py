"""Reading through the pipeline from Python: FilterReduce and its tenants.

::

    with FilterReduce(filter="x >= 100", reduce=("sum", "count")) as fr:
        res = fr.read("numbers.txt")          # a Result
        print(res.sum, res.count, res.backend)

        buf = bytearray(65536)                # or: your own read loop
        with fr.tenant(buf) as t:
            with open("more.txt", "rb", buffering=0) as f:
                while f.readinto(buf):
                    pass
            res = t.result()

A tenant's buffer must stay where it is while registered (a bytearray that is not
resized, an mmap, a ctypes array): the kernel knows it by its address.

The end of the data: a number may run up to the last byte, and the kernel cannot
know that no more digits follow. :meth:`Tenant.result` therefore first reads one
newline into the buffer from a pipe of its own, through the same hook as the data;
the pipeline parses it like any byte, which ends the last number. The reported
bytes and events leave that byte out.
"""
import ctypes
import io
import os
import stat
import time

from ..errors import PipelineError
from . import expr
from . import layout as L
from .custom import Function, Reduce
from .names import DEFAULT_CHUNK, PARSERS
from . import results as R
from .pipeline import Pipeline

# Bytes one event can carry through the stages: a tail call per stage, at most 33 of
# them per event (32 before Linux 5.19), three per piece after the first's two.
MAX_EVENT_BYTES = L.PIECE * (1 + (32 - 2) // 3)


class FilterReduce:
    """A filter and reductions over the numbers of files read through the kernel.

    filter: a Python expression over x (see expr), a Python function keep(x) -> bool
    (compiled by pybpf.jit: the jit extra), or None to keep every number.
    reduce: reduction names (results.REDUCTIONS) or "count,sum,...", or a
    custom.Reduce (a compiled Python step over a state of its own).
    backend: "auto" (the best this kernel supports), "copyout", "copy_to_iter" or
    "syscall". parser: "native" or "strtol". chunk: bytes per read() in :meth:`read`.
    override: skip the copy to user space (copyout backend on a patched kernel).
    pipeline: an existing Pipeline to take part in (e.g. Pipeline.join(DIR)); by
    default a new one is loaded and attached, and detached on close().
    """

    # What close() looks at, safe when __init__ stopped early.
    pipeline = slot = None
    reduce_slot = L.SLOT_REDUCE_STATS
    _flush_r = _flush_w = -1
    _own_pipeline = False

    def __init__(self, filter=None, reduce=R.REDUCTIONS, *, backend="auto",
                 parser="native", chunk=DEFAULT_CHUNK, override=False, pipeline=None):
        if parser not in PARSERS:
            raise PipelineError(f"unknown parser {parser!r}; choose from "
                                f"{', '.join(PARSERS)}")
        self.filter = filter_of(filter)
        self.reducer = reduce if isinstance(reduce, Reduce) else None
        self.reductions = ("count",) if self.reducer else R.parse_reductions(reduce)
        self.parser, self.override = parser, override
        self._own_pipeline = pipeline is None
        if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
            raise PipelineError(f"chunk is the bytes per read(), a positive integer; "
                                f"got {chunk!r}")
        if pipeline is None:
            pipeline, self.why = Pipeline.create(backend, override)
        else:
            self.why = f"{pipeline.backend.name} (the pipeline pinned at {pipeline.pinned})"
        self.pipeline = pipeline
        self.chunk = chunk
        if override and not pipeline.backend.can_skip:
            self.close()
            raise PipelineError(f"override: the pipeline's {pipeline.backend.name} backend "
                                f"cannot skip copies (the copyout backend on a kernel with "
                                f"bpf_override_return can; see kernel-config/)")
        if chunk > MAX_EVENT_BYTES and pipeline.backend.name == "syscall":
            self.close()
            raise PipelineError(f"chunk must be at most {MAX_EVENT_BYTES} bytes on the "
                                f"syscall backend (the most one read() carries through "
                                f"the stages), got {chunk}")
        self._flush_r = self._flush_w = -1
        try:
            self.slot = pipeline.add_filter(self.filter, parser)
            if self.reducer is not None:
                self.reduce_slot = pipeline.add_reducer(self.reducer)
            self._flush_r, self._flush_w = os.pipe()
        except BaseException:
            self.close()
            raise

    @property
    def backend(self):
        return self.pipeline.backend.name

    def set_filter(self, filter):
        """Replace this reader's filter (its own stage slot only)."""
        flt = filter_of(filter)
        self.pipeline.set_filter(self.slot, flt, self.parser)
        self.filter = flt

    def tenant(self, buffer):
        """Register buffer (in this process) as a tenant; use as a context manager."""
        return Tenant(self, buffer)

    def read(self, path, progress=None):
        """Read the file at path through the pipeline; returns its Result. progress,
        if given, is called as progress(bytes_done, bytes_total) after each read."""
        fd = _open_regular(path)
        try:
            total = os.fstat(fd).st_size
            buf = bytearray(self.chunk)
            with io.FileIO(fd, closefd=False) as f, self.tenant(buf) as t:
                done, started = 0, time.perf_counter()
                while True:
                    n = f.readinto(buf)
                    if not n:
                        break
                    done += n
                    if progress is not None:
                        progress(done, total)
                return t.result(expected_bytes=done, started=started, file=str(path))
        finally:
            os.close(fd)

    def reclaim(self):
        """Drop tenants and stages left by processes that exited; returns the count."""
        return self.pipeline.reclaim()

    def close(self):
        for fd in (self._flush_r, self._flush_w):
            if fd >= 0:
                os.close(fd)
        self._flush_r = self._flush_w = -1
        pipeline = self.pipeline
        if pipeline is not None and not pipeline.closed:
            if self._own_pipeline:
                pipeline.close()
            else:
                for slot in (self.slot, self.reduce_slot):
                    if slot is not None and slot != L.SLOT_REDUCE_STATS:
                        pipeline.release_slot(slot)
        self.slot = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Tenant:
    """One registered buffer of this process. result() ends the data (see the module
    docstring) and returns what the kernel computed; the tenant stays registered
    (with fresh counters after reset()) until close()."""

    def __init__(self, reader, buffer):
        self.reader, self.buffer = reader, buffer
        self.address, self._pinned_view = address_of(buffer)
        if not len(self._pinned_view):
            raise PipelineError("a tenant's buffer must hold at least one byte")
        self.key = None
        self._register()

    def _register(self):
        p = self.reader.pipeline
        flags = L.FLAG_OVERRIDE if self.reader.override else 0
        reducer = self.reader.reducer
        self.key = p.tenants.register(self.address, self.reader.slot, self.reader.reduce_slot,
                                      flags, reducer.initial_slots() if reducer else None)

    def reset(self):
        """Start over with zero counters (for the next file)."""
        self.reader.pipeline.tenants.unregister(self.key)
        self._register()

    def result(self, expected_bytes=None, started=None, file=None):
        """The tenant's Result. expected_bytes: what the caller read, if known; the
        pipeline must have seen exactly that many bytes, else PipelineError."""
        r = self.reader
        os.write(r._flush_w, b"\n")
        if os.readv(r._flush_r, [memoryview(self.buffer)[:1]]) != 1:
            raise PipelineError("could not end the tenant's data (the flush read failed)")
        seconds = time.perf_counter() - started if started is not None else 0.0
        raw = r.pipeline.tenants.counters(self.key).res
        if raw.bytes + raw.truncated == 0:
            raise PipelineError(
                f"the {r.backend} backend saw none of this tenant's reads: the data did "
                f"not pass through its hook ({_not_seen_hint(r.backend)})")
        if raw.truncated or raw.errors:
            raise PipelineError(
                f"the pipeline could not process all the data: {raw.truncated} bytes "
                f"not processed, {raw.errors} stage errors (reads larger than "
                f"{MAX_EVENT_BYTES} bytes at once exceed what the syscall backend "
                f"follows; so do readv() calls with several buffers)")
        res = R.from_counters(raw, backend=r.backend, parser=r.parser,
                              filter=str(r.filter) if r.filter else None, extra_bytes=1,
                              extra_events=1, extra_overridden=1 if r.override else 0,
                              seconds=seconds, file=file)
        if r.reducer is not None:
            res = res.replace(sum=None, min=None, max=None,
                              custom=r.reducer.decode(r.pipeline.tenants.state(self.key)))
        if expected_bytes is not None and res.bytes != expected_bytes:
            raise PipelineError(
                f"the pipeline saw {res.bytes} of the {expected_bytes} bytes read: the "
                f"rest did not pass through the {r.backend} backend's hook "
                f"({_not_seen_hint(r.backend)})")
        return res

    def close(self):
        if self.key is not None:
            self.reader.pipeline.tenants.unregister(self.key)
            self.key = None
        self._pinned_view = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def filter_of(filter):
    """An expr.Filter for a string, a custom.Function for a Python function, None
    for None."""
    if filter is None:
        return None
    if callable(filter):
        return Function(filter)
    return expr.parse(filter)


def _not_seen_hint(backend):
    if backend == "syscall":
        return "it follows read, pread64 and single-buffer readv/preadv/preadv2"
    return ("it follows copies made by _copy_to_iter: page-cache reads of regular "
            "files; holes in sparse files and O_DIRECT reads bypass it")


def _open_regular(path):
    """An fd for the regular file at path; PipelineError naming what it is otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise PipelineError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise PipelineError(f"{path} is a directory; give the files in it") from None
    except PermissionError:
        raise PipelineError(f"{path}: permission denied") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
        raise PipelineError(f"{path} is {kind}: the pipeline reads regular files "
                            f"(their size bounds the work and they go through the "
                            f"page cache)")
    os.set_blocking(fd, True)
    return fd


def address_of(buffer):
    """The address of a writable buffer (bytearray, mmap, ctypes array), and a view
    that keeps it from moving (a bytearray cannot be resized while it is exported)."""
    try:
        size = memoryview(buffer).nbytes
        view = (ctypes.c_char * size).from_buffer(buffer)
    except (TypeError, ValueError) as e:
        raise PipelineError(f"a tenant's buffer must be writable and contiguous (a "
                            f"bytearray, mmap or ctypes array): {e}") from None
    return ctypes.addressof(view), view
