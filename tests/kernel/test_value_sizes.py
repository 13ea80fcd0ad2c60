"""Map element buffers are never smaller than what the kernel copies into them.

The kernel copies ``round_up(value_size, 8)`` bytes for every possible CPU out of a
per-CPU map, and a u32 id out of an fd-holding map (kernel/bpf/syscall.c,
``bpf_map_value_size()``). A value buffer sized by ``value_size`` alone is a heap
overflow in this process: it was one for PERCPU_CGROUP_STORAGE maps, which the map
class table lacked (reproduced here with tests/progs/run/cgroup_storage.bpf.c through
``run``, ``map dump`` and the API). Then every map type this kernel creates is held
against the rule the kernel layer enforces, and where an element can be stored from
here, against the bytes the kernel really writes.
"""
import contextlib
import ctypes
import json
import os
import socket
import struct
import subprocess
import sys

import pytest

import pybpf
from pybpf import BPF_F_MMAPABLE, BPF_F_NO_PREALLOC, Map, MapType, Program, asm
from pybpf.attach import attach, attach_cgroup
from pybpf.kernel import attr as A
from pybpf.kernel import bpf as kbpf
from pybpf.kernel import system
from pybpf.kernel.constants import AttachType, Cmd, HelperId, ProgType
from pybpf.kernel.syscall import bpf
from pybpf.loader import BpfObject
from pybpf.probe import probe_map_type

from test_attach import UDP_SENDS, run_in_cgroup

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
NCPUS = system.possible_cpus()
PAGE_VALUE = 4096  # the value of cgroup_storage.bpf.c's map
PACKETS = 6  # what UDP_SENDS sends


@pytest.fixture(scope="module")
def storage_obj(run_object):
    return run_object("cgroup_storage")


@pytest.fixture
def counting(storage_obj, cgroup):
    """The object loaded and attached to a cgroup that then sent PACKETS datagrams."""
    with BpfObject.open(storage_obj) as obj:
        obj.load()
        sd = obj.spec.programs["count_egress"].section_def
        with attach(obj.programs["count_egress"], sd, cgroup=cgroup):
            run_in_cgroup(cgroup, UDP_SENDS)
            yield obj


def _packets(per_cpu_values):
    """The object's count: the first u64 of each CPU's value, summed."""
    return sum(int.from_bytes(bytes(v[:8]), sys.byteorder) for v in per_cpu_values)


def test_percpu_cgroup_storage_through_the_api(counting):
    m = counting.maps["storage"]
    assert m._value.size == PAGE_VALUE * NCPUS
    [(key, values)] = m.items()
    assert len(values) == NCPUS and all(len(v) == PAGE_VALUE for v in values)
    assert _packets(values) == PACKETS
    assert _packets(m[key]) == PACKETS


def test_percpu_cgroup_storage_through_map_dump(counting):
    out = subprocess.run([sys.executable, "-m", "pybpf", "map", "dump", "--json",
                          str(counting.maps["storage"].id)],
                         capture_output=True, text=True, timeout=60, env=ENV)
    assert out.returncode == 0, out.stderr
    [entry] = json.loads(out.stdout)
    assert [v["cpu"] for v in entry["values"]] == list(range(NCPUS))
    values = [bytes(int(b, 16) for b in v["value"]) for v in entry["values"]]
    assert all(len(v) == PAGE_VALUE for v in values)
    assert _packets(values) == PACKETS


def test_percpu_cgroup_storage_through_run(storage_obj, cgroup):
    out = subprocess.run([sys.executable, "-m", "pybpf", "run", storage_obj, "--cgroup",
                          cgroup, "--duration", "1", "--json"],
                         capture_output=True, text=True, timeout=60, env=ENV)
    assert out.returncode == 0, out.stderr
    [entry] = json.loads(out.stdout)["maps"]["storage"]
    # One value per possible CPU, each the whole page decoded through the object's BTF
    # (struct page: a packet counter, then the rest of the page).
    assert len(entry["value"]) == NCPUS
    assert all(set(v) == {"packets", "rest"} and len(v["rest"]) == PAGE_VALUE - 8
               for v in entry["value"])


# ---- the rule, for every map type ----------------------------------------------------

