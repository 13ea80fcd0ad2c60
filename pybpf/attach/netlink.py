"""Netlink through pyroute2 (the optional ``net`` extra, ``pip install pybpf[net]``),
for what only netlink attaches: XDP programs on kernels without XDP links and tc bpf
filters. It is imported when first needed, so BPF links on interfaces work without it.
Netlink errors become BPFError naming what failed.
"""
import contextlib
import errno
import os

from ..errors import BPFError, DependencyError

PRIVILEGE_HINT = "attaching to a network interface needs CAP_NET_ADMIN (run as root)"


def _pyroute2():
    try:
        import pyroute2
        from pyroute2.netlink.exceptions import NetlinkError
    except ImportError as e:
        why = "which is not installed" if e.name == "pyroute2" else f"which failed: {e}"
        raise DependencyError(f"attaching tc programs (and XDP programs on kernels before "
                              f"5.9) speaks netlink through pyroute2, {why}; pip install "
                              f"pybpf[net]") from None
    return pyroute2, NetlinkError


@contextlib.contextmanager
def iproute(what):
    """An IPRoute socket in the calling thread's network namespace."""
    pyroute2, _ = _pyroute2()
    with netlink_errors(what):
        ipr = pyroute2.IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


def call(method, *args, what, hints=None, **kwargs):
    """method(*args, **kwargs), netlink errors as BPFError naming what failed."""
    with netlink_errors(what, hints):
        result = method(*args, **kwargs)
        return list(result) if result is not None else []


@contextlib.contextmanager
def netlink_errors(what, hints=None):
    _, NetlinkError = _pyroute2()
    try:
        yield
    except NetlinkError as e:
        code = e.code or errno.EIO
        hint = (hints or {}).get(code)
        if hint is None and code in (errno.EPERM, errno.EACCES):
            hint = PRIVILEGE_HINT
        detail = (getattr(e, "args", ("", ""))[1:2] or [""])[0]
        if detail == os.strerror(code):
            detail = ""
        raise BPFError(what, code, detail or "", hint) from None


@contextlib.contextmanager
def unless(err):
    """Let a BPFError with errno err pass silently: the state it reports (a filter
    already gone, a qdisc already there) is the one wanted."""
    try:
        yield
    except BPFError as e:
        if e.errno != err:
            raise
