"""USDT notes (pybpf.usdtnotes), without a kernel: the notes of a program gcc builds
from tests/progs/attach/usdt_target.c with <sys/sdt.h>, compared with `readelf -n`;
broken notes and argument strings refused with messages; and the argument specs
compared byte for byte with the struct __bpf_usdt_spec that gcc lays out from
libbpf's usdt.bpf.h (the installed libbpf-dev's and the 6.12 tree's).
"""
import os
import re
import shutil
import struct
import subprocess

import pytest
from toolbox import load_tool, setup_missing

from pybpf import elf, usdtnotes
from pybpf.usdtnotes import (ARG_CONST, ARG_REG, ARG_REG_DEREF, ARG_SIB, EM_AARCH64,
                             EM_X86_64, UsdtError, parse_args, probes, spec_bytes)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCE = os.path.join(ROOT, "tests", "progs", "attach", "usdt_target.c")
SETUP_HINT = ("run the test set-up (bash tools/run-tests), which installs gcc and "
              "systemtap-sdt-dev (<sys/sdt.h>)")
USDT_BPF_H = "tools/lib/bpf/usdt.bpf.h"


def _gcc():
    gcc = shutil.which("gcc")
    if gcc is None:
        setup_missing(f"gcc is not installed: {SETUP_HINT}")
    return gcc


@pytest.fixture(scope="module")
def binaries(tmp_path_factory):
    """{"plain": path, "semaphore": path}: usdt_target.c without and with semaphores."""
    out = tmp_path_factory.mktemp("usdt")
    built = {}
    for kind, flags in (("plain", []), ("semaphore", ["-DWITH_SEMAPHORE"])):
        path = str(out / kind)
        done = subprocess.run([_gcc(), "-O2", "-g", *flags, "-o", path, SOURCE],
                              capture_output=True, text=True)
        if done.returncode:
            pytest.fail(f"gcc could not build {SOURCE} ({SETUP_HINT}):\n{done.stderr}")
        built[kind] = path
    return built


def readelf_notes(path):
    """[(provider, name, location, base, semaphore, arguments)] as readelf -n prints."""
    text = subprocess.run(["readelf", "-n", path], capture_output=True, text=True,
                          check=True).stdout
    return [(p, n, int(loc, 16), int(base, 16), int(sema, 16), args.strip())
            for p, n, loc, base, sema, args in re.findall(
                r"Provider: (\S+)\s+Name: (\S+)\s+Location: (0x[0-9a-f]+), Base: "
                r"(0x[0-9a-f]+), Semaphore: (0x[0-9a-f]+)\s+Arguments: ?([^\n]*)", text)]


@pytest.mark.parametrize("kind", ["plain", "semaphore"])
def test_notes_match_readelf(binaries, kind):
    image = elf.ElfFile.from_path(binaries[kind])
    ours = [(n.provider, n.name, n.pc, n.base, n.semaphore_in_note, n.args)
            for n in probes(image)]
    assert ours == readelf_notes(binaries[kind])
    assert sorted({(p, n) for p, n, *_ in ours}) == [("pybpf", "bytes"), ("pybpf", "tick")]
    ticks = usdtnotes.find(image, "pybpf", "tick")
    assert len(ticks) == 2  # two sites of one probe
    for note in ticks:
        # not prelinked: the base in the note is .stapsdt.base's address
        assert note.address == note.pc and note.base == image.section(".stapsdt.base").addr
        assert image.vaddr_to_offset(note.address) > 0
        if kind == "semaphore":
            sym = image.symbol("pybpf_tick_semaphore")
            assert note.semaphore == sym.value and sym.section_name == ".probes"
        else:
            assert note.semaphore == 0
        args = parse_args(note.args, image.machine)
        assert [(a.size, a.signed) for a in args] == [(4, True), (8, True)]


def test_arguments_of_the_built_probes(binaries):
    image = elf.ElfFile.from_path(binaries["plain"])
    (note,) = usdtnotes.find(image, "pybpf", "bytes")
    c, s, k = parse_args(note.args, image.machine)
    assert (c.size, c.signed, s.size, s.signed) == (1, True, 2, False)
    assert (k.kind, k.offset, k.size, k.signed) == (ARG_CONST, 42, 4, True)


def test_prelink_moves_the_site_and_semaphore(binaries):
    """A prelinked binary's .stapsdt.base moved; the notes did not: the difference
    applies to each note's addresses."""
    image = elf.ElfFile.from_path(binaries["semaphore"])
    base = image.section(".stapsdt.base")
    data = bytearray(open(binaries["semaphore"], "rb").read())
    # the section header's sh_addr (Elf64_Shdr: name, type, flags, then addr)
    shdr = image._shoff + base.index * 64
    struct.pack_into("<Q", data, shdr + 16, base.addr + 0x1000)
    moved = probes(elf.ElfFile(bytes(data)))
    for before, after in zip(probes(image), moved):
        assert after.address == before.address + 0x1000
        assert after.semaphore == before.semaphore + 0x1000
        assert after.pc == before.pc


