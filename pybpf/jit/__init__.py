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
Reduce(...)). Whole programs, with maps and helpers, come from :func:`program`:

    calls = jit.Map("hash", max_entries=1024)

    def count(ctx):
        calls[jit.tgid()] += 1

    with jit.program(count, "tracepoint/syscalls/sys_enter_getpid").load() as p, \
            p.attach():
        ...
"""
try:
    import llvmlite  # noqa: F401 - the one dependency, checked before anything uses it
except ImportError:
    from ..errors import DependencyError
    raise DependencyError("compiling Python functions to BPF needs llvmlite, the jit "
                          "extra: pip install 'pybpf[jit]'") from None

from .functions import CompiledFunction, compile, default_samples  # noqa: E402
from .helpers import cpu, gid, ktime_ns, pid, random_u32, tgid, uid
from .maps import Map
from .programs import JitProgram, Loaded, program
from .subset import JitError

__all__ = ["compile", "CompiledFunction", "default_samples", "JitError", "program",
           "JitProgram", "Loaded", "Map", "tgid", "pid", "uid", "gid", "ktime_ns", "cpu",
           "random_u32"]
