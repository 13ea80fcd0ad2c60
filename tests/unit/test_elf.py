"""pybpf.elf against LLVM's own reading of the same files, and against malformed input.

The reference answers come from llvm-readobj/llvm-readelf/llvm-objcopy/nm run on objects
clang builds here (both byte orders) and on the C library, so a wrong field offset or a
byte-order slip in the reader shows up as a mismatch, not as a self-consistent error.
The malformed files are built by a small ELF writer below, one defect at a time; every
one must be refused with ElfError naming where the problem is.
"""
import json
import re
import shutil
import struct
import subprocess
import sys
import sysconfig
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import NamedTuple, Optional

import pytest

from pybpf import elf
from pybpf.elf import ElfError, ElfFile
from toolbox import setup_missing

DATA = Path(__file__).resolve().parents[1] / "data" / "elf"
SOURCE = DATA / "sections.bpf.c"
SETUP_HINT = "run the project's test set-up (bash tools/run-tests), which installs clang and llvm"


def tool(name):
    """Path of an LLVM tool, also under Debian's versioned name."""
    path = shutil.which(name) or shutil.which(name + "-14")
    if path is None:
        setup_missing(f"{name} is not installed: {SETUP_HINT}")
    return path


def run(*cmd):
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    assert res.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{res.stderr}"
    return res.stdout


def include_flags():
    """-I for libbpf's headers, plus the multiarch dir that <asm/types.h> lives in."""
    flags = ["-I/usr/include"]
    multiarch = sysconfig.get_config_var("MULTIARCH")
    if multiarch and Path("/usr/include", multiarch).is_dir():
        flags.append(f"-I/usr/include/{multiarch}")
    return flags


def compile_bpf(clang, source, out, target):
    run(clang, "-O2", "-g", "-Wall", "-Werror", "-target", target, *include_flags(),
        "-c", source, "-o", out)
    return out


@pytest.fixture(scope="module")
def objects(clang, tmp_path_factory):
    """The fixture program built for each BPF target: name -> path."""
    out = tmp_path_factory.mktemp("elf")
    return {t: compile_bpf(clang, SOURCE, out / f"sections-{t}.o", t)
            for t in ("bpfel", "bpfeb", "bpf")}


def readobj(path, *flags):
    """llvm-readobj's JSON document for one file (clang 14 has JSON for -S, -s, -l)."""
    doc = json.loads(run(tool("llvm-readobj"), "--elf-output-style=JSON", *flags, path))
    (inner,) = doc[0].values()
    return inner


_REL_HEADER = re.compile(r"^Relocation section '(.*)' at offset 0x[0-9a-f]+ contains \d+ entries:")
_REL_ROW = re.compile(r"^([0-9a-f]{16})\s+([0-9a-f]{16})\s+\S+\s*(.*)$")


def readelf_relocations(path):
    """Relocation section name -> [(offset, r_info, addend or None)] from `llvm-readelf -r`.

    Its JSON output for relocations is broken in LLVM 14 (it prints LLVM-style text
    inside the JSON), so the GNU-style text is parsed instead.
    """
    out, current = {}, None
    for line in run(tool("llvm-readelf"), "-r", path).splitlines():
        m = _REL_HEADER.match(line)
        if m:
            current = out.setdefault(m.group(1), [])
            continue
        m = _REL_ROW.match(line)
        if m and current is not None:
            rest = m.group(3).split()
            addend = None
            if len(rest) >= 2 and rest[-2] in "+-":
                addend = int(rest[-1], 16) * (-1 if rest[-2] == "-" else 1)
            elif len(rest) == 1:
                addend = int(rest[0], 16)
            current.append((int(m.group(1), 16), int(m.group(2), 16), addend))
    return out


# -- against LLVM on clang-built objects --------------------------------------------------

@pytest.mark.parametrize("target", ["bpfel", "bpfeb"])
def test_sections_match_llvm_readobj(objects, target):
    ours = ElfFile.from_path(objects[target])
    theirs = [s["Section"] for s in readobj(objects[target], "-S")["Sections"]]
    assert len(ours.sections) == len(theirs)
    for sec, ref in zip(ours.sections, theirs):
        assert (sec.index, sec.name, sec.type, sec.flags, sec.addr, sec.offset, sec.size,
                sec.link, sec.info, sec.addralign, sec.entsize) == (
            ref["Index"], ref["Name"]["Value"], ref["Type"]["RawValue"],
            ref["Flags"]["RawFlags"], ref["Address"], ref["Offset"], ref["Size"], ref["Link"],
            ref["Info"], ref["AddressAlignment"], ref["EntrySize"])
    assert ours.machine == elf.EM_BPF and ours.elf_type == elf.ET_REL
    assert ours.byteorder == {"bpfel": "little", "bpfeb": "big"}[target]
    assert ours.segments == ()


