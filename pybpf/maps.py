"""BPF maps as Python objects: dict-like access with typed keys and values.

``Map.create(MapType.HASH, key="I", value="Q", max_entries=1024)`` returns the subclass
that fits the map type (HashMap, ArrayMap, PerCpuHashMap, QueueMap, ...), so each type
offers exactly the operations the kernel allows on it and refuses the others with a
message instead of an errno.
"""
import dataclasses
import errno
import os

from . import args
from . import codec as _codec
from .btf.handle import KernelBtf
from .errors import BPFError, EmptyError, InputError, MapFullError, MissingError, UnsupportedError
from .fd import FdObject, Pinnable, open_pinned
from .mapbatch import EXIST_FLAGS, Batches
from .mapcreate import create_fd, create_from_spec
from .specs import MapSpec
from .typenames import type_name
from .kernel import bpf as kbpf
from .kernel import cpus, files
from .kernel.constants import (BPF_ANY, BPF_EXIST, BPF_F_MMAPABLE, BPF_F_NO_PREALLOC,
                               BPF_F_RDONLY, BPF_NOEXIST, Cmd, MapType)

_PAGE = cpus.page_size()


def map_type_of(value):
    """MapType from a MapType, its number or a name like "percpu_hash"."""
    if isinstance(value, str):
        try:
            return MapType[value.upper()]
        except KeyError:
            pass
    else:
        try:
            return MapType(value)
        except ValueError:
            pass
    raise InputError(f"unknown map type {value!r}; known: "
                     f"{', '.join(t.name.lower() for t in MapType if t)}")


@dataclasses.dataclass(frozen=True)
class MapInfo:
    """What BPF_OBJ_GET_INFO_BY_FD reports about a map (plus fdinfo's frozen flag)."""
    type: MapType
    id: int
    name: str
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    btf_id: int
    btf_key_type_id: int
    btf_value_type_id: int
    map_extra: int
    ifindex: int
    frozen: bool

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["type"] = type_name(self.type, MapType)
        return d


def _map_info(fd):
    i = kbpf.obj_get_info(fd, "map")
    try:
        mtype = MapType(i.type)
    except ValueError:  # a type newer than our constants: keep the number
        mtype = i.type
    frozen = files.fdinfo(fd).get("frozen") == "1"
    return MapInfo(mtype, i.id, kbpf.name_text(i.name), i.key_size, i.value_size, i.max_entries,
                   i.map_flags, i.btf_id, i.btf_key_type_id, i.btf_value_type_id,
                   i.map_extra, i.ifindex, frozen)


