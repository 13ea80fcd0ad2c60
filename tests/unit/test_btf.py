"""Tests for pybpf.btf against clang-built objects, bpftool and the running kernel's BTF.

The reference for parsing is ``bpftool btf dump ... format raw``: :func:`raw_dump`
prints pybpf's types in bpftool's raw format and the tests compare the text line by
line (for a clang object, for a hand-made split BTF, and for every type of the
running kernel's vmlinux BTF). Byte order is checked by compiling the same source
for bpfel and bpfeb; .BTF.ext against the source file's own lines and the ELF
symbol table (llvm-readelf).
"""
import os
import re
import shutil
import struct
import subprocess

import pytest

from pybpf.btf import (
    INT_SIGNED, VAR_GLOBAL, Btf, BtfError, Const, Datasec, DeclTag, Enum, Enum64, EnumValue,
    Float, Func, FuncProto, Fwd, Int, Kind, Member, Param, Ptr, Struct, Typedef, TypeTag,
    Union, Var, VarSecinfo, Volatile,
)
from pybpf.btf import sanitize as S
from pybpf.btf.ext import (
    FUNC_INFO_SIZE, LINE_INFO_SIZE, BtfExt, CoreReloKind, encode_func_info,
    encode_line_info, slice_records,
)
from toolbox import setup_missing

SETUP_HINT = "run the project's test set-up (bash tools/run-tests), which installs it"

SOURCE = r"""
typedef unsigned int u32;
typedef unsigned long long u64;
typedef u32 myu32;
typedef myu32 myu32b;
#define SEC(n) __attribute__((section(n), used))
#define __tag(x) __attribute__((btf_decl_tag(x)))
#define __ttag(x) __attribute__((btf_type_tag(x)))
enum small { A = -1, B = 2 };
enum big { BIG1 = 0x123456789aULL, BIG2 = 0xffffffffffffffffULL };
struct bits { unsigned a:3; int b:5; u64 c:40; char d; };
union u { int i; float f; double d; char c[3]; };
struct s {
  const volatile int cv;
  struct bits bits;
  union u u;
  enum small e;
  enum big eb;
  myu32b arr[4][2];
  int *__ttag("user") uptr;
  int (*fp)(int, char);
  struct { int x; } anon_s;
  union { int y; long z; };
  struct fwd *f;
  long double ld;
  char *restrict rp;
} __tag("struct_tag");
struct s gs SEC(".bss");
int data_var SEC(".data") = 5;
const int ro_var = 7;
char buf[16] __tag("var_tag");
int counter = 1;
struct { int (*type)[2]; int (*max_entries)[10]; } mymap SEC(".maps");
extern int CONFIG_X __attribute__((section(".kconfig"), weak));
extern int bpf_kfunc_x(int) __attribute__((section(".ksyms")));
struct task { int pid; struct { long a; int b; } inner; } __attribute__((preserve_access_index));
__attribute__((noinline)) static int sub(int a __tag("arg_tag")) { return a * 2; }
SEC("tracepoint/x") int prog(void *ctx)
{
  counter++;
  return sub(data_var) + ro_var + gs.cv + CONFIG_X;
}
SEC("tracepoint/y") int prog2(void *ctx) { return bpf_kfunc_x(3); }
SEC("tracepoint/co") int co(struct task *t)
{
  return t->inner.b + __builtin_preserve_field_info(t->pid, 2);
}
char _license[] SEC("license") = "GPL";
"""


def run(*cmd):
    try:
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    except FileNotFoundError:
        setup_missing(f"{cmd[0]} is not installed: {SETUP_HINT}")


