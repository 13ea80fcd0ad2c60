"""pybpf.codec without a kernel: every spec kind round-trips, every size is checked,
and nothing is silently converted into the wrong bytes (a wrong key is a wrong entry).
"""
import ctypes
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pybpf.codec import Codec, PerCpuCodec, make_codec


class Pair(ctypes.Structure):
    _fields_ = [("a", ctypes.c_uint32), ("b", ctypes.c_uint8)]  # 5 bytes + 3 padding


class BigEndianPort(ctypes.BigEndianStructure):
    _fields_ = [("port", ctypes.c_uint16)]


class Either(ctypes.Union):
    _fields_ = [("u", ctypes.c_uint32), ("f", ctypes.c_float)]


# ---- struct formats ----------------------------------------------------------------

def test_single_field_format_is_a_scalar():
    c = make_codec("I")
    assert c.size == 4
    assert c.encode(7) == struct.pack("I", 7)
    assert c.decode(struct.pack("I", 7)) == 7


def test_multi_field_format_is_a_tuple():
    c = make_codec("<IH")
    assert c.size == 6
    assert c.encode((1, 2)) == b"\x01\x00\x00\x00\x02\x00"
    assert c.decode(b"\x01\x00\x00\x00\x02\x00") == (1, 2)
    assert c.encode([1, 2]) == c.encode((1, 2))


def test_format_alignment_rules_apply():
    assert make_codec("IQ").size == 16  # native alignment pads the I
    assert make_codec("=IQ").size == 12


@given(st.integers(0, 2**64 - 1))
def test_u64_roundtrip(v):
    c = make_codec("Q")
    assert c.decode(c.encode(v)) == v


@pytest.mark.parametrize("fmt, value", [("I", -1), ("I", 2**32), ("B", 256), ("<IH", 5),
                                        ("<IH", (1, 2, 3)), ("I", "7"), ("I", 1.5)])
def test_unencodable_values_are_value_errors_naming_the_format(fmt, value):
    with pytest.raises(ValueError, match=f"struct format '{fmt}'"):
        make_codec(fmt).encode(value, "key")


def test_bad_format_is_value_error():
    with pytest.raises(ValueError, match="bad struct format 'Z'"):
        make_codec("Z", what="key")


# ---- ctypes ----------------------------------------------------------------------

@pytest.mark.parametrize("ctype, value", [
    (ctypes.c_uint8, 255), (ctypes.c_int8, -128), (ctypes.c_uint16, 65535),
    (ctypes.c_int32, -(2**31)), (ctypes.c_uint64, 2**64 - 1), (ctypes.c_int64, -1),
    (ctypes.c_double, 0.5), (ctypes.c_bool, True), (ctypes.c_char, b"x")])
def test_ctypes_scalars_roundtrip_to_python_values(ctype, value):
    c = make_codec(ctype)
    assert c.size == ctypes.sizeof(ctype)
    data = c.encode(value)
    assert data == bytes(ctype(value))
    assert c.decode(data) == value
    assert c.encode(ctype(value)) == data  # an instance works too


@pytest.mark.parametrize("ctype, value", [
    (ctypes.c_uint8, 256), (ctypes.c_uint8, -1), (ctypes.c_int8, 128),
    (ctypes.c_uint32, 2**32), (ctypes.c_uint64, 2**64), (ctypes.c_int16, -(2**15) - 1)])
def test_ctypes_scalars_refuse_values_they_would_wrap(ctype, value):
    with pytest.raises(ValueError, match="does not fit"):
        make_codec(ctype).encode(value)


def test_ctypes_structure_keeps_its_padding_and_decodes_to_instances():
    c = make_codec(Pair)
    assert c.size == ctypes.sizeof(Pair) == 8
    data = c.encode(Pair(0x01020304, 9))
    assert data == bytes(Pair(0x01020304, 9))
    got = c.decode(data)
    assert isinstance(got, Pair) and (got.a, got.b) == (0x01020304, 9)


def test_ctypes_structure_needs_an_instance():
    with pytest.raises(ValueError, match="Pair"):
        make_codec(Pair).encode((1, 2))


@pytest.mark.parametrize("ctype, value", [
    (BigEndianPort, BigEndianPort(0x1234)), (Either, Either(u=0x3F800000)),
    (ctypes.c_uint8 * 3, (ctypes.c_uint8 * 3)(1, 2, 3))])
def test_other_ctypes_kinds(ctype, value):
    c = make_codec(ctype)
    assert c.size == ctypes.sizeof(ctype)
    assert bytes(c.decode(c.encode(value))) == bytes(value)


