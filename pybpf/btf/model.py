"""The Btf object: a type table with lookups by name, resolution and sizes.

Types are materialised on first access from the raw records (see parse.py), so opening
the kernel's vmlinux BTF costs one scan, and finding ``task_struct`` decodes only the
records it touches. ``lazy=False`` decodes everything up front (what a full parse
costs; the object behaves the same).

A Btf is mutable (``add``, ``replace``, ``fixup_datasecs``) so the loader can fix an
object's BTF before loading it; ``freeze()`` forbids that for shared instances, such
as the cached kernel BTF.
"""
import os
import sys
from array import array
from collections.abc import Mapping

from ..errors import InputError, UnsupportedError
from ..kernel import btffiles, files
from . import parse
from . import types as T
from .strings import StringTable
from .types import BtfError, kind_of

VMLINUX = btffiles.VMLINUX_BTF
_NATIVE = "<" if sys.byteorder == "little" else ">"
_ORDER_NAMES = {"little": "<", "big": ">", "<": "<", ">": ">"}
_NO_NAME = 0xFFFFFFFF  # name offset of types added or replaced after parsing


def order_of(byteorder):
    try:
        return _ORDER_NAMES[byteorder]
    except KeyError:
        raise InputError(f"byteorder must be 'little' or 'big', not {byteorder!r}") from None


class TypeTable(Mapping):
    """``btf.types``: type id -> type object over the whole id space (base included)."""

    def __init__(self, btf):
        self._btf = btf

    def __getitem__(self, type_id):
        return self._btf.type(type_id)

    def __len__(self):
        return len(self._btf)

    def __iter__(self):
        return iter(range(len(self._btf)))