@pytest.mark.parametrize("target", ["bpfel", "bpfeb"])
def test_section_data_matches_llvm_objcopy(objects, target, tmp_path):
    ours = ElfFile.from_path(objects[target])
    for name in (".text", ".data", ".rodata", ".maps", "license", ".BTF", ".BTF.ext"):
        dump = tmp_path / "dump.bin"
        run(tool("llvm-objcopy"), "--dump-section", f"{name}={dump}", objects[target],
            tmp_path / "discard.o")
        sec = ours.section(name)
        assert sec.data == dump.read_bytes(), name
        assert bytes(sec.view) == sec.data
    assert ours.section("license").data == b"GPL\0"
    bss = ours.section(".bss")
    assert bss.type == elf.SHT_NOBITS and bss.data == b"" and bss.size >= 256
    assert ours.section("no such section") is None


def raw_other(ref):
    """st_other from llvm-readobj's JSON: a number, or a dict of flags when not zero."""
    other = ref["Other"]
    return other["RawFlags"] if isinstance(other, dict) else other


@pytest.mark.parametrize("target", ["bpfel", "bpfeb"])
def test_symbols_match_llvm_readobj(objects, target):
    ours = ElfFile.from_path(objects[target])
    theirs = [s["Symbol"] for s in readobj(objects[target], "-s")["Symbols"]]
    symtab = ours.section(".symtab")
    assert len(ours.symbols()) == len(theirs) == symtab.size // 24
    for sym, ref in zip(ours.symbols(), theirs):
        # llvm-readobj prints a section symbol under its section's name.
        name = sym.section_name if sym.type == elf.STT_SECTION else sym.name
        assert (name, sym.value, sym.size, sym.bind, sym.type, sym.other, sym.shndx) == (
            ref["Name"]["Value"], ref["Value"], ref["Size"], ref["Binding"]["RawValue"],
            ref["Type"]["RawValue"], raw_other(ref), ref["Section"]["RawValue"]), ref
        assert sym.table == symtab.index
        if 0 < sym.shndx < elf.SHN_LORESERVE:
            assert sym.section_name == ours.sections[sym.shndx].name
        else:
            assert sym.section_name is None
    assert ours.dynamic_symbols() == ()


@pytest.mark.parametrize("target", ["bpfel", "bpfeb"])
def test_relocations_match_llvm_readelf(objects, target):
    ours = ElfFile.from_path(objects[target])
    theirs = readelf_relocations(objects[target])
    relocs = ours.relocations()
    rel_sections = [s for s in ours.sections if s.type == elf.SHT_REL]
    assert sorted(theirs) == sorted(s.name for s in rel_sections)
    assert sorted(relocs) == sorted(s.info for s in rel_sections)
    for sec in rel_sections:
        got = [(r.offset, r.symbol_index << 32 | r.type, r.addend) for r in relocs[sec.info]]
        assert got == theirs[sec.name], sec.name
        for r in relocs[sec.info]:
            assert r.symbol is ours.symbols()[r.symbol_index]


def bpf_relocations(obj):
    """Program section name -> [(offset, type, symbol or section name)]."""
    out = {}
    for target, relocs in obj.relocations().items():
        sec = obj.sections[target]
        if sec.flags & elf.SHF_EXECINSTR:
            out[sec.name] = [(r.offset, r.type, r.symbol.name or r.symbol.section_name)
                             for r in relocs]
    return out


def test_big_endian_object_reads_like_little_endian(objects):
    le, be = ElfFile.from_path(objects["bpfel"]), ElfFile.from_path(objects["bpfeb"])
    assert [(s.name, s.type, s.size) for s in le.sections] == \
        [(s.name, s.type, s.size) for s in be.sections]
    assert [(s.name, s.bind, s.type, s.size, s.section_name) for s in le.symbols()] == \
        [(s.name, s.bind, s.type, s.size, s.section_name) for s in be.symbols()]
    assert bpf_relocations(le) == bpf_relocations(be)
    # The same 8-byte global, in each byte order.
    assert le.section(".data").data == (1).to_bytes(8, "little")
    assert be.section(".data").data == (1).to_bytes(8, "big")


