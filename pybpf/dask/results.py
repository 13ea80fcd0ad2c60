"""The result of a filter-reduce over a cluster: a Result like a local run's, plus
the per-file results, the per-node breakdown and the files that were not read."""
import dataclasses
from typing import Dict, Tuple

from ..filterreduce.results import REDUCTIONS, Result
from .placement import Missing


@dataclasses.dataclass(frozen=True)
class DistributedResult(Result):
    """count, sum, min, max and avg over every file that was read (avg from the
    combined sum and count); seconds is the job's wall time. files: each file's
    Result (file "node:path"), when asked for; nodes: {node: Result}; missing: the
    files not read, with their holders and why. A result with missing files is
    incomplete (:attr:`complete`), never silently smaller."""
    files: Tuple[Result, ...] = ()
    nodes: Dict[str, Result] = dataclasses.field(default_factory=dict)
    missing: Tuple[Missing, ...] = ()

    @property
    def complete(self):
        return not self.missing

    def to_dict(self, reductions=REDUCTIONS):
        d = super().to_dict(reductions)
        d.update(nodes={n: r.to_dict(reductions) for n, r in self.nodes.items()},
                 missing=[m.to_dict() for m in self.missing])
        return d
