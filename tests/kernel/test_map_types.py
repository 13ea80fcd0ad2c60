"""Every map type pybpf gives a class of its own, created in the running kernel.

Each test pins down what is special about one type: per-CPU value lists, LRU eviction,
FIFO/LIFO order, longest-prefix matching, fd-holding arrays that read back ids, and the
types whose elements the kernel will not hand to user space.
"""
import socket

import pytest

import pybpf
from pybpf import BPF_EXIST, BPF_F_NO_PREALLOC, Map, MapFullError, MapType, Program
from pybpf import asm
from pybpf.kernel import system


def _possible_cpu_count():
    """Counted from sysfs here, independently of pybpf.kernel.system."""
    with open("/sys/devices/system/cpu/possible") as f:
        text = f.read().strip()
    count = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1
    return count


@pytest.mark.parametrize("name", ["hash", "array", "lru_hash"])
def test_plain_types_store_and_read(name):
    with Map.create(name, key="I", value="Q", max_entries=8) as m:
        assert m.type == MapType[name.upper()]
        m[3] = 2**40 + 7
        assert m[3] == 2**40 + 7
        assert m.info().type == MapType[name.upper()]


@pytest.mark.parametrize("name", ["percpu_hash", "percpu_array", "lru_percpu_hash"])
def test_percpu_values_have_one_slot_per_possible_cpu(name):
    ncpus = _possible_cpu_count()
    with Map.create(name, key="I", value="I", max_entries=4) as m:
        assert m.info().type == MapType[name.upper()]
        values = [100 + cpu for cpu in range(ncpus)]
        m[1] = values
        got = m[1]
        assert len(got) == ncpus
        assert got == values
        assert dict(m.items())[1] == values
        with pytest.raises(ValueError, match=f"sequence of {ncpus} values"):
            m[1] = values + [0]
        with pytest.raises(ValueError, match="per-CPU"):
            m[1] = 5


def test_percpu_value_padding_to_8_bytes():
    """A 2-byte value occupies 8 bytes per CPU in the kernel's buffer."""
    ncpus = _possible_cpu_count()
    with Map.create("percpu_array", value="H", max_entries=1) as m:
        m[0] = list(range(1, ncpus + 1))
        assert m[0] == list(range(1, ncpus + 1))
        assert m.lookup_batch() == [(0, list(range(1, ncpus + 1)))]


def test_lru_hash_evicts_instead_of_failing():
    with Map.create("lru_hash", key="I", value="I", max_entries=16) as m:
        for i in range(200):
            m[i] = i  # never MapFullError
        keys = set(m)
        assert 0 < len(keys) <= 16
        assert 199 in keys  # the newest entry survives
        assert 0 not in keys  # the oldest was evicted


def test_hash_full_is_map_full_error_where_lru_is_not():
    with Map.create("hash", key="I", value="I", max_entries=4) as m:
        for i in range(4):
            m[i] = i
        with pytest.raises(MapFullError):
            m[99] = 1


def test_lru_percpu_hash_evicts():
    ncpus = _possible_cpu_count()
    with Map.create("lru_percpu_hash", key="I", value="Q", max_entries=8) as m:
        for i in range(100):
            m[i] = [i] * ncpus
        assert 0 < len(m) <= 8
        assert m[99] == [99] * ncpus


def _trivial_prog(ret=2):
    return Program.load("xdp", [asm.mov64(asm.R0, ret), asm.exit()], name="trivial")


def test_prog_array_stores_program_reads_back_id():
    with _trivial_prog() as prog, Map.create("prog_array", max_entries=4) as table:
        assert table.info().type == MapType.PROG_ARRAY
        table[2] = prog
        assert table[2] == prog.info().id
        assert 2 in table and 0 not in table
        assert list(table) == [2]  # empty slots are not keys
        assert len(table) == 1
        assert table.items() == [(2, prog.id)]
        del table[2]
        assert 2 not in table
        with pytest.raises(KeyError):
            del table[2]


def test_prog_array_accepts_raw_fd():
    with _trivial_prog() as prog, Map.create("prog_array", max_entries=1) as table:
        table[0] = prog.fd
        assert table[0] == prog.id


def test_perf_event_array_refuses_reads_clearly():
    with Map.create("perf_event_array") as m:
        info = m.info()
        assert info.type == MapType.PERF_EVENT_ARRAY
        assert info.max_entries == system.possible_cpus()  # the default: one per CPU
        for read in (lambda: m[0], lambda: 0 in m, lambda: m.items(), lambda: list(m)):
            with pytest.raises(TypeError, match="write-only"):
                read()


def test_ringbuf_create_and_bad_size():
    page = system.page_size()
    with Map.create("ringbuf", max_entries=4 * page) as rb:
        assert rb.info().type == MapType.RINGBUF
        assert rb.info().max_entries == 4 * page
    for bad in (5000, 3 * page, 0):
        with pytest.raises(ValueError, match="power of 2"):
            Map.create("ringbuf", max_entries=bad)
    with pytest.raises(ValueError, match="no key or value"):
        Map.create("ringbuf", key="I", value="I", max_entries=page)


