"""Tests for pybpf.btf.core (CO-RE relocations) and pybpf.btf.candidates.

The programs in tests/progs/core/core_local.bpf.c are compiled by clang with local type
definitions and relocated against the BTF of core_target.bpf.c, whose layouts differ.
Every relocated value is checked against what the host's gcc says about the target
types (offsetof, sizeof, signedness, and memory images of bitfields, which are read
back with the relocated offset, size and shifts exactly as BPF_CORE_READ_BITFIELD
does), so the expected values never come from the code under test.
"""
import shutil
import subprocess
import sysconfig
import time
from pathlib import Path

import pytest

from pybpf import asm
from pybpf.btf import Btf
from pybpf.btf import types as T
from pybpf.btf.candidates import (
    CoreCache, CoreError, essential_name, fields_compatible, types_compatible, types_match,
)
from pybpf.btf.core import (
    POISON_HELPER, apply_relocation, parse_spec, poisoned_insn, relocate_section, resolve,
)
from pybpf.btf.ext import BtfExt, CoreRelo, CoreReloKind as K
from pybpf.elf import ElfFile
from toolbox import setup_missing

PROGS = Path(__file__).resolve().parents[1] / "progs" / "core"
TARGET_SRC = PROGS / "core_target.bpf.c"
BITFIELDS = {"flags": 0x15, "mode": 0x5A5, "big": 0x1ABC, "sbits": -37}
U64 = (1 << 64) - 1


def run(*cmd):
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    assert res.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{res.stderr}"
    return res.stdout


def bpf_includes():
    """libbpf's headers, and the multiarch directory <asm/types.h> is in."""
    multiarch = sysconfig.get_config_var("MULTIARCH")
    return [f"-I/usr/include/{multiarch}"] if multiarch else []


class Obj:
    """A compiled BPF object: its ELF, BTF and CO-RE records."""

    def __init__(self, clang, source, out, target="bpfel"):
        run(clang, "-O2", "-g", "-Wall", "-Werror", "-target", target, *bpf_includes(), "-c",
            source, "-o", out)
        self.elf = ElfFile.from_path(out)
        self.btf = Btf.from_bytes(self.elf.section(".BTF").data)
        ext = self.elf.section(".BTF.ext")
        self.relos = BtfExt.from_bytes(ext.data, self.btf).core_relos if ext else {}
        self.byteorder = "little" if target == "bpfel" else "big"

    def code(self, section):
        return self.elf.section(section).data


@pytest.fixture(scope="module")
def build(tmp_path_factory, clang):
    out = tmp_path_factory.mktemp("core")
    cache = {}

    def get(name, target="bpfel"):
        if (name, target) not in cache:
            cache[name, target] = Obj(clang, PROGS / f"{name}.bpf.c",
                                      out / f"{name}-{target}.o", target)
        return cache[name, target]
    return get


@pytest.fixture(scope="module")
def local(build):
    return build("core_local")


@pytest.fixture(scope="module")
def target(build):
    return build("core_target").btf


def relocate(obj, section, target_btf, cache=None):
    """(patched instructions by slot, results keyed by (kind name, C path))."""
    cache = cache or CoreCache(target_btf, what="target BTF")
    code, results = relocate_section(obj.code(section), obj.relos[section], obj.btf, cache,
                                     section=section)
    insns = asm.decode(code, obj.byteorder)
    by_slot = dict(zip(asm.slot_offsets(insns), insns))
    keyed = {}
    for r in results:
        keyed.setdefault((r.kind.name, r.what.split("'")[1]), []).append(r)
    return by_slot, keyed, results


# ---- what gcc says about the target types -----------------------------------------------

def designator(path):
    """'core_basic___v1.inner.x' -> ('core_basic', 'inner.x')."""
    root, _, rest = path.partition(".")
    return essential_name(root), rest