class Map(Pinnable):
    """A BPF map. Create with :meth:`create`; open existing ones with :meth:`from_pin`,
    :meth:`from_id` or :meth:`from_fd`."""

    map_type = None  # set on subclasses that serve one type
    _elements = False  # True on the classes that read and write elements

    def __init__(self, fd, map_type, key_size, value_size, max_entries, flags=0, name="",
                 key=None, value=None):
        self.type, self.name = map_type, name
        self.key_size, self.value_size = key_size, value_size
        self.max_entries, self.flags = max_entries, flags
        self._key = _codec.make_codec(key, key_size, "key") if key_size else None
        self._value = _codec.make_codec(value, value_size, "value")
        if map_type in kbpf.PERCPU_MAP_TYPES:
            self._value = _codec.PerCpuCodec(self._value, cpus.possible_cpus())
        # The buffers, checked against the map (one syscall; types pybpf knows nothing
        # about get no element access, and so no buffers the kernel could overrun).
        self._ops = kbpf.ElemOps(fd, key_size, self._value.size) if self._elements else None
        # Own the fd only once nothing above can fail: the callers close it when
        # __init__ raises, and a half-built owner would close it again when collected,
        # by then perhaps someone else's fd.
        super().__init__(fd)

    # -- construction ----------------------------------------------------------

    @staticmethod
    def create(map_type, key=None, value=None, max_entries=None, *, flags=0, name="",
               inner_map=None, numa_node=None, map_extra=0, key_size=None, value_size=None,
               btf=None, btf_key_type_id=0, btf_value_type_id=0):
        """Create a map. ``key`` and ``value`` are specs (struct format, ctypes type,
        size in bytes; see pybpf.codec) or give raw sizes with key_size/value_size.
        ``btf`` (a loaded KernelBtf) with the key/value type ids describes the types
        to the kernel, which then prints values by type (bpftool, /sys/fs/bpf).

        ``Map.create(spec, inner_map=..., btf=...)`` creates the map a
        :class:`pybpf.specs.MapSpec` defines, as the object loader does (see
        :mod:`pybpf.mapcreate`); btf is then the object's, used where the kernel
        takes it."""
        if isinstance(map_type, MapSpec):
            if key is not None or value is not None or max_entries is not None:
                raise InputError("Map.create(spec) takes the key, value and max_entries "
                                 "from the spec")
            fd, key, value = create_from_spec(map_type, inner_fd=_fd(inner_map, Map),
                                              btf_fd=_fd(btf, KernelBtf))
            return Map.from_fd(fd, key=key, value=value)
        cls = _class_for(map_type_of(map_type))
        flags, map_extra = args.integer(flags, "flags", 0), args.integer(map_extra, "map_extra", 0)
        if max_entries is not None:
            max_entries = args.integer(max_entries, "max_entries")
        if numa_node is not None:
            numa_node = args.integer(numa_node, "numa_node", 0)
        key_size = _spec_size(key, key_size, "key")
        value_size = _spec_size(value, value_size, "value")
        key_size, value_size, max_entries = cls._check_create(
            key_size, value_size, max_entries, flags, inner_map)
        hints = {errno.EINVAL: f"the kernel refused these {cls.map_type.name} map "
                               f"parameters (key_size={key_size}, value_size={value_size}, "
                               f"max_entries={max_entries}, flags={flags:#x})"}
        spec = MapSpec(name, cls.map_type, key_size, value_size, max_entries, flags,
                       numa_node, map_extra, btf_key_type_id=btf_key_type_id,
                       btf_value_type_id=btf_value_type_id)
        fd = create_fd(spec, inner_fd=_fd(inner_map, Map), btf_fd=_fd(btf, KernelBtf),
                       hints=hints)
        try:
            return cls(fd, cls.map_type, key_size, value_size, max_entries, flags, name,
                       key=key if key_size else None, value=value)
        except BaseException:
            kbpf.close(fd)
            raise

    @classmethod
    def _check_create(cls, key_size, value_size, max_entries, flags, inner_map):
        """Validate and complete create() arguments for this map type."""
        if cls.map_type in _SIZED_BY_OWNER:  # storage maps: one value per socket/task/...
            if max_entries:
                raise InputError(f"{cls.map_type.name} maps are sized by the objects they "
                                 f"hang off; create them with max_entries=0")
            max_entries = 0
        elif max_entries is None or max_entries <= 0:
            raise InputError(f"{cls.map_type.name} maps need max_entries > 0")
        if (not key_size and cls.map_type not in _KEYLESS) or not value_size:
            raise InputError(f"{cls.map_type.name} maps need a key and a value size")
        return key_size, value_size, max_entries

    @staticmethod
    def from_fd(fd, key=None, value=None):
        """Wrap an fd of a map in the Map subclass for its type, taking ownership of it
        (an fd that is not a map's is refused, and left alone)."""
        kbpf.check_kind(fd, "map")
        try:
            info = _map_info(fd)
            cls = _class_for(info.type) if isinstance(info.type, MapType) else Map
            return cls(fd, info.type, info.key_size, info.value_size, info.max_entries,
                       info.flags, info.name, key=key, value=value)
        except BaseException:
            kbpf.close(fd)
            raise

    @classmethod
    def from_pin(cls, path, key=None, value=None, readonly=False):
        fd = open_pinned(path, "map", BPF_F_RDONLY if readonly else 0)
        return cls.from_fd(fd, key, value)

    @classmethod
    def from_id(cls, map_id, key=None, value=None):
        return cls.from_fd(kbpf.fd_by_id(Cmd.MAP_GET_FD_BY_ID, map_id), key, value)

    # -- facts -----------------------------------------------------------------

    def info(self):
        return _map_info(self.fd)

    def freeze(self):
        """Make the map read-only for user space from now on (programs may still write,
        unless created with BPF_F_RDONLY_PROG)."""
        kbpf.map_freeze(self.fd)

    def _describe(self):
        kind = type(self).__name__
        return f"{kind} {self.name!r}" if self.name else kind

    def __repr__(self):
        state = "closed" if self.closed else f"fd={self._fd}"
        return (f"<{self._describe()} {state} key_size={self.key_size} "
                f"value_size={self.value_size} max_entries={self.max_entries}>")

    def _refuse(self, what):
        raise UnsupportedError(f"{self._describe()} ({type_name(self.type, MapType)}) does not support {what}")

    def _enc_key(self, key):
        if self._key is None:
            self._refuse("keys")
        return self._key.encode(key, "key")

    # What to do about E2BIG on a write; subclasses name their own way out.
    _FULL_HINT = "delete entries, or create the map with a larger max_entries"

    def _write_error(self, err, key=None, flags=BPF_ANY):
        """The exception for a refused write, with a hint where the errno alone does not
        say why: a full map, a frozen or read-only map, BPF_NOEXIST or BPF_EXIST."""
        code = err.errno
        if code == errno.E2BIG:  # batch updates get a plain BPFError from the kernel layer
            return MapFullError(err.cmd, code, "the map has no room for another entry",
                                f"{self._describe()} holds max_entries={self.max_entries} "
                                f"entries; {self._FULL_HINT}")
        if code == errno.EPERM:
            hint = self._readonly_hint() or err.hint
        elif code == errno.EEXIST and flags & EXIST_FLAGS == BPF_NOEXIST:
            hint = "flags=BPF_NOEXIST only adds keys that are not in the map yet"
        elif code == errno.ENOENT and flags & EXIST_FLAGS == BPF_EXIST:
            hint = "flags=BPF_EXIST only replaces keys that are already in the map"
        else:
            return err
        return type(err)(err.cmd, code, err.detail, hint)

    def _readonly_hint(self):
        """Why user space may not write this map (EPERM as root), or None."""
        fdinfo = files.fdinfo(self.fd)
        if fdinfo.get("frozen") == "1":
            return "the map is frozen (freeze()): user space can no longer write to it"
        if self.flags & BPF_F_RDONLY:
            return "the map was created with BPF_F_RDONLY: only programs may write to it"
        if int(fdinfo.get("flags", "2"), 8) & os.O_ACCMODE == os.O_RDONLY:
            return "this fd is read-only (opened with readonly=True); open the map without it"
        return None


