"""Every BPF program and map loaded on the system: find them, open them, describe them.

Why this exists: the process that loaded a program is rarely the one debugging it. The
kernel numbers every program and map, lets a privileged caller walk those numbers
(BPF_PROG_GET_NEXT_ID, BPF_MAP_GET_NEXT_ID) and open any of them
(BPF_*_GET_FD_BY_ID), or open what is pinned in bpffs. This module turns that into
plain data (dicts of numbers and strings, key/value bytes) for ``python -m pybpf prog``
and ``map`` and for anyone else who wants to look around; formatting is not its job.

Every fd it opens is closed before it returns, except the object :func:`open_object`
hands to its caller (a context manager).
"""
import datetime
import errno
import os
import sys
import time
from typing import List, NamedTuple, Optional, Tuple, Union

from . import asm
from .errors import BPFError, InputError
from .kernel import bpf as kbpf
from .kernel import files, sysctl
from .kernel.constants import BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE, Cmd, MapType, ProgType
from .fd import open_pinned
from .maps import KeyedMap, Map
from .programs import Program
from .typenames import type_name


class NotFoundError(InputError):
    """No object has that id, or nothing is pinned at that path."""


class UnreadableMapError(InputError):
    """The map's elements cannot be read from user space (or not by pybpf)."""


# ---- finding and opening objects ---------------------------------------------

def _raw_map(fd):
    """Map.from_fd with keys and values left as bytes, whatever the type.

    Without explicit specs an array map decodes its keys as ints; a dump shows what the
    kernel stores, so the sizes are read first and passed as raw-bytes specs.
    """
    try:
        sizes = kbpf.obj_get_info(fd, "map")
    except BaseException:
        kbpf.close(fd)
        raise
    return Map.from_fd(fd, key=sizes.key_size or None, value=sizes.value_size or None)


class _Kind(NamedTuple):
    noun: str
    next_cmd: Cmd
    fd_cmd: Cmd
    wrap: object  # fd -> object, taking ownership of the fd


KINDS = {
    "prog": _Kind("program", Cmd.PROG_GET_NEXT_ID, Cmd.PROG_GET_FD_BY_ID, Program.from_fd),
    "map": _Kind("map", Cmd.MAP_GET_NEXT_ID, Cmd.MAP_GET_FD_BY_ID, _raw_map),
}


def ids(kind):
    """Ids of every loaded object of kind ("prog" or "map"), ascending.

    The walk asks for the id after the last one seen, so objects created or freed
    meanwhile are simply met or missed; it never fails because of them.
    """
    cmd = KINDS[kind].next_cmd
    obj_id = kbpf.next_id(cmd, 0)
    while obj_id is not None:
        yield obj_id
        obj_id = kbpf.next_id(cmd, obj_id)


def open_by_id(kind, obj_id):
    k = KINDS[kind]
    try:
        fd = kbpf.fd_by_id(k.fd_cmd, obj_id)
    except BPFError as e:
        if e.errno == errno.ENOENT:
            raise NotFoundError(f"no {k.noun} with id {obj_id} is loaded") from None
        raise
    return k.wrap(fd)


def open_pin(kind, path):
    """Open what is pinned at path, checking first what the kernel's EINVAL/ENOENT
    would not say: that the path exists, is on bpffs, and holds the right kind."""
    if not os.path.lexists(path):
        raise NotFoundError(f"nothing is pinned at {path} (no such file)")
    return KINDS[kind].wrap(open_pinned(path, kind))


def open_object(kind, ref):
    """The program or map with id ``ref`` (an int) or pinned at ``ref`` (a path).

    Maps come back with raw-bytes keys and values. Close the result (it is a context
    manager).
    """
    if isinstance(ref, int):
        return open_by_id(kind, ref)
    return open_pin(kind, os.fspath(ref))


def describe_all(kind):
    """describe() of every loaded object of kind, in id order.

    An object can be freed between the id walk naming it and the open (ENOENT); it is
    no longer loaded, so it is left out rather than reported as an error.
    """
    out = []
    for obj_id in ids(kind):
        try:
            obj = open_by_id(kind, obj_id)
        except NotFoundError:
            continue
        with obj:
            out.append(describe(obj))
    return out


def describe(obj):
    """A JSON-ready dict about an open Program or Map."""
    return describe_program(obj) if isinstance(obj, Program) else describe_map(obj)


# ---- programs -------------------------------------------------------------------

def boot_time_to_datetime(ns_since_boot):
    """Wall-clock time (local timezone) of a kernel timestamp such as a load_time.

    The kernel stamps programs with CLOCK_BOOTTIME (which keeps counting through
    suspend); the wall clock at boot is now minus the time since boot.
    """
    booted_at = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    stamp = datetime.datetime.fromtimestamp(booted_at + ns_since_boot / 1e9,
                                            tz=datetime.timezone.utc)
    return stamp.astimezone()


def _memlock(obj):
    """Bytes the object charges to memory accounting, as /proc/self/fdinfo reports."""
    try:
        return int(files.fdinfo(obj.fd).get("memlock", 0))
    except ValueError:
        return 0


def describe_program(prog):
    info = prog.info()
    loaded_at = boot_time_to_datetime(info.load_time_ns)
    return {
        "id": info.id,
        "type": type_name(info.type, ProgType),
        "name": info.name,
        "tag": info.tag,
        "gpl_compatible": info.gpl_compatible,
        "loaded_at": loaded_at.isoformat(timespec="seconds"),
        "load_time_ns": info.load_time_ns,
        "uid": info.created_by_uid,
        "bytes_xlated": info.xlated_len,
        "bytes_jited": info.jited_len,
        "bytes_memlock": _memlock(prog),
        "map_ids": list(info.map_ids),
        "btf_id": info.btf_id,
        "verified_insns": info.verified_insns,
        "run_cnt": info.run_cnt,
        "run_time_ns": info.run_time_ns,
        "recursion_misses": info.recursion_misses,
    }


