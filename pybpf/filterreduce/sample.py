"""Test data: files of numbers with a chosen value range, separators, share of
negatives and filter factor (the share of numbers a given filter drops, as in the
thesis's evaluation).

``generate(path, size, filter="x >= 500000", filter_factor=0.25)`` writes exactly
size bytes; with a filter factor, each number is drawn so that the filter drops it
with that probability. The file may end inside a number (as the pipeline must
handle). Numbers are drawn from a pool of pre-rendered values, so 64 MiB takes a few
seconds, not minutes.
"""
import itertools
import random

from ..errors import PipelineError
from . import expr

DEFAULT_SEPARATORS = (b"\n",)
_POOL = 4096        # distinct values rendered per kind (kept / dropped)
_BATCH = 1 << 16    # numbers per write


def _pool(rng, low, high, negatives, wanted, keep, tries=200):
    """Up to _POOL rendered numbers for which keep(x) == wanted."""
    out = []
    for _ in range(_POOL * tries):
        x = rng.randint(low, high)
        if negatives and rng.random() < negatives:
            x = -x
        if keep(x) == wanted:
            out.append(str(x).encode())
            if len(out) == _POOL:
                break
    return out


def generate(path, size, *, low=0, high=999_999, negatives=0.0,
             separators=DEFAULT_SEPARATORS, filter=None, filter_factor=None, seed=0):
    """Write size bytes of numbers to path; returns the number of numbers written
    whole (the last one may be cut by size)."""
    if size < 0:
        raise PipelineError(f"size must not be negative, got {size}")
    if low > high or low < 0:
        raise PipelineError(f"the value range is 0 <= low <= high (negatives are made "
                            f"with negatives=SHARE), got {low}..{high}")
    if not 0.0 <= negatives <= 1.0:
        raise PipelineError(f"negatives is a share from 0 to 1, got {negatives}")
    seps = [s.encode() if isinstance(s, str) else bytes(s) for s in separators]
    if not seps or any(not s or any(48 <= c <= 57 for c in s) for s in seps):
        raise PipelineError("separators must be non-empty and contain no digits")
    rng = random.Random(seed)
    if filter_factor is None:
        kept, dropped, share = _pool(rng, low, high, negatives, True, lambda x: True), [], 0.0
    else:
        if not 0.0 <= filter_factor <= 1.0:
            raise PipelineError(f"filter_factor is the share the filter drops, from 0 to "
                                f"1, got {filter_factor}")
        keep = expr.predicate(expr.parse(filter) if filter else None)
        kept = _pool(rng, low, high, negatives, True, keep) if filter_factor < 1 else []
        dropped = _pool(rng, low, high, negatives, False, keep) if filter_factor > 0 else []
        if (filter_factor < 1 and not kept) or (filter_factor > 0 and not dropped):
            raise PipelineError(f"no numbers in {low}..{high} that the filter "
                                f"{'keeps' if not kept else 'drops'}; widen the range")
        share = filter_factor
    # One population: a kept number is drawn with probability (1 - share), a dropped
    # one with share, each pool uniformly; random.choices draws a batch in C.
    population = kept + dropped
    weights = [(1 - share) / len(kept)] * len(kept) if kept else []
    weights += [share / len(dropped)] * len(dropped) if dropped else []
    written = count = 0
    with open(path, "wb") as f:
        while written < size:
            nums = rng.choices(population, weights, k=_BATCH)
            if len(seps) == 1:
                block = seps[0].join(nums) + seps[0]
            else:
                block = b"".join(itertools.chain.from_iterable(
                    zip(nums, rng.choices(seps, k=_BATCH))))
            block = block[:size - written]
            f.write(block)
            written += len(block)
            count += _BATCH
    return count
