"""Fuzz pybpf.elf: a damaged object must either parse or raise ElfError -- nothing else.

Objects come from users; an IndexError, struct.error, UnicodeDecodeError, MemoryError,
RecursionError or a hang on a damaged file is a bug in the reader. The mutations aim
at the bytes the reader interprets (ELF header, section header table, symbol, string
and relocation tables) as well as anywhere in the file, on a clang-built object with
debug info (little-endian), one without (big-endian) and a tiny hand-built one.

Each example runs under hypothesis's deadline, so a slow path shows as a failure (a
real infinite loop is cut by pytest-timeout). Derandomized and bounded for the normal run;
PYBPF_FUZZ_EXAMPLES=20000 PYBPF_FUZZ_RANDOM=1 explores further by hand. Long sessions
(hypothesis and a plain random mutator, over a million inputs) found no crash; the two
resource blow-ups found by review instead (overlapping tables, names decoded over and
over from one long string) are regression tests in test_elf.py.
"""
import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf import elf
from pybpf.elf import ElfError, ElfFile

# The ELF writer and compile helper live in test_elf.py (tests/unit is on sys.path: it
# has no __init__.py, so pytest's default import mode puts it there).
from test_elf import SOURCE, S, build_elf, compile_bpf, minimal_sections, run, tool

