"""Maps through the interface users hold: dict access, update flags, codecs, batches,
freeze/info/mmap, pins, closed objects and input checked before any syscall.

Every test runs against the running kernel; the results are checked against what the
kernel itself reports (per-key lookups, BPF_OBJ_GET_INFO, another process's view).
"""
import contextlib
import ctypes
import errno
import gc
import os
import struct
import subprocess
import sys
import textwrap
import warnings

import pytest

import pybpf
import pybpf.kernel.bpf as kbpf
from pybpf import (BPF_ANY, BPF_EXIST, BPF_F_MMAPABLE, BPF_F_NO_PREALLOC, BPF_NOEXIST,
                   BPFError, ClosedError, Map, MapFullError, MapType, Program)
from pybpf import asm

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
N = 10_000


@pytest.fixture
def hmap():
    with Map.create("hash", key="I", value="Q", max_entries=64, name="t_hash") as m:
        yield m


# ---- dict API --------------------------------------------------------------------

def test_dict_api_on_hash(hmap):
    assert len(hmap) == 0 and list(hmap) == [] and hmap.items() == []
    hmap[1] = 10
    hmap[2] = 20
    hmap.update(3, 30)
    assert hmap[1] == 10
    assert hmap.get(2) == 20
    assert hmap.get(99) is None and hmap.get(99, "d") == "d"
    assert 3 in hmap and 99 not in hmap
    assert len(hmap) == 3
    assert sorted(hmap) == [1, 2, 3]
    assert sorted(hmap.keys()) == [1, 2, 3]
    assert sorted(hmap.values()) == [10, 20, 30]
    assert sorted(hmap.items()) == [(1, 10), (2, 20), (3, 30)]
    hmap[1] = 11  # overwrite
    assert hmap[1] == 11
    del hmap[2]
    assert 2 not in hmap
    assert hmap.pop(3) == 30
    assert 3 not in hmap
    assert hmap.pop(3, "gone") == "gone"
    hmap.clear()
    assert len(hmap) == 0
    hmap.clear()  # clearing an empty map is fine


def test_missing_key_is_key_error(hmap):
    with pytest.raises(KeyError) as exc:
        hmap[42]
    assert exc.value.args == (42,)
    with pytest.raises(KeyError):
        del hmap[42]
    with pytest.raises(KeyError):
        hmap.pop(42)


def test_array_dict_api():
    with Map.create("array", value="i", max_entries=4) as m:
        assert len(m) == 4 and list(m) == [0, 1, 2, 3]
        assert m.items() == [(0, 0), (1, 0), (2, 0), (3, 0)]
        m[2] = -5
        assert m[2] == -5 and 3 in m and 4 not in m
        with pytest.raises(KeyError):
            m[4]
        with pytest.raises(KeyError, match="out of range"):
            m[4] = 1  # the kernel's E2BIG here means "no such index", not "full"
        with pytest.raises(TypeError, match="always exist"):
            del m[0]
        with pytest.raises(TypeError, match="always exist"):
            m.clear()
        with pytest.raises(TypeError, match="always exist"):
            m.lookup_batch(delete=True)
        assert m[2] == -5


def test_update_flags(hmap):
    hmap.update(1, 1, BPF_NOEXIST)
    with pytest.raises(BPFError) as exc:
        hmap.update(1, 2, BPF_NOEXIST)
    assert exc.value.errno == errno.EEXIST
    assert "BPF_NOEXIST" in exc.value.hint
    assert hmap[1] == 1  # unchanged

    hmap.update(1, 3, BPF_EXIST)
    assert hmap[1] == 3
    with pytest.raises(BPFError) as exc:
        hmap.update(2, 1, BPF_EXIST)
    assert exc.value.errno == errno.ENOENT
    assert "BPF_EXIST" in exc.value.hint
    assert 2 not in hmap

    hmap.update(2, 4, BPF_ANY)
    hmap.update(2, 5, BPF_ANY)
    assert hmap[2] == 5