def _fd(obj, kind):
    """The fd of an optional inner map or BTF argument (0 when not given)."""
    return args.fd_of(obj, kind, "inner_map" if kind is Map else "btf") if obj is not None \
        else 0


def _spec_size(spec, explicit, what):
    if explicit is not None:
        if spec is not None:
            raise InputError(f"give {what} or {what}_size, not both")
        return args.integer(explicit, f"{what}_size", 0)
    if spec is None:
        return 0
    return _codec.make_codec(spec, what=what).size


# Local-storage maps take max_entries 0; a bloom filter has values but no keys.
_SIZED_BY_OWNER = {MapType.SK_STORAGE, MapType.INODE_STORAGE, MapType.TASK_STORAGE,
                   MapType.CGROUP_STORAGE, MapType.PERCPU_CGROUP_STORAGE}
_KEYLESS = {MapType.BLOOM_FILTER}


class KeyedMap(Batches, Map):
    """Maps addressed by key: the dict-like interface and batch operations."""

    _elements = True

    def __getitem__(self, key):
        self.fd
        data = self._ops.lookup(self._enc_key(key))
        if data is None:
            raise MissingError(key)
        return self._value.decode(data)

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def __setitem__(self, key, value):
        self.update(key, value)

    def update(self, key, value, flags=BPF_ANY):
        """Store value at key. flags: BPF_ANY, BPF_NOEXIST (fail with FileExistsError-like
        BPFError EEXIST if present), BPF_EXIST (fail if absent), BPF_F_LOCK."""
        self.fd
        raw_key, raw_value = self._enc_key(key), self._value.encode(value)
        try:
            self._ops.update(raw_key, raw_value, flags)
        except BPFError as e:
            raise self._write_error(e, key, flags) from None

    def __delitem__(self, key):
        self.fd
        if not self._ops.delete(self._enc_key(key)):
            raise MissingError(key)

    def pop(self, key, *default):
        try:
            value = self[key]
            del self[key]
        except KeyError:
            if default:
                return default[0]
            raise
        return value

    def __contains__(self, key):
        self.fd
        return self._ops.lookup(self._enc_key(key)) is not None

    def _raw_keys(self):
        self.fd
        key = self._ops.next_key(None)
        while key is not None:
            yield key
            key = self._ops.next_key(key)

    def __iter__(self):
        for raw in self._raw_keys():
            yield self._key.decode(raw)

    def keys(self):
        return list(self)

    def values(self):
        return [v for _, v in self.items()]

    def items(self):
        """All (key, value) pairs, through one batch walk where the kernel has it."""
        return self.lookup_batch()

    def __len__(self):
        return sum(1 for _ in self._raw_keys())

    def clear(self):
        self.delete_batch([self._key.decode(k) for k in self._raw_keys()])


