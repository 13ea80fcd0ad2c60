"""The bpf(2) system call through ctypes, with errors turned into :class:`BPFError`.

This is the only place pybpf enters the kernel with ``syscall()``. Callers pass a
ctypes structure from :mod:`pybpf.kernel.attr`; its size tells the kernel which fields
we know about.
"""
import ctypes
import errno
import os

from ..errors import BPFError, MapFullError, VerifierError
from . import memlock, release, security, sysctl
from .constants import Cmd
from .libc import LIBC

# (bpf, perf_event_open) syscall numbers; the kernel gives them per architecture.
SYSCALL_NUMBERS = {
    "x86_64": (321, 298),
    "aarch64": (280, 241),
    "riscv64": (280, 241),
    "ppc64le": (361, 319),
    "ppc64": (361, 319),
    "s390x": (351, 331),
}

# Two function objects for syscall(), each with its own argument types, so the hot path
# passes plain ints without building ctypes wrappers per call.
bpf_call = LIBC["syscall"]
bpf_call.restype = ctypes.c_long
bpf_call.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_ulong]
# The hot path's syscall(): no argtypes, called with ctypes arguments built once
# (prebuilt_args), so ctypes converts nothing per call (~0.5 us less than bpf_call).
raw_call = LIBC["syscall"]
raw_call.restype = ctypes.c_long
_perf_call = LIBC["syscall"]
_perf_call.restype = ctypes.c_long
_perf_call.argtypes = [ctypes.c_long, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_ulong]


def syscall_numbers(machine=None):
    machine = machine or os.uname().machine
    try:
        return SYSCALL_NUMBERS[machine]
    except KeyError:
        raise BPFError("syscall", errno.ENOSYS, f"pybpf does not know the bpf(2) syscall "
                       f"number for the {machine!r} architecture (known: "
                       f"{', '.join(sorted(SYSCALL_NUMBERS))}); add its __NR_bpf and "
                       f"__NR_perf_event_open, from the kernel's syscall table for "
                       f"{machine}, to SYSCALL_NUMBERS in pybpf/kernel/syscall.py") from None


NR_BPF, NR_PERF_EVENT_OPEN = syscall_numbers()


# Retrying these is what the kernel asks for: EAGAIN from BPF_PROG_LOAD means a
# signal interrupted the verifier.
_RETRY_EAGAIN = {Cmd.PROG_LOAD}
_MAX_RETRIES = 5


def prebuilt_args(cmd, attr):
    """The arguments of bpf(cmd, &attr, sizeof attr) as ctypes objects, for raw_call."""
    return (ctypes.c_long(NR_BPF), ctypes.c_long(int(cmd)),
            ctypes.c_void_p(ctypes.addressof(attr)), ctypes.c_ulong(ctypes.sizeof(attr)))


def bpf(cmd, attr, hints=None):
    """Issue bpf(cmd, &attr, sizeof(attr)) and return its non-negative result.

    ``hints`` maps errno values to a sentence naming the fix for this particular call;
    privilege problems get a hint computed here. Raises BPFError (MapFullError for
    E2BIG on an update).
    """
    ret = bpf_call(NR_BPF, cmd, ctypes.addressof(attr), ctypes.sizeof(attr))
    if ret >= 0:
        return ret
    return bpf_failed(cmd, attr, ctypes.get_errno(), hints)


def bpf_errno(cmd, attr):
    """Like bpf(), but return -errno instead of raising: for callers that try a call
    several ways (probes, loads retried with a verifier log) and build one error at
    the end, not one per attempt."""
    ret = bpf_call(NR_BPF, cmd, ctypes.addressof(attr), ctypes.sizeof(attr))
    if ret >= 0:
        return ret
    return _retry(cmd, attr, ctypes.get_errno())


def _retry(cmd, attr, err):
    """Repeat what the kernel asks to be repeated; the result or -errno."""
    for _ in range(_MAX_RETRIES):
        if not (err == errno.EINTR or (err == errno.EAGAIN and cmd in _RETRY_EAGAIN)):
            break
        ret = bpf_call(NR_BPF, cmd, ctypes.addressof(attr), ctypes.sizeof(attr))
        if ret >= 0:
            return ret
        err = ctypes.get_errno()
    return -err


def bpf_failed(cmd, attr, err, hints=None):
    """Retry what the kernel asks to be retried, else raise the error for err."""
    ret = _retry(cmd, attr, err)
    if ret >= 0:
        return ret
    raise make_error(Cmd(cmd), -ret, hints)


def perf_event_open(attr, pid, cpu, group_fd, flags):
    """perf_event_open(2); returns the new fd."""
    ret = _perf_call(NR_PERF_EVENT_OPEN, ctypes.addressof(attr), pid, cpu, group_fd, flags)
    if ret < 0:
        err = ctypes.get_errno()
        raise BPFError("perf_event_open", err, hint=privilege_hint(err, tracing=True))
    return ret


def make_error(cmd, err, hints=None, log=None):
    name = "BPF_" + cmd.name
    hint = (hints or {}).get(err)
    if hint is None and not log:  # with a verifier log, the log names the reason
        hint = privilege_hint(err, tracing=cmd in (
            Cmd.PROG_LOAD, Cmd.RAW_TRACEPOINT_OPEN, Cmd.LINK_CREATE))
    if err == errno.E2BIG and cmd == Cmd.MAP_UPDATE_ELEM:
        return MapFullError(name, err, "the map has no room for another entry", hint)
    if log is not None:
        return VerifierError(name, err, hint=hint, log=log)
    return BPFError(name, err, hint=hint)


def privilege_hint(err, tracing=False):
    """Name the setting behind EPERM/EACCES, which the errno alone does not tell."""
    if err not in (errno.EPERM, errno.EACCES):
        return None
    if not security.has_bpf_privilege():
        disabled = sysctl.read_sysctl("kernel.unprivileged_bpf_disabled")
        hint = ("run as root, or grant CAP_BPF" +
                (" (and CAP_PERFMON for tracing programs, CAP_NET_ADMIN for networking "
                 "ones)" if tracing else ""))
        if disabled:
            hint += (f"; kernel.unprivileged_bpf_disabled={disabled} refuses bpf(2) to "
                     f"processes without CAP_BPF")
        return hint
    if memlock.memlock_accounting_is_rlimit():
        return (f"kernel {release.kernel_release()} charges BPF memory to RLIMIT_MEMLOCK "
                f"(memcg accounting came in 5.11); raise it (`ulimit -l unlimited`)")
    if security.lockdown_mode() in ("integrity", "confidentiality"):
        return (f"kernel lockdown is {security.lockdown_mode()!r}; it refuses some helpers "
                f"(bpf_probe_write_user, and in confidentiality mode bpf_probe_read*)")
    return None
