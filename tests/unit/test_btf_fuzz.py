"""Fuzzing pybpf.btf: malformed BTF and .BTF.ext raise BtfError, and nothing else.

Three sources of bad input: byte-level damage to a valid blob (flipped bytes,
truncation, wild header fields), type tables generated with arbitrary ids and values
(type loops, dangling ids, impossible sizes) written by pybpf itself, and damage to a
.BTF.ext. Every query the object model offers is then run on whatever parses, under a
deadline, so a loop in resolve()/size_of()/member() would show as a hang or a
RecursionError. Bounded to about 20 s in all.
"""
import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf.btf import (
    Array, Btf, BtfError, Const, Datasec, DeclTag, Enum, Enum64, EnumValue, Float, Func,
    FuncProto, Fwd, Int, Member, Param, Ptr, Restrict, Struct, Typedef, TypeTag, Union, Var,
    VarSecinfo, Volatile,
)
from pybpf.btf.ext import BtfExt
from pybpf.btf.sanitize import ALL_FEATURES

# Derandomized so CI is repeatable; PYBPF_FUZZ_EXAMPLES=20000 PYBPF_FUZZ_RANDOM=1
# explores further by hand.
FUZZ = settings(max_examples=int(os.environ.get("PYBPF_FUZZ_EXAMPLES", "600")),
                deadline=2000, derandomize=not os.environ.get("PYBPF_FUZZ_RANDOM"),
                suppress_health_check=[HealthCheck.too_slow], database=None)


def seed_btf():
    """A valid BTF with every kind, in the shape clang writes."""
    b = Btf()
    i = b.add(Int("int", 4, 1, 0, 32))
    s = b.add(Struct("s", 16, (Member("a", i, 0, 3), Member("b", i, 32), Member("", 5, 64))))
    b.add(Typedef("t", s))
    b.add(Array("", i, i, 4))
    b.add(Union("", 8, (Member("x", 6, 0),)))
    b.add(Ptr("", 3))
    p = b.add(FuncProto("", i, (Param("a", i), Param("", 0))))
    f = b.add(Func("f", p, 1))
    v = b.add(Var("v", 8, 1))
    b.add(Datasec(".data", 16, (VarSecinfo(v, 0, 16),)))
    b.add(Enum("e", 4, (EnumValue("A", -1), EnumValue("B", 7)), signed=True))
    b.add(Enum64("e64", 8, (EnumValue("C", 1 << 40),)))
    b.add(Fwd("fw", union=True))
    b.add(Volatile("", 1))
    b.add(Const("", 15))
    b.add(Restrict("", 6))
    b.add(Float("double", 8))
    b.add(DeclTag("tag", f, 0))
    b.add(TypeTag("user", i))
    return b


SEED = seed_btf().to_bytes()


def exercise(btf):
    """Every query on every type; BtfError is an answer, anything else a bug."""
    for type_id in range(len(btf)):
        for query in (btf.type, btf.resolve, btf.size_of, btf.members, btf.type_name):
            try:
                query(type_id)
            except BtfError:
                pass
        try:
            t = btf.type(type_id)
            if t.name:
                assert type_id in btf.find(t.name)
            for m in btf.members(type_id):
                btf.member(type_id, m.name or "x")
        except BtfError:
            pass
    try:
        btf.sanitize(frozenset())
        btf.to_bytes("big")
    except BtfError:
        pass


def parse_and_exercise(data):
    for lazy in (True, False):
        try:
            btf = Btf.from_bytes(data, lazy=lazy)
        except BtfError:
            return
        exercise(btf)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(SEED) - 1), st.integers(0, 255)), max_size=8))
def test_damaged_bytes(changes):
    data = bytearray(SEED)
    for pos, value in changes:
        data[pos] = value
    parse_and_exercise(bytes(data))


@FUZZ
@given(st.integers(0, len(SEED)), st.sampled_from(["<", ">"]))
def test_truncated(length, order):
    data = SEED if order == "<" else Btf.from_bytes(SEED).to_bytes("big")
    parse_and_exercise(data[:length])


@FUZZ
@given(st.lists(st.tuples(st.sampled_from([4, 8, 12, 16, 20]), st.integers(0, 2**32 - 1)),
                min_size=1, max_size=3))
def test_wild_header_fields(fields):
    data = bytearray(SEED)
    for offset, value in fields:
        struct.pack_into("<I", data, offset, value)
    parse_and_exercise(bytes(data))


ids = st.integers(0, 12) | st.integers(-2, 2**33)
small = st.integers(0, 64) | st.integers(-2, 2**33)
names = st.text(alphabet="ab_.\u00e9\0", max_size=4)
members = st.lists(st.builds(Member, names, ids, small, st.integers(0, 300)), max_size=3)
values = st.lists(st.builds(EnumValue, names, st.integers(-2**64, 2**64)), max_size=3)
types = st.one_of(
    st.builds(Int, names, st.sampled_from([0, 1, 3, 4, 8, 16]), st.integers(0, 20),
              st.integers(0, 300), st.integers(0, 300)),
    st.builds(Ptr, names, ids), st.builds(Typedef, names, ids), st.builds(Const, names, ids),
    st.builds(Volatile, names, ids), st.builds(TypeTag, names, ids, st.booleans()),
    st.builds(Array, names, ids, ids, small),
    st.builds(Struct, names, small, members), st.builds(Union, names, small, members),
    st.builds(Enum, names, small, values, st.booleans()),
    st.builds(Enum64, names, small, values, st.booleans()),
    st.builds(Fwd, names, st.booleans()), st.builds(Float, names, small),
    st.builds(Func, names, ids, st.integers(0, 3)),
    st.builds(FuncProto, names, ids, st.lists(st.builds(Param, names, ids), max_size=3)),
    st.builds(Var, names, ids, st.integers(0, 3)),
    st.builds(Datasec, names, small, st.lists(st.builds(VarSecinfo, ids, small, small),
                                              max_size=3)),
    st.builds(DeclTag, names, ids, st.integers(-2, 3), st.booleans()),
)