def test_relocations_of_the_fixture_program(objects):
    """What the loader will rely on: map and global-data references are R_BPF_64_64 against
    the variable's symbol; calls of the static subprogram are R_BPF_64_32 against .text."""
    got = bpf_relocations(ElfFile.from_path(objects["bpfel"]))
    assert set(got) == {".text", "tracepoint/syscalls/sys_enter_write", "xdp",
                        "raw_tracepoint/sched_switch"}
    assert {(t, s) for _, t, s in got[".text"]} == {
        (elf.R_BPF_64_64, "counts"), (elf.R_BPF_64_64, "misses"), (elf.R_BPF_64_64, "hits")}
    assert {(t, s) for _, t, s in got["tracepoint/syscalls/sys_enter_write"]} == {
        (elf.R_BPF_64_64, "settings"), (elf.R_BPF_64_64, "scratch"),
        (elf.R_BPF_64_64, "limit"), (elf.R_BPF_64_64, "calls"), (elf.R_BPF_64_32, ".text")}
    assert [(t, s) for _, t, s in got["raw_tracepoint/sched_switch"]] == \
        [(elf.R_BPF_64_32, ".text")] * 2
    obj = ElfFile.from_path(objects["bpfel"])
    for name, sect in (("counts", ".maps"), ("settings", ".maps"), ("hits", ".data"),
                       ("limit", ".rodata"), ("misses", ".bss"), ("scratch", ".bss"),
                       ("bump", ".text"), ("on_packet", "xdp"), ("LICENSE", "license")):
        sym = obj.symbol(name)
        assert sym is not None and sym.section_name == sect, name
    assert obj.symbol("bump").bind == elf.STB_LOCAL and obj.symbol("bump").type == elf.STT_FUNC
    assert obj.symbol("calls").visibility == elf.STV_HIDDEN
    assert obj.symbol("no_such_symbol") is None


def test_target_bpf_is_host_byte_order(objects):
    assert ElfFile.from_path(objects["bpf"]).byteorder == sys.byteorder


def test_results_are_immutable(objects):
    obj = ElfFile.from_path(objects["bpfel"])
    assert isinstance(obj.sections, tuple) and isinstance(obj.symbols(), tuple)
    with pytest.raises(FrozenInstanceError):
        obj.sections[1].name = "x"
    with pytest.raises(FrozenInstanceError):
        obj.symbols()[1].value = 3
    relocs = obj.relocations()
    with pytest.raises(TypeError):
        relocs[1] = ()
    assert obj.relocations() is relocs and obj.symbols() is obj.symbols()
    with pytest.raises(TypeError):
        obj.section(".text").view[0] = 0


def test_parse_large_object(clang, tmp_path):
    """A ~110 KB object (120 programs, debug info, ~2200 relocations) parses completely:
    sections, symbols, relocations (about 3 ms here; speed is a benchmark matter, not
    asserted)."""
    progs = "\n".join(
        f'SEC("xdp") int p{i}(struct xdp_md *c) {{ return bump({i}) + bump(c->ingress_ifindex)'
        f' > limit; }}' for i in range(120))
    src = tmp_path / "big.bpf.c"
    src.write_text(SOURCE.read_text() + "\n" + progs + "\n")
    data = compile_bpf(clang, src, tmp_path / "big.o", "bpfel").read_bytes()
    assert len(data) > 50_000

    def parse():
        obj = ElfFile(data)
        obj.symbols()
        return obj.relocations()

    assert sum(map(len, parse().values())) > 240


# -- shared libraries: .dynsym, program headers, uprobe offsets -----------------------------

@pytest.fixture(scope="module")
def libc_path():
    out = subprocess.run(["ldd", "/bin/true"], capture_output=True, text=True).stdout
    m = re.search(r"libc\.so\.6 => (\S+)", out)
    if not m:
        pytest.skip("no glibc here (ldd /bin/true names no libc.so.6): the shared-library"
                    " tests read glibc's libc.so.6")
    return m.group(1)


def test_libc_dynamic_symbols_match_llvm_readobj(libc_path):
    ours = ElfFile.from_path(libc_path)
    assert ours.elf_type == elf.ET_DYN and ours.byteorder == sys.byteorder
    theirs = [s["Symbol"] for s in readobj(libc_path, "--dyn-syms")["DynamicSymbols"]]
    dynsym = ours.dynamic_symbols()
    assert len(dynsym) == len(theirs) > 1000
    for sym, ref in zip(dynsym, theirs):
        # llvm-readobj appends the symbol version (malloc@@GLIBC_2.2.5).
        assert (sym.name, sym.value, sym.size, sym.bind, sym.type, sym.other, sym.shndx) == (
            ref["Name"]["Value"].split("@")[0], ref["Value"], ref["Size"],
            ref["Binding"]["RawValue"], ref["Type"]["RawValue"], raw_other(ref),
            ref["Section"]["RawValue"]), ref


def test_libc_segments_match_llvm_readobj(libc_path):
    ours = ElfFile.from_path(libc_path).segments
    theirs = [p["ProgramHeader"] for p in readobj(libc_path, "-l")["ProgramHeaders"]]
    assert [(s.type, s.flags, s.offset, s.vaddr, s.paddr, s.filesz, s.memsz, s.align)
            for s in ours] == [
        (p["Type"]["RawValue"], p["Flags"]["RawFlags"], p["Offset"], p["VirtualAddress"],
         p["PhysicalAddress"], p["FileSize"], p["MemSize"], p["Alignment"]) for p in theirs]


