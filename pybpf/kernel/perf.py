"""perf_event_open(2) and the perf ioctls that attach BPF programs to perf events.

Every tracing hook but raw tracepoints and fentry reaches BPF through a perf event:
a kprobe, uprobe or tracepoint is opened as a perf event (of the ``kprobe``/``uprobe``
dynamic PMU, or of the tracepoint PMU with the id tracefs gives), and the program is
attached to that event, with BPF_LINK_CREATE (5.15+) or PERF_EVENT_IOC_SET_BPF.

:class:`PerfEventAttr` mirrors ``struct perf_event_attr`` of <linux/perf_event.h> up
to ``sig_data`` (PERF_ATTR_SIZE_VER7, 128 bytes); tests/unit/test_perf_layout.py
compiles a C program against the installed header and checks every offset, size,
bitfield and ioctl number here. Kernels with a shorter struct accept ours as long as
the bytes they do not know are zero, which they are unless a caller sets them.
"""
import ctypes
import os
import platform

from ..errors import BPFError
from . import syscall
from .attr import CheckedStructure
# The perf UAPI numbers callers of this module name, from the generated constants:
# the fixed PMUs (kprobe/uprobe numbers are dynamic, see pmu.pmu_type), software and
# hardware events, the sample and open flags, the attr size of our layout.
from .constants import (PERF_ATTR_SIZE_VER7, PERF_COUNT_HW_CPU_CYCLES,  # noqa: F401
                        PERF_COUNT_HW_INSTRUCTIONS, PERF_COUNT_SW_BPF_OUTPUT,
                        PERF_COUNT_SW_CONTEXT_SWITCHES, PERF_COUNT_SW_CPU_CLOCK,
                        PERF_COUNT_SW_CPU_MIGRATIONS, PERF_COUNT_SW_PAGE_FAULTS,
                        PERF_COUNT_SW_TASK_CLOCK, PERF_FLAG_FD_CLOEXEC, PERF_SAMPLE_RAW,
                        PERF_TYPE_BREAKPOINT, PERF_TYPE_HARDWARE, PERF_TYPE_HW_CACHE,
                        PERF_TYPE_RAW, PERF_TYPE_SOFTWARE, PERF_TYPE_TRACEPOINT)
from .libc import LIBC

u16, u32, u64, s32 = ctypes.c_uint16, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_int32


class PerfEventAttr(CheckedStructure):
    """struct perf_event_attr. The unions are named by the member BPF users set:
    ``sample_period`` (also ``sample_freq`` with ``freq=1``), ``config1`` (also
    kprobe_func / uprobe_path: a pointer to the name), ``config2`` (also
    kprobe_addr / probe_offset)."""
    _fields_ = [
        ("type", u32), ("size", u32), ("config", u64), ("sample_period", u64),
        ("sample_type", u64), ("read_format", u64),
        ("disabled", u64, 1), ("inherit", u64, 1), ("pinned", u64, 1),
        ("exclusive", u64, 1), ("exclude_user", u64, 1), ("exclude_kernel", u64, 1),
        ("exclude_hv", u64, 1), ("exclude_idle", u64, 1), ("mmap", u64, 1),
        ("comm", u64, 1), ("freq", u64, 1), ("inherit_stat", u64, 1),
        ("enable_on_exec", u64, 1), ("task", u64, 1), ("watermark", u64, 1),
        ("precise_ip", u64, 2), ("mmap_data", u64, 1), ("sample_id_all", u64, 1),
        ("exclude_host", u64, 1), ("exclude_guest", u64, 1),
        ("exclude_callchain_kernel", u64, 1), ("exclude_callchain_user", u64, 1),
        ("mmap2", u64, 1), ("comm_exec", u64, 1), ("use_clockid", u64, 1),
        ("context_switch", u64, 1), ("write_backward", u64, 1),
        ("namespaces", u64, 1), ("ksymbol", u64, 1), ("bpf_event", u64, 1),
        ("aux_output", u64, 1), ("cgroup", u64, 1), ("text_poke", u64, 1),
        ("build_id", u64, 1), ("inherit_thread", u64, 1), ("remove_on_exec", u64, 1),
        ("sigtrap", u64, 1), ("_reserved_1", u64, 26),
        ("wakeup_events", u32), ("bp_type", u32), ("config1", u64), ("config2", u64),
        ("branch_sample_type", u64), ("sample_regs_user", u64),
        ("sample_stack_user", u32), ("clockid", s32), ("sample_regs_intr", u64),
        ("aux_watermark", u32), ("sample_max_stack", u16), ("_reserved_2", u16),
        ("aux_sample_size", u32), ("_reserved_3", u32), ("sig_data", u64),
    ]

    def __init__(self, **fields):
        super().__init__(size=ctypes.sizeof(PerfEventAttr), **fields)


