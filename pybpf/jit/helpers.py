"""Kernel helpers a jit program may call, as plain Python functions.

Each one runs in Python too (so a program can be tried as ordinary Python before it
is compiled) and carries what the compiler needs: the helper's number and how its
result becomes the integer the Python function returns. In the kernel they are the
BPF helpers of the same name; they are for programs (:func:`pybpf.jit.program`)
only, since a filter or reduce step must mean the same on every input wherever it
runs, which the host check relies on.

    from pybpf import jit

    def count(ctx):
        calls[jit.tgid()] += 1
"""
import dataclasses
import os
import random
import threading
import time

from ..kernel import cpus
from ..kernel.constants import HelperId


@dataclasses.dataclass(frozen=True)
class Helper:
    """A BPF helper without arguments, and the part of its 64-bit result the
    Python function returns: (result >> shift) & mask."""
    name: str
    helper_id: int
    shift: int = 0
    mask: int = (1 << 64) - 1


def _helper(helper_id, shift=0, mask=(1 << 64) - 1):
    def mark(fn):
        fn.__bpf_helper__ = Helper(fn.__name__, int(helper_id), shift, mask)
        return fn
    return mark


@_helper(HelperId.get_current_pid_tgid, shift=32, mask=0xFFFFFFFF)
def tgid():
    """The current process id (the kernel's thread-group id)."""
    return os.getpid()


@_helper(HelperId.get_current_pid_tgid, mask=0xFFFFFFFF)
def pid():
    """The current thread id (the kernel's pid)."""
    return threading.get_native_id()


@_helper(HelperId.get_current_uid_gid, mask=0xFFFFFFFF)
def uid():
    """The current task's user id."""
    return os.getuid()


@_helper(HelperId.get_current_uid_gid, shift=32, mask=0xFFFFFFFF)
def gid():
    """The current task's group id."""
    return os.getgid()


@_helper(HelperId.ktime_get_ns)
def ktime_ns():
    """Nanoseconds of CLOCK_MONOTONIC."""
    return time.monotonic_ns()


@_helper(HelperId.get_smp_processor_id, mask=0xFFFFFFFF)
def cpu():
    """The CPU the program runs on."""
    return cpus.current_cpu()


@_helper(HelperId.get_prandom_u32, mask=0xFFFFFFFF)
def random_u32():
    """A pseudo-random 32-bit number."""
    return random.getrandbits(32)


HELPERS = (tgid, pid, uid, gid, ktime_ns, cpu, random_u32)


def helper_of(value):
    """The Helper a Python object stands for, or None."""
    return getattr(value, "__bpf_helper__", None)