def test_x86_64_argument_forms():
    args = parse_args(" -4@%eax 8@-8(%rbp)  2@(%rsp) -1@$-9 -4@-96(%rbp,%rax,8) "
                      "1@(%r8,%r9) 8@%rip", EM_X86_64)
    assert [(a.kind, a.size, a.signed, a.offset, a.reg, a.reg_off) for a in args] == [
        (ARG_REG, 4, True, 0, "eax", 80), (ARG_REG_DEREF, 8, False, -8, "rbp", 32),
        (ARG_REG_DEREF, 2, False, 0, "rsp", 152), (ARG_CONST, 1, True, -9, None, 0),
        (ARG_SIB, 4, True, -96, "rbp", 32), (ARG_SIB, 1, False, 0, "r8", 72),
        (ARG_REG, 8, False, 0, "rip", 128)]
    assert (args[4].index, args[4].index_off, args[4].scale) == ("rax", 80, 8)
    assert (args[5].index, args[5].index_off, args[5].scale) == ("r9", 64, 1)
    assert parse_args("", EM_X86_64) == () and parse_args("  ", EM_X86_64) == ()


def test_aarch64_argument_forms():
    args = parse_args("-4@[sp, 96] 8@[x1] 4@5 -8@x30", EM_AARCH64)
    assert [(a.kind, a.size, a.signed, a.offset, a.reg_off) for a in args] == [
        (ARG_REG_DEREF, 4, True, 96, 248), (ARG_REG_DEREF, 8, False, 0, 8),
        (ARG_CONST, 4, False, 5, 0), (ARG_REG, 8, True, 0, 240)]


@pytest.mark.parametrize("args, machine, message", [
    ("-4@%xmm0", EM_X86_64, "names register 'xmm0'"),
    ("3@%eax", EM_X86_64, "has size 3"),
    ("4@x(%rip)", EM_X86_64, r"argument 0 of '4@x\(%rip\)' .* is not a location"),
    ("4@%eax junk", EM_X86_64, "argument 1 .*'junk'"),
    ("1@(%rbp,%rax,3)", EM_X86_64, "has scale 3"),
    ("4@x31", EM_AARCH64, "names register 'x31'"),
    (" ".join(["4@%eax"] * 13), EM_X86_64, "more than 12 arguments"),
    ("4@%eax", 8, "ELF machine 8 are not supported"),
])
def test_bad_arguments_are_refused(args, machine, message):
    with pytest.raises(UsdtError, match=message):
        parse_args(args, machine)


def _with_notes(binary, patch):
    """binary's bytes with its .note.stapsdt contents replaced by patch(contents)."""
    image = elf.ElfFile.from_path(binary)
    sec = image.section(".note.stapsdt")
    data = bytearray(open(binary, "rb").read())
    new = patch(bytearray(sec.data))
    assert len(new) <= sec.size
    data[sec.offset:sec.offset + sec.size] = bytes(new).ljust(sec.size, b"\0")
    return elf.ElfFile(bytes(data)), sec


def _first_note(notes):
    namesz, descsz, _ = struct.unpack_from("<III", notes, 0)
    return 12 + ((namesz + 3) & ~3), descsz


@pytest.mark.parametrize("patch, message", [
    (lambda n: n.__setitem__(slice(4, 8), struct.pack("<I", 0xFFFF)) or n,
     "run past the section's end"),
    (lambda n: n.__setitem__(slice(8, 12), struct.pack("<I", 4)) or n, "type 4"),
    (lambda n: n.__setitem__(slice(12, 19), b"stapsdX") or n, "owner b'stapsdX'"),
    (lambda n: n.__setitem__(slice(4, 8), struct.pack("<I", 20)) or n, "too short"),
    (lambda n: n.__setitem__(slice(_first_note(n)[0] + 24, _first_note(n)[0]
                                   + _first_note(n)[1]), b"\1" * (_first_note(n)[1] - 24))
     or n, "three NUL-terminated strings"),
    (lambda n: n.__setitem__(slice(_first_note(n)[0] + 30, _first_note(n)[0] + 31), b"\0")
     or n, "empty name"),
])
def test_bad_notes_are_refused(binaries, patch, message):
    image, _ = _with_notes(binaries["plain"], patch)
    with pytest.raises(UsdtError, match=message):
        probes(image)