# ---- ioctl numbers ---------------------------------------------------------------
#
# _IOC(dir, type, nr, size) differs by architecture: most use 2 direction bits above
# a 14-bit size; powerpc uses 3 direction bits above a 13-bit size and swaps the
# meaning of the direction values.

def _ioc_layout(machine=None):
    """(none, write, read, size bits) of _IOC on this architecture."""
    machine = machine or platform.machine()
    if machine.startswith(("ppc", "powerpc", "mips", "sparc")):
        return 1, 4, 2, 13
    return 0, 1, 2, 14


def _ioc(direction, nr, size, machine=None):
    none, write, read, size_bits = _ioc_layout(machine)
    bits = {"none": none, "w": write, "r": read}[direction]
    return (bits << (16 + size_bits)) | (size << 16) | (ord("$") << 8) | nr


def ioctl_numbers(machine=None):
    """The perf ioctl request numbers pybpf uses, for an architecture."""
    return {
        "ENABLE": _ioc("none", 0, 0, machine),
        "DISABLE": _ioc("none", 1, 0, machine),
        "ID": _ioc("r", 7, 8, machine),        # _IOR('$', 7, __u64 *)
        "SET_BPF": _ioc("w", 8, 4, machine),   # _IOW('$', 8, __u32)
    }


_IOCTL = ioctl_numbers()
PERF_EVENT_IOC_ENABLE = _IOCTL["ENABLE"]
PERF_EVENT_IOC_DISABLE = _IOCTL["DISABLE"]
PERF_EVENT_IOC_ID = _IOCTL["ID"]
PERF_EVENT_IOC_SET_BPF = _IOCTL["SET_BPF"]

_ioctl = LIBC["ioctl"]
_ioctl.restype = ctypes.c_int
_ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]


def _do_ioctl(fd, request, arg, name, hints):
    if _ioctl(fd, request, arg) < 0:
        err = ctypes.get_errno()
        hint = (hints or {}).get(err) or syscall.privilege_hint(err, tracing=True)
        raise BPFError(name, err, hint=hint)


def enable(fd):
    """Start the event counting (and its BPF program running, for sampling events)."""
    _do_ioctl(fd, PERF_EVENT_IOC_ENABLE, None, "PERF_EVENT_IOC_ENABLE", None)


def disable(fd):
    _do_ioctl(fd, PERF_EVENT_IOC_DISABLE, None, "PERF_EVENT_IOC_DISABLE", None)


def set_bpf(fd, prog_fd, hints=None):
    """Attach a program to the event the pre-5.15 way: it stays attached for as long
    as the perf event fd is open, and cannot be pinned."""
    _do_ioctl(fd, PERF_EVENT_IOC_SET_BPF, prog_fd, "PERF_EVENT_IOC_SET_BPF", hints)


def event_id(fd):
    """The kernel's id of the event (what PERF_FORMAT_ID reports in samples)."""
    out = u64()
    _do_ioctl(fd, PERF_EVENT_IOC_ID, ctypes.addressof(out), "PERF_EVENT_IOC_ID", None)
    return out.value


def open_event(attr, pid=-1, cpu=0, group_fd=-1, flags=PERF_FLAG_FD_CLOEXEC, hints=None,
               detail=""):
    """perf_event_open(2) with close-on-exec; returns the fd.

    ``hints`` maps errno to the sentence naming the fix for this kind of event (the
    kernel's EINVAL or ENOENT means something different for a kprobe, a uprobe and a
    sampling event); ``detail`` names what was being opened.
    """
    try:
        return syscall.perf_event_open(attr, pid, cpu, group_fd, flags)
    except BPFError as e:
        hint = (hints or {}).get(e.errno) or e.hint
        raise BPFError("perf_event_open", e.errno, detail, hint) from None


def close(fd):
    os.close(fd)

