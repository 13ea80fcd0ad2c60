"""Network namespaces: finding one by name, telling two apart, entering one with the
calling thread only (setns(2)), and a private one for a probe.

``ip netns add NAME`` keeps a namespace at /var/run/netns/NAME; a path such as
/proc/PID/ns/net names one too. A thread's namespace is /proc/thread-self/ns/net.
"""
import ctypes
import errno
import os
import threading

from ..errors import BPFError
from .libc import LIBC

NETNS_DIR = "/var/run/netns"
THREAD_NETNS = "/proc/thread-self/ns/net"
CLONE_NEWNET = 0x40000000  # <linux/sched.h>


def netns_path(netns):
    """The file of a network namespace given by name (``ip netns``) or path."""
    return netns if "/" in netns else os.path.join(NETNS_DIR, netns)


def open_netns(netns):
    """An fd of the namespace netns (a name or path); FileNotFoundError when none."""
    return os.open(netns_path(netns), os.O_RDONLY | os.O_CLOEXEC)


def open_current():
    """An fd of the calling thread's network namespace (to return to it)."""
    return os.open(THREAD_NETNS, os.O_RDONLY | os.O_CLOEXEC)


def current_key():
    """(device, inode) of the calling thread's network namespace: equal for two
    threads in one namespace, whatever path reached it."""
    st = os.stat(THREAD_NETNS)
    return st.st_dev, st.st_ino


def setns(fd, what):
    """setns(2) of the calling thread into the network namespace fd (os.setns exists
    only from Python 3.12)."""
    if LIBC.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise BPFError("setns", err, what, "entering a network namespace needs "
                       "CAP_SYS_ADMIN (run as root)" if err == errno.EPERM else None)


def in_private_netns(fn):
    """fn() run in a thread of its own inside a new, empty network namespace (only its
    loopback device, down), which goes away with the thread; returns what fn returned.

    For feature tests that must attach to a device: nothing outside can see or be
    disturbed by what is attached there.
    """
    out = {}

    def run():
        try:
            if LIBC.unshare(CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise BPFError("unshare(CLONE_NEWNET)", err, "a private network namespace")
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the calling thread
            out["error"] = e
    thread = threading.Thread(target=run, name="pybpf-private-netns")
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]