def test_full_hash_is_map_full_error_with_hint():
    with Map.create("hash", key="I", value="I", max_entries=3) as m:
        for i in range(3):
            m[i] = i
        m[0] = 100  # replacing needs no new entry
        with pytest.raises(MapFullError) as exc:
            m[3] = 3
        err = exc.value
        assert isinstance(err, BPFError) and err.errno == errno.E2BIG
        assert "max_entries=3" in err.hint and "LRU" in err.hint
        assert "hint:" in str(err)
        with pytest.raises(MapFullError):  # the batch path says the same
            m.update_batch({7: 7, 8: 8})


# ---- codecs ----------------------------------------------------------------------

class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int32), ("y", ctypes.c_int32), ("tag", ctypes.c_uint8)]


def test_struct_format_tuple_keys_and_values():
    with Map.create("hash", key="<IH", value="<qd", max_entries=4) as m:
        assert (m.key_size, m.value_size) == (6, 16)
        m[(7, 65535)] = (-3, 2.5)
        assert m[(7, 65535)] == (-3, 2.5)
        assert m.items() == [((7, 65535), (-3, 2.5))]
        # the bytes the kernel holds are the struct's packing
        with Map.from_id(m.id) as raw:
            assert raw.items() == [(struct.pack("<IH", 7, 65535), struct.pack("<qd", -3, 2.5))]


def test_ctypes_structure_values_and_scalar_keys():
    with Map.create("hash", key=ctypes.c_uint64, value=Point, max_entries=4) as m:
        assert (m.key_size, m.value_size) == (8, ctypes.sizeof(Point))
        m[2**63] = Point(-1, 2, 255)
        got = m[2**63]
        assert isinstance(got, Point)
        assert (got.x, got.y, got.tag) == (-1, 2, 255)
        with pytest.raises(ValueError, match="Point"):
            m[1] = (1, 2, 3)  # not a Point
        with pytest.raises(ValueError, match="does not fit"):
            m[2**64] = Point()  # ctypes would silently wrap this key to 0
        assert list(m) == [2**63]


def test_ctypes_scalar_values():
    with Map.create("array", value=ctypes.c_int16, max_entries=2) as m:
        m[0] = -7
        m[1] = ctypes.c_int16(300)
        assert (m[0], m[1]) == (-7, 300)
        with pytest.raises(ValueError, match="does not fit"):
            m[0] = 40000


def test_raw_bytes_keys_and_values():
    with Map.create("hash", key_size=3, value_size=5, max_entries=4) as m:
        m[b"abc"] = b"12345"
        m[bytearray(b"xyz")] = memoryview(b"67890")
        assert m[b"abc"] == b"12345"
        assert sorted(m.items()) == [(b"abc", b"12345"), (b"xyz", b"67890")]
        with pytest.raises(ValueError, match="raw bytes"):
            m[b"abc"] = 5  # bytes(5) would store five zero bytes
        with pytest.raises(ValueError, match="3 bytes"):
            m[b"ab"]


# ---- batches ---------------------------------------------------------------------

def _per_key(m):
    """Every pair, read one key at a time (no batch syscalls)."""
    return sorted((k, m[k]) for k in list(m))


@pytest.mark.parametrize("batch_size", [None, 1, 97])
def test_lookup_batch_hash_matches_per_key(batch_size):
    with Map.create("hash", key="I", value="Q", max_entries=N) as m:
        m.update_batch({i: i * 3 for i in range(N)})
        assert len(m) == N
        got = m.lookup_batch(batch_size=batch_size)
        assert len(got) == N
        assert sorted(got) == _per_key(m) == [(i, i * 3) for i in range(N)]


@pytest.mark.parametrize("batch_size", [None, 7])
def test_lookup_batch_array_matches_per_key(batch_size):
    with Map.create("array", value="Q", max_entries=N) as m:
        m.update_batch([(i, N - i) for i in range(N)])
        got = m.lookup_batch(batch_size=batch_size)
        assert got == _per_key(m) == [(i, N - i) for i in range(N)]