class Obj:
    """One compiled object: its .BTF/.BTF.ext bytes and what llvm-readelf says."""

    def __init__(self, directory, clang, target):
        self.src = os.path.join(directory, "types.bpf.c")
        with open(self.src, "w") as f:
            f.write(SOURCE)
        self.path = os.path.join(directory, f"types.{target}.o")
        run(clang, "-g", "-O2", "-target", target, "-c", self.src, "-o", self.path)
        self.btf_path = self.path + ".btf"
        ext_path = self.path + ".btfext"
        run("llvm-objcopy", f"--dump-section=.BTF={self.btf_path}",
            f"--dump-section=.BTF.ext={ext_path}", self.path)
        with open(self.btf_path, "rb") as f:
            self.btf_bytes = f.read()
        with open(ext_path, "rb") as f:
            self.ext_bytes = f.read()
        self.sections, self.symbols = readelf(self.path)


def readelf(path):
    """({section: size}, {symbol: (section, value)}) from llvm-readelf."""
    out = run("llvm-readelf", "-S", "-s", "--wide", path)
    sections, index, symbols = {}, {}, {}
    for m in re.finditer(r"^\s*\[\s*(\d+)\]\s+(\S+)\s+\S+\s+[0-9a-f]+\s+[0-9a-f]+\s+"
                         r"([0-9a-f]+)", out, re.M):
        index[m.group(1)] = m.group(2)
        sections[m.group(2)] = int(m.group(3), 16)
    for m in re.finditer(r"^\s*\d+:\s+([0-9a-f]+)\s+\d+\s+(\w+)\s+\w+\s+\w+\s+(\w+)\s+(\S+)$",
                         out, re.M):
        value, _type, ndx, name = m.groups()
        if ndx in index:
            symbols[name] = (index[ndx], int(value, 16))
    return sections, symbols


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("btf"))


@pytest.fixture(scope="module")
def obj(workdir, clang):
    return Obj(workdir, clang, "bpfel")


@pytest.fixture(scope="module")
def obj_eb(workdir, clang):
    """The same source for big-endian BPF, in the same directory (the file name is in
    the strings)."""
    return Obj(workdir, clang, "bpfeb")


@pytest.fixture(scope="module")
def btf(obj):
    return Btf.from_bytes(obj.btf_bytes)


def bpftool(*args):
    if shutil.which("bpftool") is None:
        setup_missing(f"bpftool is not installed: {SETUP_HINT}")
    return run("bpftool", "btf", "dump", *args, "format", "raw")


# ---- bpftool's raw format, printed from pybpf's objects ----------------------

_INT_ENC = {0: "(none)", INT_SIGNED: "SIGNED", 2: "CHAR", 4: "BOOL"}
_FUNC_LINKAGE = {0: "static", 1: "global", 2: "extern"}


def _q(name):
    return f"'{name or '(anon)'}'"


def raw_dump(b, type_id):
    t = b.type(type_id)
    head = f"[{type_id}] {t.KIND.name} {_q(t.name)}"
    if isinstance(t, Int):
        return [f"{head} size={t.size} bits_offset={t.offset} nr_bits={t.bits} "
                f"encoding={_INT_ENC.get(t.encoding, '(none)')}"]
    if isinstance(t, (Struct, Union)):
        lines = [f"{head} size={t.size} vlen={len(t.members)}"]
        for m in t.members:
            bits = f" bitfield_size={m.bitfield_size}" if m.bitfield_size else ""
            lines.append(f"\t{_q(m.name)} type_id={m.type} bits_offset={m.bit_offset}{bits}")
        return lines
    if isinstance(t, (Enum, Enum64)):
        lines = [f"{head} encoding={'SIGNED' if t.signed else 'UNSIGNED'} size={t.size} "
                 f"vlen={len(t.values)}"]
        suffix = ("LL" if t.signed else "ULL") if isinstance(t, Enum64) else ""
        lines += [f"\t{_q(v.name)} val={v.value}{suffix}" for v in t.values]
        return lines
    if isinstance(t, Fwd):
        return [f"{head} fwd_kind={'union' if t.union else 'struct'}"]
    if isinstance(t, Func):
        return [f"{head} type_id={t.type} linkage={_FUNC_LINKAGE[t.linkage]}"]
    if isinstance(t, FuncProto):
        return ([f"{head} ret_type_id={t.type} vlen={len(t.params)}"]
                + [f"\t{_q(p.name)} type_id={p.type}" for p in t.params])
    if isinstance(t, Var):
        return [f"{head} type_id={t.type}, linkage={_FUNC_LINKAGE[t.linkage]}"]
    if isinstance(t, Datasec):
        lines = [f"{head} size={t.size} vlen={len(t.vars)}"]
        for v in t.vars:
            target = b.type(v.type)
            lines.append(f"\ttype_id={v.type} offset={v.offset} size={v.size} "
                         f"({target.KIND.name} {_q(target.name)})")
        return lines
    if isinstance(t, Float):
        return [f"{head} size={t.size}"]
    if isinstance(t, DeclTag):
        return [f"{head} type_id={t.type} component_idx={t.component_idx}"]
    if t.KIND == Kind.ARRAY:
        return [f"{head} type_id={t.type} index_type_id={t.index_type} nr_elems={t.nelems}"]
    return [f"{head} type_id={t.type}"]


