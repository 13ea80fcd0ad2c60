"""Bytes read from the kernel (map keys and values, globals, ring buffer records) as
Python values, through the BTF type that describes them, and back.

One decoder for every place pybpf shows data, so a map dump, a global and an event
read the same way:

- integers as ints (bitfields extracted; ``bool`` as True/False), enums by the name
  of their value (the number when no name matches), floats as floats;
- char arrays as str, up to the first NUL (bytes that are not UTF-8 escaped), other
  arrays as lists;
- structs as dicts in member order (anonymous struct/union members merged in, as C
  names them), unions as a dict of every member over the same bytes;
- pointers as ints; what has no layout (void, functions) as :func:`raw`.

Without a type, :func:`raw` shows the length, the hex and the printable runs, so a
file name inside a record is still readable.
"""
import re
import struct

from ..errors import InputError
from . import types as T

MAX_DEPTH = 32              # nested structs/arrays; a loop in BTF must not recurse forever
MIN_TEXT_RUN = 4            # printable bytes in a row that raw() shows as text
_PRINTABLE = re.compile(rb"[\x20-\x7e]{%d,}" % MIN_TEXT_RUN)


def raw(data):
    """An untyped record: {"size", "hex", "text": [printable runs]}."""
    data = bytes(data)
    return {"size": len(data), "hex": data.hex(),
            "text": [m.group().decode("ascii") for m in _PRINTABLE.finditer(data)]}


def _order(btf):
    return btf.byteorder


def _is_char(btf, type_id):
    """Is type_id C's plain ``char``? Only arrays of it read as text: ``__u8 addr[16]``
    (unsigned char through a typedef) is bytes, shown as numbers."""
    t = btf.type(btf.resolve(type_id))
    return isinstance(t, T.Int) and t.size == 1 and (
        bool(t.encoding & T.INT_CHAR) or t.name == "char")


def _text(data):
    return bytes(data).split(b"\0", 1)[0].decode("utf-8", "backslashreplace")


def decode(btf, type_id, data, partial=False):
    """The Python value of data as BTF type type_id (a VAR's id decodes its type; see
    the module docstring). Bytes past the type's size are ignored. Data shorter than
    the type is an InputError, unless partial: then the missing tail reads as zeros
    (an event whose program sends only the used part of a struct, as execsnoop
    does with its argument buffer)."""
    type_id = _through_var(btf, type_id)
    size = btf.size_of(type_id) if _has_size(btf, type_id) else len(data)
    data = bytes(data[:size])
    if len(data) < size:
        if not partial:
            raise InputError(f"{len(data)} bytes cannot hold {btf.type_name(type_id)} "
                             f"({size} bytes)")
        data = data.ljust(size, b"\0")
    return _decode(btf, type_id, memoryview(data), 0)


def _through_var(btf, type_id):
    t = btf.type(type_id)
    return t.type if isinstance(t, T.Var) else type_id


def _has_size(btf, type_id):
    t = btf.type(btf.resolve(type_id))
    return not isinstance(t, (T.Void, T.Fwd, T.Func, T.FuncProto))


def _decode(btf, type_id, data, depth):
    if depth > MAX_DEPTH:
        raise InputError(f"type {btf.type_name(type_id)} nests deeper than {MAX_DEPTH}")
    t = btf.type(btf.resolve(_through_var(btf, type_id)))
    order = _order(btf)
    if isinstance(t, T.Int):
        v = _int(data[:t.size], order, t.signed, t.offset, t.bits)
        return bool(v) if t.encoding & T.INT_BOOL else v
    if isinstance(t, (T.Enum, T.Enum64)):
        v = int.from_bytes(data[:t.size], order, signed=t.signed)
        for ev in t.values:
            if ev.value == v or (not t.signed and ev.value & ((1 << 8 * t.size) - 1) == v):
                return ev.name
        return v
    if isinstance(t, T.Ptr):
        return int.from_bytes(data[:btf.pointer_size], order)
    if isinstance(t, T.Float):
        fmt = {4: "f", 8: "d"}.get(t.size)
        return struct.unpack(("<" if order == "little" else ">") + fmt, data[:t.size])[0] \
            if fmt else raw(data[:t.size])
    if isinstance(t, T.Array):
        if _is_char(btf, t.type):
            return _text(data[:t.nelems])
        step = btf.size_of(t.type)
        return [_decode(btf, t.type, data[i * step:(i + 1) * step], depth + 1)
                for i in range(t.nelems)]
    if isinstance(t, T.COMPOSITES):
        out = {}
        for m in t.members:
            if not m.name and not isinstance(btf.type(btf.resolve(m.type)), T.COMPOSITES):
                continue  # padding (``int :3``): C cannot name it, so neither do we
            value = _member(btf, m, data, depth)
            if not m.name and isinstance(value, dict):
                out.update(value)          # an anonymous struct/union: C names its members
            else:
                out[m.name] = value
        return out
    return raw(data)