def test_lookup_batch_delete_empties_the_map():
    with Map.create("hash", key="I", value="I", max_entries=N) as m:
        m.update_batch({i: i for i in range(N)})
        got = m.lookup_batch(delete=True)
        assert sorted(got) == [(i, i) for i in range(N)]
        assert len(m) == 0


def test_update_batch_flags():
    with Map.create("hash", key="I", value="I", max_entries=16) as m:
        m.update_batch({1: 1, 2: 2})
        with pytest.raises(BPFError) as exc:
            m.update_batch({3: 3, 1: 9}, BPF_NOEXIST)
        assert exc.value.errno == errno.EEXIST
        with pytest.raises(BPFError) as exc:
            m.update_batch({1: 5, 4: 4}, BPF_EXIST)
        assert exc.value.errno == errno.ENOENT  # a missing key is not the end of a walk
        assert 4 not in m


def test_delete_batch_and_missing_key():
    with Map.create("hash", key="I", value="I", max_entries=N) as m:
        m.update_batch({i: i for i in range(N)})
        m.delete_batch(range(0, N, 2))
        assert sorted(m) == list(range(1, N, 2))
        with pytest.raises(KeyError) as exc:
            m.delete_batch([1, 3, 4, 5])  # 4 is gone: the error names it
        assert exc.value.args == (4,)
        assert 1 not in m and 3 not in m and 5 in m  # deleted up to the missing key


def _batch_walkthrough(m):
    """The observable results of every batch operation on a fresh hash map."""
    m.update_batch({i: i * i for i in range(2000)})
    after_update = sorted(m.lookup_batch())
    m.delete_batch(range(0, 2000, 3))
    after_delete = sorted(m.items())
    with pytest.raises(KeyError) as exc:
        m.delete_batch([1, 2, 3])
    missing = exc.value.args
    popped = sorted(m.lookup_batch(delete=True))
    return after_update, after_delete, missing, popped, len(m)


def _batch_calls(monkeypatch):
    """Record (count, bytes of value buffer) of every batch call, passing them on."""
    calls, real = [], kbpf.ElemOps.batch

    def recording(ops, cmd, in_batch, out_batch, keys, values, count, *rest):
        calls.append((count, len(values)))
        return real(ops, cmd, in_batch, out_batch, keys, values, count, *rest)
    monkeypatch.setattr(kbpf.ElemOps, "batch", recording)
    return calls


@pytest.mark.parametrize("batch_size", [None, 65536])
def test_batch_buffers_are_bounded_by_bytes_not_entries(monkeypatch, batch_size):
    """Sized by max_entries, a batch of these 1 MiB values would want 64 GiB."""
    value = b"\x01" * (1 << 20)
    with Map.create("hash", key="I", value=len(value), max_entries=65536,
                    flags=BPF_F_NO_PREALLOC) as m:
        m[7] = value
        calls = _batch_calls(monkeypatch)
        assert m.lookup_batch(batch_size) == [(7, value)]
    assert calls and all(size <= max(pybpf.mapbatch.BATCH_BYTES, len(value))
                         for _, size in calls)


LARGE_VALUE_ITEMS = """
from pybpf import BPF_F_NO_PREALLOC, Map
with Map.create("hash", key="I", value=65536, max_entries=65536,
                flags=BPF_F_NO_PREALLOC) as m:
    m[7] = bytes(65536)
    assert m.items() == [(7, bytes(65536))]
with open("/proc/self/status") as f:
    print(f.read().split("VmHWM:")[1].split()[0])
"""