def dump_all(b, ids=None):
    return [line for i in (ids if ids is not None else b.own_ids()) for line in raw_dump(b, i)]


# ---- parsing -------------------------------------------------------------------

def test_every_type_matches_bpftool(obj, btf):
    assert dump_all(btf) == bpftool("file", obj.path).splitlines()


def test_every_kind_of_clang_14_is_covered(btf):
    kinds = {t.KIND for _, t in btf}
    # clang 14 writes every kind but ENUM64 (clang 15+), tested with a hand-made blob.
    assert kinds == set(Kind) - {Kind.ENUM64}


def test_big_endian_object_parses_to_the_same_types(obj, obj_eb, btf):
    eb = Btf.from_bytes(obj_eb.btf_bytes)
    assert eb.byteorder == "big" and btf.byteorder == "little"
    assert list(eb) == list(btf)
    assert btf.to_bytes("big") == obj_eb.btf_bytes
    assert eb.to_bytes("little") == obj.btf_bytes


def test_write_is_byte_identical_and_round_trips(obj, btf):
    assert btf.to_bytes() == obj.btf_bytes
    again = Btf.from_bytes(btf.to_bytes("big"))
    assert list(again) == list(btf)
    eager = Btf.from_bytes(obj.btf_bytes, lazy=False)
    assert list(eager) == list(btf)


def test_kflag_semantics(btf):
    bits = btf.find_one("bits", Struct)
    assert [(m.name, m.bit_offset, m.bitfield_size) for m in btf.members(bits)] == [
        ("a", 0, 3), ("b", 3, 5), ("c", 8, 40), ("d", 48, 0)]
    small = btf.type(btf.find_one("small", "enum"))
    assert small.signed is False and small.values[0] == EnumValue("A", 0xFFFFFFFF)
    assert btf.type(btf.find_one("fwd")) == Fwd("fwd", union=False)
    # clang 14 truncates 64-bit enumerators into a plain 8-byte ENUM.
    big = btf.type(btf.find_one("big"))
    assert isinstance(big, Enum) and big.size == 8


def test_queries(btf):
    s = btf.find_one("s", Struct)
    assert btf.size_of(s) == 128
    assert btf.find("s", Union) == [] and btf.find("no_such_type") == []
    arr = btf.member(s, "arr")
    assert arr.bit_offset == 320 and btf.size_of(arr.type) == 4 * 2 * 4
    assert btf.type_name(arr.type) == "myu32b[4][2]"
    assert btf.resolve(btf.find_one("myu32b")) == btf.find_one("unsigned int")
    cv = btf.member(s, "cv")
    assert btf.type_name(cv.type) == "int volatile const"
    assert btf.resolve(cv.type) == btf.find_one("int")
    uptr = btf.member(s, "uptr")
    assert isinstance(btf.type(btf.type(uptr.type).type), TypeTag)
    assert btf.size_of(uptr.type) == 8 and btf.type_name(uptr.type) == "user *"
    # Anonymous union members are looked into, as C does; offsets add up.
    assert btf.member(s, "z").bit_offset == 768
    assert btf.member(s, "bits.c") == Member("c", btf.find_one("u64"), 64 + 8, 40)
    assert btf.member(s, "anon_s.x").bit_offset == 704
    flat = [(m.name, m.bit_offset) for m in btf.walk_members(s)]
    assert flat[8:12] == [("anon_s", 704), ("y", 768), ("z", 768), ("f", 832)]
    with pytest.raises(BtfError, match="no member 'nope'"):
        btf.member(s, "bits.nope")
    with pytest.raises(BtfError, match="has no size"):
        btf.size_of(btf.find_one("prog"))
    with pytest.raises(BtfError, match="not a struct"):
        btf.members(btf.find_one("int"))
    # Every plain member lies inside its struct.
    for type_id, t in btf:
        if isinstance(t, Struct):
            for m in t.members:
                if not m.bitfield_size:
                    assert m.bit_offset // 8 + btf.size_of(m.type) <= t.size