@pytest.fixture(scope="module")
def gcc_facts(tmp_path_factory, local):
    """{key: int} printed by a gcc-built program that includes core_target.bpf.c."""
    gcc = shutil.which("gcc")
    if gcc is None:
        setup_missing("gcc is not installed: run the test set-up (bash tools/run-tests)")
    wanted = {K.FIELD_BYTE_OFFSET: set(), K.FIELD_BYTE_SIZE: set(), K.FIELD_SIGNED: set()}
    for relos in local.relos.values():
        for relo in relos:
            if relo.kind in wanted:
                spec = parse_spec(local.btf, relo.type_id, relo.access_str, relo.kind)
                root, field = designator(spec.path())
                if root == "core_basic" and field not in BITFIELDS \
                        and field != "missing_field":
                    wanted[relo.kind].add(field)
    lines = [f'#include "{TARGET_SRC}"', "#include <stdio.h>", "#include <stddef.h>",
             "#include <string.h>", "static struct core_basic s;",
             "static void dump(const char *name, const void *p, size_t n) {",
             '  printf("img %s ", name);',
             '  for (size_t i = 0; i < n; i++) printf("%02x", ((const unsigned char *)p)[i]);',
             '  printf("\\n");', "}", "int main(void) {"]
    for f in sorted(wanted[K.FIELD_BYTE_OFFSET]):
        lines.append(f'printf("off {f} %zu\\n", offsetof(struct core_basic, {f}));')
    for f in sorted(wanted[K.FIELD_BYTE_SIZE]):
        lines.append(f'printf("size {f} %zu\\n", sizeof(s.{f}));')
    for f in sorted(wanted[K.FIELD_SIGNED]):
        lines.append(f'printf("signed {f} %d\\n", (__typeof__(s.{f}))-1 < 0);')
    for f, value in BITFIELDS.items():
        lines += [f"memset(&s, 0x5a, sizeof s); s.{f} = {value};", f'dump("{f}", &s, sizeof s);',
                  f'printf("val {f} %lld\\n", (long long)s.{f});',
                  f"s.{f} = -1; " f'printf("signed {f} %d\\n", s.{f} < 0);']
    for expr in ("sizeof(struct core_basic)", "sizeof(struct core_sized)",
                 "(long long)CORE_GREEN", "(long long)CORE_BLUE"):
        lines.append(f'printf("%s %lld\\n", "{expr}", (long long)({expr}));')
    lines.append("return 0; }")
    work = tmp_path_factory.mktemp("gcc")
    (work / "facts.c").write_text("\n".join(lines) + "\n")
    run(gcc, "-w", "-o", work / "facts", work / "facts.c")
    facts = {}
    for line in run(work / "facts").splitlines():
        key, _, value = line.rpartition(" ")
        facts[key] = bytes.fromhex(value) if key.startswith("img ") else int(value)
    return facts


def patched_value(insn):
    """The value a relocation put into an instruction."""
    if insn.code & 0x07 in (0, 4, 7):  # ld_imm64, ALU, ALU64
        return insn.imm & U64 if insn.slots == 2 else insn.imm
    return insn.off


# ---- relocated values against gcc -------------------------------------------------------

def test_offsets_match_gcc(local, target, gcc_facts):
    insns, keyed, results = relocate(local, "socket/offsets", target)
    assert len(results) == 11
    checked = []
    for r in results:
        assert r.kind == K.FIELD_BYTE_OFFSET and not r.poisoned, r
        root, field = designator(r.what.split("'")[1])
        expected = gcc_facts[f"off {field}"] if root == "core_basic" else 0  # core_inner.x
        assert r.new == expected, (r.what, r.new, expected)
        assert patched_value(insns[r.slot]) == expected, (r.what, str(insns[r.slot]))
        checked.append(field)
    # reordered, nested, array element, anonymous union/struct members, flex array
    assert {"a", "c", "arr[3]", "inner.x", "u_a", "u_b", "u_whole", "tail[0]"} <= set(checked)
    # the target is a flavor-less 'core_basic' and the local 'core_basic___v1'
    assert all(t.btf.type(t.type_id).name == "core_basic" for r in results if r.targets
               for t in r.targets[:1] if "core_basic" in r.what)


def test_sizes_existence_signedness(local, target, gcc_facts):
    insns, keyed, _ = relocate(local, "socket/fields", target)

    def one(kind, path):
        (r,) = keyed[kind, path]
        assert patched_value(insns[r.slot]) == r.new
        return r.new

    for field in ("a", "arr", "inner", "grown"):
        assert one("FIELD_BYTE_SIZE", f"core_basic___v1.{field}") == gcc_facts[f"size {field}"]
    assert one("FIELD_BYTE_SIZE", "core_basic___v1.color") == gcc_facts["size color"]
    assert one("FIELD_EXISTS", "core_basic___v1.a") == 1
    assert one("FIELD_EXISTS", "core_basic___v1.inner.y") == 1
    assert one("FIELD_EXISTS", "core_basic___v1.missing_field") == 0  # no poison
    assert one("FIELD_BYTE_OFFSET", "core_basic___v1.inner.y") == gcc_facts["off inner.y"]
    assert one("FIELD_SIGNED", "core_basic___v1.a") == gcc_facts["signed a"] == 1
    assert one("FIELD_SIGNED", "core_basic___v1.grown") == gcc_facts["signed grown"] == 0
    assert one("FIELD_SIGNED", "core_basic___v1.sbits") == gcc_facts["signed sbits"] == 1
    # clang 14 writes no signedness for enums (kflag, clang 15+): unsigned, like libbpf
    assert one("FIELD_SIGNED", "core_basic___v1.color") == 0
    assert not any(r.poisoned for rs in keyed.values() for r in rs)