def test_items_of_a_map_of_large_values_takes_little_memory():
    """The issue's case: one 64 KiB entry, room for 65536 (4 GiB of batch buffer)."""
    out = subprocess.run([sys.executable, "-c", LARGE_VALUE_ITEMS], capture_output=True,
                         text=True, timeout=120, env=dict(os.environ,
                                                          PYTHONPATH=os.pathsep.join(sys.path)))
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) < 128 << 10, f"peak RSS {int(out.stdout) >> 10} MiB"


@pytest.mark.parametrize("batch_size", [-5, 0, 2.5, "10"])
def test_batch_size_must_be_a_positive_count(batch_size):
    with Map.create("hash", key="I", value="I", max_entries=4) as m:
        with pytest.raises(pybpf.InputError, match="batch_size"):
            m.lookup_batch(batch_size)


def test_batch_fallback_gives_identical_results(monkeypatch):
    with Map.create("hash", key="I", value="Q", max_entries=4096) as m:
        native = _batch_walkthrough(m)

    calls = []

    def unsupported(ops, cmd, *args, **kwargs):
        calls.append(cmd)
        raise BPFError("BPF_" + cmd.name, 524)  # ENOTSUPP: no batch ops here
    monkeypatch.setattr(kbpf.ElemOps, "batch", unsupported)
    with Map.create("hash", key="I", value="Q", max_entries=4096) as m:
        fallback = _batch_walkthrough(m)
    assert calls, "the fallback path was not exercised"
    assert fallback == native
    assert native[2] == (3,) and native[4] == 0


def test_batch_fallback_array(monkeypatch):
    monkeypatch.setattr(kbpf.ElemOps, "batch", lambda ops, cmd, *a, **k: (_ for _ in ()).throw(
        BPFError("BPF_" + cmd.name, errno.EOPNOTSUPP)))
    with Map.create("array", value="I", max_entries=100) as m:
        m.update_batch({i: i + 1 for i in range(100)})
        assert m.lookup_batch() == [(i, i + 1) for i in range(100)]


# ---- freeze, info, mmap ----------------------------------------------------------

def test_freeze():
    with Map.create("array", value="I", max_entries=2) as m:
        m[0] = 5
        assert m.info().frozen is False
        m.freeze()
        assert m.info().frozen is True
        assert m[0] == 5  # reads still work
        with pytest.raises(BPFError) as exc:
            m[0] = 6
        assert exc.value.errno == errno.EPERM
        assert "frozen" in exc.value.hint
        assert m[0] == 5


def test_info_fields():
    with Map.create("hash", key="I", value="16s", max_entries=33, flags=BPF_F_NO_PREALLOC,
                    name="info_test") as m:
        info = m.info()
        assert info.type == MapType.HASH
        assert (info.key_size, info.value_size, info.max_entries) == (4, 16, 33)
        assert info.flags == BPF_F_NO_PREALLOC
        assert info.name == "info_test"
        assert info.frozen is False
        assert info.id == m.id > 0
        d = info.to_dict()
        assert d["type"] == "hash" and d["name"] == "info_test"


def test_mmap_shares_values_both_ways():
    with Map.create("array", value="Q", max_entries=4, flags=BPF_F_MMAPABLE) as m:
        view = m.mmap()
        try:
            m[1] = 0xDEADBEEF
            assert struct.unpack_from("Q", view, 8)[0] == 0xDEADBEEF
            struct.pack_into("Q", view, 24, 77)
            assert m[3] == 77
        finally:
            view.close()


def test_mmap_respects_the_8_byte_element_stride():
    with Map.create("array", value="I", max_entries=2048, flags=BPF_F_MMAPABLE) as m:
        assert m.mmap_stride == 8
        m[2047] = 123
        view = m.mmap()
        try:
            assert len(view) >= 2048 * 8
            assert struct.unpack_from("I", view, 2047 * 8)[0] == 123
        finally:
            view.close()


def test_mmap_of_frozen_map_is_read_only():
    with Map.create("array", value="Q", max_entries=1, flags=BPF_F_MMAPABLE) as m:
        m[0] = 9
        m.freeze()
        view = m.mmap()
        try:
            assert struct.unpack_from("Q", view, 0)[0] == 9
            with pytest.raises(TypeError):
                view[0] = 1
        finally:
            view.close()