def test_find_one_errors(btf):
    with pytest.raises(BtfError, match="no struct type named 'int'"):
        btf.find_one("int", "struct")
    two = Btf()
    two.add(Fwd("x"))
    two.add(Struct("x", 0, ()))
    assert two.find("x") == [1, 2] and two.find("x", Fwd) == [1]
    with pytest.raises(BtfError, match="2 types are named 'x'"):
        two.find_one("x")


def test_types_mapping_and_repr(btf):
    assert len(btf.types) == len(btf) and btf.types[0].KIND == Kind.UNKN
    assert list(btf.types)[:2] == [0, 1]
    assert repr(Int("int", 4, INT_SIGNED, 0, 32)) == (
        "Int(name='int', size=4, encoding=1, offset=0, bits=32)")
    assert Const("", 1) != Volatile("", 1) and Const("", 1) == Const("", 1)
    assert hash(Const("", 1)) == hash(Const("", 1))
    with pytest.raises(BtfError, match="not in this BTF"):
        btf.type(len(btf))


def test_load_refuses_elf_with_hint(obj):
    with pytest.raises(BtfError, match="--dump-section .BTF"):
        Btf.load(obj.path)
    assert list(Btf.load(obj.btf_path)) == list(Btf.from_bytes(obj.btf_bytes))


def test_modified_btf_finds_added_and_replaced(btf):
    b = btf.copy()
    new = b.add(Typedef("fresh", b.find_one("int")))
    assert b.find("fresh") == [new] and btf.find("fresh") == []
    counter = b.find_one("counter")
    b.replace(counter, Var("renamed", b.find_one("int"), VAR_GLOBAL))
    assert b.find("counter") == [] and b.find("renamed") == [counter]
    again = Btf.from_bytes(b.to_bytes())
    assert again.find("fresh") == [new] and again.find("renamed") == [counter]
    # The original string section is kept as a prefix: old offsets still work.
    assert again.strings.data.startswith(btf.strings.data)


def test_frozen_btf_refuses_changes(btf):
    frozen = btf.copy().freeze()
    with pytest.raises(BtfError, match="frozen"):
        frozen.add(Int("x", 4, 0, 0, 32))
    frozen.copy().add(Int("x", 4, 0, 0, 32))


# ---- hand-made BTF: ENUM64, split BTF, big-endian -----------------------------

def raw_btf(records, strings, order="<"):
    """A BTF blob from raw (name_off, info, size_or_type, *extra u32s) tuples, packed
    here with struct so the parser is checked against bytes pybpf did not write."""
    body = b"".join(struct.pack(order + "%dI" % len(r), *(x & 0xFFFFFFFF for x in r))
                    for r in records)
    return struct.pack(order + "HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(body), len(body),
                       len(strings)) + body + strings


def info(kind, vlen=0, kflag=0):
    return kflag << 31 | kind << 24 | vlen


ENUM64_STRINGS = b"\0e64\0BIG\0NEG\0int\0"
ENUM64_RECORDS = [
    (1, info(19, 2, 1), 8, 5, 0x9ABCDEF0, 0x12345678, 9, 0xFFFFFFFF, 0xFFFFFFFF),
    (13, info(1), 4, 0x01000020),
    (1, info(6, 1, 1), 4, 9, -5),
]


