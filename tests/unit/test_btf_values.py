"""pybpf.btf.values: bytes through BTF as Python values and back.

Types come from C declarations (pybpf.btf.cdecl, whose layouts test_cdecl.py holds
to gcc's), so each case reads as the C it decodes.
"""
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pybpf.btf import Btf
from pybpf.btf import types as T
from pybpf.btf.cdecl import parse_header
from pybpf.btf.values import decode, encode, parse_text, raw
from pybpf.errors import InputError

HEADER = """
enum color { RED, GREEN = 7, BLUE = -1 };
struct inner { __u16 a; __s8 b; };
struct rec {
    __u32 pid;
    __s64 delta;
    enum color color;
    char comm[16];
    __u8 addr[4];
    struct inner pair[2];
    unsigned int flag : 1;
    int small : 4;
    unsigned int : 3;
    __u64 big : 40;
    union { __u32 word; __u8 bytes[4]; };
    bool ok;
    double ratio;
    const char *ptr;
};
"""
BTF = parse_header(HEADER)
REC = BTF.find_one("rec", "struct")


def _ints(bits, signed):
    return st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else \
        st.integers(0, (1 << bits) - 1)


TEXT = st.text(st.characters(min_codepoint=1, max_codepoint=0x10FFFF,
                             blacklist_categories=("Cs",)), max_size=5).filter(
    lambda s: len(s.encode()) <= 15)
RECORDS = st.fixed_dictionaries({
    "pid": _ints(32, False), "delta": _ints(64, True),
    "color": st.sampled_from(["RED", "GREEN", "BLUE"]), "comm": TEXT,
    "addr": st.lists(_ints(8, False), min_size=4, max_size=4),
    "pair": st.lists(st.fixed_dictionaries({"a": _ints(16, False), "b": _ints(8, True)}),
                     min_size=2, max_size=2),
    "flag": _ints(1, False), "small": _ints(4, True), "big": _ints(40, False),
    "word": _ints(32, False), "ok": st.booleans(),
    "ratio": st.floats(allow_nan=False, width=64), "ptr": _ints(64, False),
})


@settings(max_examples=200, deadline=None)
@given(RECORDS)
def test_round_trip(record):
    data = encode(BTF, REC, record)
    assert len(data) == BTF.size_of(REC)
    back = decode(BTF, REC, data)
    expected = dict(record, bytes=list(struct.pack("<I", record["word"])))
    assert back == expected
    assert encode(BTF, REC, back) == data  # the union's two views agree


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=80, max_size=80))
def test_any_bytes_decode_and_bitfields_write_back(data):
    back = decode(BTF, REC, data)
    assert list(back) == ["pid", "delta", "color", "comm", "addr", "pair", "flag", "small",
                          "big", "word", "bytes", "ok", "ratio", "ptr"]
    redone = bytearray(encode(BTF, REC, {k: back[k] for k in ("flag", "small", "big")}))
    again = decode(BTF, REC, bytes(redone))
    assert (again["flag"], again["small"], again["big"]) == \
        (back["flag"], back["small"], back["big"])


def test_decoding_reads_as_c_does():
    data = bytearray(BTF.size_of(REC))
    data[0:4] = (4321).to_bytes(4, "little")
    data[16:20] = (0xFFFFFFFF).to_bytes(4, "little")   # BLUE = -1, an unsigned enum word
    data[20:31] = b"cat\0garbage"
    out = decode(BTF, REC, bytes(data))
    assert out["pid"] == 4321 and out["color"] == "BLUE" and out["comm"] == "cat"
    assert out["addr"] == [0, 0, 0, 0]        # __u8[]: numbers, not text
    assert "" not in out and "word" in out    # padding bitfield hidden, union merged
    data[16:20] = (99).to_bytes(4, "little")
    assert decode(BTF, REC, bytes(data))["color"] == 99  # no name: the number
    data[20:24] = b"\xff\xfeok"
    assert decode(BTF, REC, bytes(data))["comm"].startswith("\\xff\\xfe")


