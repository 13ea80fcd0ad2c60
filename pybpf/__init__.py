"""pybpf: a pure-Python BPF loader.

pybpf issues bpf(2) and perf_event_open(2) itself through ctypes: no libbpf, no BCC,
no clang at run time, no third-party dependencies. The layers, bottom up:

- :mod:`pybpf.kernel`: the only code that calls the kernel (syscalls, sysfs, bpffs);
- :mod:`pybpf.maps`, :mod:`pybpf.programs`: the objects users hold, each owning its fd;
- :mod:`pybpf.asm`: eBPF instructions, for building programs without a compiler;
- :mod:`pybpf.probe`: what the running kernel supports;
- ``python -m pybpf``: the command line.
"""
import sys

# Before anything else, in syntax any Python parses: pybpf uses 3.9's, and an old
# interpreter would otherwise fail with a SyntaxError deep in some module.
if sys.version_info < (3, 9):
    raise ImportError("pybpf needs Python 3.9 or newer; this is Python %d.%d (%s). "
                      "Install a newer python3 (Debian 11 ships 3.9, Ubuntu 22.04 3.10)"
                      % (sys.version_info[0], sys.version_info[1], sys.executable))

from .errors import (BPFError, ClosedError, DependencyError, EmptyError, Error, InputError,
                     MapFullError, MissingError, NotSupportedError, UnsupportedError,
                     VerifierError)
from .exports import lazy

# The rest of the public names are imported when first used (pybpf.exports), so that
# ``import pybpf`` and every ``python -m pybpf`` command pay only for what they use.
_LAZY = {"unpin": ".fd", "PerfBuffer": ".events", "RingBuffer": ".events", "Map": ".maps",
         "MapInfo": ".maps", "ProgInfo": ".programs", "Program": ".programs",
         "TestRun": ".programs", "enable_stats": ".programs"}
_LAZY.update(dict.fromkeys(
    ("BPF_ANY", "BPF_EXIST", "BPF_F_LOCK", "BPF_F_MMAPABLE", "BPF_F_NO_PREALLOC",
     "BPF_F_RDONLY_PROG", "BPF_F_WRONLY_PROG", "BPF_NOEXIST", "AttachType", "HelperId",
     "MapType", "ProgType"), ".kernel.constants"))
__getattr__, __dir__ = lazy(__name__, _LAZY)

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
