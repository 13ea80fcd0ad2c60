"""Reading raw BTF: the header, a fast scan of the type section, one record's decoding.

The scan only steps from record to record (each record's length follows from its kind
and vlen) and notes where each starts and which name offset it has; decoding turns
one record into a type object. The kernel's vmlinux BTF has ~100k records, so a
lookup by name scans once and decodes only what it touches.

Layout (all fields in the byte order the magic 0xeB9F reveals)::

    header   u16 magic, u8 version, u8 flags, u32 hdr_len,
             u32 type_off, u32 type_len, u32 str_off, u32 str_len  (offsets after hdr_len)
    record   u32 name_off, u32 info (vlen 0-15, kind 24-28, kflag 31), u32 size_or_type,
             then kind-specific data (see LAYOUT)
"""
import struct
import sys
from array import array
from collections import namedtuple

from . import types as T
from .types import BtfError, Kind

MAGIC = 0xEB9F
NATIVE = "<" if sys.byteorder == "little" else ">"
HEADER_SIZE = 24
MAX_TYPES = (1 << 20) - 1  # the kernel's BTF_MAX_TYPE

Header = namedtuple("Header", "order version flags hdr_len type_off type_len str_off str_len")

# kind -> (bytes after the 12-byte common part, bytes per vlen item)
LAYOUT = {
    Kind.INT: (4, 0), Kind.PTR: (0, 0), Kind.ARRAY: (12, 0), Kind.STRUCT: (0, 12),
    Kind.UNION: (0, 12), Kind.ENUM: (0, 8), Kind.FWD: (0, 0), Kind.TYPEDEF: (0, 0),
    Kind.VOLATILE: (0, 0), Kind.CONST: (0, 0), Kind.RESTRICT: (0, 0), Kind.FUNC: (0, 0),
    Kind.FUNC_PROTO: (0, 8), Kind.VAR: (4, 0), Kind.DATASEC: (0, 12), Kind.FLOAT: (0, 0),
    Kind.DECL_TAG: (4, 0), Kind.TYPE_TAG: (0, 0), Kind.ENUM64: (0, 12)}
# The same in 32-bit words, indexed by kind (0 = unknown kind), for the scan loop.
_FIXED_WORDS = [0] * 32
_VLEN_WORDS = [0] * 32
for _kind, (_fixed, _per) in LAYOUT.items():
    _FIXED_WORDS[_kind], _VLEN_WORDS[_kind] = 3 + _fixed // 4, _per // 4


def byte_order(data, what="BTF"):
    """'<' or '>' from the magic in the first two bytes."""
    if len(data) < 2:
        raise BtfError(f"{what} data is too short for a header ({len(data)} bytes)")
    if data[:2] == b"\x9f\xeb":
        return "<"
    if data[:2] == b"\xeb\x9f":
        return ">"
    raise BtfError(f"not {what} data: bad magic {data[:2].hex()} (expected 0xeB9F in "
                   f"either byte order)")


def parse_header(data):
    order = byte_order(data)
    if len(data) < HEADER_SIZE:
        raise BtfError(f"BTF header truncated: {len(data)} bytes, need {HEADER_SIZE}")
    hdr = Header(order, *struct.unpack_from(order + "xxBBIIIII", data))
    if hdr.version != 1:
        raise BtfError(f"unsupported BTF version {hdr.version} (only version 1 exists)")
    if not HEADER_SIZE <= hdr.hdr_len <= len(data):
        raise BtfError(f"BTF hdr_len {hdr.hdr_len} is outside 24..{len(data)}")
    for name, off, size in (("type", hdr.type_off, hdr.type_len),
                            ("string", hdr.str_off, hdr.str_len)):
        if hdr.hdr_len + off + size > len(data):
            raise BtfError(f"BTF {name} section ({size} bytes at {off}) runs past the end "
                           f"of the data ({len(data) - hdr.hdr_len} bytes after the header)")
    if hdr.type_off % 4:
        raise BtfError(f"BTF type section offset {hdr.type_off} is not 4-byte aligned")
    return hdr


def sections(hdr):
    """(type section start, end, string section start, end) of parsed header hdr, as
    offsets into the whole blob."""
    start = hdr.hdr_len + hdr.type_off
    strs = hdr.hdr_len + hdr.str_off
    return start, start + hdr.type_len, strs, strs + hdr.str_len


