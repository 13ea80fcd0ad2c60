"""USDT probes of a binary: its ``.note.stapsdt`` ELF notes, read without a kernel.

A USDT probe (``DTRACE_PROBE2(provider, name, a, b)`` from <sys/sdt.h>) compiles to a
``nop`` at the probe site and an SHT_NOTE entry, owner ``stapsdt``, type 3, whose
description holds three addresses (the site, the link-time address of the
``.stapsdt.base`` section, the probe's semaphore or 0) and three NUL-terminated
strings: provider, name, and the arguments' locations in the assembler's syntax
("-4@%eax 8@-8(%rbp) 4@$5"). :func:`probes` reads them all, with the site and the
semaphore moved by the difference between the note's base and ``.stapsdt.base``'s
address (prelink moves sections but not notes); :func:`parse_args` turns an argument
string into :class:`UsdtArg` values for x86_64 and aarch64 binaries, and
:func:`spec_bytes` into the ``struct __bpf_usdt_spec`` that libbpf's usdt.bpf.h reads
in either of its two layouts: libbpf 1.1's (208 bytes) and the one with
scale-index-base arguments of the linux-source-6.12 tree (304 bytes; its bit fields
moved reg_off).

pybpf.attach.usdt attaches programs to the probes found here.
"""
import dataclasses
import re
import struct
from typing import Optional, Tuple

from . import elf
from .errors import InputError

NOTE_SECTION = ".note.stapsdt"
BASE_SECTION = ".stapsdt.base"
NOTE_OWNER = b"stapsdt"
NT_STAPSDT = 3

EM_X86_64 = 62
EM_AARCH64 = 183

# usdt.bpf.h's enum __bpf_usdt_arg_type.
ARG_CONST, ARG_REG, ARG_REG_DEREF, ARG_SIB = range(4)
MAX_ARGS = 12          # BPF_USDT_MAX_ARG_CNT
SPEC_SIZE = 208        # struct __bpf_usdt_spec of libbpf 1.1: args[12], cookie, arg_cnt
SIB_SPEC_SIZE = 304    # the same with the scale-index-base fields (linux-source-6.12)


@dataclasses.dataclass(frozen=True)
class _SpecLayout:
    arg_size: int      # sizeof(struct __bpf_usdt_arg_spec)
    arg_format: str    # val_off, the arg_type word, [reserved byte], reg_off, signed, shift
    index_shift: int   # of idx_reg_off in the arg_type word (0: no such field)
    scale_shift: int   # of scale_bitshift in it


# gcc's and clang's layouts (tests/unit/test_usdtnotes.py compares them): in the newer
# one, the 12-bit __u16 idx_reg_off cannot straddle its 16-bit unit, so it starts at
# bit 16, the __u8 reserved field takes byte 12, and reg_off moves from 12 to 14.
SPEC_LAYOUTS = {SPEC_SIZE: _SpecLayout(16, "<QIh?b", 0, 0),
                SIB_SPEC_SIZE: _SpecLayout(24, "<QIxxh?b", 16, 28)}

# offsetof(struct pt_regs, REG) on x86_64 (arch/x86/include/uapi/asm/ptrace.h), under
# each name an operand may use for (part of) the register.
_X86_64_REGS = {}
for _offset, _names in (
        (0, "r15 r15d r15w r15b"), (8, "r14 r14d r14w r14b"), (16, "r13 r13d r13w r13b"),
        (24, "r12 r12d r12w r12b"), (32, "rbp ebp bp bpl"), (40, "rbx ebx bx bl"),
        (48, "r11 r11d r11w r11b"), (56, "r10 r10d r10w r10b"), (64, "r9 r9d r9w r9b"),
        (72, "r8 r8d r8w r8b"), (80, "rax eax ax al"), (88, "rcx ecx cx cl"),
        (96, "rdx edx dx dl"), (104, "rsi esi si sil"), (112, "rdi edi di dil"),
        (128, "rip eip"), (152, "rsp esp sp spl")):
    for _name in _names.split():
        _X86_64_REGS[_name] = _offset
# struct user_pt_regs on aarch64: u64 regs[31], sp, pc, pstate.
_AARCH64_REGS = {f"x{n}": 8 * n for n in range(31)}
_AARCH64_REGS["sp"] = 248

_NUM = r"([-+]?\d+)"
_SIZE = r"\s*" + _NUM + r"\s*@\s*"
_X86_FORMS = (
    # scale-index-base: 1@-96(%rbp,%rax,8), 1@(%rbp,%rax)
    (ARG_SIB, re.compile(_SIZE + _NUM + r"?\s*\(\s*%(\w+)\s*,\s*%(\w+)\s*(?:,\s*"
                         + _NUM + r"\s*)?\)")),
    (ARG_REG_DEREF, re.compile(_SIZE + _NUM + r"?\s*\(\s*%(\w+)\s*\)")),   # -4@-20(%rbp)
    (ARG_REG, re.compile(_SIZE + r"%(\w+)")),                             # -4@%eax
    (ARG_CONST, re.compile(_SIZE + r"\$" + _NUM)),                        # 4@$71
)
_AARCH64_FORMS = (
    (ARG_REG_DEREF, re.compile(_SIZE + r"\[\s*([a-z0-9]+)\s*(?:,\s*" + _NUM + r"\s*)?\]")),
    (ARG_CONST, re.compile(_SIZE + _NUM + r"(?=\s|$)")),                  # 4@5
    (ARG_REG, re.compile(_SIZE + r"([a-z0-9]+)")),                        # -8@x4
)
_ARCHES = {EM_X86_64: ("x86_64", _X86_FORMS, _X86_64_REGS),
           EM_AARCH64: ("aarch64", _AARCH64_FORMS, _AARCH64_REGS)}