def stats_enabled():
    """Whether the sysctl counting run_cnt/run_time_ns for every program is on.

    A process holding a BPF_ENABLE_STATS fd also turns counting on without changing
    the sysctl, so non-zero counters are the other sign of it.
    """
    return sysctl.read_sysctl("kernel.bpf_stats_enabled") == 1


class XlatedInsn(NamedTuple):
    slot: int  # 8-byte slot number (ld_imm64 takes two)
    insn: asm.Insn
    text: str  # disassembly with a "# map id N" note on map loads


def xlated_insns(prog) -> List[XlatedInsn]:
    """The program as the kernel holds it after verification, disassembled.

    In this dump the kernel gives each map load the map's id (and the offset into its
    value for direct value access) instead of the fd the loader used; helper calls keep
    the kernel's rewritten call offsets, which only the kernel's symbol table resolves.
    """
    insns = asm.decode(prog.xlated())
    texts = asm.disasm(insns)
    out = []
    for slot, insn, text in zip(asm.slot_offsets(insns), insns, texts):
        out.append(XlatedInsn(slot, insn, text.replace("\t", " ") + _map_note(insn)))
    return out


def _map_note(insn):
    if insn.slots != 2 or insn.src not in (BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE):
        return ""
    imm = insn.imm & 0xFFFFFFFFFFFFFFFF
    map_id, off = imm & 0xFFFFFFFF, imm >> 32
    if insn.src == BPF_PSEUDO_MAP_VALUE:
        return f"  # map id {map_id}, value + {off}"
    return f"  # map id {map_id}"


# ---- maps -----------------------------------------------------------------------

def describe_map(m):
    info = m.info()
    return {
        "id": info.id,
        "type": type_name(info.type, MapType),
        "name": info.name,
        "flags": info.flags,
        "bytes_key": info.key_size,
        "bytes_value": info.value_size,
        "max_entries": info.max_entries,
        "bytes_memlock": _memlock(m),
        "frozen": info.frozen,
        "btf_id": info.btf_id,
    }


class Entry(NamedTuple):
    """One element of a dumped map, as the kernel stores it."""
    key: Optional[bytes]  # None for maps without keys (queue, stack)
    value: Union[bytes, Tuple[bytes, ...]]  # a tuple for per-CPU maps: one per possible CPU
    ref: Optional[Tuple[str, int]] = None  # prog/map arrays: ("prog" or "map", its id)


_RECORDS = "it holds records for a consumer to read in order, not key/value elements"
_OWNER_KEYED = ("its elements are keyed by the owning object's fd (socket, inode, task, "
                "cgroup) and cannot be listed from user space")
_UNREADABLE = {
    MapType.RINGBUF: _RECORDS,
    MapType.USER_RINGBUF: _RECORDS,
    MapType.PERF_EVENT_ARRAY: "its values are perf event fds, which the kernel never reports back",
    MapType.CGROUP_ARRAY: "its values are cgroup fds, which the kernel never reports back",
    MapType.BLOOM_FILTER: "a bloom filter answers membership queries only; it cannot list "
                          "its elements",
    MapType.SK_STORAGE: _OWNER_KEYED,
    MapType.INODE_STORAGE: _OWNER_KEYED,
    MapType.TASK_STORAGE: _OWNER_KEYED,
    MapType.CGRP_STORAGE: _OWNER_KEYED,
    MapType.ARENA: "an arena is memory shared with programs (mmap() it), not "
                              "key/value elements",
}
# Values stored as fds and read back as the id of what they refer to.
_REFERENCES = {MapType.PROG_ARRAY: "prog", MapType.ARRAY_OF_MAPS: "map",
               MapType.HASH_OF_MAPS: "map"}
# Keyless maps whose one readable element is the next to be popped.
PEEK_ONLY = frozenset({MapType.QUEUE, MapType.STACK})


def dump_map(m) -> List[Entry]:
    """Every element of m (opened by :func:`open_object`, so with raw-bytes codecs).

    A queue or stack yields at most one entry: the element a pop would return (peek);
    the others cannot be read without removing them. Raises UnreadableMapError for
    maps whose elements user space cannot read.
    """
    info = m.info()
    what = f"map {info.id} ({type_name(info.type, MapType)})"
    reason = _UNREADABLE.get(info.type)
    if reason is None and not isinstance(m, KeyedMap) and info.type not in PEEK_ONLY:
        reason = "pybpf does not know how to read elements of this map type"
    if reason:
        raise UnreadableMapError(f"cannot dump {what}: {reason}")
    try:
        if info.type in PEEK_ONLY:
            try:
                return [Entry(None, m.peek())]
            except IndexError:
                return []
        return [_entry(info.type, k, v) for k, v in m.items()]
    except BPFError as e:
        raise UnreadableMapError(f"cannot read the elements of {what}: "
                                 f"{str(e).splitlines()[0]}") from e


def _entry(map_type, key, value):
    kind = _REFERENCES.get(map_type)
    if kind is not None:  # the map codec decoded the stored id; show its bytes as well
        return Entry(key, value.to_bytes(4, sys.byteorder), (kind, value))
    if isinstance(value, list):
        return Entry(key, tuple(value))
    return Entry(key, value)
