"""Encoding a Btf back into raw BTF, in either byte order.

Records are re-encoded from the type objects, in id order. The string section starts
with the parsed one, unchanged, and new names are appended, so a clang-built .BTF that
is parsed and written back comes out byte for byte the same (clang writes no duplicate
strings and lays the header out the same way) and string offsets held elsewhere
(.BTF.ext line info) keep pointing at the same text.
"""
import struct

from . import types as T
from .model import order_of
from .parse import HEADER_SIZE, MAGIC
from .types import BtfError, Kind


def to_bytes(btf, byteorder=None):
    order = order_of(byteorder) if byteorder is not None else btf.order
    strings = btf.strings.copy()
    enc = _Encoder(order, strings)
    records = []
    for type_id in btf.own_ids():
        t = btf.type(type_id)
        try:
            records.append(enc.encode(t))
        except (struct.error, OverflowError) as e:
            raise BtfError(f"type id {type_id} ({t!r}) cannot be encoded: {e}") from None
        except BtfError as e:
            raise BtfError(f"type id {type_id}: {e}") from None
    type_sec = b"".join(records)
    str_sec = strings.section()
    header = struct.pack(order + "HBBIIIII", MAGIC, 1, 0, HEADER_SIZE, 0, len(type_sec),
                         len(type_sec), len(str_sec))
    return header + type_sec + str_sec


class _Encoder:
    def __init__(self, order, strings):
        self.order = order
        self.strings = strings
        self.u32x3 = struct.Struct(order + "III").pack
        self.u32x2 = struct.Struct(order + "II").pack

    def common(self, t, size_or_type, vlen=0, kflag=False):
        if vlen > 0xFFFF:
            raise BtfError(f"{t.KIND.name} has {vlen} members/values; BTF allows 65535")
        info = (int(t.KIND) << 24) | vlen | (1 << 31 if kflag else 0)
        return self.u32x3(self.strings.offset(t.name), info, size_or_type)

    def name(self, name):
        return self.strings.offset(name)

    def encode(self, t):
        kind = t.KIND
        if kind == Kind.INT:
            if t.bits > 128 or t.offset > 255 or t.encoding > 15:
                raise BtfError(f"INT {t.name!r}: bits/offset/encoding out of range")
            return self.common(t, t.size) + struct.pack(
                self.order + "I", t.encoding << 24 | t.offset << 16 | t.bits)
        if kind in (Kind.STRUCT, Kind.UNION):
            return self._composite(t)
        if kind in (Kind.ENUM, Kind.ENUM64):
            return self._enum(t)
        if kind == Kind.ARRAY:
            return self.common(t, 0) + self.u32x3(t.type, t.index_type, t.nelems)
        if kind == Kind.FWD:
            return self.common(t, 0, kflag=t.union)
        if kind == Kind.FUNC:
            return self.common(t, t.type, vlen=t.linkage)
        if kind == Kind.FUNC_PROTO:
            return self.common(t, t.type, vlen=len(t.params)) + b"".join(
                self.u32x2(self.name(p.name), p.type) for p in t.params)
        if kind == Kind.VAR:
            return self.common(t, t.type) + struct.pack(self.order + "I", t.linkage)
        if kind == Kind.DATASEC:
            return self.common(t, t.size, vlen=len(t.vars)) + b"".join(
                self.u32x3(v.type, v.offset, v.size) for v in t.vars)
        if kind == Kind.FLOAT:
            return self.common(t, t.size)
        if kind == Kind.DECL_TAG:
            return (self.common(t, t.type, kflag=t.kflag)
                    + struct.pack(self.order + "i", t.component_idx))
        if kind == Kind.TYPE_TAG:
            return self.common(t, t.type, kflag=t.kflag)
        if isinstance(t, (T.Ptr, T.Typedef, T.Volatile, T.Const, T.Restrict)):
            return self.common(t, t.type)
        raise BtfError(f"{t!r} is not a BTF type that can be written")

    def _composite(self, t):
        kflag = any(m.bitfield_size for m in t.members)
        out = [self.common(t, t.size, vlen=len(t.members), kflag=kflag)]
        for m in t.members:
            if kflag:
                if m.bit_offset >= 1 << 24 or not 0 <= m.bitfield_size < 256:
                    raise BtfError(f"member {m.name!r}: with bitfields in the struct, a "
                                   f"bit offset must be < 2**24 and a bitfield < 256 bits")
                offset = m.bitfield_size << 24 | m.bit_offset
            else:
                offset = m.bit_offset
            out.append(self.u32x3(self.name(m.name), m.type, offset))
        return b"".join(out)

    def _enum(self, t):
        is64 = t.KIND == Kind.ENUM64
        bits = 64 if is64 else 32
        out = [self.common(t, t.size, vlen=len(t.values), kflag=t.signed)]
        for v in t.values:
            if not -(1 << (bits - 1)) <= v.value < 1 << bits:
                raise BtfError(f"enumerator {v.name!r} = {v.value} does not fit in "
                               f"{bits} bits" + ("" if is64 else "; use Enum64"))
            raw = v.value & ((1 << bits) - 1)
            if is64:
                out.append(self.u32x3(self.name(v.name), raw & 0xFFFFFFFF, raw >> 32))
            else:
                out.append(self.u32x2(self.name(v.name), raw))
        return b"".join(out)