def test_libc_relocations_match_llvm_readelf(libc_path):
    ours = ElfFile.from_path(libc_path)
    theirs = readelf_relocations(libc_path)
    for sec in ours.sections:
        if sec.type == elf.SHT_RELA:
            got = [(r.offset, r.symbol_index << 32 | r.type, r.addend)
                   for r in ours.relocation_table(sec)]
            assert got == theirs[sec.name], sec.name
    # .rela.plt names its target (sh_info), .rela.dyn applies to the whole image.
    plt = ours.section(".rela.plt")
    assert plt is not None and ours.relocations()[plt.info] == ours.relocation_table(plt)


@pytest.mark.parametrize("name", ["malloc", "free", "getpid"])
def test_libc_vaddr_to_offset_for_uprobes(libc_path, name):
    """The file offset a uprobe on name attaches at, computed independently from nm's
    address and llvm-readobj's program headers, and checked against the bytes."""
    ours = ElfFile.from_path(libc_path)
    nm = run(shutil.which("nm") or tool("llvm-nm"), "-D", "--defined-only", libc_path)
    addrs = {int(m.group(1), 16) for m in re.finditer(
        rf"^([0-9a-f]+) [TtWwi] {re.escape(name)}@@", nm, re.M)}
    assert len(addrs) == 1, nm[:200]
    (addr,) = addrs
    sym = ours.symbol(name)
    assert sym.value == addr and sym.type in (elf.STT_FUNC, elf.STT_GNU_IFUNC)
    loads = [p["ProgramHeader"] for p in readobj(libc_path, "-l")["ProgramHeaders"]
             if p["ProgramHeader"]["Type"]["RawValue"] == elf.PT_LOAD]
    (seg,) = [p for p in loads if p["VirtualAddress"] <= addr < p["VirtualAddress"] + p["FileSize"]]
    expected = addr - seg["VirtualAddress"] + seg["Offset"]
    assert ours.vaddr_to_offset(addr) == expected
    text = ours.sections[sym.shndx]
    raw = Path(libc_path).read_bytes()
    assert raw[expected:expected + 16] == text.data[addr - text.addr:addr - text.addr + 16]


