"""Maps a jit program declares: module-level objects its functions index.

    calls = jit.Map("hash", max_entries=1024)

    def count(ctx):
        calls[jit.tgid()] += 1

Keys and values are 64-bit signed integers (array maps: the key is the 32-bit
index, as the kernel has it). In the object the compiler writes, each map is a
BTF-defined map in ``.maps``, exactly what clang writes for ``__uint(type, ...)``,
``__type(key, long)``; pybpf's loader creates it and decodes its entries as ints.

In Python, before compiling, a Map is a dict with the kernel map's rules (missing
keys read as 0; an array's index is the key's low 32 bits and one beyond
max_entries is not stored; a full hash map takes no new keys; values wrap at 64
bits), so a program's function can be run as plain Python and compared with the
kernel.
"""
from ..errors import InputError
from ..kernel.constants import MapType
from ..maps import map_type_of
from .meaning import wrap
from .subset import JitError

_U32 = 0xFFFFFFFF

# The map types a program can index with m[k] (lookup, update, delete of one value).
KINDS = {MapType.HASH: 8, MapType.LRU_HASH: 8, MapType.PERCPU_HASH: 8,
         MapType.LRU_PERCPU_HASH: 8, MapType.ARRAY: 4, MapType.PERCPU_ARRAY: 4}
MAX_ENTRIES = 1 << 24


class Map(dict):
    """A map declaration: type (MapType or a name like "percpu_hash"), max_entries,
    and map flags (BPF_F_NO_PREALLOC, ...)."""

    __bpf_map__ = True          # how the subset's checker knows one (no import cycle)

    def __init__(self, kind="hash", max_entries=1024, flags=0):
        super().__init__()
        try:
            self.type = map_type_of(kind)
        except InputError as e:
            raise JitError(str(e)) from None
        if self.type not in KINDS:
            raise JitError(f"a jit program's map is one of "
                           f"{', '.join(t.name.lower() for t in KINDS)}, not "
                           f"{self.type.name.lower()}")
        if not isinstance(max_entries, int) or not 1 <= max_entries <= MAX_ENTRIES:
            raise JitError(f"max_entries must be 1..{MAX_ENTRIES}, got {max_entries!r}")
        if not isinstance(flags, int) or flags < 0 or flags >> 32:
            raise JitError(f"map flags are a 32-bit mask, got {flags!r}")
        self.max_entries, self.flags = max_entries, flags
        self.value_words = 1       # 64-bit words per value (more only for pybpf's own)

    @property
    def key_size(self):
        return KINDS[self.type]

    @property
    def is_array(self):
        return self.key_size == 4

    def _key(self, key):
        return key & _U32 if self.is_array else key

    def __missing__(self, key):
        return 0

    def __getitem__(self, key):
        return super().__getitem__(self._key(key))

    def __setitem__(self, key, value):
        key = self._key(key)
        if self.is_array and key >= self.max_entries:
            return
        if not self.is_array and key not in self and len(self) >= self.max_entries:
            return
        super().__setitem__(key, wrap(value))

    def __delitem__(self, key):
        if not self.is_array:
            self.pop(key, None)

    def __contains__(self, key):
        if self.is_array:
            return self._key(key) < self.max_entries
        return super().__contains__(key)

    def __repr__(self):
        return (f"<jit.Map {self.type.name.lower()} max_entries={self.max_entries} "
                f"{dict(self)}>")
