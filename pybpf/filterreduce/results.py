"""What a tenant's reading produced: counts, the reductions, and how it was obtained.

The kernel keeps raw counters per tenant (layout.Result: a 128-bit sum as two
words, min and max, counts); :class:`Result` is their Python face. Reductions are
always all computed in the kernel (they cost the same as one), so which ones a
caller asked for only decides what is shown. ``avg`` is sum / count, done here: BPF
has no floating point.
"""
import dataclasses
from typing import Optional

from ..errors import PipelineError
from .layout import INT64_MAX, INT64_MIN
from .layout import Result as Counters
from .names import REDUCTIONS



def parse_reductions(spec):
    """A tuple of reduction names from "count,sum" or an iterable of names."""
    names = [n.strip() for n in spec.split(",")] if isinstance(spec, str) else list(spec)
    unknown = [n for n in names if n not in REDUCTIONS]
    if unknown or not names:
        raise PipelineError(f"unknown reduction {', '.join(map(repr, unknown)) or '(none)'}; "
                            f"choose from {', '.join(REDUCTIONS)}")
    return tuple(dict.fromkeys(names))


@dataclasses.dataclass(frozen=True)
class Result:
    """The result of one tenant's data: a file read through the pipeline, or the
    user-space reference computation of the same (backend "python")."""
    backend: str
    parser: str
    filter: Optional[str]
    bytes: int
    numbers_seen: int
    numbers_kept: int
    numbers_out_of_range: int
    sum: Optional[int]        # exact (the kernel sums in 128 bits); None: custom reduce
    min: Optional[int]        # None when nothing was kept
    max: Optional[int]
    events: int = 0           # hook calls that carried the data
    overridden: int = 0       # copies skipped (copyout backend with override)
    seconds: float = 0.0
    file: Optional[str] = None
    custom: Optional[dict] = None   # a custom.Reduce's state, by field name

    @property
    def count(self):
        return self.numbers_kept

    @property
    def avg(self):
        if self.sum is None or not self.numbers_kept:
            return None
        return self.sum / self.numbers_kept

    @property
    def throughput(self):
        """Bytes per second, or None when no time was measured."""
        return self.bytes / self.seconds if self.seconds > 0 else None

    def value(self, reduction):
        return getattr(self, reduction)

    def same_numbers(self, other):
        """Whether two results agree on everything computed from the data."""
        keys = ("bytes", "numbers_seen", "numbers_kept", "numbers_out_of_range", "sum",
                "min", "max", "custom")
        return all(getattr(self, k) == getattr(other, k) for k in keys)

    def to_dict(self, reductions=REDUCTIONS):
        d = {"file": self.file, "backend": self.backend, "parser": self.parser,
             "filter": self.filter, "bytes": self.bytes, "numbers_seen": self.numbers_seen,
             "numbers_kept": self.numbers_kept,
             "numbers_out_of_range": self.numbers_out_of_range}
        for r in reductions:
            d[r] = self.value(r)
        if self.custom is not None:
            d["custom"] = self.custom
        d.update(events=self.events, overridden=self.overridden,
                 seconds=round(self.seconds, 6),
                 mb_per_s=round(self.throughput / 1e6, 1) if self.throughput else None)
        return d

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def from_counters(raw, *, backend, parser, filter, extra_bytes=0, extra_events=0,
                  extra_overridden=0, seconds=0.0, file=None):
    """A Result from the kernel's counters (a layout.Result), less the bytes, events
    and skipped copies the pipeline itself added (the end-of-data separator)."""
    total = (raw.sum_hi << 64) + raw.sum_lo
    kept = raw.kept
    return Result(backend=backend, parser=parser, filter=filter,
                  bytes=raw.bytes - extra_bytes, numbers_seen=raw.seen,
                  numbers_kept=kept, numbers_out_of_range=raw.out_of_range, sum=total,
                  min=raw.min if kept else None, max=raw.max if kept else None,
                  events=raw.events - extra_events,
                  overridden=raw.overridden - extra_overridden,
                  seconds=seconds, file=file)


def empty_counters():
    """The counters a tenant starts with: nothing seen, min/max at their identities."""
    raw = Counters()
    raw.min, raw.max = INT64_MAX, INT64_MIN
    return raw