@pytest.mark.parametrize("order", ["<", ">"])
def test_enum64_and_signed_enum(tmp_path, order):
    data = raw_btf(ENUM64_RECORDS, ENUM64_STRINGS, order)
    b = Btf.from_bytes(data)
    assert b.type(1) == Enum64("e64", 8, (EnumValue("BIG", 0x123456789ABCDEF0),
                                          EnumValue("NEG", -1)), signed=True)
    assert b.type(3) == Enum("e64", 4, (EnumValue("NEG", -5),), signed=True)
    assert b.to_bytes() == data
    path = tmp_path / "e64.btf"
    path.write_bytes(b.to_bytes("little"))
    assert dump_all(b) == bpftool("file", str(path)).splitlines()


SPLIT_STRINGS = b"mod_s\0next\0"


def test_split_btf_matches_bpftool(tmp_path):
    base_data = raw_btf(ENUM64_RECORDS, ENUM64_STRINGS)
    base = Btf.from_bytes(base_data)
    off = len(ENUM64_STRINGS)
    # id 4: struct mod_s { int next; mod_s *p; } using a base name ("int" is base id 2)
    split_data = raw_btf([(off, info(4, 2), 16, off + 6, 2, 0, 13, 5, 64),
                          (0, info(2), 4)], SPLIT_STRINGS)
    split = Btf.from_bytes(split_data, base=base)
    assert split.start_id == 4 and len(split) == 6 and list(split.own_ids()) == [4, 5]
    assert split.type(4) == Struct("mod_s", 16, (Member("next", 2, 0), Member("int", 5, 64)))
    assert split.type(2) == base.type(2)
    assert split.find("mod_s") == [4] and split.find("int") == [2]
    assert split.find("e64") == [1, 3]
    assert split.to_bytes() == split_data
    (tmp_path / "base").write_bytes(base_data)
    (tmp_path / "split").write_bytes(split_data)
    expected = bpftool("-B", str(tmp_path / "base"), "file", str(tmp_path / "split"))
    assert dump_all(split) == expected.splitlines()


def test_split_btf_adds_its_own_strings():
    base = Btf.from_bytes(raw_btf(ENUM64_RECORDS, ENUM64_STRINGS))
    split = Btf(base=base)
    new = split.add(Typedef("only_here", 2))
    split.add(Typedef("int", new))  # "int" is reused from the base's strings
    again = Btf.from_bytes(split.to_bytes(), base=base)
    assert again.type(new) == Typedef("only_here", 2) and again.find("int") == [2, 5]
    assert again.strings.data == b"only_here\0"


# ---- writing ---------------------------------------------------------------------

def test_built_from_scratch_round_trips():
    b = Btf()
    i = b.add(Int("int", 4, INT_SIGNED, 0, 32))
    c = b.add(Struct("bf", 8, (Member("a", i, 0, 3), Member("b", i, 32))))
    p = b.add(FuncProto("", i, (Param("x", i), Param("", 0))))
    b.add(Func("f", p))
    b.add(Enum64("e", 8, (EnumValue("x", -2),), signed=True))
    b.add(DeclTag("t", c, 1))
    b.add(TypeTag("tt", i))
    v = b.add(Var("v", i))
    b.add(Datasec(".data", 4, (VarSecinfo(v, 0, 4),)))
    b.add(Float("float", 4))
    for order in ("little", "big"):
        assert list(Btf.from_bytes(b.to_bytes(order))) == list(b)


@pytest.mark.parametrize("bad, match", [
    (Enum("e", 4, (EnumValue("x", 1 << 32),)), "does not fit in 32 bits"),
    (Struct("s", 4, (Member("a", 1, 1 << 24, 1),)), "bit offset must be"),
    (Int("i", 4, 0, 0, 300), "out of range"),
    (Ptr("", -1), "cannot be encoded"),
    (Struct("s", 4, tuple(Member("a", 1, 0) for _ in range(70000))), "BTF allows 65535"),
    (Typedef("a\0b", 1), "NUL"),
])
def test_write_refuses_what_cannot_be_encoded(bad, match):
    b = Btf()
    b.add(Int("int", 4, 0, 0, 32))
    b.add(bad)
    with pytest.raises(BtfError, match=match):
        b.to_bytes()