def test_mmap_refused_without_mmapable():
    with Map.create("array", value="Q", max_entries=4) as m:
        with pytest.raises(ValueError, match="BPF_F_MMAPABLE"):
            m.mmap()


# ---- pins and ids ----------------------------------------------------------------

@contextlib.contextmanager
def pinned(obj, bpffs, name):
    """obj pinned at bpffs/name for the block, unpinned after (the bpffs fixture fails
    a test that leaves a pin behind)."""
    path = os.path.join(bpffs, name)
    obj.pin(path)
    try:
        yield path
    finally:
        pybpf.unpin(path)


def test_pin_reopen_in_another_process(bpffs):
    with Map.create("hash", key="I", value="Q", max_entries=4, name="shared") as m:
        m[7] = 123456789
        with pinned(m, bpffs, "shared") as path:
            code = textwrap.dedent(f"""
                from pybpf import Map
                with Map.from_pin({path!r}, key="I", value="Q") as m:
                    print(m[7], m.name)
                    m[8] = 88
            """)
            out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                                 text=True, timeout=30, env=dict(os.environ, PYTHONPATH=REPO))
            assert out.returncode == 0, out.stderr
            assert out.stdout.split() == ["123456789", "shared"]
            assert m[8] == 88  # the other process wrote the same map
        assert not os.path.exists(path)


def test_pin_reopen_in_process_and_from_id(bpffs):
    with Map.create("array", value="I", max_entries=2) as m:
        m.pin(os.path.join(bpffs, "m"))
        with Map.from_pin(os.path.join(bpffs, "m"), value="I") as again:
            assert again.id == m.id and isinstance(again, type(m))
            again[1] = 5
            assert m[1] == 5
        with Map.from_pin(os.path.join(bpffs, "m")) as raw:  # without specs: raw bytes
            assert raw[b"\x01\x00\x00\x00"] == b"\x05\x00\x00\x00"
        Map.unpin(os.path.join(bpffs, "m"))
        assert not os.path.exists(os.path.join(bpffs, "m"))
        with Map.from_id(m.id, value="I") as by_id:
            assert by_id[1] == 5 and by_id.max_entries == 2
        assert m[1] == 5  # unpinning does not destroy a map that is still open


def test_from_pin_with_wrong_spec_closes_once(bpffs):
    """A Map that fails to build must not own its fd: from_pin closes it, and a
    half-built owner would close that fd number again when collected."""
    with Map.create("hash", key="I", value="I", max_entries=2) as m, \
            pinned(m, bpffs, "m") as path, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            Map.from_pin(path, key="Q")
        except ValueError as e:
            # its traceback keeps a half-built Map (if any) alive while the fd from_pin
            # closed is handed out again
            err = e
        else:
            pytest.fail("a 4-byte key read as 'Q' was accepted")
        assert "key size is 4" in str(err)
        sentinel = os.open(os.devnull, os.O_RDONLY)
        try:
            del err
            gc.collect()
            os.fstat(sentinel)  # EBADF if the Map closed it
        finally:
            os.close(sentinel)
        assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_readonly_from_pin(bpffs):
    with Map.create("hash", key="I", value="I", max_entries=2) as m, \
            pinned(m, bpffs, "ro") as path:
        m[1] = 1
        with Map.from_pin(path, key="I", value="I", readonly=True) as ro:
            assert ro[1] == 1
            with pytest.raises(BPFError) as exc:
                ro[1] = 2
            assert exc.value.errno == errno.EPERM and "read-only" in exc.value.hint


