"""CPUs and pages as the kernel counts them for BPF.

Per-CPU map values hold one slot per *possible* CPU (highest possible CPU + 1), not
per online one; sampling events and perf buffers open one event per *online* CPU.
"""
import functools
import os

from .libc import LIBC

POSSIBLE = "/sys/devices/system/cpu/possible"
ONLINE = "/sys/devices/system/cpu/online"


def page_size():
    return os.sysconf("SC_PAGE_SIZE")


def parse_cpu_list(text):
    """Parse a sysfs CPU list such as ``"0-3,5,7-8"`` into a sorted list of ints."""
    cpus = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return sorted(cpus)


@functools.lru_cache(maxsize=None)
def possible_cpus():
    """Number of per-CPU slots in a per-CPU map value: the kernel sizes them by the
    *possible* CPUs (highest possible CPU + 1), not the online ones."""
    with open(POSSIBLE) as f:
        return max(parse_cpu_list(f.read())) + 1


@functools.lru_cache(maxsize=None)
def online_cpus():
    with open(ONLINE) as f:
        return parse_cpu_list(f.read())


def current_cpu():
    """The CPU this thread runs on now (sched_getcpu(3)); it may move right after."""
    return LIBC.sched_getcpu()
