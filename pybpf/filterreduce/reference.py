"""The pipeline's computation in plain Python: the reference its results are checked
against, and the "pure-Python reader" the benchmark compares with.

The number rules are exactly those of the regular expression ``-?[0-9]+`` scanned
left to right: a maximal digit run, with the '-' right before it (if any) making it
negative. Data is read in chunks; a run (and its '-') that reaches the end of a
chunk is carried into the next, so chunk edges do not change the answer.
"""
import re
import time

from . import expr
from .layout import INT64_MAX, INT64_MIN
from .results import Result

_NUMBER = re.compile(rb"-?[0-9]+")
_TAIL = re.compile(rb"-?[0-9]*\Z")   # what may continue in the next chunk


def numbers(chunks):
    """Every number (as a Python int, of any size) in an iterable of byte chunks."""
    carry = b""
    for chunk in chunks:
        data = carry + chunk
        cut = _TAIL.search(data).start()
        carry = data[cut:]
        yield from map(int, _NUMBER.findall(data, 0, cut))
    yield from map(int, _NUMBER.findall(carry))


def compute(chunks, filter=None, reducer=None):
    """The Result (backend "python") over an iterable of byte chunks; filter is an
    expr.Filter, a source string, a custom.Function or None; reducer a custom.Reduce
    (whose step then runs, in Python, on the kept numbers)."""
    flt = expr.parse(filter) if isinstance(filter, str) else filter
    keep = flt.predicate if hasattr(flt, "predicate") else expr.predicate(flt)
    size = [0]

    def counted():
        for chunk in chunks:
            size[0] += len(chunk)
            yield chunk

    seen = kept = out = total = 0
    low = high = None
    kept_numbers = [] if reducer is not None else None
    started = time.perf_counter()
    for x in numbers(counted()):
        seen += 1
        if not INT64_MIN <= x <= INT64_MAX:
            out += 1
            continue
        if keep(x):
            kept += 1
            total += x
            if low is None or x < low:
                low = x
            if high is None or x > high:
                high = x
            if kept_numbers is not None:
                kept_numbers.append(x)
    res = Result(backend="python", parser="re", filter=str(flt) if flt else None,
                 bytes=size[0], numbers_seen=seen, numbers_kept=kept,
                 numbers_out_of_range=out, sum=total, min=low, max=high,
                 seconds=time.perf_counter() - started)
    if reducer is not None:
        res = res.replace(sum=None, min=None, max=None,
                          custom=reducer.reference(kept_numbers))
    return res


def read_file(path, filter=None, chunk=1 << 20, reducer=None):
    """compute() over the file at path, read chunk bytes at a time."""
    def chunks():
        with open(path, "rb") as f:
            while True:
                data = f.read(chunk)
                if not data:
                    return
                yield data
    return compute(chunks(), filter, reducer).replace(file=str(path))