def test_short_data_partial_extra_bytes_and_vars():
    size = BTF.size_of(REC)
    with pytest.raises(InputError, match=f"10 bytes cannot hold struct rec \\({size}"):
        decode(BTF, REC, bytes(10))
    assert decode(BTF, REC, b"\x05" + bytes(3), partial=True)["pid"] == 5
    assert decode(BTF, REC, bytes(size + 8))["pid"] == 0
    btf = parse_header("struct s { int a; };")
    var = btf.add(T.Var("v", btf.find_one("s", "struct")))
    assert decode(btf, var, b"\x01\0\0\0") == {"a": 1}
    assert encode(btf, var, {"a": 2}) == b"\x02\0\0\0"


def test_big_endian_ints_and_bitfields():
    btf = Btf(byteorder="big")
    u32 = btf.add(T.Int("unsigned int", 4, 0, 0, 32))
    s = btf.add(T.Struct("s", 4, (T.Member("hi", u32, 0, 4), T.Member("lo", u32, 28, 4))))
    assert encode(btf, s, {"hi": 0xA, "lo": 0x5}) == b"\xa0\x00\x00\x05"
    assert decode(btf, s, b"\xa0\x00\x00\x05") == {"hi": 0xA, "lo": 0x5}
    assert decode(btf, u32, b"\x00\x00\x01\x00") == 256


@pytest.mark.parametrize("value,message", [
    ({"nope": 1}, "struct rec has no member 'nope'"),
    ({"pid": 1 << 32}, "does not fit"),
    ({"small": 8}, "does not fit member 'small' of struct rec \\(4 bits, signed\\)"),
    ({"color": "PURPLE"}, "'PURPLE' is not a value of enum color"),
    ({"comm": "x" * 17}, "holds 16"),
    ({"addr": [1, 2, 3, 4, 5]}, "at most 4 items"),
    ({"pid": "twelve"}, "takes an integer"),
    ({"ratio": "fast"}, "takes a number"),
    ([1], "takes a dict of its members"),
    (b"\0", "is 80 bytes, got 1"),
])
def test_encode_says_what_does_not_fit(value, message):
    with pytest.raises(InputError, match=message):
        encode(BTF, REC, value)


def test_parse_text_follows_the_type():
    btf = parse_header("typedef struct { int a; } pair_t;\n"
                       "struct g { bool on; __u32 n; enum color2 { X, Y } c; char s[8]; "
                       "__u16 arr[2]; pair_t p; float f; };")
    g = btf.find_one("g", "struct")

    def member_type(name):
        return btf.member(g, name).type
    assert parse_text(btf, member_type("on"), "true") is True
    assert parse_text(btf, member_type("on"), "0") is False
    assert parse_text(btf, member_type("n"), "0x10") == 16
    assert parse_text(btf, member_type("c"), "Y") == "Y"
    assert parse_text(btf, member_type("c"), "1") == 1
    assert parse_text(btf, member_type("s"), "  spaced") == "  spaced"
    assert parse_text(btf, member_type("arr"), "[1, 2]") == [1, 2]
    assert parse_text(btf, member_type("p"), '{"a": 3}') == {"a": 3}
    assert parse_text(btf, member_type("f"), "1.5") == 1.5
    for name, text, message in [("on", "maybe", "true or false"), ("n", "x", "integer"),
                                ("arr", "[1,", "takes JSON")]:
        with pytest.raises(InputError, match=message):
            parse_text(btf, member_type(name), text)


def test_raw_shows_printable_runs():
    out = raw(b"\x01\x02/etc/passwd\0\xffab\0cat1")
    assert out["size"] == 22 and out["hex"].startswith("0102")
    assert out["text"] == ["/etc/passwd", "cat1"]  # runs of 4+ printable bytes