class UsdtError(InputError):
    """A binary's USDT notes or argument strings cannot be read; the message says where."""


@dataclasses.dataclass(frozen=True)
class UsdtNote:
    """One probe site. ``address`` and ``semaphore`` are virtual addresses with the
    prelink adjustment applied; ``pc``, ``base`` and ``semaphore_in_note`` are the
    note's own numbers. ``semaphore`` is 0 for a probe without one."""
    provider: str
    name: str
    address: int
    semaphore: int
    args: str
    pc: int
    base: int
    semaphore_in_note: int
    index: int  # of the note in the section, from 0

    @property
    def full_name(self):
        return f"{self.provider}:{self.name}"


@dataclasses.dataclass(frozen=True)
class UsdtArg:
    """One argument's location: ``size`` in bytes (1, 2, 4, 8), ``signed``, ``kind``
    (ARG_CONST: the value is ``offset``; ARG_REG: register ``reg``; ARG_REG_DEREF:
    memory at reg + offset; ARG_SIB: memory at reg + index * scale + offset), and
    the registers' offsets in the probed task's pt_regs."""
    text: str
    size: int
    signed: bool
    kind: int
    offset: int = 0
    reg: Optional[str] = None
    reg_off: int = 0
    index: Optional[str] = None
    index_off: int = 0
    scale: int = 1


def probes(image: elf.ElfFile) -> Tuple[UsdtNote, ...]:
    """Every USDT probe site of image, in note order; () when it has no
    .note.stapsdt section. Malformed notes raise UsdtError."""
    sec = image.section(NOTE_SECTION)
    if sec is None:
        return ()
    if sec.type != elf.SHT_NOTE:
        raise UsdtError(f"section {NOTE_SECTION} has sh_type {sec.type}, not SHT_NOTE (7)")
    base_sec = image.section(BASE_SECTION)
    base_addr = base_sec.addr if base_sec is not None else 0
    order = "<" if image.byteorder == "little" else ">"
    data = sec.data
    out = []
    pos = 0
    while pos < len(data):
        where = f"{NOTE_SECTION} note {len(out)} (at byte {pos:#x})"
        if len(data) - pos < 12:
            raise UsdtError(f"{where}: {len(data) - pos} bytes left, too few for a note "
                            f"header (12)")
        namesz, descsz, ntype = struct.unpack_from(order + "III", data, pos)
        name_at = pos + 12
        desc_at = name_at + _align4(namesz)
        end = desc_at + _align4(descsz)
        if desc_at + descsz > len(data):
            raise UsdtError(f"{where}: its name ({namesz} bytes) and description "
                            f"({descsz} bytes) run past the section's end ({len(data)} bytes)")
        owner = bytes(data[name_at:name_at + namesz]).rstrip(b"\0")
        if owner != NOTE_OWNER or ntype != NT_STAPSDT:
            raise UsdtError(f"{where}: owner {owner!r} type {ntype}, expected "
                            f"{NOTE_OWNER!r} type {NT_STAPSDT} (NT_STAPSDT)")
        desc = bytes(data[desc_at:desc_at + descsz])
        out.append(_note(desc, order, base_addr, len(out), where))
        pos = end
    return tuple(out)


def _align4(n):
    return (n + 3) & ~3


def _note(desc, order, base_addr, index, where):
    if len(desc) < 24 + 3:
        raise UsdtError(f"{where}: description is {len(desc)} bytes, too short for three "
                        f"addresses and three strings (27)")
    pc, base, sema = struct.unpack_from(order + "QQQ", desc, 0)
    strings = desc[24:].split(b"\0")
    if len(strings) < 4:  # provider, name, args and what follows the last NUL
        raise UsdtError(f"{where}: description does not hold three NUL-terminated "
                        f"strings (provider, name, arguments)")
    provider, name, args = (s.decode("utf-8", "surrogateescape") for s in strings[:3])
    if not name:
        raise UsdtError(f"{where}: the probe of provider {provider!r} has an empty name")
    if args.startswith(":"):  # old notes may say ":" for no arguments
        args = ""
    shift = base_addr - base if base_addr and base else 0
    return UsdtNote(provider, name, pc + shift, sema + shift if sema else 0, args, pc,
                    base, sema, index)


