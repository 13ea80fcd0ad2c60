"""Turning Python keys and values into the bytes a map stores, and back.

A map's key and value are fixed-size byte strings to the kernel. A *spec* says how
Python sees them:

- ``None`` or an int: raw bytes (of the map's size, or that many bytes);
- a :mod:`struct` format such as ``"I"`` or ``"<IQ"``: one field decodes to a scalar,
  several to a tuple (the format's own alignment rules apply: use a ctypes Structure
  to mirror a C struct with trailing padding);
- a ctypes type: scalars (``c_uint32``) decode to Python numbers, structures and
  arrays to ctypes instances.

Every codec also accepts bytes-like input of exactly the right size, and every size
is checked here, before any pointer reaches the kernel.
"""
import ctypes
import struct
import sys

from .errors import InputError, UnsupportedError

# The public bases of every ctypes data type (ctypes._CData, their common base, is not
# importable before Python 3.12). Endian-specific structures subclass Structure.
_CTYPES_BASES = (ctypes._SimpleCData, ctypes.Structure, ctypes.Union, ctypes.Array)


class Codec:
    """Encodes to and decodes from exactly ``size`` bytes."""

    def __init__(self, size, spec, encode, decode, decode_many=None):
        self.size, self.spec = size, spec
        self._encode, self.decode = encode, decode
        self._decode_many = decode_many

    def decode_many(self, data, count):
        """The first count values packed back to back in data (a batch's buffer).

        Struct codecs unpack the whole run in C (struct.iter_unpack); a Python call per
        element would cost more than the batch syscall saves."""
        if self._decode_many is not None:
            return self._decode_many(data[:count * self.size])
        n, dec = self.size, self.decode
        return [dec(bytes(data[i:i + n])) for i in range(0, count * n, n)]

    def encode(self, value, what="value"):
        if isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
        else:
            try:
                data = self._encode(value)
            except (struct.error, TypeError, ValueError, OverflowError) as e:
                raise InputError(f"cannot encode {what} {value!r} as {self._name()}: {e}") from None
        if len(data) != self.size:
            raise InputError(f"{what} must be {self.size} bytes ({self._name()}), "
                             f"got {len(data)} bytes")
        return data

    def _name(self):
        if isinstance(self.spec, str):
            return f"struct format {self.spec!r}"
        if isinstance(self.spec, type):
            return self.spec.__name__
        return "raw bytes"

    def __repr__(self):
        return f"Codec({self._name()}, size={self.size})"


def _raw(size):
    return Codec(size, None, _refuse_non_bytes, bytes)


def _refuse_non_bytes(value):
    """Raw keys and values take only bytes-likes (Codec.encode passes those through):
    bytes(4) would silently turn the int 4 into four zero bytes."""
    raise UnsupportedError("raw bytes expected; give the map a key/value type (a struct format "
                           "or ctypes type) to store Python values")


# Single-character native formats that memoryview.cast understands.
_CASTABLE = set("bBhHiIlLqQfd")


def _struct_codec(fmt):
    s = struct.Struct(fmt)
    if len(s.unpack(bytes(s.size))) == 1:
        prefix, code = (fmt[0], fmt[1:]) if fmt[:1] in "@=<>!" else ("@", fmt)
        order = {"<": "little", ">": "big", "!": "big"}.get(prefix, sys.byteorder)
        if code in _CASTABLE and order == sys.byteorder and struct.calcsize(code) == s.size:
            # One native scalar: memoryview.cast reads the whole run at C speed.
            many = lambda b: memoryview(b).cast(code).tolist()  # noqa: E731
        else:
            many = lambda b: [v for (v,) in s.iter_unpack(b)]  # noqa: E731
        return Codec(s.size, fmt, s.pack, lambda b: s.unpack(b)[0], many)
    return Codec(s.size, fmt, lambda v: s.pack(*v), s.unpack,
                 lambda b: list(s.iter_unpack(b)))


def _ctypes_codec(ctype):
    size = ctypes.sizeof(ctype)
    if issubclass(ctype, ctypes._SimpleCData):
        def encode(v):
            if isinstance(v, ctype):
                return bytes(v)
            c = ctype(v)
            if type(c.value) is int and c.value != v:  # ctypes wraps ints silently
                raise InputError(f"{v} does not fit in {ctype.__name__}")
            return bytes(c)
        return Codec(size, ctype, encode, lambda b: ctype.from_buffer_copy(b).value)

    def encode(v):
        if not isinstance(v, ctype):
            raise UnsupportedError(f"expected a {ctype.__name__} instance or bytes")
        return bytes(v)
    return Codec(size, ctype, encode, ctype.from_buffer_copy)


def make_codec(spec, size=None, what="value"):
    """Build a codec from spec; size, when given, is what the map requires."""
    if spec is None:
        if size is None:
            raise InputError(f"{what}: give a size or a type (a struct format or ctypes type)")
        codec = _raw(size)
    elif isinstance(spec, Codec):
        codec = spec
    elif isinstance(spec, bool):
        raise UnsupportedError(f"{what}: {spec!r} is not a size, struct format or ctypes type")
    elif isinstance(spec, int):
        if spec < 0:
            raise InputError(f"{what} size must not be negative, got {spec}")
        codec = _raw(spec)
    elif isinstance(spec, str):
        try:
            codec = _struct_codec(spec)
        except struct.error as e:
            raise InputError(f"{what}: bad struct format {spec!r}: {e}") from None
    elif isinstance(spec, type) and issubclass(spec, _CTYPES_BASES):
        codec = _ctypes_codec(spec)
    else:
        raise UnsupportedError(f"{what}: {spec!r} is not a size, struct format or ctypes type")
    if size is not None and codec.size != size:
        raise InputError(f"{what} type {codec._name()} is {codec.size} bytes but the map's "
                         f"{what} size is {size} bytes")
    return codec


class PerCpuCodec(Codec):
    """Values of per-CPU maps: one slot per possible CPU, each padded to 8 bytes."""

    def __init__(self, inner, ncpus):
        self.inner, self.ncpus = inner, ncpus
        self.stride = (inner.size + 7) & ~7
        pad = bytes(self.stride - inner.size)

        def encode(values):
            if (isinstance(values, (str, bytes)) or not hasattr(values, "__len__")
                    or len(values) != ncpus):
                raise InputError(f"a per-CPU value is a sequence of {ncpus} values "
                                 f"(one per possible CPU)")
            return b"".join(inner.encode(v) + pad for v in values)

        def decode(data):
            st, n = self.stride, inner.size
            return [inner.decode(data[i:i + n]) for i in range(0, st * ncpus, st)]
        super().__init__(self.stride * ncpus, inner.spec, encode, decode)