def _member(btf, m, data, depth):
    if m.bitfield_size:
        mt = btf.type(btf.resolve(m.type))
        signed = getattr(mt, "signed", False)
        first, last = m.bit_offset // 8, (m.bit_offset + m.bitfield_size + 7) // 8
        return _int(data[first:last], _order(btf), signed, m.bit_offset % 8,
                    m.bitfield_size, reverse_bits=_order(btf) == "big")
    start = m.bit_offset // 8
    return _decode(btf, m.type, data[start:start + btf.size_of(m.type)], depth + 1)


def _int(data, order, signed, bit_offset, bits, reverse_bits=False):
    """An integer of `bits` bits at `bit_offset` of data (little endian: counted from
    the least significant bit; big endian: from the most significant)."""
    word = int.from_bytes(data, order)
    total = 8 * len(data)
    if bits in (0, total) and bit_offset == 0:
        return int.from_bytes(data, order, signed=signed)
    shift = total - bit_offset - bits if reverse_bits else bit_offset
    v = (word >> shift) & ((1 << bits) - 1)
    if signed and v >> (bits - 1):
        v -= 1 << bits
    return v


def encode(btf, type_id, value):
    """Bytes of type_id holding value: an int (or, for an enum, a value's name), a str
    for a char array (NUL-padded; too long is an error), a list for an array, a dict
    for a struct (missing members are zero). Bytes of exactly the type's size pass
    through. InputError names what does not fit."""
    type_id = _through_var(btf, type_id)
    size = btf.size_of(type_id)
    if isinstance(value, (bytes, bytearray)):
        if len(value) != size:
            raise InputError(f"{btf.type_name(type_id)} is {size} bytes, got {len(value)}")
        return bytes(value)
    out = bytearray(size)
    _encode(btf, type_id, value, out, 0, 0)
    return bytes(out)


