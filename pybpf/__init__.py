"""pybpf: a pure-Python BPF loader.

pybpf issues bpf(2) and perf_event_open(2) itself through ctypes: no libbpf, no BCC,
no clang at run time, no third-party dependencies. The layers, bottom up:

- :mod:`pybpf.kernel`: the only code that calls the kernel (syscalls, sysfs, bpffs);
- :mod:`pybpf.maps`, :mod:`pybpf.programs`: the objects users hold, each owning its fd;
- :mod:`pybpf.asm`: eBPF instructions, for building programs without a compiler;
- :mod:`pybpf.probe`: what the running kernel supports;
- ``python -m pybpf``: the command line.
"""
from .errors import (BPFError, ClosedError, DependencyError, EmptyError, Error, InputError,
                     MapFullError, MissingError, NotSupportedError, UnsupportedError,
                     VerifierError)
from .fd import unpin
from .kernel.constants import (BPF_ANY, BPF_EXIST, BPF_F_LOCK, BPF_F_MMAPABLE,
                               BPF_F_NO_PREALLOC, BPF_F_RDONLY_PROG, BPF_F_WRONLY_PROG,
                               BPF_NOEXIST, AttachType, HelperId, MapType, ProgType)
from .events import PerfBuffer, RingBuffer
from .maps import Map, MapInfo
from .programs import ProgInfo, Program, TestRun, enable_stats

__version__ = "0.1.0"

__all__ = [
    "Error", "InputError", "UnsupportedError", "MissingError", "EmptyError",
    "DependencyError", "BPFError", "ClosedError", "MapFullError", "VerifierError",
    "NotSupportedError", "unpin",
    "BPF_ANY", "BPF_EXIST", "BPF_F_LOCK", "BPF_F_MMAPABLE", "BPF_F_NO_PREALLOC",
    "BPF_F_RDONLY_PROG", "BPF_F_WRONLY_PROG", "BPF_NOEXIST",
    "AttachType", "HelperId", "MapType", "ProgType",
    "Map", "MapInfo", "ProgInfo", "Program", "TestRun", "enable_stats",
    "PerfBuffer", "RingBuffer",
]