class Btf:
    """A BTF type table. Build one with :meth:`from_bytes`, :meth:`load`,
    :meth:`vmlinux`, :meth:`module`, or empty (``Btf()``) and :meth:`add` types."""

    pointer_size = 8  # BPF is 64-bit; vmlinux() sets the kernel's own

    def __init__(self, base=None, byteorder=None):
        self.base = base
        self.order = base.order if base is not None else _NATIVE
        if byteorder is not None:
            self.order = order_of(byteorder)
        self.start_id = len(base) if base is not None else 1
        self.strings = StringTable(b"" if base is not None else b"\0",
                                   base.strings if base is not None else None)
        self._items = []
        self._offsets = array("I")
        self._name_offs = array("I")
        self._changed = set()
        self._by_name_off, self._by_name_count = None, -1
        self._decoder = None
        self.frozen = False
        if base is not None:
            self.pointer_size = base.pointer_size

    # ---- construction -------------------------------------------------------

    @classmethod
    def from_bytes(cls, data, base=None, lazy=True):
        """Parse raw BTF (a .BTF section or a /sys/kernel/btf file). With ``base``, data
        is split BTF whose ids and string offsets continue the base's.

        The header, the record boundaries and the name offsets are checked now; with
        ``lazy`` a record's contents are checked when it is first used (so a query can
        raise BtfError later), ``lazy=False`` decodes and checks every record now:
        cheap for an object file's BTF, ~0.7 s for vmlinux's."""
        data = bytes(data)
        hdr = parse.parse_header(data)
        if base is not None and hdr.order != base.order:
            raise BtfError("split BTF and its base have different byte orders")
        self = cls(base)
        self.order = hdr.order
        start, end, str_start, str_end = parse.sections(hdr)
        self.strings = StringTable(data, base.strings if base is not None else None,
                                   str_start, str_end)
        self._offsets, self._name_offs = parse.scan(data, start, end, hdr.order, self.start_id)
        limit = len(self.strings)
        if self._name_offs and max(self._name_offs) >= limit:
            bad = next(i for i, off in enumerate(self._name_offs) if off >= limit)
            raise BtfError(f"type id {self.start_id + bad}: name offset "
                           f"{self._name_offs[bad]} is past the end of the string section "
                           f"({limit} bytes)")
        self._items = [None] * len(self._offsets)
        self._decoder = parse.Decoder(data, hdr.order, self.strings, start)
        if not lazy:
            for i in range(len(self._items)):
                self._materialise(i)
        return self

    @classmethod
    def load(cls, path, base=None, lazy=True):
        """Parse a raw BTF file (e.g. one dumped with ``llvm-objcopy --dump-section``)."""
        data = files.read_regular_file(path)
        if data[:4] == b"\x7fELF":
            raise BtfError(f"{path} is an ELF file, not raw BTF: take its .BTF section "
                           f"(pybpf.elf, or llvm-objcopy --dump-section .BTF=out.btf {path})")
        try:
            return cls.from_bytes(data, base=base, lazy=lazy)
        except BtfError as e:
            raise BtfError(f"{path}: {e}") from None

    _vmlinux_cache = {}

    @classmethod
    def vmlinux(cls, path=VMLINUX, cache=True):
        """The running kernel's BTF, parsed lazily. The cached instance is frozen: use
        ``.copy()`` to change it."""
        if cache and path in cls._vmlinux_cache:
            return cls._vmlinux_cache[path]
        if not os.path.exists(path):
            raise BtfError(f"{path} does not exist: the kernel was built without "
                           f"CONFIG_DEBUG_INFO_BTF (5.4+ kernels can have it)")
        btf = cls.load(path)
        btf.pointer_size = btf._guess_pointer_size()
        btf.freeze()
        if cache:
            cls._vmlinux_cache[path] = btf
        return btf

    @classmethod
    def module(cls, name, base=None, directory=btffiles.BTF_DIR):
        """A kernel module's BTF (split on vmlinux, or on ``base``)."""
        path = os.path.join(directory, name)
        if not os.path.exists(path):
            raise BtfError(f"no BTF for module {name!r} at {path}: is it loaded, and was it "
                           f"built with BTF (CONFIG_DEBUG_INFO_BTF_MODULES)?")
        base = base if base is not None else cls.vmlinux(os.path.join(directory, "vmlinux"))
        btf = cls.load(path, base=base)
        btf.freeze()
        return btf

    def _guess_pointer_size(self):
        for type_id in self.find("long unsigned int", T.Int) + self.find("long", T.Int):
            return self.type(type_id).size
        return self.pointer_size

    def copy(self):
        """An unfrozen copy sharing the raw data; changes to it do not touch self."""
        new = Btf.__new__(Btf)
        new.__dict__.update(self.__dict__)
        new._items, new._changed = list(self._items), set(self._changed)
        new._offsets, new._name_offs = array("I", self._offsets), array("I", self._name_offs)
        new.strings = self.strings.copy()
        if self._decoder is not None:
            new._decoder = parse.Decoder(self._decoder.data, self.order, new.strings,
                                         self._decoder.start)
        new.frozen = False
        return new

    def freeze(self):
        self.frozen = True
        return self

    def _check_mutable(self):
        if self.frozen:
            raise BtfError("this Btf is frozen (shared kernel BTF); change a .copy()")

    def add(self, t):
        """Append type t; returns its id."""
        self._check_mutable()
        if not isinstance(t, T.BtfType) or isinstance(t, T.Void):
            raise UnsupportedError(f"add() takes a BTF type object (Int, Struct...), not {t!r}")
        self._items.append(t)
        self._offsets.append(0)
        self._name_offs.append(_NO_NAME)
        type_id = self.start_id + len(self._items) - 1
        self._changed.add(type_id)
        return type_id

    def replace(self, type_id, t):
        """Put t in place of type type_id (ids of everything else stay)."""
        self._check_mutable()
        if not isinstance(t, T.BtfType) or isinstance(t, T.Void):
            raise UnsupportedError(f"replace() takes a BTF type object, not {t!r}")
        self._own_index(type_id)
        self._items[type_id - self.start_id] = t
        self._name_offs[type_id - self.start_id] = _NO_NAME
        self._changed.add(type_id)
        self._by_name_off = None

    # ---- access -------------------------------------------------------------

    def __len__(self):
        """Number of type ids, void and base types included (the next id to add)."""
        return self.start_id + len(self._items)

    @property
    def types(self):
        return TypeTable(self)

    @property
    def byteorder(self):
        return "little" if self.order == "<" else "big"

    def own_ids(self):
        """Ids of this table's own types (not the base's)."""
        return range(self.start_id, len(self))

    def _own_index(self, type_id):
        i = type_id - self.start_id
        if not 0 <= i < len(self._items) or isinstance(type_id, bool):
            raise BtfError(f"type id {type_id} is not in this BTF ({self.start_id}.."
                           f"{len(self) - 1})")
        return i

    def type(self, type_id):
        """The type object of type_id (void for 0)."""
        if type_id == 0:
            return T.VOID
        if self.base is not None and 0 < type_id < self.start_id:
            return self.base.type(type_id)
        i = self._own_index(type_id)
        item = self._items[i]
        return item if item is not None else self._materialise(i)

    __getitem__ = type

    def _materialise(self, i):
        item = self._items[i] = self._decoder.decode(self._offsets[i], self.start_id + i)
        return item

    def __iter__(self):
        """(id, type) for every type id, void and base included."""
        for type_id in range(len(self)):
            yield type_id, self.type(type_id)

    def find(self, name, kind=None):
        """Ids of the types named name (base first), optionally only of one kind."""
        kind = kind_of(kind) if kind is not None else None
        ids = self.base.find(name, kind) if self.base is not None else []
        index = self._ids_by_name_offset()
        for off in self.strings.offsets_of(name):
            hit = index.get(off)
            if hit is not None:
                ids.extend(hit if isinstance(hit, tuple) else (hit,))
        ids.extend(i for i in self._changed if self.type(i).name == name)
        own = sorted(set(i for i in ids if i >= self.start_id))
        ids = [i for i in ids if i < self.start_id] + own
        if kind is not None:
            ids = [i for i in ids if self.type(i).KIND == kind]
        return ids

    def _ids_by_name_offset(self):
        """name offset -> type id (a tuple when several types share a name), built on
        the first find(). One pass over the parsed name offsets (~20 ms for vmlinux)
        replaces a scan of the whole offset table per candidate string, which cost
        hundreds of ms for common names whose text ends many longer strings."""
        index = self._by_name_off
        if index is None or len(self._name_offs) != self._by_name_count:
            index, shared = {}, {}
            for i, off in enumerate(self._name_offs):
                # Offset 0 is the empty name of ~55k anonymous types: never looked up.
                if off == _NO_NAME or off == 0:
                    continue
                type_id = self.start_id + i
                old = index.setdefault(off, type_id)
                if old != type_id:
                    shared.setdefault(off, [old]).append(type_id)
            for off, ids in shared.items():
                index[off] = tuple(ids)
            self._by_name_off, self._by_name_count = index, len(self._name_offs)
        return index

    def find_one(self, name, kind=None):
        """The id of the one type named name (of kind); BtfError if none or several."""
        ids = self.find(name, kind)
        what = f"{kind_of(kind).name.lower()} " if kind is not None else ""
        if not ids:
            raise BtfError(f"no {what}type named {name!r} in this BTF")
        if len(ids) > 1:
            raise BtfError(f"{len(ids)} {what}types are named {name!r} (ids {ids[:8]}); "
                           f"pass kind= to choose")
        return ids[0]

    # ---- resolution ---------------------------------------------------------

    def _chain_limit(self):
        return len(self) + 1

    def resolve(self, type_id):
        """type_id with typedefs, const/volatile/restrict and type tags skipped."""
        for _ in range(self._chain_limit()):
            t = self.type(type_id)
            if not isinstance(t, T.MODIFIERS):
                return type_id
            type_id = t.type
        raise BtfError(f"type id {type_id}: typedef/modifier loop")

    def size_of(self, type_id):
        """Size in bytes of type_id as C's sizeof would give it."""
        count, start = 1, type_id
        for _ in range(self._chain_limit()):
            t = self.type(type_id)
            if isinstance(t, (T.Int, T.Enum, T.Enum64, T.Float, T.Struct, T.Union, T.Datasec)):
                return count * t.size
            if isinstance(t, T.Ptr):
                return count * self.pointer_size
            if isinstance(t, T.Array):
                count *= t.nelems
            elif not isinstance(t, T.MODIFIERS + (T.Var,)):
                raise BtfError(f"type id {type_id} ({t.KIND.name}"
                               f"{' ' + repr(t.name) if t.name else ''}) has no size")
            type_id = t.type
        raise BtfError(f"type id {start}: type loop while computing its size")

    def members(self, type_id):
        """The members of a struct or union (typedefs/modifiers resolved first)."""
        t = self.type(self.resolve(type_id))
        if not isinstance(t, T.COMPOSITES):
            raise BtfError(f"type id {type_id} is a {t.KIND.name}, not a struct or union")
        return t.members

    def walk_members(self, type_id, _base=0, _depth=0):
        """The members C code can name directly: those of type_id, with the members of
        anonymous struct/union members in their place, each ``bit_offset`` from the
        start of type_id."""
        if _depth > 64:
            raise BtfError(f"type id {type_id}: anonymous members nest too deep (a loop?)")
        for m in self.members(type_id):
            offset = _base + m.bit_offset
            if not m.name and isinstance(self.type(self.resolve(m.type)), T.COMPOSITES):
                yield from self.walk_members(m.type, offset, _depth + 1)
            else:
                yield m._replace(bit_offset=offset)

    def member(self, type_id, path):
        """The member at a dotted path ("a.b.c") of a struct/union, looking into
        anonymous struct/union members as C does. Its ``bit_offset`` is from the start
        of type_id. BtfError names the missing component."""
        offset, found = 0, None
        for name in path.split("."):
            hit = self._find_member(type_id, name, 0, depth=0)
            if hit is None:
                raise BtfError(f"type id {type_id} has no member {name!r} (path {path!r})")
            found, rel = hit
            offset += rel
            type_id = found.type
        return found._replace(bit_offset=offset)

    def _find_member(self, type_id, name, base, depth):
        if depth > 64:
            raise BtfError(f"type id {type_id}: anonymous members nest too deep (a loop?)")
        for m in self.members(type_id):
            if m.name == name:
                return m, base + m.bit_offset
            if not m.name and isinstance(self.type(self.resolve(m.type)), T.COMPOSITES):
                hit = self._find_member(m.type, name, base + m.bit_offset, depth + 1)
                if hit is not None:
                    return hit
        return None

    def type_name(self, type_id):
        """C spelling of a type for messages, qualifiers written after what they
        qualify: 'char const *', 'struct sk_buff *[4]'."""
        tokens, suffix = [], ""
        for _ in range(64):
            t = self.type(type_id)
            if isinstance(t, T.Ptr):
                tokens.append("*")
            elif isinstance(t, T.Array):
                suffix += f"[{t.nelems}]"
            elif isinstance(t, (T.Const, T.Volatile, T.Restrict)):
                tokens.append(t.KIND.name.lower())
            else:
                return " ".join([_base_name(t)] + tokens[::-1]) + suffix
            type_id = t.type
        return "<type loop>"

    def to_bytes(self, byteorder=None):
        """Raw BTF of this table's own types (a split BTF writes only its own)."""
        from .write import to_bytes
        return to_bytes(self, byteorder)

    def fixup_datasecs(self, section_sizes, symbol_offsets):
        """Fill DATASEC sizes and VAR offsets from the ELF (in place); see sanitize.py."""
        from .sanitize import fixup_datasecs
        return fixup_datasecs(self, section_sizes, symbol_offsets)

    def sanitize(self, features):
        """A copy the kernel with the given features accepts; see sanitize.py."""
        from .sanitize import sanitize
        return sanitize(self, features)

    def __repr__(self):
        base = f", base of {self.start_id} ids" if self.base is not None else ""
        return f"<Btf {len(self)} type ids{base}, {self.byteorder}-endian>"


def _base_name(t):
    if isinstance(t, (T.Struct, T.Union, T.Enum, T.Enum64, T.Fwd)):
        word = "union" if isinstance(t, T.Union) or (isinstance(t, T.Fwd) and t.union) else (
            "enum" if isinstance(t, (T.Enum, T.Enum64)) else "struct")
        return f"{word} {t.name or '(anon)'}"
    if isinstance(t, T.FuncProto):
        return "(function)"
    if isinstance(t, T.Void):
        return "void"
    return t.name or f"({t.KIND.name.lower()})"
