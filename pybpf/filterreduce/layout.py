"""The pipeline's shared layouts, as ctypes: a mirror of programs/filterreduce.h.

The header is the contract (the BPF programs, pybpf and other readers include it);
this module repeats it for Python, and tests/unit/test_filterreduce_layout.py compiles
the header with gcc and compares every size, offset and constant, so the two cannot
drift apart unnoticed.
"""
import ctypes

VERSION = 1
MAGIC = 0x65324246

PIECE = 16384
STRTOL_MAX = 64
BLOCK = 64
KEPT_MAX = PIECE // 2 + 8

SLOT_FEED = 0
SLOT_REDUCE_STATS = 1
SLOT_FIRST_FREE = 2
MAX_SLOTS = 256

MODE_IN_NUMBER = 1
MODE_NEGATIVE = 2
MODE_MINUS = 4

FLAG_OVERRIDE = 1

BACKEND_SYSCALL = 1
BACKEND_COPY_TO_ITER = 2
BACKEND_COPYOUT = 3

INFO_CAN_SKIP = 1

SLOT_KIND_FILTER = 1
SLOT_KIND_REDUCE = 2

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

u32, u64, s64 = ctypes.c_uint32, ctypes.c_uint64, ctypes.c_int64


class Key(ctypes.Structure):
    """struct fr_key: a tenant is a process (tgid) reading into one buffer."""
    _fields_ = [("tgid", u32), ("pad", u32), ("buf", u64)]


class Result(ctypes.Structure):
    """struct fr_result: what the kernel counted for one tenant."""
    _fields_ = [("bytes", u64), ("events", u64), ("seen", u64), ("out_of_range", u64),
                ("kept", u64), ("sum_lo", u64), ("sum_hi", s64), ("min", s64),
                ("max", s64), ("truncated", u64), ("errors", u64), ("overridden", u64)]


class Tenant(ctypes.Structure):
    """struct fr_tenant: configuration (user space, at registration), parse state and
    results (the kernel)."""
    _fields_ = [("filter_slot", u32), ("reduce_slot", u32), ("start_lo", u64),
                ("start_hi", u64), ("flags", u32), ("pad", u32), ("acc", u64),
                ("mode", u64), ("res", Result)]


class Inflight(ctypes.Structure):
    _fields_ = [("key", Key), ("lo", u64), ("hi", u64), ("segments", u32), ("pad", u32)]


class Work(ctypes.Structure):
    _fields_ = [("key", Key), ("src", u64), ("len", u32), ("done", u32), ("piece", u32),
                ("nkept", u32), ("user", u32), ("pad", u32), ("stage", u64 * 12)]


class Scratch(ctypes.Structure):
    """struct fr_scratch (one per CPU): only its layout is used from Python."""
    _fields_ = [("work", Work), ("data", ctypes.c_uint8 * (PIECE + STRTOL_MAX)),
                ("kept", s64 * KEPT_MAX)]


STATE_SLOTS = 64


class State(ctypes.Structure):
    """struct fr_state: a custom reduce stage's 64-bit slots."""
    _fields_ = [("slot", s64 * STATE_SLOTS)]


class Slot(ctypes.Structure):
    _fields_ = [("kind", u32), ("owner_tgid", u32), ("owner_start_lo", u64),
                ("owner_start_hi", u64), ("description", ctypes.c_char * 104)]


class Info(ctypes.Structure):
    _fields_ = [("magic", u32), ("version", u32), ("backend", u32), ("prog_type", u32),
                ("piece", u32), ("default_filter_slot", u32), ("flags", u32), ("pad", u32)]


def offset(struct, path):
    """Byte offset of a dotted field path, e.g. offset(Tenant, "res.seen")."""
    total = 0
    for name in path.split("."):
        field = getattr(struct, name)
        total += field.offset
        struct = dict(struct._fields_)[name]
    return total