def test_loops_raise_btf_error():
    b = Btf()
    b.add(Typedef("loop", 2))
    b.add(Const("", 1))
    b.add(Struct("s", 4, (Member("", 4, 0),)))
    b.add(Union("", 4, (Member("", 3, 0),)))
    b.add(Ptr("", 5))
    b.add(Typedef("self", 6))
    for type_id in (1, 2, 6):
        with pytest.raises(BtfError, match="loop"):
            b.resolve(type_id)
        with pytest.raises(BtfError, match="loop"):
            b.size_of(type_id)
    with pytest.raises(BtfError, match="nest too deep"):
        b.member(3, "x")
    assert b.size_of(5) == 8 and b.type_name(5) == "<type loop>"


# ---- sanitize and DATASEC fix-ups ----------------------------------------------

def fixed(obj, btf):
    b = btf.copy()
    sizes = {name: size for name, size in obj.sections.items()
             if name in (".data", ".rodata", ".bss", ".maps", "license")}
    offsets = {name: value for name, (_sec, value) in obj.symbols.items()}
    b.fixup_datasecs(sizes, offsets)
    return b


def test_fixup_datasecs_uses_elf_sizes_and_symbols(obj, btf):
    b = fixed(obj, btf)
    secs = [t for _, t in b if isinstance(t, Datasec)]
    assert {s.name for s in secs} == {".bss", ".data", ".kconfig", ".maps", ".rodata",
                                      ".ksyms", "license"}
    for sec in secs:
        if sec.name in (".kconfig", ".ksyms"):
            assert sec.size == 0  # no ELF section: left for sanitize
            continue
        assert sec.size == obj.sections[sec.name] > 0
        offsets = [v.offset for v in sec.vars]
        assert offsets == sorted(offsets)
        for v in sec.vars:
            assert obj.symbols[b.type(v.type).name] == (sec.name, v.offset)
    assert [v.offset for v in b.type(b.find_one(".bss")).vars] == [0, 128]
    # The original is untouched: fixup worked on the copy.
    assert btf.type(btf.find_one(".bss")).size == 0


def test_fixup_datasecs_errors(obj, btf):
    with pytest.raises(BtfError, match="no symbol offset for 'counter'"):
        btf.copy().fixup_datasecs({".data": 8}, {"data_var": 0})
    with pytest.raises(BtfError, match="past the section's end"):
        btf.copy().fixup_datasecs({".data": 4}, {"data_var": 0, "counter": 4})
    # (section, name) keys win over plain names
    b = btf.copy()
    b.fixup_datasecs({".data": 8}, {("data", "counter"): 0, (".data", "counter"): 4,
                                    "counter": 0, "data_var": 0})
    assert [v.offset for v in b.type(b.find_one(".data")).vars] == [0, 4]


FEATURE_KINDS = {"float": {Kind.FLOAT}, "decl_tag": {Kind.DECL_TAG},
                 "type_tag": {Kind.TYPE_TAG}, "enum64": {Kind.ENUM64},
                 "datasec": {Kind.VAR, Kind.DATASEC}, "func": {Kind.FUNC, Kind.FUNC_PROTO}}


