"""RLIMIT_MEMLOCK, which kernels before 5.11 charge BPF memory to.

On those kernels the default limit (64 KiB to 8 MiB) makes map creation fail with
EPERM for no reason a user could guess, so pybpf lifts it once per process, as
libbpf does; kernels that charge BPF memory to the memory cgroup instead are left
alone. Which kind this kernel is comes from a feature test, not its version.
"""
import functools
import resource

from . import features


def memlock_accounting_is_rlimit():
    """Whether this kernel charges BPF memory to RLIMIT_MEMLOCK (before 5.11), not to
    the memory cgroup."""
    return not features.have("memcg_accounting")


@functools.lru_cache(maxsize=None)
def raise_memlock_rlimit():
    """Lift RLIMIT_MEMLOCK on kernels that charge BPF memory to it (once per process).

    Returns True when the limit was raised.
    """
    if not memlock_accounting_is_rlimit():
        return False
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK,
                           (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        return True
    except (ValueError, OSError):
        return False