def read_bitfield(image, off, size, lshift, rshift, signed, byteorder):
    """What BPF_CORE_READ_BITFIELD_PROBED computes from a struct's bytes."""
    raw = image[off:off + size]
    value = int.from_bytes(raw, byteorder)  # little: low bytes; big: the macro reads into
    value = (value << lshift) & U64         # the u64's last (low-order) bytes
    if signed and value >> 63:
        value -= 1 << 64
    return value >> rshift


def bitfield_values(keyed, field, attr="new"):
    def get(kind):
        return getattr(keyed[kind, f"core_basic___v1.{field}"][0], attr)
    return (get("FIELD_BYTE_OFFSET"), get("FIELD_BYTE_SIZE"), get("FIELD_LSHIFT_U64"),
            get("FIELD_RSHIFT_U64"), get("FIELD_SIGNED"))


def test_bitfields_read_back_gcc_images(local, target, gcc_facts):
    insns, keyed, results = relocate(local, "socket/bitfields", target)
    assert not any(r.poisoned for r in results)
    for field in BITFIELDS:
        off, size, lshift, rshift, signed = bitfield_values(keyed, field)
        assert size in (1, 2, 4, 8) and signed == gcc_facts[f"signed {field}"]
        got = read_bitfield(gcc_facts[f"img {field}"], off, size, lshift, rshift, signed,
                            "little")
        assert got == gcc_facts[f"val {field}"] == BITFIELDS[field], field
        for r in results:  # every instruction holds its relocation's value
            assert patched_value(insns[r.slot]) == r.new, (r.what, str(insns[r.slot]))
    # the bitfields moved: flags is at another byte/bit than the local one
    assert keyed["FIELD_LSHIFT_U64", "core_basic___v1.mode"][0].new != \
        keyed["FIELD_LSHIFT_U64", "core_basic___v1.mode"][0].old