def test_no_notes_and_a_note_section_of_the_wrong_type(binaries):
    assert probes(elf.ElfFile.from_path(shutil.which("true") or "/bin/true")) == ()
    image = elf.ElfFile.from_path(binaries["plain"])
    sec = image.section(".note.stapsdt")
    data = bytearray(open(binaries["plain"], "rb").read())
    struct.pack_into("<I", data, image._shoff + sec.index * 64 + 4, elf.SHT_PROGBITS)
    with pytest.raises(UsdtError, match="not SHT_NOTE"):
        probes(elf.ElfFile(bytes(data)))


# ---- the spec layout, against gcc's layout of usdt.bpf.h's structs ---------------------

SPEC_CASES = [
    ("-4@%eax 8@-8(%rbp) -1@$-9 2@(%rsp)", 0x1122334455667788),
    ("-4@-96(%rbp,%rax,8) 1@(%r8,%r9,2)", 7),  # scale-index-base: 1.7's fields
    ("", 0),
    (" ".join(f"{s}@%r{n}" for s, n in zip([1, -2, 4, -8] * 3, range(8, 16))), 1),
]


def _headers():
    found = [("libbpf-dev", "/usr/include/bpf/usdt.bpf.h")]
    kernel_source = load_tool("kernel_source")
    try:
        found.append(("linux-source-6.12",
                      os.path.join(kernel_source.extract([USDT_BPF_H]), USDT_BPF_H)))
    except kernel_source.SourceError as e:
        setup_missing(f"{e} (`bash tools/run-tests` installs it)")
    return found


def _c_struct(text, name):
    m = re.search(r"((?:struct|enum) %s \{.*?\n\};)" % re.escape(name), text, re.S)
    assert m, f"{name} not in usdt.bpf.h"
    return m.group(1)


@pytest.mark.parametrize("header", ["libbpf-dev", "linux-source-6.12"])
def test_spec_bytes_match_the_c_layout(header, tmp_path):
    path = dict(_headers())[header]
    if not os.path.exists(path):
        setup_missing(f"{path} is missing: {SETUP_HINT}")
    text = open(path).read()
    has_sib = "idx_reg_off" in text
    size = usdtnotes.SIB_SPEC_SIZE if has_sib else usdtnotes.SPEC_SIZE
    decls = "\n".join(_c_struct(text, n) for n in
                      ("__bpf_usdt_arg_type", "__bpf_usdt_arg_spec", "__bpf_usdt_spec"))
    lines = ["#include <stdbool.h>", "#include <stdio.h>", "#include <string.h>",
             "#include <linux/types.h>", "#define BPF_USDT_MAX_ARG_CNT 12", decls,
             "static void dump(struct __bpf_usdt_spec *s) { unsigned char *p = (void *)s;"
             " for (unsigned i = 0; i < sizeof(*s); i++) printf(\"%02x\", p[i]);"
             " printf(\"\\n\"); }", "int main(void) {", "struct __bpf_usdt_spec s;"]
    expected = []
    for args, cookie in SPEC_CASES:
        parsed = parse_args(args, EM_X86_64)
        if not has_sib and any(a.kind == ARG_SIB for a in parsed):
            continue
        lines.append("memset(&s, 0, sizeof(s));")
        for i, a in enumerate(parsed):
            lines.append(f"s.args[{i}].val_off = {a.offset}LL; s.args[{i}].arg_type = "
                         f"{a.kind}; s.args[{i}].reg_off = {a.reg_off}; s.args[{i}]"
                         f".arg_signed = {int(a.signed)}; s.args[{i}].arg_bitshift = "
                         f"{64 - 8 * a.size};")
            if has_sib:
                lines.append(f"s.args[{i}].idx_reg_off = {a.index_off}; s.args[{i}]"
                             f".scale_bitshift = {a.scale.bit_length() - 1};")
        lines.append(f"s.usdt_cookie = {cookie}ULL; s.arg_cnt = {len(parsed)}; dump(&s);")
        expected.append(spec_bytes(parsed, cookie, size).hex())
    lines.append("return 0; }")
    src, exe = tmp_path / "spec.c", tmp_path / "spec"
    src.write_text("\n".join(lines) + "\n")
    done = subprocess.run([_gcc(), "-Wall", "-o", str(exe), str(src)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    got = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()
    assert got == expected
    assert len(got) == len(SPEC_CASES) - (not has_sib)
    assert all(len(g) == 2 * size for g in got)


def test_the_old_layout_cannot_hold_scale_index_base():
    args = parse_args("8@%rax -4@-96(%rbp,%rax,8)", EM_X86_64)
    with pytest.raises(UsdtError, match="argument 1 .* scale, index and base"):
        spec_bytes(args)
    assert len(spec_bytes(args, size=usdtnotes.SIB_SPEC_SIZE)) == 304
    with pytest.raises(UsdtError, match="no usdt.bpf.h that pybpf knows has 200-byte"):
        spec_bytes(args, size=200)