@pytest.mark.parametrize("missing", sorted(S.FEATURES) + ["all"])
def test_sanitize_removes_unknown_kinds_keeping_ids(obj, btf, missing):
    b = fixed(obj, btf)
    b.add(Enum64("e64", 8, (EnumValue("x", 1 << 40),)))
    features = frozenset() if missing == "all" else S.ALL_FEATURES - {missing}
    out = b.sanitize(features)
    assert len(out) == len(b)
    kinds = {t.KIND for _, t in out}
    for feature, feature_kinds in FEATURE_KINDS.items():
        if feature not in features:
            assert not kinds & feature_kinds
    for type_id, t in out:
        if isinstance(t, Func):
            assert t.linkage in ((0, 1) if "func_global" in features else (0,))
        if isinstance(t, Var):
            assert t.linkage != 2
        if isinstance(t, Datasec):
            assert t.size and all(isinstance(out.type(v.type), Var) for v in t.vars)
        if isinstance(t, DeclTag):
            assert isinstance(out.type(t.type), (Struct, Union, Var, Func, Typedef))
        if isinstance(t, (Enum, Enum64)) and "enum64" not in features:
            assert not t.signed
        if isinstance(t, Struct):
            assert t.name == "" or t.name.isidentifier()
    # Sizes survive: every type that had a size has the same one.
    for type_id, t in b:
        if isinstance(t, (Int, Struct, Union, Enum, Enum64, Float)) and type_id:
            assert out.size_of(type_id) == b.size_of(type_id), (type_id, t)
    # The original stays as it was.
    assert btf.to_bytes() == obj.btf_bytes


def test_sanitize_keeps_kconfig_the_loader_laid_out(obj, btf):
    b = fixed(obj, btf)
    b.fixup_datasecs({".kconfig": 4}, {"CONFIG_X": 0})
    out = b.sanitize(S.ALL_FEATURES)
    assert out.type(out.find_one("CONFIG_X")) == Var("CONFIG_X", out.find_one("int"), 1)
    assert out.type(out.find_one(".kconfig")).size == 4
    assert out.type(out.find_one("_ksyms", Struct)) == Struct("_ksyms", 0, ())
    assert isinstance(out.type(out.find_one("bpf_kfunc_x")), Int)
    with pytest.raises(ValueError, match="unknown BTF features"):
        b.sanitize({"bogus"})


# ---- .BTF.ext --------------------------------------------------------------------

def test_btf_ext_func_info_names_the_functions(obj, btf):
    ext = BtfExt.from_bytes(obj.ext_bytes, btf)
    assert ext.record_sizes["func_info"] == FUNC_INFO_SIZE
    funcs = {(sec, r.insn_off): btf.type(r.type_id).name
             for sec, recs in ext.func_info.items() for r in recs}
    assert funcs == {obj.symbols[name]: name for name in ("prog", "prog2", "co", "sub")}


def test_btf_ext_line_info_is_the_source(obj, btf):
    ext = BtfExt.from_bytes(obj.ext_bytes, btf)
    lines = SOURCE.splitlines()
    seen = 0
    for sec, recs in ext.line_info.items():
        offsets = [r.insn_off for r in recs]
        assert offsets == sorted(offsets) and offsets[0] == 0
        for r in recs:
            assert r.file_name == obj.src
            assert r.line_text == lines[r.line - 1]
            assert btf.strings.get(r.line_off) == r.line_text
            seen += 1
    assert seen > 5 and "  counter++;" in {r.line_text for r in ext.line_info["tracepoint/x"]}


def test_btf_ext_core_relos(obj, btf):
    ext = BtfExt.from_bytes(obj.ext_bytes, btf)
    assert list(ext.core_relos) == ["tracepoint/co"]
    task = btf.find_one("task", Struct)
    relos = {(r.access_str, r.kind) for r in ext.core_relos["tracepoint/co"]}
    assert relos == {("0:1:1", CoreReloKind.FIELD_BYTE_OFFSET),
                     ("0:0", CoreReloKind.FIELD_EXISTS)}
    assert {r.type_id for r in ext.core_relos["tracepoint/co"]} == {task}


def test_btf_ext_big_endian_is_the_same(obj, obj_eb, btf):
    el = BtfExt.from_bytes(obj.ext_bytes, btf)
    eb = BtfExt.from_bytes(obj_eb.ext_bytes, Btf.from_bytes(obj_eb.btf_bytes))
    assert (el.func_info, el.line_info, el.core_relos) == (
        eb.func_info, eb.line_info, eb.core_relos)