def rule(map_type, value_size):
    """bpf_map_value_size(), written out here independently of pybpf.kernel.bpf."""
    if map_type in (MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH, MapType.PERCPU_ARRAY,
                    MapType.PERCPU_CGROUP_STORAGE):
        return (value_size + 7) // 8 * 8 * NCPUS
    if map_type in (MapType.PROG_ARRAY, MapType.PERF_EVENT_ARRAY, MapType.CGROUP_ARRAY,
                    MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
        return 4
    return value_size


CGROUP_STORAGE_KEY = 16  # struct bpf_cgroup_storage_key: u64 cgroup inode, u32 type
# Create arguments other than a 4-byte key, a 12-byte value (not a multiple of 8, so
# per-CPU padding shows) and 4 entries; "element" says how this test stores one.
PARAMS = {
    MapType.STACK_TRACE: {"value_size": 16},
    MapType.LPM_TRIE: {"key_size": 8, "flags": BPF_F_NO_PREALLOC},
    MapType.PROG_ARRAY: {"value_size": 4}, MapType.PERF_EVENT_ARRAY: {"value_size": 4},
    MapType.CGROUP_ARRAY: {"value_size": 4}, MapType.ARRAY_OF_MAPS: {"value_size": 4},
    MapType.HASH_OF_MAPS: {"value_size": 4}, MapType.DEVMAP: {"value_size": 4},
    MapType.DEVMAP_HASH: {"value_size": 4}, MapType.CPUMAP: {"value_size": 4},
    MapType.XSKMAP: {"value_size": 4}, MapType.SOCKMAP: {"value_size": 8},
    MapType.SOCKHASH: {"value_size": 8}, MapType.REUSEPORT_SOCKARRAY: {"value_size": 8},
    MapType.CGROUP_STORAGE: {"key_size": CGROUP_STORAGE_KEY, "max_entries": 0},
    MapType.PERCPU_CGROUP_STORAGE: {"key_size": CGROUP_STORAGE_KEY, "max_entries": 0},
    MapType.QUEUE: {"key_size": 0}, MapType.STACK: {"key_size": 0},
    MapType.BLOOM_FILTER: {"key_size": 0},
    MapType.RINGBUF: {"key_size": 0, "value_size": 0, "max_entries": system.page_size()},
    MapType.USER_RINGBUF: {"key_size": 0, "value_size": 0,
                           "max_entries": system.page_size()},
}
PARAMS[MapType.ARENA] = {"key_size": 0, "value_size": 0, "max_entries": 1,
                         "flags": BPF_F_MMAPABLE}
_LOCAL_STORAGE = (MapType.SK_STORAGE, MapType.INODE_STORAGE, MapType.TASK_STORAGE,
                  MapType.CGRP_STORAGE)


def _create(map_type, keep):
    """An fd of a new map_type map and its create arguments; keep collects the fds
    that must outlive it."""
    args = {"key_size": 4, "value_size": 12, "max_entries": 4}
    args.update(PARAMS.get(map_type, {}))
    if map_type in _LOCAL_STORAGE:
        from pybpf.btf.probe import probe_blob_base
        keep.append(kbpf.btf_load(probe_blob_base()))  # type 1: a 4-byte int
        args.update(value_size=4, max_entries=0, flags=BPF_F_NO_PREALLOC,
                    btf_fd=keep[-1], btf_key_type_id=1, btf_value_type_id=1)
    if map_type in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
        keep.append(kbpf.map_create(MapType.ARRAY, 4, 4, 1))
        args["inner_map_fd"] = keep[-1]
    return kbpf.map_create(map_type, **args), args


def _types_this_kernel_creates():
    """MapType's types the probe finds."""
    return [t for t in MapType if t and t != MapType.STRUCT_OPS and probe_map_type(t).available]


def _name(map_type):
    return map_type.name


@pytest.mark.parametrize("map_type", _types_this_kernel_creates(), ids=_name)
def test_every_map_type_gets_buffers_the_kernel_cannot_overrun(map_type):
    keep = []
    fd, args = _create(map_type, keep)
    try:
        need = rule(map_type, args["value_size"])
        assert kbpf.value_buffer_size(map_type, args["value_size"]) == need
        if need:
            with pytest.raises(pybpf.InputError, match=f"{need}-byte values"):
                kbpf.ElemOps(fd, args["key_size"], need - 1)
        if args["key_size"]:
            with pytest.raises(pybpf.InputError, match="key"):
                kbpf.ElemOps(fd, args["key_size"] - 1, need)
        m = Map.from_fd(os.dup(fd))  # the class table's choice for this type
        with m:
            if m._ops is not None:
                assert m._value.size == need
    finally:
        for f in [fd] + keep:
            os.close(f)


def test_a_map_type_newer_than_pybpf_gets_the_largest_rule():
    """A type pybpf does not know may be per-CPU: assume the most the kernel copies."""
    assert kbpf.value_buffer_size(200, 12) == 16 * NCPUS


def test_struct_ops_values_are_value_size():
    """Not in the walk above: a STRUCT_OPS map is made only for a struct_ops object
    (test_conformance.py loads bpf_cubic's); its value is the kernel's ops struct,
    copied whole."""
    assert kbpf.value_buffer_size(MapType.STRUCT_OPS, 232) == rule(MapType.STRUCT_OPS, 232) == 232


# ---- what the kernel really writes ---------------------------------------------------

def _written(fd, key, need, cmd=Cmd.MAP_LOOKUP_ELEM):
    """How many bytes a lookup wrote: read twice into buffers prefilled with different
    bytes far past ``need``; where the two agree, the kernel wrote."""
    results = []
    for fill in (0xAA, 0x55):
        value = (ctypes.c_uint8 * (need + 256))(*([fill] * (need + 256)))
        keybuf = ctypes.create_string_buffer(key, max(len(key), 1))
        bpf(cmd, A.MapElemAttr(map_fd=fd, key=ctypes.addressof(keybuf) if key else 0,
                               value=ctypes.addressof(value)))
        results.append(bytes(value))
    same = [i for i in range(need + 256) if results[0][i] == results[1][i]]
    return same[-1] + 1 if same else 0


def _cgroup_storage_program(m, map_type):
    """A cgroup_skb/egress program that touches its cgroup storage (which the kernel
    creates when the program is attached)."""
    return Program.load(ProgType.CGROUP_SKB, [
        asm.ld_map_fd(asm.R1, m.fd), asm.mov64(asm.R2, 0),
        asm.call(HelperId.get_local_storage), asm.mov64(asm.R0, 1), asm.exit()],
        expected_attach_type=AttachType.CGROUP_INET_EGRESS, name="touch_storage")


def _store(map_type, m, stack, cgroup):
    """Store one element in m the way its type takes one; returns its raw key."""
    if map_type in (MapType.QUEUE, MapType.STACK):
        m.push(b"v" * 12)
        return b""
    if map_type in (MapType.CGROUP_STORAGE, MapType.PERCPU_CGROUP_STORAGE):
        prog = stack.enter_context(_cgroup_storage_program(m, map_type))
        stack.enter_context(attach_cgroup(prog, cgroup, AttachType.CGROUP_INET_EGRESS))
        return struct.pack("=QI4x", os.stat(cgroup).st_ino, AttachType.CGROUP_INET_EGRESS)
    key = struct.pack("=I", 1) if m.key_size == 4 else struct.pack("=I4s", 32, b"\x0a\0\0\1")
    if map_type == MapType.PROG_ARRAY:
        value = stack.enter_context(Program.load(ProgType.SOCKET_FILTER, [
            asm.mov64(asm.R0, 0), asm.exit()]))
    elif map_type in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
        value = stack.enter_context(Map.create("array", value=4, max_entries=1))
    elif map_type in (MapType.DEVMAP, MapType.DEVMAP_HASH):
        value = struct.pack("=I", socket.if_nametoindex("lo"))
    elif map_type == MapType.CPUMAP:
        value = struct.pack("=I", 64)  # queue size
    elif map_type in (MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH):
        value = [bytes([cpu + 1]) * 12 for cpu in range(NCPUS)]
    else:
        value = b"v" * 12
    m[key] = value
    return key


READABLE = [MapType.HASH, MapType.ARRAY, MapType.PERCPU_HASH, MapType.PERCPU_ARRAY,
            MapType.LRU_HASH, MapType.LRU_PERCPU_HASH, MapType.LPM_TRIE, MapType.PROG_ARRAY,
            MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS, MapType.DEVMAP,
            MapType.DEVMAP_HASH, MapType.CPUMAP, MapType.QUEUE, MapType.STACK,
            MapType.CGROUP_STORAGE, MapType.PERCPU_CGROUP_STORAGE]


@pytest.mark.parametrize("map_type", READABLE, ids=lambda t: t.name)
def test_the_kernel_writes_exactly_what_the_rule_says(map_type, cgroup):
    support = probe_map_type(map_type)
    if not support.available:
        pytest.skip(f"this kernel cannot create {map_type.name} maps: {support.detail}")
    keep = []
    fd, args = _create(map_type, keep)
    try:
        with contextlib.ExitStack() as stack:
            m = stack.enter_context(Map.from_fd(os.dup(fd), key=args["key_size"] or None,
                                                value=None))
            key = _store(map_type, m, stack, cgroup)
            need = rule(map_type, args["value_size"])
            assert _written(fd, key, need) == need
            assert kbpf.value_buffer_size(map_type, args["value_size"]) == need
    finally:
        for f in [fd] + keep:
            os.close(f)
