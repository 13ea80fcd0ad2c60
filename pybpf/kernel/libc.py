"""The C library handle, for the system calls Python's os module does not offer.

syscall(2) itself (bpf, perf_event_open), ioctl on perf events, statfs, mount,
setns (os.setns exists only from Python 3.12) and prctl all go through this one
handle, loaded with errno saved so a failure names its cause.
"""
import ctypes

LIBC = ctypes.CDLL(None, use_errno=True)


def errno():
    """The errno of the last failed call through LIBC in this thread."""
    return ctypes.get_errno()