class HashMap(KeyedMap):
    """HASH, LRU_HASH and LPM_TRIE maps: keys come and go."""
    map_type = MapType.HASH
    _FULL_HINT = ("delete entries, or create the map with a larger max_entries (an "
                  "LRU_HASH map evicts the least recently used entry instead)")


class LpmTrieMap(HashMap):
    """Longest-prefix-match trie; a key starts with a u32 prefix length in bits."""
    map_type = MapType.LPM_TRIE

    @classmethod
    def _check_create(cls, key_size, value_size, max_entries, flags, inner_map):
        if not flags & BPF_F_NO_PREALLOC:
            raise InputError("LPM_TRIE maps must be created with flags=BPF_F_NO_PREALLOC")
        if key_size <= 4:
            raise InputError("an LPM_TRIE key is a u32 prefix length followed by the data "
                             f"bytes, so it is more than 4 bytes (got {key_size})")
        return super()._check_create(key_size, value_size, max_entries, flags, inner_map)


class ArrayMap(KeyedMap):
    """ARRAY maps: max_entries preallocated u32-indexed slots that always exist."""
    map_type = MapType.ARRAY

    @classmethod
    def _check_create(cls, key_size, value_size, max_entries, flags, inner_map):
        if key_size not in (0, 4):
            raise InputError(f"{cls.map_type.name} keys are u32 indexes (4 bytes), got {key_size}")
        return super()._check_create(4, value_size, max_entries, flags, inner_map)

    def __init__(self, fd, map_type, key_size, value_size, max_entries, flags=0, name="",
                 key=None, value=None):
        super().__init__(fd, map_type, key_size, value_size, max_entries, flags, name,
                         "I" if key is None else key, value)

    def __delitem__(self, key):
        self._refuse("deleting elements (array slots always exist; store zeros instead)")

    def clear(self):
        self._refuse("clear() (array slots always exist; store zeros instead)")

    def __len__(self):
        return self.max_entries

    @property
    def mmap_stride(self):
        """Bytes from one element to the next in :meth:`mmap`'s view."""
        return (self.value_size + 7) & ~7

    def lookup_batch(self, batch_size=None, delete=False):
        if delete:
            self._refuse("lookup_batch(delete=True) (array slots always exist)")
        return super().lookup_batch(batch_size)

    def _write_error(self, err, key=None, flags=BPF_ANY):
        if err.errno == errno.E2BIG:  # what the kernel answers for an index past the end
            return MissingError(f"index {key} is out of range: {self._describe()} has "
                                f"max_entries={self.max_entries} slots")
        return super()._write_error(err, key, flags)

    def mmap(self):
        """Map the values into this process (BPF_F_MMAPABLE arrays): a ``mmap.mmap``
        shared with the kernel, writable unless the map is frozen. Close it when done.

        Element i starts at byte ``i * mmap_stride``: the kernel pads each value to a
        multiple of 8 bytes."""
        if not self.flags & BPF_F_MMAPABLE:
            raise InputError(f"{self._describe()} was not created with BPF_F_MMAPABLE")
        length = self.mmap_stride * self.max_entries
        length = (length + _PAGE - 1) // _PAGE * _PAGE
        return kbpf.mmap(self.fd, length, writable=not self.info().frozen)