EXAMPLES = int(os.environ.get("PYBPF_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=5000,
                derandomize=not os.environ.get("PYBPF_FUZZ_RANDOM"), database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

INTERESTING = [0, 1, 2, 3, 7, 8, 0x10, 0x18, 0x40, 0x7F, 0x80, 0xFF, 0x100, 0xFF00, 0xFFF1,
               0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1 << 32, 1 << 40, 1 << 62,
               (1 << 63) - 1, 1 << 63, (1 << 64) - 1]


def attempt(fn, *args):
    """Call fn; ElfError is an acceptable answer to a damaged file, anything else is not."""
    try:
        return fn(*args)
    except ElfError as e:
        assert str(e), "ElfError without a message"
        return None


def exercise(data):
    """Parse data and touch every accessor, each on its own so one refusal does not hide a
    crash in the next."""
    obj = attempt(ElfFile, data)
    if obj is None:
        return
    repr(obj)
    for sec in obj.sections:
        assert len(sec.data) == (sec.size if sec.has_data else 0)
        if sec.type in (elf.SHT_SYMTAB, elf.SHT_DYNSYM):
            attempt(obj.symbol_table, sec)
        if sec.type in (elf.SHT_REL, elf.SHT_RELA):
            attempt(obj.relocation_table, sec)
        obj.section(sec.name)
    attempt(obj.symbols)
    attempt(obj.dynamic_symbols)
    attempt(obj.relocations)
    attempt(obj.symbol, "bump")
    for seg in obj.segments:
        attempt(obj.vaddr_to_offset, seg.vaddr)


def regions(data):
    """(start, end) byte ranges the reader interprets, taken from the intact file."""
    obj = ElfFile(data)
    phoff, shoff = struct.unpack_from("<QQ" if obj.byteorder == "little" else ">QQ", data, 32)
    out = [(0, 64), (shoff, shoff + 64 * len(obj.sections))]
    if obj.segments:
        out.append((phoff, phoff + 56 * len(obj.segments)))
    for sec in obj.sections:
        if sec.type in (elf.SHT_SYMTAB, elf.SHT_DYNSYM, elf.SHT_STRTAB, elf.SHT_REL,
                        elf.SHT_RELA) and sec.size:
            out.append((sec.offset, sec.offset + sec.size))
    return out


def mutations(data):
    """Lists of edits: xor a byte, write an interesting integer, insert, delete, truncate."""
    anywhere = st.integers(0, len(data) - 1)
    targeted = st.sampled_from(regions(data)).flatmap(lambda r: st.integers(r[0], r[1] - 1))
    pos = st.one_of(targeted, targeted, anywhere)
    value = st.one_of(st.sampled_from(INTERESTING), st.integers(0, (1 << 64) - 1))
    edit = st.one_of(
        st.tuples(st.just("xor"), pos, st.integers(1, 255)),
        st.tuples(st.just("set"), pos, st.sampled_from([1, 2, 4, 8]), value),
        st.tuples(st.just("insert"), pos, st.binary(min_size=1, max_size=24)),
        st.tuples(st.just("delete"), pos, st.integers(1, 64)),
        st.tuples(st.just("truncate"), pos),
    )
    return st.lists(edit, min_size=1, max_size=6)


def apply(data, edits, order):
    out = bytearray(data)
    for edit in edits:
        kind, pos = edit[0], min(edit[1], max(len(out) - 1, 0))
        if kind == "xor" and out:
            out[pos] ^= edit[2]
        elif kind == "set":
            size, value = edit[2], edit[3] & ((1 << (8 * edit[2])) - 1)
            out[pos:pos + size] = value.to_bytes(size, order)
        elif kind == "insert":
            out[pos:pos] = edit[2]
        elif kind == "delete":
            del out[pos:pos + edit[2]]
        elif kind == "truncate":
            del out[pos:]
    return bytes(out)


@pytest.fixture(scope="module")
def seeds(clang, tmp_path_factory):
    """name -> (intact bytes, byte order) for each fuzz target."""
    out = tmp_path_factory.mktemp("elf-fuzz")
    debug = compile_bpf(clang, SOURCE, out / "el.o", "bpfel").read_bytes()
    plain = out / "eb.o"
    compile_bpf(clang, SOURCE, plain, "bpfeb")
    # Without debug info the object is small, so more of each mutation lands on structure.
    run(tool("llvm-objcopy"), "--strip-debug", plain, plain)
    return {
        "clang-bpfel-debug": (debug, "little"),
        "clang-bpfeb-stripped": (plain.read_bytes(), "big"),
        "minimal-le": (build_elf(minimal_sections("little"), order="little"), "little"),
        "minimal-be": (build_elf(minimal_sections("big"), order="big"), "big"),
    }


@pytest.mark.parametrize("target", ["clang-bpfel-debug", "clang-bpfeb-stripped",
                                    "minimal-le", "minimal-be"])
def test_mutated_objects_parse_or_raise_elf_error(seeds, target):
    data, order = seeds[target]
    exercise(data)  # the intact file must be fine too
    ElfFile(data).relocations()

    @FUZZ
    @given(mutations(data))
    def fuzz(edits):
        exercise(apply(data, edits, order))

    fuzz()


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_behind_a_valid_ident(tail):
    for ident in (b"\x7fELF\x02\x01\x01\x00" + bytes(8), b"\x7fELF\x02\x02\x01\x00" + bytes(8)):
        exercise(ident + tail)


# Weighted by repetition toward the types that link to each other.
SECTION_TYPES = [elf.SHT_PROGBITS, elf.SHT_PROGBITS, elf.SHT_SYMTAB, elf.SHT_SYMTAB,
                 elf.SHT_STRTAB, elf.SHT_STRTAB, elf.SHT_REL, elf.SHT_REL, elf.SHT_RELA,
                 elf.SHT_NOBITS, elf.SHT_DYNSYM, elf.SHT_SYMTAB_SHNDX, elf.SHT_NULL,
                 elf.SHT_GROUP, 0x12345678]
ENTSIZE = {elf.SHT_SYMTAB: 24, elf.SHT_DYNSYM: 24, elf.SHT_REL: 16, elf.SHT_RELA: 24,
           elf.SHT_SYMTAB_SHNDX: 4}
_SHN = (elf.SHN_LORESERVE, elf.SHN_ABS, elf.SHN_COMMON, elf.SHN_XINDEX)


def index(limit, special=(elf.SHN_XINDEX, 1 << 31)):
    """Mostly a valid section index, sometimes special or out of range."""
    return st.integers(0, 10 * (limit + 1)).flatmap(
        lambda v: st.just(v % (limit + 1)) if v < 10 * (limit + 1) else st.sampled_from(special))


def entries(typ, order, count):
    """Contents for a section of type typ: usually well-formed entries naming small
    indices, sometimes arbitrary bytes."""
    e = "<" if order == "little" else ">"
    if typ in (elf.SHT_SYMTAB, elf.SHT_DYNSYM):
        entry = st.builds(lambda *f: struct.pack(e + "IBBHQQ", *f),
                          st.sampled_from([0, 1, 1, 3, 12]), st.integers(0, 255),
                          st.integers(0, 255), index(count + 1, _SHN),
                          st.integers(0, 64), st.integers(0, 64))
    elif typ in (elf.SHT_REL, elf.SHT_RELA):
        rela = typ == elf.SHT_RELA
        entry = st.builds(lambda off, s, t: struct.pack(e + "QQq", off, s << 32 | t, -off)[
            :24 if rela else 16], st.integers(0, 40), index(4, (1 << 31,)), st.integers(0, 12))
    elif typ == elf.SHT_SYMTAB_SHNDX:
        entry = st.builds(lambda v: struct.pack(e + "I", v), index(count + 1))
    elif typ == elf.SHT_STRTAB:
        return st.lists(st.sampled_from([b"a", b"bump", b".text", b"\xff\xfe", b""]),
                        max_size=6).map(lambda ns: b"\0" + b"\0".join(ns) + b"\0")
    else:
        return st.binary(max_size=32)
    return st.one_of(st.lists(entry, max_size=5).map(b"".join), st.binary(max_size=40))


@st.composite
def synthetic_elf(draw):
    """A whole ELF file built from random section headers whose types, links, infos, entry
    sizes and contents are mostly consistent, so parsing gets deep before anything is off."""
    order = draw(st.sampled_from(["little", "big"]))
    types = draw(st.lists(st.sampled_from(SECTION_TYPES), min_size=1, max_size=8))
    count = len(types)

    def linked(want):
        """Usually the index of a section of one of the types wanted, else any index."""
        fits = [i + 1 for i, t in enumerate(types) if t in want] or [0]
        return draw(st.one_of(st.sampled_from(fits), st.sampled_from(fits), index(count + 1)))

    link_to = {elf.SHT_SYMTAB: (elf.SHT_STRTAB,), elf.SHT_DYNSYM: (elf.SHT_STRTAB,),
               elf.SHT_REL: (elf.SHT_SYMTAB, elf.SHT_DYNSYM),
               elf.SHT_RELA: (elf.SHT_SYMTAB, elf.SHT_DYNSYM),
               elf.SHT_SYMTAB_SHNDX: (elf.SHT_SYMTAB, elf.SHT_DYNSYM)}
    sections = []
    for typ in types:
        data = draw(entries(typ, order, count))
        sections.append(S(
            draw(st.sampled_from([".text", ".symtab", ".strtab", ".rel.text", "x", ""])), typ,
            b"" if typ == elf.SHT_NOBITS else data,
            link=linked(link_to.get(typ, ())), info=linked((elf.SHT_PROGBITS, elf.SHT_NOBITS)),
            flags=draw(st.sampled_from([0, elf.SHF_INFO_LINK, elf.SHF_ALLOC])),
            entsize=draw(st.one_of(st.just(ENTSIZE.get(typ, 0)), st.sampled_from([0, 4, 24]))),
            size=draw(st.one_of(st.none(), st.none(), st.integers(0, len(data))))))
    load = st.tuples(
        st.sampled_from([elf.PT_LOAD, elf.PT_LOAD, elf.PT_NOTE]), st.integers(0, 7),
        st.integers(0, 128), st.integers(0, 0x2000), st.integers(0, 0x2000),
        st.integers(0, 64), st.integers(64, 512), st.sampled_from([0, 8, 0x1000]))
    segments = draw(st.lists(load, max_size=3))
    return build_elf(sections, order=order, segments=segments, extended=draw(st.booleans()),
                     elf_type=draw(st.sampled_from([elf.ET_REL, elf.ET_EXEC, elf.ET_DYN])))


@FUZZ
@given(synthetic_elf())
def test_generated_section_tables_parse_or_raise_elf_error(data):
    exercise(data)