def test_big_endian_structure_bytes():
    assert make_codec(BigEndianPort).encode(BigEndianPort(0x1234)) == b"\x12\x34"


# ---- raw bytes and sizes ---------------------------------------------------------

def test_raw_codec_passes_bytes_likes_through():
    c = make_codec(None, 3)
    for value in (b"abc", bytearray(b"abc"), memoryview(b"abc")):
        assert c.encode(value) == b"abc"
    assert c.decode(b"abc") == b"abc"
    assert make_codec(3).encode(b"xyz") == b"xyz"


@pytest.mark.parametrize("value", [4, 3, [1, 2, 3], "abc"])
def test_raw_codec_refuses_python_values(value):
    """bytes(3) would be three zero bytes: an int must not become a key silently."""
    with pytest.raises(ValueError, match="raw bytes"):
        make_codec(None, 3).encode(value, "key")


@pytest.mark.parametrize("spec", ["I", ctypes.c_uint32, None, 4])
@pytest.mark.parametrize("data", [b"", b"\x00" * 3, b"\x00" * 5])
def test_wrong_size_bytes_refused_for_every_spec(spec, data):
    with pytest.raises(ValueError, match="must be 4 bytes") as exc:
        make_codec(spec, 4).encode(data, "key")
    assert f"got {len(data)} bytes" in str(exc.value)


def test_spec_must_match_the_maps_size():
    with pytest.raises(ValueError, match="8 bytes but the map's key size is 4"):
        make_codec("Q", 4, "key")
    with pytest.raises(ValueError, match="is 8 bytes"):
        make_codec(Pair, 5)


def test_unsupported_specs():
    with pytest.raises(ValueError, match="give a size or a type"):
        make_codec(None)
    with pytest.raises(ValueError, match="negative"):
        make_codec(-1)
    for bad in (True, 1.5, object(), int, [4]):
        with pytest.raises(TypeError):
            make_codec(bad)


def test_a_codec_is_reused_as_is():
    c = make_codec("I")
    assert make_codec(c) is c
    assert "struct format 'I'" in repr(c) and "size=4" in repr(c)


# ---- per-CPU values --------------------------------------------------------------

def test_percpu_values_are_padded_to_8_bytes_per_cpu():
    c = PerCpuCodec(make_codec("H"), 3)
    assert (c.stride, c.size) == (8, 24)
    data = c.encode([1, 2, 3])
    assert data == b"".join(struct.pack("H", v) + bytes(6) for v in (1, 2, 3))
    assert c.decode(data) == [1, 2, 3]


def test_percpu_exact_multiple_of_8_has_no_padding():
    c = PerCpuCodec(make_codec(Pair), 2)
    assert (c.stride, c.size) == (8, 16)
    got = c.decode(c.encode([Pair(1, 2), Pair(3, 4)]))
    assert [(p.a, p.b) for p in got] == [(1, 2), (3, 4)]


@pytest.mark.parametrize("value", [[1, 2], [1, 2, 3, 4], 5, "abc", None])
def test_percpu_needs_one_value_per_cpu(value):
    with pytest.raises(ValueError, match="sequence of 3 values"):
        PerCpuCodec(make_codec("I"), 3).encode(value)


def test_percpu_inner_values_are_checked():
    with pytest.raises(ValueError, match="struct format 'B'"):
        PerCpuCodec(make_codec("B"), 2).encode([1, 256])


def test_percpu_accepts_the_kernels_raw_layout():
    c = PerCpuCodec(make_codec("I"), 2)
    raw = struct.pack("I4xI4x", 5, 6)
    assert c.encode(raw) == raw and c.decode(raw) == [5, 6]


def test_a_custom_codec_is_size_checked_too():
    c = Codec(2, None, lambda v: v.to_bytes(v.bit_length() // 8 + 1, "little"), bytes)
    assert c.encode(513) == b"\x01\x02"
    with pytest.raises(ValueError, match="must be 2 bytes"):
        c.encode(70000)  # encodes to 3 bytes: refused before it reaches a map


@pytest.mark.parametrize("spec", ["I", "=I", "<I", ">I", "!H", "=L", "@Q", "q", "IH", 6,
                                  ctypes.c_uint16])
def test_decode_many_matches_decoding_one_by_one(spec):
    """Batches decode a whole buffer at once (memoryview.cast or iter_unpack where the
    format allows); the result must be what decoding each element gives."""
    c = make_codec(spec)
    values = [c.decode(bytes([i] * c.size)) for i in range(1, 6)]
    raw = b"".join(c.encode(v) for v in values) + bytes(c.size)  # a trailing spare slot
    assert c.decode_many(raw, 5) == values