# Per-CPU values (lists, one entry per possible CPU) come with the map type, whatever
# the class: Map.__init__ asks the kernel layer's kbpf.PERCPU_MAP_TYPES.
class PerCpuHashMap(HashMap):
    map_type = MapType.PERCPU_HASH


class PerCpuArrayMap(ArrayMap):
    map_type = MapType.PERCPU_ARRAY


class _FdArray(ArrayMap):
    """Arrays whose values are fds on update and ids on lookup (prog and map arrays)."""

    @classmethod
    def _check_create(cls, key_size, value_size, max_entries, flags, inner_map):
        if value_size not in (0, 4):
            raise InputError(f"{cls.map_type.name} values are 4-byte fds, got {value_size}")
        return super()._check_create(key_size, 4, max_entries, flags, inner_map)

    def __init__(self, fd, map_type, key_size, value_size, max_entries, flags=0, name="",
                 key=None, value=None):
        super().__init__(fd, map_type, key_size, value_size, max_entries, flags, name, key,
                         _FD_CODEC)

    def __delitem__(self, key):
        KeyedMap.__delitem__(self, key)

    def clear(self):
        KeyedMap.clear(self)

    def __len__(self):
        return KeyedMap.__len__(self)

    def lookup_batch(self, batch_size=None, delete=False):
        return KeyedMap.lookup_batch(self, batch_size, delete)

    def _raw_keys(self):
        """Only the slots holding an object: unlike a plain array's, these can be empty
        (and then ``key in map`` is False), so iteration, len() and clear() skip them."""
        return (k for k in super()._raw_keys() if self._ops.lookup(k) is not None)


# Stored as an fd (a pybpf object or an int); read back as the object's kernel id.
_FD_CODEC = _codec.Codec(4, None,
                         lambda v: (v.fd if isinstance(v, FdObject) else int(v)).to_bytes(4, "little"),
                         lambda b: int.from_bytes(b, "little"))


class ProgArrayMap(_FdArray):
    """PROG_ARRAY: the jump table for bpf_tail_call(); store Program objects."""
    map_type = MapType.PROG_ARRAY


class ArrayOfMapsMap(_FdArray):
    """ARRAY_OF_MAPS: store Map objects shaped like the inner_map given at creation."""
    map_type = MapType.ARRAY_OF_MAPS

    @classmethod
    def _check_create(cls, key_size, value_size, max_entries, flags, inner_map):
        _require_inner(cls, inner_map)
        return super()._check_create(key_size, value_size, max_entries, flags, inner_map)


def _require_inner(cls, inner_map):
    if inner_map is None:
        raise InputError(f"{cls.map_type.name} needs inner_map=, a map of the shape its "
                         f"elements will have")


class HashOfMapsMap(HashMap):
    """HASH_OF_MAPS: keys of your choice, values are Map objects (read back as ids)."""
    map_type = MapType.HASH_OF_MAPS

    @classmethod
    def _check_create(cls, key_size, value_size, max_entries, flags, inner_map):
        _require_inner(cls, inner_map)
        if value_size not in (0, 4):
            raise InputError(f"{cls.map_type.name} values are 4-byte fds, got {value_size}")
        return super()._check_create(key_size, 4, max_entries, flags, inner_map)

    def __init__(self, fd, map_type, key_size, value_size, max_entries, flags=0, name="",
                 key=None, value=None):
        super().__init__(fd, map_type, key_size, value_size, max_entries, flags, name, key,
                         _FD_CODEC)