@FUZZ
@given(st.lists(types, min_size=1, max_size=12))
def test_generated_type_tables(table):
    """Arbitrary tables: written by pybpf, or refused with BtfError; what is written
    parses to what writes back the same bytes (a fixed point after one round)."""
    b = Btf()
    for t in table:
        b.add(t)
    exercise(b)
    try:
        data = b.to_bytes()
    except BtfError:
        return
    try:
        parsed = Btf.from_bytes(data, lazy=False)
    except BtfError:
        return  # e.g. an INT of 3 bytes: written as asked, refused on reading
    exercise(parsed)
    assert Btf.from_bytes(parsed.to_bytes()).to_bytes() == parsed.to_bytes()
    try:
        parsed.sanitize(ALL_FEATURES).to_bytes()
    except BtfError:
        pass


def seed_ext():
    """A .BTF.ext with one section in each subsection, strings from SEED."""
    def sub(rec_size, records):
        return struct.pack("<III", rec_size, 1, len(records)) + b"".join(records)
    funcs = sub(8, [struct.pack("<II", 0, 8)])
    lines = sub(16, [struct.pack("<IIII", 0, 1, 5, 3 << 10 | 2),
                     struct.pack("<IIII", 8, 1, 5, 4 << 10)])
    relos = sub(16, [struct.pack("<IIII", 8, 2, 1, 0)])
    body = funcs + lines + relos
    header = struct.pack("<HBBIIIIIII", 0xEB9F, 1, 0, 32, 0, len(funcs), len(funcs),
                         len(lines), len(funcs) + len(lines), len(relos))
    return header + body


EXT = seed_ext()


def test_seed_ext_parses():
    ext = BtfExt.from_bytes(EXT, Btf.from_bytes(SEED))
    assert [len(x["int"]) for x in (ext.func_info, ext.line_info, ext.core_relos)] == [1, 2, 1]


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(EXT) - 1), st.integers(0, 255)), max_size=6),
       st.integers(0, len(EXT)))
def test_damaged_btf_ext(changes, length):
    data = bytearray(EXT)
    for pos, value in changes:
        data[pos] = value
    try:
        BtfExt.from_bytes(bytes(data[:length]), Btf.from_bytes(SEED))
    except BtfError:
        pass


@pytest.mark.parametrize("data", [b"", b"\x9f", b"\x9f\xeb\x01", b"\x00" * 24, SEED[:23]])
def test_short_inputs(data):
    with pytest.raises(BtfError):
        Btf.from_bytes(data)
    with pytest.raises(BtfError):
        BtfExt.from_bytes(data, Btf.from_bytes(SEED))


def blob(records, strings=b"\0int\0"):
    body = b"".join(struct.pack("<%dI" % len(r), *r) for r in records)
    return struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(body), len(body),
                       len(strings)) + body + strings


INT = (1, 1 << 24, 4, 32)


@pytest.mark.parametrize("data, match", [
    (blob([INT, (0, 4 << 24 | 1000, 8)]), "runs past the end"),
    (blob([INT, (0, 4 << 24 | 1, 8, 1)]), "runs past the end"),
    (blob([(99, 1 << 24, 4, 32)]), "name offset 99 is past the end"),
    (blob([INT, (0, 4 << 24 | 1, 4, 77, 1, 0)]), "bad name offset 77"),
    (blob([(1, 1 << 24, 3, 24)]), "INT 'int' of 3 bytes"),
    (blob([(1, 1 << 24, 4, 40)]), "cannot hold 40 bits"),
    (blob([(1, 25 << 24, 4)]), "unknown BTF kind 25"),
    (blob([(1, 0, 4)]), "kind 0 is only the implicit void"),
    (blob([INT], b"\0int"), "does not end with a NUL"),
    (blob([INT], b"x\0int\0"), "must start with a NUL"),
    (blob([INT])[:30], "truncated|runs past|not a multiple"),
    (b"\x9f\xeb\x02" + blob([INT])[3:], "unsupported BTF version 2"),
    (b"\x12\x34" + blob([INT])[2:], "bad magic 1234"),
])
def test_malformed_blobs(data, match):
    with pytest.raises(BtfError, match=match):
        Btf.from_bytes(data, lazy=False)


def test_self_referencing_typedef_from_bytes():
    b = Btf.from_bytes(blob([INT, (1, 8 << 24, 2)]))
    for query in (b.resolve, b.size_of):
        with pytest.raises(BtfError, match="loop"):
            query(2)
    with pytest.raises(BtfError, match="loop"):
        b.members(2)