def test_from_pin_of_the_wrong_kind_is_value_error(bpffs):
    with Program.load("xdp", [asm.mov64(asm.R0, 2), asm.exit()]) as prog, \
            pinned(prog, bpffs, "prog") as path:
        with pytest.raises(ValueError, match="pinned program, not a map"):
            Map.from_pin(path)
    with Map.create("array", value="I", max_entries=1) as m, \
            pinned(m, bpffs, "map") as path:
        with pytest.raises(ValueError, match="pinned map, not a program"):
            Program.from_pin(path)


def test_from_pin_missing_path(bpffs):
    with pytest.raises(BPFError) as exc:
        Map.from_pin(os.path.join(bpffs, "nothing"))
    assert exc.value.errno == errno.ENOENT and "nothing is pinned" in exc.value.hint


def test_pin_outside_bpffs_names_bpffs_and_mount():
    with Map.create("array", value="I", max_entries=1) as m:
        with pytest.raises(ValueError) as exc:
            m.pin("/tmp/x")
    msg = str(exc.value)
    assert "bpffs" in msg and "mount -t bpf" in msg and "/tmp/x" in msg
    assert not os.path.exists("/tmp/x")


def test_unpin_refuses_non_pins_and_reports_missing(bpffs, tmp_path):
    victim = tmp_path / "file"
    victim.write_text("keep me")
    with pytest.raises(ValueError, match="not on a bpf filesystem"):
        pybpf.unpin(str(victim))
    assert victim.exists()
    with pytest.raises(FileNotFoundError):
        pybpf.unpin(os.path.join(bpffs, "never-pinned"))


# ---- closed objects --------------------------------------------------------------

CLOSED_MAP_OPS = {
    "getitem": lambda m: m[1], "setitem": lambda m: m.__setitem__(1, 1),
    "delitem": lambda m: m.__delitem__(1), "contains": lambda m: 1 in m,
    "get": lambda m: m.get(1), "pop": lambda m: m.pop(1, None), "iter": lambda m: list(m),
    "len": len, "items": lambda m: m.items(), "keys": lambda m: m.keys(),
    "values": lambda m: m.values(), "clear": lambda m: m.clear(),
    "update": lambda m: m.update(1, 1), "lookup_batch": lambda m: m.lookup_batch(),
    "update_batch": lambda m: m.update_batch({1: 1}),
    "delete_batch": lambda m: m.delete_batch([1]), "freeze": lambda m: m.freeze(),
    "info": lambda m: m.info(), "id": lambda m: m.id, "fileno": lambda m: m.fileno(),
    "pin": lambda m: m.pin("/sys/fs/bpf/never"), "enter": lambda m: m.__enter__(),
}


@pytest.mark.parametrize("op", sorted(CLOSED_MAP_OPS))
def test_closed_map_raises_closed_error(op):
    m = Map.create("hash", key="I", value="I", max_entries=2)
    m.close()
    assert m.closed
    with pytest.raises(ClosedError, match="closed"):
        CLOSED_MAP_OPS[op](m)


def test_closed_queue_and_mmap():
    q = Map.create("queue", value="I", max_entries=2)
    q.close()
    for op in (lambda: q.push(1), q.pop, q.peek):
        with pytest.raises(ClosedError):
            op()
    a = Map.create("array", value="I", max_entries=2, flags=BPF_F_MMAPABLE)
    a.close()
    with pytest.raises(ClosedError):
        a.mmap()


def test_close_twice_and_context_manager():
    with Map.create("hash", key="I", value="I", max_entries=2) as m:
        assert not m.closed
    assert m.closed
    m.close()
    m.close()
    assert "closed" in repr(m)


def test_unclosed_map_warns_when_collected():
    m = Map.create("hash", key="I", value="I", max_entries=2, name="forgotten")
    with pytest.warns(ResourceWarning, match="forgotten"):
        del m
        gc.collect()


def test_enum_and_number_map_types():
    for spec in (MapType.HASH, int(MapType.HASH), "HASH", "hash"):
        with Map.create(spec, key="I", value="I", max_entries=1) as m:
            assert m.info().type == MapType.HASH