class PerfEventArrayMap(_FdArray):
    """PERF_EVENT_ARRAY: one perf event fd per CPU for bpf_perf_event_output()."""
    map_type = MapType.PERF_EVENT_ARRAY

    @classmethod
    def _check_create(cls, key_size, value_size, max_entries, flags, inner_map):
        return super()._check_create(key_size, value_size,
                                     max_entries or cpus.possible_cpus(), flags, inner_map)

    def _unreadable(self, *args, **kwargs):
        self._refuse("reading elements (the kernel keeps perf event fds write-only)")

    # The kernel refuses every lookup, so nothing can tell which slots are filled either.
    __getitem__ = __contains__ = lookup_batch = _raw_keys = _unreadable


class QueueMap(Map):
    """QUEUE (FIFO) and STACK (LIFO) maps: no keys, push/pop/peek values."""
    map_type = MapType.QUEUE
    _elements = True

    @classmethod
    def _check_create(cls, key_size, value_size, max_entries, flags, inner_map):
        if key_size:
            raise InputError(f"{cls.map_type.name} maps have no key")
        if max_entries is None or max_entries <= 0 or not value_size:
            raise InputError(f"{cls.map_type.name} maps need a value size and max_entries > 0")
        return 0, value_size, max_entries

    _FULL_HINT = "pop values, or push with flags=BPF_EXIST to drop the oldest one"

    def push(self, value, flags=BPF_ANY):
        """Append value; when full, MapFullError, or with BPF_EXIST drop the oldest."""
        self.fd
        raw = self._value.encode(value)
        try:
            self._ops.update(None, raw, flags)
        except BPFError as e:
            raise self._write_error(e, None, flags) from None

    def pop(self):
        """Remove and return the next value; IndexError when empty."""
        return self._take(Cmd.MAP_LOOKUP_AND_DELETE_ELEM)

    def peek(self):
        """Return the next value without removing it; IndexError when empty."""
        return self._take(Cmd.MAP_LOOKUP_ELEM)

    def _take(self, cmd):
        self.fd
        data = self._ops.lookup(None, cmd=int(cmd))
        if data is None:
            raise EmptyError(f"{self._describe()} is empty")
        return self._value.decode(data)

    def __len__(self):
        self._refuse("len() (the kernel does not report a queue's fill level)")


class StackMap(QueueMap):
    map_type = MapType.STACK


class RingBufMap(Map):
    """RINGBUF: a byte ring shared with the kernel; max_entries is its size in bytes."""
    map_type = MapType.RINGBUF

    @classmethod
    def _check_create(cls, key_size, value_size, max_entries, flags, inner_map):
        if key_size or value_size:
            raise InputError("RINGBUF maps have no key or value; give only max_entries "
                             "(the ring's size in bytes)")
        if not max_entries or max_entries % _PAGE or max_entries & (max_entries - 1):
            raise InputError(f"a RINGBUF size must be a power of 2 and a multiple of the "
                             f"page size ({_PAGE}), got {max_entries}")
        return 0, 0, max_entries


_CLASSES = {
    MapType.HASH: HashMap, MapType.LRU_HASH: HashMap, MapType.LPM_TRIE: LpmTrieMap,
    MapType.ARRAY: ArrayMap, MapType.PERCPU_HASH: PerCpuHashMap,
    MapType.LRU_PERCPU_HASH: PerCpuHashMap, MapType.PERCPU_ARRAY: PerCpuArrayMap,
    MapType.PROG_ARRAY: ProgArrayMap, MapType.ARRAY_OF_MAPS: ArrayOfMapsMap,
    MapType.HASH_OF_MAPS: HashOfMapsMap, MapType.PERF_EVENT_ARRAY: PerfEventArrayMap,
    MapType.QUEUE: QueueMap, MapType.STACK: StackMap, MapType.RINGBUF: RingBufMap,
}


def _class_for(map_type):
    """The class for map_type, specialised so that cls.map_type is exactly map_type."""
    base = _CLASSES.get(map_type, KeyedMap)
    if base.map_type == map_type:
        return base
    return _SPECIALISED.setdefault(map_type, type(base.__name__, (base,), {
        "map_type": map_type, "__doc__": base.__doc__}))


_SPECIALISED = {}
