"""The running kernel's release: its name, and the version numbers BPF_PROG_LOAD wants.

pybpf decides what a kernel can do by asking it (pybpf.kernel.features), never by
these numbers; they name the kernel in messages and fill ``kern_version`` (which
kernels before 5.0 check for kprobe programs) and ``LINUX_KERNEL_VERSION``.
"""
import functools
import os
import re


@functools.lru_cache(maxsize=None)
def kernel_release():
    """``uname -r`` of the running kernel, e.g. ``"6.18.44-fc-v657"``."""
    return os.uname().release


@functools.lru_cache(maxsize=None)
def kernel_version():
    """(major, minor, patch) of the running kernel."""
    nums = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", kernel_release())
    return tuple(int(n or 0) for n in nums.groups())


def kernel_version_code():
    """The LINUX_VERSION_CODE form, which BPF_PROG_LOAD's kern_version expects."""
    major, minor, patch = kernel_version()
    return (major << 16) | (minor << 8) | min(patch, 255)