def system_elf_files(limit=150):
    """Up to limit shared libraries and programs of this system, spread over the list."""
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    paths = sorted(Path("/usr/lib", multiarch).glob("*.so*")) + sorted(Path("/usr/bin").iterdir())
    found = []
    for path in paths:
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as f:
                if f.read(5) == b"\x7fELF\x02":
                    found.append(path)
    return found[::max(1, len(found) // limit)][:limit]


def test_system_libraries_and_programs_parse():
    """The strict checks (overlap, string tables, links) must not refuse real files."""
    files = system_elf_files()
    if len(files) < 20:
        pytest.skip(f"only {len(files)} ELF64 files in /usr/lib and /usr/bin to read")
    for path in files:
        obj = read_all(ElfFile.from_path(path))
        assert obj.sections and (obj.symbols() or obj.dynamic_symbols() or obj.segments), path


def test_vaddr_to_offset_refuses_addresses_without_file_bytes(objects):
    segments = [(elf.PT_LOAD, elf.PF_R | elf.PF_X, 0, 0x400000, 0x400000, 0x100, 0x100, 0x1000),
                (elf.PT_LOAD, elf.PF_R | elf.PF_W, 0x100, 0x601100, 0x601100, 0x10, 0x80, 0x1000)]
    exe = ElfFile(build_elf(minimal_sections(), elf_type=elf.ET_EXEC, segments=segments))
    assert exe.vaddr_to_offset(0x400000) == 0
    assert exe.vaddr_to_offset(0x4000FF) == 0xFF
    assert exe.vaddr_to_offset(0x60110F) == 0x10F
    with pytest.raises(ElfError, match=r"0x601110 is in the zero-filled part of PT_LOAD"
                                       r" program header 1"):
        exe.vaddr_to_offset(0x601110)
    with pytest.raises(ElfError, match="not inside any PT_LOAD"):
        exe.vaddr_to_offset(0x400100)
    with pytest.raises(ElfError, match="no PT_LOAD program headers"):
        ElfFile.from_path(objects["bpfel"]).vaddr_to_offset(0)


# -- a small ELF writer for the malformed cases --------------------------------------------

class S(NamedTuple):
    """One section for build_elf; None fields are filled in from the data."""
    name: str
    type: int
    data: bytes = b""
    link: int = 0
    info: int = 0
    flags: int = 0
    entsize: int = 0
    addr: int = 0
    size: Optional[int] = None
    offset: Optional[int] = None
    name_offset: Optional[int] = None


def build_elf(sections, order="little", elf_type=elf.ET_REL, segments=(), extended=False):
    """An ELF64 file with a null section, the given sections and a .shstrtab last.

    extended=True writes the section count and e_shstrndx the way files with more than
    0xff00 sections must (e_shnum 0 and e_shstrndx SHN_XINDEX, real values in section 0).
    """
    e = "<" if order == "little" else ">"
    secs = list(sections) + [S(".shstrtab", elf.SHT_STRTAB)]
    names, name_offsets = bytearray(b"\0"), []
    for s in secs:
        name_offsets.append(len(names))
        names += s.name.encode("utf-8", "surrogateescape") + b"\0"
    secs[-1] = secs[-1]._replace(data=bytes(names))
    body = bytearray(64 + 56 * len(segments))
    offsets = []
    for s in secs:
        body += bytes(-len(body) % 8)
        offsets.append(len(body))
        if s.type != elf.SHT_NOBITS:
            body += s.data
    body += bytes(-len(body) % 8)
    shoff, count = len(body), len(secs) + 1
    body += struct.pack(e + "IIQQQQIIQQ", 0, 0, 0, 0, 0, count if extended else 0,
                        count - 1 if extended else 0, 0, 0, 0)
    for s, name_off, off in zip(secs, name_offsets, offsets):
        body += struct.pack(
            e + "IIQQQQIIQQ", name_off if s.name_offset is None else s.name_offset, s.type,
            s.flags, s.addr, off if s.offset is None else s.offset,
            len(s.data) if s.size is None else s.size, s.link, s.info, 8, s.entsize)
    for i, seg in enumerate(segments):
        struct.pack_into(e + "IIQQQQQQ", body, 64 + 56 * i, *seg)
    body[:64] = b"\x7fELF" + bytes([2, 1 if order == "little" else 2, 1]) + bytes(9) + struct.pack(
        e + "HHIQQQIHHHHHH", elf_type, elf.EM_BPF, 1, 0, 64 if segments else 0, shoff, 0, 64,
        56, len(segments), 64, 0 if extended else count,
        elf.SHN_XINDEX if extended else count - 1)
    return bytes(body)


STRTAB = b"\0prog\0buf\0"


def sym(name_off, bind, typ, shndx, value=0, size=0, order="little"):
    return struct.pack("<IBBHQQ" if order == "little" else ">IBBHQQ",
                       name_off, bind << 4 | typ, 0, shndx, value, size)


def rel(offset, sym_index, typ, order="little"):
    return struct.pack("<QQ" if order == "little" else ">QQ", offset, sym_index << 32 | typ)


def minimal_sections(order="little"):
    """[1] .text [2] .rel.text [3] .strtab [4] .symtab [5] .bss, then [6] .shstrtab."""
    symbols = (bytes(24) + sym(1, elf.STB_GLOBAL, elf.STT_FUNC, 1, 0, 16, order)
               + sym(6, elf.STB_GLOBAL, elf.STT_OBJECT, 5, 0, 8, order))
    return [
        S(".text", elf.SHT_PROGBITS, bytes(range(16)), flags=elf.SHF_ALLOC | elf.SHF_EXECINSTR),
        S(".rel.text", elf.SHT_REL, rel(0, 2, elf.R_BPF_64_64, order), link=4, info=1,
          flags=elf.SHF_INFO_LINK, entsize=16),
        S(".strtab", elf.SHT_STRTAB, STRTAB),
        S(".symtab", elf.SHT_SYMTAB, symbols, link=3, info=1, entsize=24),
        S(".bss", elf.SHT_NOBITS, size=8, flags=elf.SHF_ALLOC | elf.SHF_WRITE),
    ]


def changed(index, **fields):
    """minimal_sections() with section index's fields replaced."""
    secs = minimal_sections()
    secs[index - 1] = secs[index - 1]._replace(**fields)
    return build_elf(secs)


def patched(data, offset, fmt, value):
    out = bytearray(data)
    struct.pack_into("<" + fmt, out, offset, value)
    return bytes(out)


def read_all(obj):
    """Touch everything the reader parses lazily (the fuzz test does the same)."""
    obj.symbols(), obj.dynamic_symbols(), obj.relocations()
    return obj


@pytest.mark.parametrize("order", ["little", "big"])
def test_minimal_object_reads_back(order):
    obj = ElfFile(build_elf(minimal_sections(order), order=order))
    assert [s.name for s in obj.sections] == ["", ".text", ".rel.text", ".strtab", ".symtab",
                                              ".bss", ".shstrtab"]
    assert [(s.name, s.section_name, s.size) for s in obj.symbols()] == [
        ("", None, 0), ("prog", ".text", 16), ("buf", ".bss", 8)]
    ((r,),) = obj.relocations().values()
    assert (r.offset, r.type, r.symbol.name, r.addend) == (0, elf.R_BPF_64_64, "buf", None)
    assert obj.section(".bss").size == 8 and obj.section(".bss").data == b""


def test_extended_section_numbering_reads_like_the_plain_one():
    plain, ext = ElfFile(build_elf(minimal_sections())), ElfFile(
        build_elf(minimal_sections(), extended=True))
    assert [s.name for s in ext.sections] == [s.name for s in plain.sections]
    assert read_all(ext).symbols() == plain.symbols()


def test_symbol_section_index_through_shn_xindex():
    secs = minimal_sections()
    symbols = bytes(24) + sym(1, elf.STB_GLOBAL, elf.STT_FUNC, elf.SHN_XINDEX, 0, 16)
    secs[3] = secs[3]._replace(data=symbols)
    shndx = S(".symtab_shndx", elf.SHT_SYMTAB_SHNDX, struct.pack("<II", 0, 5), link=4,
              entsize=4)
    obj = ElfFile(build_elf(secs + [shndx]))
    assert obj.symbols()[1].shndx == 5 and obj.symbols()[1].section_name == ".bss"
    with pytest.raises(ElfError, match="SHN_XINDEX but no SHT_SYMTAB_SHNDX"):
        ElfFile(build_elf(secs)).symbols()
    with pytest.raises(ElfError, match=r"'\.symtab_shndx': size 4 does not hold"):
        ElfFile(build_elf(secs + [shndx._replace(data=bytes(4))])).symbols()
    with pytest.raises(ElfError, match="symbol 1 .* is in section 99, which does not exist"):
        ElfFile(build_elf(secs + [shndx._replace(data=struct.pack("<II", 0, 99))])).symbols()


def test_non_utf8_names_round_trip():
    secs = minimal_sections()
    secs[2] = secs[2]._replace(data=b"\0pr\xffg\0buf\0")
    obj = ElfFile(build_elf(secs))
    assert obj.symbols()[1].name.encode("utf-8", "surrogateescape") == b"pr\xffg"


def test_from_path_and_bytes_like_input(tmp_path):
    data = build_elf(minimal_sections())
    (tmp_path / "x.o").write_bytes(data)
    assert ElfFile.from_path(tmp_path / "x.o").sections == ElfFile(bytearray(data)).sections
    assert ElfFile(memoryview(data)).symbols() == ElfFile(data).symbols()
    for wrong in (1 << 40, "ELF"):
        with pytest.raises(TypeError):
            ElfFile(wrong)


GOOD = build_elf(minimal_sections())


def _shdr(index, field_offset):
    """File offset of a field of section header index in GOOD."""
    (shoff,) = struct.unpack_from("<Q", GOOD, 40)
    return shoff + 64 * index + field_offset

ELF32 = GOOD[:4] + b"\x01" + GOOD[5:]

MALFORMED = [
    ("empty file", b"", r"0 bytes, too short for an ELF identification"),
    ("ident only", GOOD[:16], r"16 bytes, too short for an ELF64 header"),
    ("bad magic", b"\x7fELG" + GOOD[4:], r"not an ELF file: magic is b'\\x7fELG'"),
    ("elf32", ELF32, r"ELF32 file: only ELF64 is supported"),
    ("bad class", GOOD[:4] + b"\x07" + GOOD[5:], r"bad EI_CLASS 7"),
    ("bad data", GOOD[:5] + b"\x03" + GOOD[6:], r"bad EI_DATA 3"),
    ("bad version", GOOD[:6] + b"\x00" + GOOD[7:], r"bad EI_VERSION 0"),
    ("truncated", GOOD[:-10], r"section header table at offset 0x[0-9a-f]+ \(7 entries of 64"
                              r" bytes\) extends past the end of the file"),
    ("e_shoff past the end", patched(GOOD, 40, "Q", 1 << 40),
     r"section header 0 at offset 0x10000000000 .* extends past the end"),
    ("e_shoff 0 with sections", patched(GOOD, 40, "Q", 0), r"e_shoff is 0 but e_shnum is 7"),
    ("e_shentsize", patched(GOOD, 58, "H", 40), r"e_shentsize is 40, expected 64"),
    ("huge extended count", patched(patched(GOOD, 60, "H", 0), _shdr(0, 32), "Q", 1 << 60),
     r"section header table .* \(1152921504606846976 entries of 64 bytes\) extends past"),
    ("zero extended count", patched(GOOD, 60, "H", 0), r"e_shnum is 0 and section 0's sh_size"),
    ("e_shstrndx out of range", patched(GOOD, 62, "H", 99),
     r"e_shstrndx 99 is out of range: the file has 7 sections"),
    ("e_shstrndx xindex out of range", patched(patched(GOOD, 62, "H", 0xFFFF), _shdr(0, 40),
                                               "I", 1000), r"e_shstrndx 1000 is out of range"),
    ("e_shstrndx not a strtab", patched(GOOD, 62, "H", 1),
     r"e_shstrndx 1 is not a string table \(sh_type 1\)"),
    ("section past the end", changed(1, size=1 << 40),
     r"section 1 '\.text': data at offset 0x[0-9a-f]+ size 0x10000000000 extends past the end"),
    ("section name offset", changed(1, name_offset=5000),
     r"section 1: name: offset 0x1388 is outside its string table"),
    ("section name unterminated", patched(GOOD, ElfFile(GOOD).sections[6].offset
                                          + ElfFile(GOOD).sections[6].size - 1, "B", 0x41),
     r"section 6: name: string at offset 0x[0-9a-f]+ is not NUL-terminated"),
    ("symtab sh_link out of range", changed(4, link=99),
     r"section 4 '\.symtab': sh_link 99 is out of range \(the file has 7 sections\)"),
    ("rel sh_info out of range", changed(2, info=70000),
     r"section 2 '\.rel\.text': sh_info 70000 is out of range"),
    ("phdr count past the end", patched(patched(GOOD, 56, "H", 0xFFFE), 32, "Q", 64),
     r"program header table at offset 0x40 \(65534 entries of 56 bytes\) extends past"),
    ("phdr with e_phoff 0", patched(GOOD, 56, "H", 1), r"e_phoff is 0 but there are 1"),
    ("relocation size past the end", changed(2, size=16 << 40),
     r"section 2 '\.rel\.text': data at offset 0x[0-9a-f]+ size 0x100000000000 extends"),
    ("e_phentsize", patched(patched(patched(GOOD, 56, "H", 1), 32, "Q", 64), 54, "H", 32),
     r"e_phentsize is 32, expected 56"),
]

LAZY_MALFORMED = [
    ("symtab link not a strtab", changed(4, link=1),
     r"section 4 '\.symtab': sh_link 1 names section 1 '\.text', which is not a string table"),
    ("symtab entsize 0", changed(4, entsize=0),
     r"section 4 '\.symtab': sh_entsize is 0, expected 24"),
    ("symtab size", changed(4, data=minimal_sections()[3].data + b"\0"),
     r"section 4 '\.symtab': size 73 is not a multiple of the entry size 24"),
    ("symbol name offset", changed(3, data=b"\0prog\0"),
     r"section 4 '\.symtab': symbol 2 name: offset 0x6 is outside its string table \(6 bytes\)"),
    ("symbol name unterminated", changed(3, data=b"\0prog\0buf"),
     r"symbol 2 name: string at offset 0x6 is not NUL-terminated"),
    ("symbol in missing section", changed(4, data=bytes(24) + sym(1, 1, 2, 40)),
     r"symbol 1 \('prog'\) is in section 40, which does not exist \(7 sections\)"),
    ("relocation symbol missing", changed(2, data=rel(0, 99, elf.R_BPF_64_64)),
     r"section 2 '\.rel\.text': entry 0 refers to symbol 99, but its symbol table has 3"),
    ("relocation offset past target", changed(2, data=rel(16, 2, elf.R_BPF_64_64)),
     r"section 2 '\.rel\.text': entry 0 offset 0x10 is beyond the end of target section 1"),
    ("relocation without symtab", changed(2, link=0),
     r"section 2 '\.rel\.text': entry 0 refers to symbol 2, but the section has no symbol table"),
    ("relocation link not a symtab", changed(2, link=3),
     r"section 2 '\.rel\.text': sh_link 3 names section 3 '\.strtab', which is not a symbol"),
    ("relocation entsize", changed(2, entsize=24),
     r"section 2 '\.rel\.text': sh_entsize is 24, expected 16"),
    ("relocation without target", changed(2, info=0),
     r"section 2 '\.rel\.text': relocation section has sh_info 0"),
]


@pytest.mark.parametrize("data, message", [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])
def test_malformed_headers_are_refused(data, message):
    with pytest.raises(ElfError, match=message):
        read_all(ElfFile(data))


@pytest.mark.parametrize("data, message", [m[1:] for m in LAZY_MALFORMED],
                         ids=[m[0] for m in LAZY_MALFORMED])
def test_malformed_tables_are_refused_when_read(data, message):
    obj = ElfFile(data)  # the headers are fine; the table is parsed on first use
    with pytest.raises(ElfError, match=message):
        read_all(obj)


def test_elf_error_is_a_value_error():
    assert issubclass(ElfError, ValueError)


def test_tables_of_the_wrong_type_are_refused():
    obj = ElfFile(GOOD)
    with pytest.raises(ElfError, match=r"section 1 '\.text': sh_type 1 is not a symbol table"):
        obj.symbol_table(obj.sections[1])
    with pytest.raises(ElfError, match=r"section 4 '\.symtab': sh_type 2 is not a relocation"):
        obj.relocation_table(obj.sections[4])
    other = ElfFile(GOOD)
    with pytest.raises(ValueError, match=r"section 4 '\.symtab' is not a section of this file"):
        obj.symbol_table(other.sections[4])
    # Symbol 0 of a relocation section without a symbol table is "no symbol".
    (r,) = ElfFile(changed(2, link=0, data=rel(8, 0, elf.R_BPF_NONE))).relocations()[1]
    assert r.symbol is None and r.symbol_index == 0 and r.offset == 8


def test_pt_load_filesz_larger_than_memsz():
    bad = [(elf.PT_LOAD, elf.PF_R, 0, 0x1000, 0x1000, 0x80, 0x40, 0x1000)]
    with pytest.raises(ElfError, match=r"program header 0: PT_LOAD p_filesz 0x80 is larger"):
        ElfFile(build_elf(minimal_sections(), elf_type=elf.ET_EXEC, segments=bad))
    past = [(elf.PT_NOTE, elf.PF_R, 0x10, 0, 0, 1 << 33, 1 << 33, 4)]
    with pytest.raises(ElfError, match=r"program header 0: data at offset 0x10 size 0x200000000"):
        ElfFile(build_elf(minimal_sections(), elf_type=elf.ET_EXEC, segments=past))


def test_overlapping_sections_are_refused():
    """No linker writes them; a corrupt file could point many tables at the same bytes."""
    rel_offset = ElfFile(GOOD).sections[2].offset
    with pytest.raises(ElfError, match=r"section 2 '\.rel\.text' \(bytes 0x[0-9a-f]+\.\."
                                       r"0x[0-9a-f]+\) overlaps section 1 '\.text'"):
        ElfFile(changed(1, offset=rel_offset - 8))
    # Empty and NOBITS sections take no bytes, so they overlap nothing.
    ElfFile(changed(5, offset=rel_offset, size=1 << 20))


def test_overlapping_tables_cannot_amplify_a_small_file():
    """1000 relocation sections over the same 16 KB (an 88 KB file) once made a million
    Relocation objects (2.3 s, 150 MB; quadratic in the file size). Now refused at once."""
    secs = minimal_sections()
    entries = rel(0, 1, elf.R_BPF_64_64) * 1000
    secs[1] = secs[1]._replace(data=entries)
    offset = ElfFile(build_elf(secs)).sections[2].offset
    copies = [S(f".rel{i}", elf.SHT_REL, link=4, info=1, entsize=16, offset=offset,
                size=len(entries)) for i in range(1000)]
    data = build_elf(secs + copies)
    with pytest.raises(ElfError, match=r"section 6 '\.rel0' .* overlaps section 2 '\.rel\.text'"):
        read_all(ElfFile(data))


def test_names_cannot_amplify_a_small_file():
    """4000 symbols naming successive offsets of one 4000-byte run would decode ~8 MB of
    names from a 100 KB file; the reader stops at its budget instead, quickly."""
    count = 4000
    strtab = b"\0" + b"A" * count + b"\0"
    symbols = bytes(24) + b"".join(sym(1 + i, elf.STB_GLOBAL, elf.STT_OBJECT, elf.SHN_ABS)
                                   for i in range(count - 1))
    secs = minimal_sections()
    secs[2], secs[3] = secs[2]._replace(data=strtab), secs[3]._replace(data=symbols)
    secs[1] = secs[1]._replace(data=b"")
    data = build_elf(secs)
    with pytest.raises(ElfError, match=r"symbol \d+ name: names read from this file exceed 8"
                                       r" times its size"):
        ElfFile(data).symbols()
    # The same names each ending in its own NUL are fine.
    strtab = b"\0" + b"".join(b"s%d\0" % i for i in range(count))
    offsets = [1]
    for i in range(count - 2):
        offsets.append(offsets[-1] + len(b"s%d\0" % i))
    secs[2] = secs[2]._replace(data=strtab)
    secs[3] = secs[3]._replace(data=bytes(24) + b"".join(
        sym(off, elf.STB_GLOBAL, elf.STT_OBJECT, elf.SHN_ABS) for off in offsets))
    assert ElfFile(build_elf(secs)).symbols()[-1].name == "s%d" % (count - 2)