def _encode(btf, type_id, value, out, at, depth):
    if depth > MAX_DEPTH:
        raise InputError(f"type {btf.type_name(type_id)} nests deeper than {MAX_DEPTH}")
    t = btf.type(btf.resolve(type_id))
    name = btf.type_name(type_id)
    order = _order(btf)
    if isinstance(t, (T.Enum, T.Enum64)) and isinstance(value, str):
        names = {ev.name: ev.value for ev in t.values}
        if value not in names:
            raise InputError(f"{value!r} is not a value of {name} (has: "
                             f"{', '.join(names)})")
        value = names[value]
    if isinstance(t, (T.Int, T.Enum, T.Enum64, T.Ptr)):
        width = btf.pointer_size if isinstance(t, T.Ptr) else t.size
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str):
                try:
                    value = int(value, 0)
                except ValueError:
                    raise InputError(f"{name} takes an integer, got {value!r}") from None
            elif isinstance(value, bool):
                value = int(value)
            else:
                raise InputError(f"{name} takes an integer, got {value!r}")
        signed = getattr(t, "signed", False) or value < 0
        try:
            out[at:at + width] = value.to_bytes(width, order, signed=signed)
        except OverflowError:
            raise InputError(f"{value} does not fit {name} ({width} bytes)") from None
        return
    if isinstance(t, T.Array):
        if _is_char(btf, t.type) and isinstance(value, str):
            data = value.encode()
            if len(data) > t.nelems:
                raise InputError(f"{value!r} is {len(data)} bytes; {name} holds "
                                 f"{t.nelems}")
            out[at:at + len(data)] = data
            return
        if not isinstance(value, (list, tuple)) or len(value) > t.nelems:
            raise InputError(f"{name} takes a list of at most {t.nelems} items, got "
                             f"{value!r}")
        step = btf.size_of(t.type)
        for i, item in enumerate(value):
            _encode(btf, t.type, item, out, at + i * step, depth + 1)
        return
    if isinstance(t, T.COMPOSITES):
        if not isinstance(value, dict):
            raise InputError(f"{name} takes a dict of its members, got {value!r}")
        members = {m.name: m for m in btf.walk_members(type_id)}
        unknown = set(value) - set(members)
        if unknown:
            raise InputError(f"{name} has no member {sorted(unknown)[0]!r} (has: "
                             f"{', '.join(members)})")
        for key, item in value.items():
            m = members[key]
            if m.bitfield_size:
                _encode_bits(btf, m, item, out, at, f"member {key!r} of {name}")
            else:
                _encode(btf, m.type, item, out, at + m.bit_offset // 8, depth + 1)
        return
    if isinstance(t, T.Float) and t.size in (4, 8):
        fmt = ("<" if order == "little" else ">") + {4: "f", 8: "d"}[t.size]
        try:
            out[at:at + t.size] = struct.pack(fmt, float(value))
        except (TypeError, ValueError):
            raise InputError(f"{name} takes a number, got {value!r}") from None
        return
    raise InputError(f"{name} has no value pybpf can write; give its bytes")


def _encode_bits(btf, m, value, out, at, what):
    """Write value into bitfield member m of the struct at out[at:], keeping the
    other bits of the bytes it shares (the reverse of _member's extraction)."""
    if isinstance(value, str):
        value = _integer(value, what)
    elif isinstance(value, bool) or not isinstance(value, int):
        if not isinstance(value, bool):
            raise InputError(f"{what} takes an integer, got {value!r}")
        value = int(value)
    bits = m.bitfield_size
    signed = getattr(btf.type(btf.resolve(m.type)), "signed", False)
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not low <= value <= high:
        raise InputError(f"{value} does not fit {what} ({bits} bits, "
                         f"{'signed' if signed else 'unsigned'})")
    first, last = m.bit_offset // 8, (m.bit_offset + bits + 7) // 8
    order = _order(btf)
    span = out[at + first:at + last]
    total = 8 * len(span)
    shift = total - m.bit_offset % 8 - bits if order == "big" else m.bit_offset % 8
    mask = ((1 << bits) - 1) << shift
    word = (int.from_bytes(span, order) & ~mask) | ((value << shift) & mask)
    out[at + first:at + last] = word.to_bytes(len(span), order)


def _integer(text, what):
    try:
        return int(text, 0)
    except ValueError:
        raise InputError(f"{what} takes an integer, got {text!r}") from None


_TRUE, _FALSE = ("1", "true", "yes", "y", "on"), ("0", "false", "no", "n", "off")


def parse_text(btf, type_id, text):
    """A command line's text (``--set NAME=TEXT``) as the value :func:`encode` takes
    for type_id: bools from true/false/1/0, integers in any base Python reads, enums
    by name or number, char arrays from the string itself, other arrays and structs
    from JSON (``[1, 2]``, ``{"a": 1}``). InputError says what the type wants."""
    type_id = _through_var(btf, type_id)
    t = btf.type(btf.resolve(type_id))
    name = btf.type_name(type_id)
    if isinstance(t, T.Int) and t.encoding & T.INT_BOOL:
        word = text.strip().lower()
        if word not in _TRUE + _FALSE:
            raise InputError(f"{name} takes true or false, got {text!r}")
        return word in _TRUE
    if isinstance(t, (T.Int, T.Ptr)):
        return _integer(text.strip(), name)
    if isinstance(t, (T.Enum, T.Enum64)):
        word = text.strip()
        return word if any(ev.name == word for ev in t.values) else _integer(word, name)
    if isinstance(t, T.Float):
        try:
            return float(text)
        except ValueError:
            raise InputError(f"{name} takes a number, got {text!r}") from None
    if isinstance(t, T.Array) and _is_char(btf, t.type):
        return text
    import json
    try:
        return json.loads(text)
    except ValueError:
        raise InputError(f"{name} takes JSON here (a list for an array, an object for "
                         f"a struct), got {text!r}") from None
