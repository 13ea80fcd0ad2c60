"""Processes as /proc tells of them: whether one still exists, when it started, which
files it has mapped; and the parent-death signal of this one.

A process id alone does not name a process for long: pids are reused. The kernel
tells two holders of one pid apart by the thread group's start time
(``task->group_leader->start_boottime``, nanoseconds since boot), which /proc shows,
in clock ticks, as field 22 of /proc/PID/stat. A BPF program can read the
nanoseconds; user space gets the tick they fall in, so :func:`start_window` gives
the range of nanoseconds a process's start time lies in.
"""
import ctypes
import functools
import os

from ..errors import BPFError
from .libc import LIBC

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@functools.lru_cache(maxsize=None)
def ns_per_tick():
    """Nanoseconds per clock tick of /proc's times (USER_HZ, 100 on Linux)."""
    return 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def _boottime_offset(pid):
    """The boot-time offset of pid's time namespace, in ns (0 outside one): /proc
    shows start times shifted by it, the kernel's task does not."""
    try:
        with open(f"/proc/{pid}/timens_offsets") as f:
            for line in f:
                fields = line.split()
                if len(fields) == 3 and fields[0] in ("boottime", "7"):
                    return int(fields[1]) * 1_000_000_000 + int(fields[2])
    except (OSError, ValueError):
        pass
    return 0


def start_ticks(pid):
    """Field 22 of /proc/pid/stat (the start time in clock ticks since boot), or None
    when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its end.
    rest = text[text.rindex(b")") + 2:].split()
    return int(rest[19])


def start_window(pid):
    """(lo, hi): the nanoseconds since boot the process's start time is in, as
    ``lo <= task->group_leader->start_boottime < hi``; None when pid does not exist."""
    ticks = start_ticks(pid)
    if ticks is None:
        return None
    tick = ns_per_tick()
    lo = ticks * tick - _boottime_offset(pid)
    return lo, lo + tick


def is_same_process(pid, window):
    """Whether pid still names the process whose start window was taken earlier."""
    return window is not None and start_window(pid) == tuple(window)


def thread_exists(tgid, tid):
    """Whether thread tid of process tgid is alive."""
    return os.path.exists(f"/proc/{tgid}/task/{tid}")


def process_exists(pid):
    """Whether process pid exists (in this pid namespace)."""
    return os.path.exists(f"/proc/{pid}")


def _file_mappings(pid):
    """[(address range, permissions, file offset, path)] of the file mappings in
    /proc/PID/maps; [] when it cannot be read."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        fields = line.split(None, 5)
        if len(fields) == 6 and fields[5].startswith("/"):
            out.append((fields[0], fields[1], fields[2], fields[5]))
    return out


def mapped_files(pid):
    """Paths of the files process pid (or "self") has mapped, in /proc/PID/maps order
    without repeats; [] when its maps cannot be read."""
    return list(dict.fromkeys(path for *_, path in _file_mappings(pid)))


def executable_mappings(pid, path):
    """[(start, end, file offset)] of the executable mappings of file path in process
    pid's /proc/PID/maps; [] when there are none or the maps cannot be read."""
    out = []
    for span, perms, offset, mapped in _file_mappings(pid):
        if mapped == path and "x" in perms:
            start, end = (int(v, 16) for v in span.split("-"))
            out.append((start, end, int(offset, 16)))
    return out


def set_parent_death_signal(signum):
    """prctl(PR_SET_PDEATHSIG): have the kernel send signum to this process when the
    thread that created it exits, however it exits (a SIGKILL included)."""
    if LIBC.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
        raise BPFError("prctl(PR_SET_PDEATHSIG)", ctypes.get_errno())