def bitfield_image(btf, struct_id, field, value, byteorder):
    """A struct's bytes (0x5a filler) with one bitfield set, laid out from its BTF
    bit offset the way each byte order numbers bits (big: bit 0 is the MSB)."""
    t = btf.type(struct_id)
    m = next(m for m in t.members if m.name == field)
    value &= (1 << m.bitfield_size) - 1
    bits = [(value >> (m.bitfield_size - 1 - i)) & 1 for i in range(m.bitfield_size)]  # MSB first
    image = bytearray(b"\x5a" * t.size)
    for i, bit in enumerate(bits if byteorder == "big" else bits[::-1]):
        pos = m.bit_offset + i
        shift = 7 - pos % 8 if byteorder == "big" else pos % 8
        image[pos // 8] = image[pos // 8] & ~(1 << shift) | bit << shift
    return bytes(image)


@pytest.mark.parametrize("order", ["bpfel", "bpfeb"])
def test_bitfield_shifts_in_both_byte_orders(build, order):
    """Relocated against its own BTF, a bitfield read gives back what was stored; so
    do clang's own values (which checks the image builder, not just our numbers)."""
    obj = build("core_local", order)
    cache = CoreCache(obj.btf)
    _, keyed, _ = relocate(obj, "socket/bitfields", obj.btf, cache)
    struct_id = obj.btf.find_one("core_basic___v1", "struct")
    for field, value in BITFIELDS.items():
        m = next(m for m in obj.btf.type(struct_id).members if m.name == field)
        if value > 0:
            value &= (1 << m.bitfield_size) - 1  # the local 'mode' is narrower
        image = bitfield_image(obj.btf, struct_id, field, value, obj.byteorder)
        for attr in ("new", "old"):  # ours, clang's
            off, size, lshift, rshift, signed = bitfield_values(keyed, field, attr)
            got = read_bitfield(image, off, size, lshift, rshift, signed, obj.byteorder)
            assert got == value, (order, field, attr)


def test_loads_widen_for_unsigned_and_are_poisoned_for_signed(local, target, gcc_facts):
    insns, keyed, _ = relocate(local, "socket/resize", target)
    (grown,) = keyed["FIELD_BYTE_OFFSET", "core_basic___v1.grown"]
    assert not grown.poisoned and grown.new == gcc_facts["off grown"]
    assert str(insns[grown.slot]) == f"r2 = *(u64 *)(r1 + {grown.new})"  # was u32
    (sgrown,) = keyed["FIELD_BYTE_OFFSET", "core_basic___v1.sgrown"]
    assert sgrown.poisoned
    assert insns[sgrown.slot] == asm.call(POISON_HELPER)
    assert "changed size from 4 to 8 bytes" in sgrown.message
    assert "'core_basic___v1.sgrown' (access 0:3)" in sgrown.message


def test_types(local, target, gcc_facts):
    insns, keyed, _ = relocate(local, "socket/types", target)

    def one(kind, what):
        (r,) = keyed[kind, what]
        assert not r.poisoned and patched_value(insns[r.slot]) == r.new
        return r.new

    assert one("TYPE_EXISTS", "struct core_basic___v1") == 1
    assert one("TYPE_EXISTS", "struct core_missing") == 0
    assert one("TYPE_EXISTS", "core_u32_t") == 1  # a typedef
    assert one("TYPE_EXISTS", "struct core_inner___v2") == 1
    assert one("TYPE_SIZE", "struct core_basic___v1") == gcc_facts["sizeof(struct core_basic)"]
    assert one("TYPE_SIZE", "struct core_sized___v1") == gcc_facts["sizeof(struct core_sized)"]
    assert one("TYPE_SIZE", "struct core_missing") == 0
    assert one("TYPE_ID_TARGET", "struct core_basic___v1") == target.find_one(
        "core_basic", "struct")
    assert one("TYPE_ID_LOCAL", "struct core_basic___v1") == local.btf.find_one(
        "core_basic___v1", "struct")


def test_type_matches_is_stricter_than_exists(local, target):
    """clang 14 cannot emit TYPE_MATCHES (clang 15+): turn TYPE_EXISTS records into
    it. core_inner___v2 has 'int x' where the target has 'long x', and core_basic___v1
    has members the target lacks ('missing_field') or types differently ('grown'): both
    exist (name and kind fit) but do not match. core_u32_t matches."""
    section = "socket/types"
    relos = [r._replace(kind=K.TYPE_MATCHES) if r.kind == K.TYPE_EXISTS else r
             for r in local.relos[section]]
    code, results = relocate_section(local.code(section), relos, local.btf,
                                     CoreCache(target), section=section)
    got = {r.what: r.new for r in results if r.kind == K.TYPE_MATCHES}
    assert got == {"type 'struct core_basic___v1'": 0, "type 'struct core_missing'": 0,
                   "type 'core_u32_t'": 1, "type 'struct core_inner___v2'": 0}
    assert not any(r.poisoned for r in results)


def test_enums(local, target, gcc_facts):
    insns, keyed, _ = relocate(local, "socket/enums", target)

    def one(kind, what):
        (r,) = keyed[kind, what]
        assert not r.poisoned
        return r, insns[r.slot]

    r, insn = one("ENUMVAL_EXISTS", "core_color___v1::CORE_RED___v1")
    assert r.new == 1 and insn.imm == 1
    r, insn = one("ENUMVAL_EXISTS", "core_color___v1::CORE_GONE___v1")
    assert r.new == 0 and insn.imm == 0
    r, insn = one("ENUMVAL_VALUE", "core_color___v1::CORE_GREEN___v1")
    assert r.old == 2 and insn.imm == gcc_facts["(long long)CORE_GREEN"] == 20
    r, insn = one("ENUMVAL_VALUE", "core_color___v1::CORE_BLUE___v1")
    assert insn.slots == 2 and insn.imm == gcc_facts["(long long)CORE_BLUE"] == -3


def test_missing_things_are_poisoned_with_messages(local, target):
    insns, keyed, results = relocate(local, "socket/missing", target)
    assert [r.poisoned for r in results] == [True, True, True]
    for r in results:
        assert insns[r.slot] == asm.call(POISON_HELPER)
    (field,) = keyed["FIELD_BYTE_OFFSET", "core_basic___v1.missing_field"]
    assert field.message == (
        "CO-RE relocation #0 in section 'socket/missing' failed: field "
        "'core_basic___v1.missing_field' (access 0:12) not found in target BTF: struct "
        "core_basic has no member 'missing_field'")
    (whole,) = keyed["FIELD_BYTE_OFFSET", "core_missing.x"]
    assert whole.message.endswith("not found in target BTF: no struct named 'core_missing' "
                                  "in target BTF")
    (enum,) = keyed["ENUMVAL_VALUE", "core_color___v1::CORE_GONE___v1"]
    assert "enum core_color has no value CORE_GONE" in enum.message
    # a poisoned ld_imm64 becomes two calls: no half instruction left behind
    assert insns[enum.slot + 1] == asm.call(POISON_HELPER)


def test_ambiguous_candidates_are_an_error(local, target):
    with pytest.raises(CoreError) as e:
        relocate(local, "socket/amb_bad", target)
    msg = str(e.value)
    assert "relocation #0 in section 'socket/amb_bad'" in msg
    assert "struct core_amb___one" in msg and "struct core_amb___two" in msg
    assert "different field offsets (0 and 4)" in msg


def test_candidates_narrow_to_those_that_fit(local, target, gcc_facts):
    cache = CoreCache(target)
    _, keyed, _ = relocate(local, "socket/amb_narrow", target, cache)
    (a,) = keyed["FIELD_BYTE_OFFSET", "core_amb.a"]
    assert a.new == 0 and [t.btf.type(t.type_id).name for t in a.targets] == [
        "core_amb___one"]
    # the same cache remembers the narrowing: amb_bad is no longer ambiguous
    _, keyed, _ = relocate(local, "socket/amb_bad", target, cache)
    assert keyed["FIELD_BYTE_OFFSET", "core_amb.a"][0].new == 0


class SameNameCache(CoreCache):
    """Candidates of exactly the local name: an object relocated against its own BTF
    would otherwise see its flavors of one type (core_inner___v1, ___v2) as rivals."""

    def lookup(self, local_type):
        return tuple(c for c in super().lookup(local_type)
                     if c.btf.type(c.type_id).name == local_type.name)


@pytest.mark.parametrize("order", ["bpfel", "bpfeb"])
def test_relocating_against_own_btf_changes_nothing(build, order):
    """Every value computed from the local BTF equals what clang compiled in (the
    instruction checks would raise otherwise), so apart from bitfields (where clang
    picks its own load size) code is unchanged."""
    obj = build("core_local", order)
    cache = SameNameCache(obj.btf)
    for section, relos in obj.relos.items():
        code, results = relocate_section(obj.code(section), relos, obj.btf, cache,
                                         byteorder=obj.byteorder, section=section)
        if section != "socket/bitfields":
            assert code == obj.code(section), section
        for r in results:
            assert not r.poisoned, r


def test_instruction_lists_in_and_out(local, target):
    section = "socket/resize"
    insns = asm.decode(local.code(section))
    out, results = relocate_section(insns, local.relos[section], local.btf, CoreCache(target),
                                    section=section)
    assert isinstance(out, list) and all(isinstance(i, asm.Insn) for i in out)
    code, _ = relocate_section(local.code(section), local.relos[section], local.btf,
                               CoreCache(target), section=section)
    assert asm.encode(out) == code


# ---- refusals ---------------------------------------------------------------------------

def test_instruction_not_matching_its_record_is_refused(local, target):
    section = "socket/fields"
    code = bytearray(local.code(section))
    code[4:8] = (5).to_bytes(4, "little")  # slot 0: r1 = 4 (FIELD_BYTE_SIZE of a)
    with pytest.raises(CoreError, match=r"relocation #0 .*instruction 0.*holds 5, not the "
                                        r"expected 4"):
        relocate_section(bytes(code), local.relos[section], local.btf, CoreCache(target),
                         section=section)


@pytest.mark.parametrize("change, message", [
    (dict(access_str="0:x"), "malformed CO-RE access string"),
    (dict(access_str="0:99"), "has no member #99"),
    (dict(type_id=10 ** 6), "not in this BTF"),
    (dict(kind=42), "unknown CO-RE relocation kind 42"),
    (dict(insn_off=8 * 10 ** 4), "is not an instruction"),
    (dict(kind=K.TYPE_SIZE), "access string must be '0'"),
])
def test_malformed_records_are_refused(local, target, change, message):
    section = "socket/offsets"
    relo = local.relos[section][0]._replace(**change)
    with pytest.raises(CoreError, match=message):
        relocate_section(local.code(section), [relo], local.btf, CoreCache(target),
                         section=section)


def test_anonymous_root_type_is_refused(local, target):
    btf = local.btf.copy()
    anon = btf.add(T.Struct("", 4, (T.Member("x", btf.find_one("int", "int"), 0),)))
    relo = CoreRelo(0, anon, "0:0", K.FIELD_BYTE_OFFSET, 0)
    with pytest.raises(CoreError, match="anonymous type"):
        resolve(relo, btf, CoreCache(target))
    # ... except for TYPE_ID_LOCAL, which needs no kernel type
    local_id = CoreRelo(0, anon, "0", K.TYPE_ID_LOCAL, 0)
    assert resolve(local_id, btf, CoreCache(target)).new == anon


def test_wrong_instruction_kinds_are_refused(local, target):
    relo = CoreRelo(0, local.btf.find_one("core_basic___v1", "struct"), "0:0",
                    K.FIELD_BYTE_OFFSET, 0)
    for insn, message in ((asm.exit(), "opcode 0x95"), (asm.mov64(asm.R1, asm.R2),
                                                        "takes a register")):
        with pytest.raises(CoreError, match=message):
            apply_relocation(bytearray(insn.encode()), relo, local.btf, CoreCache(target))


# ---- instruction patching on hand-made BTF ----------------------------------------------

def int_types(btf):
    """{'int': id, 'uint': id, ...}: the integer types the hand-made structs use."""
    return {name: btf.add(T.Int(cname, size, enc, 0, size * 8)) for name, cname, size, enc in (
        ("int", "int", 4, T.INT_SIGNED), ("uint", "unsigned int", 4, 0),
        ("uchar", "unsigned char", 1, 0), ("ulong", "unsigned long", 8, 0),
        ("long", "long", 8, T.INT_SIGNED),
        ("u128", "unsigned __int128", 16, 0))}


def pair(local_field, target_field, target_offset):
    """Local 'struct hm { <local_field> a; }' and a target whose 'a' is elsewhere."""
    local, target = Btf(), Btf()
    lt, tt = int_types(local), int_types(target)
    hm = local.add(T.Struct("hm", 16, (T.Member("a", lt[local_field], 0),)))
    target.add(T.Struct("hm", target_offset + 16,
                        (T.Member("a", tt[target_field], target_offset * 8),)))
    return local, target, CoreRelo(0, hm, "0:0", K.FIELD_BYTE_OFFSET, 0)


def patch_one(insn, local, target, relo):
    buf = bytearray(insn.encode())
    result = apply_relocation(buf, relo, local, CoreCache(target))
    return asm.decode(bytes(buf))[0], result


@pytest.mark.parametrize("insn, expected", [
    (asm.ldx(4, asm.R0, asm.R1, 0), "r0 = *(u32 *)(r1 + 24)"),
    (asm.stx(4, asm.R1, asm.R2, 0), "*(u32 *)(r1 + 24) = r2"),
    (asm.st(4, asm.R1, 0, 7), "*(u32 *)(r1 + 24) = 7"),
    (asm.mov64(asm.R3, 0), "r3 = 24"),
    (asm.alu32("add", asm.R3, 0), "w3 += 24"),
    (asm.ld_imm64(asm.R3, 0), "r3 = 24 ll"),
])
def test_every_patchable_instruction_form(insn, expected):
    got, result = patch_one(insn, *pair("uint", "uint", 24))
    assert str(got) == expected and (result.old, result.new) == (0, 24)


@pytest.mark.parametrize("local_field, target_field, insn, expected", [
    ("uint", "ulong", asm.ldx(4, asm.R0, asm.R1, 0), "r0 = *(u64 *)(r1 + 8)"),
    ("ulong", "uchar", asm.ldx(8, asm.R0, asm.R1, 0), "r0 = *(u8 *)(r1 + 8)"),
    ("uint", "ulong", asm.stx(4, asm.R1, asm.R2, 0), "*(u64 *)(r1 + 8) = r2"),
])
def test_unsigned_loads_and_stores_change_size(local_field, target_field, insn, expected):
    got, result = patch_one(insn, *pair(local_field, target_field, 8))
    assert str(got) == expected and not result.poisoned


@pytest.mark.parametrize("local_field, target_field, target_offset, insn, message", [
    ("uint", "uint", 40000, asm.ldx(4, asm.R0, asm.R1, 0), "does not fit an instruction's "
                                                            "16-bit offset"),
    ("uint", "ulong", 8, asm.ldx(8, asm.R0, asm.R1, 0), "accesses 8 bytes, the field has 4"),
    ("uint", "u128", 8, asm.ldx(4, asm.R0, asm.R1, 0), "16 bytes, which no single load"),
    ("uint", "uint", 8, asm.ld_map_fd(asm.R1, 0), "not a plain 64-bit constant load"),
    ("uint", "uint", 8, asm.ldx(4, asm.R0, asm.R1, 4), "offset is 4, not the expected 0"),
])
def test_unpatchable_instructions_are_refused(local_field, target_field, target_offset,
                                              insn, message):
    local, target, relo = pair(local_field, target_field, target_offset)
    with pytest.raises(CoreError, match=message):
        patch_one(insn, local, target, relo)


def test_signed_load_that_changes_size_is_poisoned():
    got, result = patch_one(asm.ldx(4, asm.R0, asm.R1, 0), *pair("int", "int", 8))
    assert str(got) == "r0 = *(u32 *)(r1 + 8)"  # same size: fine
    got, result = patch_one(asm.ldx(4, asm.R0, asm.R1, 0), *pair("int", "long", 8))
    assert got == asm.call(POISON_HELPER) and result.poisoned
    assert "changed size from 4 to 8 bytes" in result.message


def test_64_bit_enum_values_need_ld_imm64():
    local, target = Btf(), Btf()
    e = local.add(T.Enum("big", 4, (T.EnumValue("HUGE", 1),)))
    target.add(T.Enum64("big", 8, (T.EnumValue("HUGE", 1 << 40),)))
    relo = CoreRelo(0, e, "0", K.ENUMVAL_VALUE, 0)
    got, result = patch_one(asm.ld_imm64(asm.R1, 1), local, target, relo)
    assert got.imm == 1 << 40 and result.new == 1 << 40
    with pytest.raises(CoreError, match="does not fit a 32-bit immediate"):
        patch_one(asm.mov64(asm.R1, 1), local, target, relo)


# ---- candidates and compatibility rules -------------------------------------------------

@pytest.mark.parametrize("name, essential", [
    ("task_struct", "task_struct"), ("task_struct___v1", "task_struct"),
    ("a___b___c", "a___b"), ("___GFP_DMA", "___GFP_DMA"), ("a____b", "a____b"),
    ("x___", "x___"), ("x___y_", "x"), ("_a___b", "_a"), ("", ""),
])
def test_essential_name(name, essential):
    assert essential_name(name) == essential


def small_btf():
    b = Btf()
    ids = {}
    ids["int"] = b.add(T.Int("int", 4, T.INT_SIGNED, 0, 32))
    ids["uint"] = b.add(T.Int("unsigned int", 4, 0, 0, 32))
    ids["long"] = b.add(T.Int("long", 8, T.INT_SIGNED, 0, 64))
    ids["fwd_s"] = b.add(T.Fwd("s", False))
    ids["s"] = b.add(T.Struct("s", 4, (T.Member("x", ids["int"], 0),)))
    ids["u"] = b.add(T.Union("s", 4, (T.Member("x", ids["int"], 0),)))
    ids["ptr_s"] = b.add(T.Ptr("", ids["s"]))
    ids["ptr_fwd"] = b.add(T.Ptr("", ids["fwd_s"]))
    ids["e"] = b.add(T.Enum("e", 4, (T.EnumValue("A", 1), T.EnumValue("B", 2))))
    ids["e___x"] = b.add(T.Enum("e___x", 4, (T.EnumValue("B___x", 7),)))
    ids["e64"] = b.add(T.Enum64("e", 8, (T.EnumValue("A", 1), T.EnumValue("B", 2))))
    ids["arr4"] = b.add(T.Array("", ids["int"], ids["int"], 4))
    ids["arr8"] = b.add(T.Array("", ids["int"], ids["int"], 8))
    ids["proto"] = b.add(T.FuncProto("", ids["int"], (T.Param("a", ids["ptr_s"]),)))
    ids["bits"] = b.add(T.Int("int", 4, T.INT_SIGNED, 3, 8))  # old-style bitfield int
    return b, ids


@pytest.mark.parametrize("a, b, compat", [
    ("int", "long", True), ("int", "uint", True), ("s", "u", True), ("ptr_s", "ptr_fwd", True),
    ("arr4", "arr8", True), ("e", "e64", True), ("int", "s", False), ("int", "bits", False),
    ("e", "e___x", True), ("ptr_s", "int", False),
])
def test_field_compatibility(a, b, compat):
    btf, ids = small_btf()
    assert fields_compatible(btf, ids[a], btf, ids[b]) is compat


@pytest.mark.parametrize("a, b, matches", [
    ("int", "int", True), ("int", "uint", False), ("int", "long", False),
    ("e___x", "e", True),     # every local enumerator name (up to flavors) is there
    ("e", "e___x", False),    # A is missing
    ("e", "e64", False),      # sizes differ
    ("arr4", "arr8", False), ("s", "u", False),
    ("ptr_s", "ptr_fwd", True),   # behind a pointer a struct matches its forward decl
    ("fwd_s", "s", False),        # ... but not in place
    ("proto", "proto", True),
])
def test_type_matching(a, b, matches):
    btf, ids = small_btf()
    assert types_match(btf, ids[a], btf, ids[b]) is matches


def test_type_compatibility_follows_pointers_and_prototypes():
    btf, ids = small_btf()
    assert types_compatible(btf, ids["ptr_s"], btf, ids["ptr_fwd"]) is False  # struct vs fwd
    assert types_compatible(btf, ids["proto"], btf, ids["proto"]) is True
    assert types_compatible(btf, ids["arr4"], btf, ids["arr8"]) is True
    assert types_compatible(btf, ids["int"], btf, ids["bits"]) is False


def test_modules_are_searched_only_for_what_vmlinux_lacks():
    base, ids = small_btf()
    module = Btf(base=base)
    m_int = module.add(T.Int("int", 4, T.INT_SIGNED, 0, 32))
    m_s = module.add(T.Struct("s___mod", 8, (T.Member("x", m_int, 32),)))
    m_only = module.add(T.Struct("only_in_module", 4, ()))
    cache = CoreCache({"vmlinux": base, "mymod": module})
    local_s = T.Struct("s", 4, ())
    assert [(c.source, c.type_id) for c in cache.lookup(local_s)] == [("vmlinux", ids["s"])]
    local_only = T.Struct("only_in_module___v2", 4, ())
    assert [(c.source, c.type_id) for c in cache.lookup(local_only)] == [("mymod", m_only)]
    assert m_s not in [c.type_id for c in cache.lookup(local_s)]


def test_poisoned_insn_from_verifier_log():
    log = ("0: R1=ctx() R10=fp0\n0: (85) call bpf_get_current_task#35\n"
           f"1: (85) call unknown#{POISON_HELPER}\ninvalid func unknown#{POISON_HELPER}\n"
           "processed 2 insns\n")
    assert poisoned_insn(log) == 1
    assert poisoned_insn("0: (95) exit\n") is None
    assert poisoned_insn(None) is None


# ---- against the running kernel's BTF ---------------------------------------------------

def test_vmlinux_relocation_speed(build):
    """~50 relocations over a dozen kernel types, from a freshly opened (lazy) vmlinux
    BTF: tens of milliseconds. The values are checked against Btf.member()."""
    vmlinux = Path("/sys/kernel/btf/vmlinux")
    if not vmlinux.exists():
        pytest.skip("this kernel has no /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF, "
                    "5.4+ kernels can have it)")
    obj = build("core_perf")
    (section, relos), = obj.relos.items()
    assert len(relos) >= 50
    start = time.perf_counter()
    vm = Btf.vmlinux(cache=False)
    opened = time.perf_counter()
    code, results = relocate_section(obj.code(section), relos, obj.btf, CoreCache(vm),
                                     section=section)
    done = time.perf_counter()
    print(f"\nvmlinux opened in {1e3 * (opened - start):.1f} ms; {len(results)} CO-RE "
          f"relocations over {len({r.type_id for r in results})} types in "
          f"{1e3 * (done - opened):.1f} ms")
    assert not any(r.poisoned for r in results)
    task = vm.find_one("task_struct", "struct")
    (tgid,) = [r for r in results if r.what == "field 'task_struct.tgid'"][:1]
    assert tgid.new == vm.member(task, "tgid").bit_offset // 8
    (family,) = [r for r in results if r.what == "field 'sock.__sk_common.skc_family'"]
    sock = vm.find_one("sock", "struct")
    assert family.new == vm.member(sock, "__sk_common.skc_family").bit_offset // 8
