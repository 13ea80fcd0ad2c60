"""The points each experiment measures: the thesis's grid, and a reduced one (--quick)
that runs every experiment in a few minutes, for the test suite."""
from dataclasses import dataclass, replace
from typing import Tuple

from . import thesis


@dataclass(frozen=True)
class Grid:
    name: str
    verify_sizes: Tuple[int, ...]      # 6.2.1: processed instructions
    jit_lengths: Tuple[int, ...]       # 6.2.1: program lengths for the JIT's cost
    runs: int                          # loads / measurements per point
    helper_sizes: Tuple[int, ...]      # 6.2.2: bytes per helper call
    repeat: int                        # TEST_RUN runs per measurement
    page_reads: int                    # 6.2.2: one-page reads through the pipeline
    tail_pages: Tuple[int, ...]        # 6.2.3: pages (tail calls) per run
    override_mb: Tuple[int, ...]       # 6.2.4: read sizes
    sizes_mb: Tuple[int, ...]          # 6.3: file sizes
    factors: Tuple[int, ...]           # 6.3: filter factors, %
    python_max_mb: int                 # 6.3: the Python reader only up to this size

    def with_options(self, sizes_mb=None, runs=None):
        grid = self
        if sizes_mb:
            grid = replace(grid, sizes_mb=tuple(sizes_mb))
        if runs:
            grid = replace(grid, runs=runs)
        return grid


FULL = Grid("full", verify_sizes=tuple(thesis.VERIFICATION_MS),
            jit_lengths=(1_000, 10_000, 100_000), runs=10,
            helper_sizes=(8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096), repeat=2000,
            page_reads=20000, tail_pages=(1, 2, 4, 8, 16, 32),
            override_mb=(4, 16, 32, 64, 80, 96, 128, 160), sizes_mb=thesis.SIZES_MB,
            factors=thesis.FILTER_FACTORS, python_max_mb=32)

QUICK = Grid("quick", verify_sizes=(60_000, 250_000), jit_lengths=(1_000, 10_000), runs=3,
             helper_sizes=(8, 64, 256, 4096), repeat=300, page_reads=2000,
             tail_pages=(1, 8, 32), override_mb=(4, 16), sizes_mb=(1, 4),
             factors=(0, 50, 100), python_max_mb=4)

GRIDS = {"full": FULL, "quick": QUICK}