@pytest.mark.parametrize("name, expected", [("queue", [1, 2, 3]), ("stack", [3, 2, 1])])
def test_queue_and_stack_order(name, expected):
    with Map.create(name, value="I", max_entries=3) as q:
        for v in (1, 2, 3):
            q.push(v)
        assert q.peek() == expected[0]
        assert [q.pop() for _ in range(3)] == expected
        with pytest.raises(IndexError):
            q.pop()
        with pytest.raises(IndexError):
            q.peek()


@pytest.mark.parametrize("name, expected", [("queue", [2, 3, 4]), ("stack", [4, 3, 2])])
def test_queue_full_and_bpf_exist_overwrites_oldest(name, expected):
    with Map.create(name, value="I", max_entries=3) as q:
        for v in (1, 2, 3):
            q.push(v)
        with pytest.raises(MapFullError) as exc:
            q.push(4)
        assert "BPF_EXIST" in exc.value.hint
        q.push(4, BPF_EXIST)  # drops 1, the oldest
        assert [q.pop() for _ in range(3)] == expected


def test_queue_has_no_keys_or_len():
    with Map.create("queue", value="I", max_entries=2) as q:
        with pytest.raises(TypeError):
            len(q)
    with pytest.raises(ValueError, match="no key"):
        Map.create("queue", key="I", value="I", max_entries=2)


def _prefix(bits, dotted):
    return (bits, socket.inet_aton(dotted))


def test_lpm_trie_longest_prefix_match():
    with Map.create("lpm_trie", key="I4s", value="I", max_entries=16,
                    flags=BPF_F_NO_PREALLOC) as trie:
        assert trie.info().type == MapType.LPM_TRIE
        trie[_prefix(8, "10.0.0.0")] = 8
        trie[_prefix(16, "10.1.0.0")] = 16
        trie[_prefix(24, "10.1.2.0")] = 24
        assert trie[_prefix(32, "10.1.2.3")] == 24
        assert trie[_prefix(32, "10.1.9.9")] == 16
        assert trie[_prefix(32, "10.200.0.1")] == 8
        assert _prefix(32, "11.0.0.1") not in trie
        with pytest.raises(KeyError):
            trie[_prefix(32, "192.168.0.1")]
        assert sorted(trie.keys()) == sorted(
            [_prefix(8, "10.0.0.0"), _prefix(16, "10.1.0.0"), _prefix(24, "10.1.2.0")])
        del trie[_prefix(24, "10.1.2.0")]
        assert trie[_prefix(32, "10.1.2.3")] == 16


def test_lpm_trie_needs_no_prealloc_and_a_prefix():
    with pytest.raises(ValueError, match="BPF_F_NO_PREALLOC"):
        Map.create("lpm_trie", key="I4s", value="I", max_entries=16)
    with pytest.raises(ValueError, match="prefix length"):
        Map.create("lpm_trie", key="I", value="I", max_entries=16, flags=BPF_F_NO_PREALLOC)


def test_array_of_maps_stores_inner_map_reads_back_id():
    with Map.create("array", value="I", max_entries=4) as inner, \
            Map.create("array", value="I", max_entries=4) as other, \
            Map.create("array_of_maps", max_entries=2, inner_map=inner) as outer:
        assert outer.info().type == MapType.ARRAY_OF_MAPS
        outer[0] = inner
        outer[1] = other
        assert outer[0] == inner.id
        assert outer[1] == other.id
        with Map.from_id(outer[1], value="I") as again:  # the id opens the inner map
            other[3] = 33
            assert again[3] == 33


def test_hash_of_maps_stores_inner_map_reads_back_id():
    with Map.create("hash", key="I", value="I", max_entries=4) as inner, \
            Map.create("hash_of_maps", key="Q", max_entries=8, inner_map=inner) as outer:
        assert outer.info().type == MapType.HASH_OF_MAPS
        outer[2**40] = inner
        assert outer[2**40] == inner.id
        assert outer.items() == [(2**40, inner.id)]
        del outer[2**40]
        assert len(outer) == 0


def test_map_in_map_needs_inner_map():
    for name in ("array_of_maps", "hash_of_maps"):
        with pytest.raises(ValueError, match="inner_map"):
            Map.create(name, key="I", max_entries=2)


def test_map_in_map_refuses_a_mismatched_inner_map():
    with Map.create("array", value="I", max_entries=4) as inner, \
            Map.create("hash", key="I", value="Q", max_entries=4) as wrong, \
            Map.create("array_of_maps", max_entries=1, inner_map=inner) as outer:
        with pytest.raises(pybpf.BPFError):
            outer[0] = wrong