def test_encoders_give_kernel_records(obj, btf):
    ext = BtfExt.from_bytes(obj.ext_bytes, btf)
    recs = ext.line_info["tracepoint/x"]
    raw = encode_line_info(list(reversed(recs)), insn_base=10)
    assert len(raw) == LINE_INFO_SIZE * len(recs)
    first = struct.unpack_from("=IIII", raw)
    assert first == (10, recs[0].file_name_off, recs[0].line_off,
                     recs[0].line << 10 | recs[0].col)
    last = struct.unpack_from("=IIII", raw, len(raw) - LINE_INFO_SIZE)
    assert last[0] == 10 + recs[-1].insn_off // 8
    fi = ext.func_info[".text"]
    assert encode_func_info(fi, 3, {fi[0].type_id: 99}) == struct.pack("=II", 3, 99)
    part = slice_records(recs, 16, 64)
    assert part and all(0 <= r.insn_off < 48 for r in part)


# ---- the running kernel's BTF ------------------------------------------------------

needs_vmlinux = pytest.mark.skipif(
    not os.path.exists("/sys/kernel/btf/vmlinux"),
    reason="this kernel has no /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF, 5.4+)")


@needs_vmlinux
def test_vmlinux_every_type_matches_bpftool(tmp_path):
    """All ~100k types printed by pybpf equal bpftool's dump (about 3 s)."""
    b = Btf.vmlinux(cache=False)
    expected = bpftool("file", "/sys/kernel/btf/vmlinux").splitlines()
    got = dump_all(b)
    assert len(got) == len(expected)
    mismatches = [(g, e) for g, e in zip(got, expected) if g != e]
    assert not mismatches[:5]


@needs_vmlinux
def test_vmlinux_is_lazy_and_writes_back_identical():
    b = Btf.vmlinux(cache=False)
    task = b.find_one("task_struct", Struct)
    names = [m.name for m in b.members(task)]
    assert "pid" in names and "comm" in names
    assert b.type_name(b.member(task, "comm").type) == "char[16]"
    assert b.size_of(b.member(task, "pid").type) == 4
    decoded = sum(1 for item in b._items if item is not None)
    assert decoded < 100 < len(b)  # only what the lookup touched
    assert b.pointer_size == 8 or b.pointer_size == 4
    with open("/sys/kernel/btf/vmlinux", "rb") as f:
        assert b.to_bytes() == f.read()


@needs_vmlinux
def test_vmlinux_cached_and_frozen():
    assert Btf.vmlinux() is Btf.vmlinux()
    with pytest.raises(BtfError, match="frozen"):
        Btf.vmlinux().add(Int("x", 4, 0, 0, 32))


def test_missing_kernel_btf_names_the_cause(tmp_path):
    with pytest.raises(BtfError, match="CONFIG_DEBUG_INFO_BTF"):
        Btf.vmlinux(str(tmp_path / "vmlinux"))
    with pytest.raises(BtfError, match="no BTF for module 'nosuch'"):
        Btf.module("nosuch", directory=str(tmp_path))


@needs_vmlinux
def test_module_btf_is_split_on_vmlinux(tmp_path):
    """A module file is read as split BTF on vmlinux (faked here from the split test's
    bytes when no module with BTF is loaded)."""
    modules = [m for m in os.listdir("/sys/kernel/btf") if m != "vmlinux"]
    if modules:
        mod = Btf.module(modules[0])
        assert mod.start_id == len(Btf.vmlinux()) and mod.frozen
        for type_id in list(mod.own_ids())[:200]:
            mod.type(type_id)
        return
    vm = Btf.vmlinux()
    shutil.copy("/sys/kernel/btf/vmlinux", tmp_path / "vmlinux")
    name_off = len(vm.strings)
    split = raw_btf([(name_off, info(4, 1), 4, 0, vm.find_one("int"), 0)], b"fake_mod\0")
    (tmp_path / "fake").write_bytes(split)
    mod = Btf.module("fake", base=vm, directory=str(tmp_path))
    assert mod.find_one("fake_mod") == len(vm)
    assert mod.type(len(vm)) == Struct("fake_mod", 4, (Member("", vm.find_one("int"), 0),))