def find(image: elf.ElfFile, provider: str, name: str) -> Tuple[UsdtNote, ...]:
    """The sites of probe provider:name in image (one probe may have several)."""
    return tuple(n for n in probes(image) if n.provider == provider and n.name == name)


def parse_args(args: str, machine: int) -> Tuple[UsdtArg, ...]:
    """The locations in a note's argument string, for a binary of ELF machine
    machine (EM_X86_64 or EM_AARCH64)."""
    if machine not in _ARCHES:
        raise UsdtError(f"USDT arguments of ELF machine {machine} are not supported "
                        f"(pybpf reads those of x86_64 ({EM_X86_64}) and aarch64 "
                        f"({EM_AARCH64}) binaries)")
    arch, forms, regs = _ARCHES[machine]
    out = []
    pos = 0
    while args[pos:].strip():
        if len(out) == MAX_ARGS:
            raise UsdtError(f"USDT argument string {args!r} has more than {MAX_ARGS} "
                            f"arguments, usdt.bpf.h's BPF_USDT_MAX_ARG_CNT")
        for kind, form in forms:
            m = form.match(args, pos)
            if m:
                break
        else:
            raise UsdtError(f"USDT argument {len(out)} of {args!r} "
                            f"({args[pos:].split()[0]!r}) is not a location pybpf "
                            f"understands for {arch}")
        out.append(_arg(kind, m, regs, arch, args))
        pos = m.end()
    return tuple(out)


def _arg(kind, m, regs, arch, args):
    text = m.group(0).strip()
    size = int(m.group(1))
    if abs(size) not in (1, 2, 4, 8):
        raise UsdtError(f"USDT argument {text!r} of {args!r} has size {size}: "
                        f"only 1, 2, 4 and 8 bytes (negative when signed) are possible")

    def reg_offset(reg):
        if reg not in regs:
            raise UsdtError(f"USDT argument {text!r} of {args!r} names register {reg!r}, "
                            f"which is not a {arch} register pybpf knows")
        return regs[reg]
    common = dict(text=text, size=abs(size), signed=size < 0, kind=kind)
    if kind == ARG_CONST:
        return UsdtArg(offset=int(m.group(2)), **common)
    if kind == ARG_REG:
        return UsdtArg(reg=m.group(2), reg_off=reg_offset(m.group(2)), **common)
    if arch == "aarch64":  # [reg, offset]
        reg, offset = m.group(2), int(m.group(3) or 0)
        return UsdtArg(offset=offset, reg=reg, reg_off=reg_offset(reg), **common)
    offset, reg = int(m.group(2) or 0), m.group(3)
    if kind == ARG_REG_DEREF:
        return UsdtArg(offset=offset, reg=reg, reg_off=reg_offset(reg), **common)
    scale = int(m.group(5) or 1)
    if scale not in (1, 2, 4, 8):
        raise UsdtError(f"USDT argument {text!r} of {args!r} has scale {scale}: "
                        f"only 1, 2, 4 and 8 are possible")
    return UsdtArg(offset=offset, reg=reg, reg_off=reg_offset(reg), index=m.group(4),
                   index_off=reg_offset(m.group(4)), scale=scale, **common)


def spec_bytes(args: Tuple[UsdtArg, ...], cookie: int = 0, size: int = SPEC_SIZE) -> bytes:
    """struct __bpf_usdt_spec (little-endian, usdt.bpf.h) of size bytes (a key of
    SPEC_LAYOUTS) for args: per argument u64 val_off; a u32 of arg_type (bits 0-7)
    and, in the newer layout, idx_reg_off and scale_bitshift; short reg_off; bool
    arg_signed; char arg_bitshift. Then the user's u64 usdt_cookie and short arg_cnt,
    padded to 8 bytes."""
    layout = SPEC_LAYOUTS.get(size)
    if layout is None:
        raise UsdtError(f"no usdt.bpf.h that pybpf knows has {size}-byte specs (it "
                        f"knows {' and '.join(map(str, SPEC_LAYOUTS))})")
    if len(args) > MAX_ARGS:
        raise UsdtError(f"{len(args)} USDT arguments: at most {MAX_ARGS} fit a spec")
    out = bytearray(size)
    for i, a in enumerate(args):
        if a.kind == ARG_SIB and not layout.index_shift:
            raise UsdtError(f"USDT argument {i} ({a.text!r}) is addressed by scale, index "
                            f"and base, which the {size}-byte specs of the program's "
                            f"usdt.bpf.h (libbpf 1.1) cannot describe: build the program "
                            f"with a newer usdt.bpf.h")
        word = a.kind
        if layout.index_shift:
            word |= a.index_off << layout.index_shift
            word |= (a.scale.bit_length() - 1) << layout.scale_shift
        struct.pack_into(layout.arg_format, out, i * layout.arg_size,
                         a.offset & (2 ** 64 - 1), word, a.reg_off, a.signed, 64 - 8 * a.size)
    struct.pack_into("<Qh", out, MAX_ARGS * layout.arg_size, cookie & (2 ** 64 - 1),
                     len(args))
    return bytes(out)