def scan(data, start, end, order, first_id=1):
    """(record offsets, name offsets) of every type record in data[start:end].

    Record offsets are in 32-bit words from ``start``. The loop reads words from an
    array view (byte-swapped once when the data is not in native order) because
    indexing a word is several times cheaper than ``struct.unpack_from``: this loop
    runs once per type, ~100k times for vmlinux.
    """
    if (end - start) % 4:
        raise BtfError(f"BTF type section length {end - start} is not a multiple of 4")
    if order == NATIVE:
        words = memoryview(data)[start:end].cast("I")
    else:
        words = array("I", data[start:end])
        words.byteswap()
    offsets, names = array("I"), array("I")
    add_offset, add_name = offsets.append, names.append
    fixed, per_vlen = _FIXED_WORDS, _VLEN_WORDS
    i, n = 0, len(words)
    try:
        while i < n:
            info = words[i + 1]
            kind = (info >> 24) & 0x1F
            if not fixed[kind]:
                raise BtfError(f"type id {first_id + len(offsets)}: unknown BTF kind {kind}"
                               + (" (kind 0 is only the implicit void)" if kind == 0 else ""))
            add_offset(i)
            add_name(words[i])
            i += fixed[kind] + per_vlen[kind] * (info & 0xFFFF)
    except IndexError:  # the last record's common part is cut off
        raise BtfError(f"type id {first_id + len(offsets)}: record truncated at the end of "
                       f"the type section") from None
    if i > n:
        raise BtfError(f"type id {first_id + len(offsets) - 1}: record runs past the end "
                       f"of the type section (truncated, or vlen too large)")
    if first_id + len(offsets) > MAX_TYPES + 1:
        raise BtfError(f"BTF has {first_id + len(offsets) - 1} types; the kernel's limit "
                       f"is {MAX_TYPES}")
    return offsets, names


class Decoder:
    """Turns the record at an offset into a type object (names via ``strings``)."""

    def __init__(self, data, order, strings, start=0):
        self.data, self.strings, self.start = data, strings, start
        self.u32 = struct.Struct(order + "III").unpack_from
        self.order = order

    def name(self, off, where):
        try:
            return self.strings.get(off)
        except BtfError as e:
            raise BtfError(f"{where}: bad name offset {off}: {e}") from None

    def items(self, fmt, pos, count):
        size = struct.calcsize(self.order + fmt)
        return struct.iter_unpack(self.order + fmt, self.data[pos:pos + size * count])

    def decode(self, word, type_id):
        """The type at 32-bit word ``word`` of the type section (as scan() reports it)."""
        where = f"type id {type_id}"
        pos = self.start + 4 * word
        name_off, info, size = self.u32(self.data, pos)
        kind, vlen, kflag = (info >> 24) & 0x1F, info & 0xFFFF, bool(info >> 31)
        name = self.name(name_off, where)
        body = pos + 12
        if kind == Kind.INT:
            (enc,) = struct.unpack_from(self.order + "I", self.data, body)
            bits, offset, encoding = enc & 0xFF, (enc >> 16) & 0xFF, (enc >> 24) & 0xF
            if size not in (1, 2, 4, 8, 16) or offset + bits > size * 8:
                raise BtfError(f"{where}: INT {name!r} of {size} bytes cannot hold "
                               f"{bits} bits at bit {offset}")
            return T.Int(name, size, encoding, offset, bits)
        if kind in (Kind.STRUCT, Kind.UNION):
            members = tuple(
                T.Member(self.name(m_name, where), m_type,
                         off & 0xFFFFFF if kflag else off, off >> 24 if kflag else 0)
                for m_name, m_type, off in self.items("III", body, vlen))
            return T.CLASSES[kind](name, size, members)
        if kind == Kind.ENUM:
            fmt = "Ii" if kflag else "II"
            return T.Enum(name, size, tuple(T.EnumValue(self.name(n, where), v)
                                            for n, v in self.items(fmt, body, vlen)), kflag)
        if kind == Kind.ENUM64:
            values = []
            for n, lo, hi in self.items("III", body, vlen):
                value = hi << 32 | lo
                if kflag and value >> 63:
                    value -= 1 << 64
                values.append(T.EnumValue(self.name(n, where), value))
            return T.Enum64(name, size, tuple(values), kflag)
        if kind == Kind.ARRAY:
            elem, index, nelems = self.u32(self.data, body)
            return T.Array(name, elem, index, nelems)
        if kind == Kind.FUNC_PROTO:
            return T.FuncProto(name, size, tuple(T.Param(self.name(n, where), t)
                                                 for n, t in self.items("II", body, vlen)))
        if kind == Kind.DATASEC:
            return T.Datasec(name, size, tuple(T.VarSecinfo(*v)
                                               for v in self.items("III", body, vlen)))
        if kind == Kind.VAR:
            return T.Var(name, size, struct.unpack_from(self.order + "I", self.data, body)[0])
        if kind == Kind.DECL_TAG:
            (idx,) = struct.unpack_from(self.order + "i", self.data, body)
            return T.DeclTag(name, size, idx, kflag)
        return self._simple(kind, name, size, vlen, kflag, where)

    @staticmethod
    def _simple(kind, name, size, vlen, kflag, where):
        """Kinds with no data after the common part."""
        if kind == Kind.FWD:
            return T.Fwd(name, kflag)
        if kind == Kind.FUNC:
            return T.Func(name, size, vlen)
        if kind == Kind.TYPE_TAG:
            return T.TypeTag(name, size, kflag)
        if kind == Kind.FLOAT:
            return T.Float(name, size)
        cls = T.CLASSES.get(kind)
        if cls is None or not cls.REFS:
            raise BtfError(f"{where}: unknown BTF kind {kind}")
        return cls(name, size)  # PTR, TYPEDEF, VOLATILE, CONST, RESTRICT: size is a type id
