"""Python functions compiled to BPF at run time by llvmlite: no clang, no llc, no
subprocess (the ``jit`` extra: ``pip install 'pybpf[jit]'``; the core never imports
this package).

    from pybpf import jit

    def checksum_ok(x):
        s = 0
        for i in range(4):
            s += (x >> (8 * i)) & 0xFF
        return s % 7 == 0

    f = jit.compile(checksum_ok)       # subset check, LLVM IR, BPF object, host check
    f(1234), f.test_run(1234)          # on the host, and in the kernel

The subset (subset.py, docs/jit.md) is integer Python: arithmetic, comparisons,
if/else, bounded for loops, calls within the subset. The pipeline takes compiled
functions as filters and reduce steps (pybpf.filterreduce: FilterReduce(filter=fn),
Reduce(...)).
"""
from .functions import CompiledFunction, compile, default_samples
from .subset import JitError

__all__ = ["compile", "CompiledFunction", "default_samples", "JitError"]
