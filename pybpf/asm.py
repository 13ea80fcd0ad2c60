"""eBPF instructions: encode, decode, disassemble, and build them by hand.

Why this exists: the loader must read programs out of ELF objects, patch
them (map fds, relocations) and pass them to bpf(2); when the verifier says
no, the user needs to see the program as text.  Tests also need to write small
programs without clang.  Everything here is plain data, no kernel access.

Conventions:

* An :class:`Insn` is one *instruction*, not one 8-byte slot.  ``ld_imm64``
  (``BPF_LD | BPF_IMM | BPF_DW``) is ONE ``Insn`` whose ``imm`` holds all
  64 bits; it encodes to 16 bytes and has ``slots == 2``.  Jump offsets,
  ``call_local`` targets and ELF relocation offsets count 8-byte slots, so
  use :attr:`Insn.slots` (or :func:`slot_offsets`) when converting.
* Text follows ``llvm-objdump -d`` of clang 14 for every instruction clang 14
  can decode.  Where it prints ``<unknown>`` or decodes wrongly we use the
  syntax of ``llvm-objdump --mattr=+alu32`` (32-bit atomics) or of newer LLVM
  (cpu v4: ``s/=``, ``s%=``, ``(s8)`` moves, ``bswap16``, ``*(s8 *)`` loads,
  ``gotol``, ``st`` immediates, ``mod``, ``jset``).  Pseudo ``ld_imm64`` use
  LLVM's ``ld_pseudo`` form, printing the full 64-bit immediate when the
  upper half is non-zero (LLVM silently drops it).
* Sizes are byte counts 1, 2, 4, 8.  Registers are the :class:`Reg` values
  ``R0`` .. ``R10``; builders tell a register operand from an immediate by
  type, so ``mov64(R1, R2)`` copies a register and ``mov64(R1, 2)`` loads 2.
"""
import enum
from dataclasses import dataclass, replace
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, TypeVar, Union

from .errors import InputError
from .kernel import constants as C

BPF_MEMSX = 0x80  # cpu v4 sign-extending load mode; newer than our UAPI header

_LD_IMM64 = C.BPF_LD | C.BPF_IMM | C.BPF_DW



class Reg(enum.IntEnum):
    """A register operand; distinct from ``int`` so builders know it is not an imm."""

    R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = range(11)


R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = Reg

#: size in bytes -> BPF_SIZE bits
SIZES = {1: C.BPF_B, 2: C.BPF_H, 4: C.BPF_W, 8: C.BPF_DW}
_BITS = {C.BPF_B: 8, C.BPF_H: 16, C.BPF_W: 32, C.BPF_DW: 64}

#: ALU op name -> (BPF op, required ``off``, text template).  ``off``
#: distinguishes the cpu v4 signed variants that share an opcode.
ALU_OPS: Dict[str, Tuple[int, int, str]] = {
    "add": (C.BPF_ADD, 0, "{d} += {s}"), "sub": (C.BPF_SUB, 0, "{d} -= {s}"),
    "mul": (C.BPF_MUL, 0, "{d} *= {s}"), "div": (C.BPF_DIV, 0, "{d} /= {s}"),
    "sdiv": (C.BPF_DIV, 1, "{d} s/= {s}"), "or": (C.BPF_OR, 0, "{d} |= {s}"),
    "and": (C.BPF_AND, 0, "{d} &= {s}"), "lsh": (C.BPF_LSH, 0, "{d} <<= {s}"),
    "rsh": (C.BPF_RSH, 0, "{d} >>= {s}"), "neg": (C.BPF_NEG, 0, "{d} = -{d}"),
    "mod": (C.BPF_MOD, 0, "{d} %= {s}"), "smod": (C.BPF_MOD, 1, "{d} s%= {s}"),
    "xor": (C.BPF_XOR, 0, "{d} ^= {s}"), "mov": (C.BPF_MOV, 0, "{d} = {s}"),
    "movsx8": (C.BPF_MOV, 8, "{d} = (s8){s}"), "movsx16": (C.BPF_MOV, 16, "{d} = (s16){s}"),
    "movsx32": (C.BPF_MOV, 32, "{d} = (s32){s}"), "arsh": (C.BPF_ARSH, 0, "{d} s>>= {s}"),
}
_ALU_BY_CODE = {(op, off): tmpl for op, off, tmpl in ALU_OPS.values()}

#: conditional jump name -> (BPF op, comparison as printed)
JMP_OPS: Dict[str, Tuple[int, str]] = {
    "eq": (C.BPF_JEQ, "=="), "gt": (C.BPF_JGT, ">"), "ge": (C.BPF_JGE, ">="),
    "set": (C.BPF_JSET, "&"), "ne": (C.BPF_JNE, "!="), "sgt": (C.BPF_JSGT, "s>"),
    "sge": (C.BPF_JSGE, "s>="), "lt": (C.BPF_JLT, "<"), "le": (C.BPF_JLE, "<="),
    "slt": (C.BPF_JSLT, "s<"), "sle": (C.BPF_JSLE, "s<="),
}
_JMP_BY_CODE = {op: sym for op, sym in JMP_OPS.values()}

_ATOMIC_ALU = {C.BPF_ADD: ("add", "+="), C.BPF_OR: ("or", "|="), C.BPF_AND: ("and", "&="),
               C.BPF_XOR: ("xor", "^=")}
#: atomic op name -> imm (without BPF_FETCH); xchg and cmpxchg always fetch
ATOMIC_OPS = dict({name: op for op, (name, _) in _ATOMIC_ALU.items()},
                  xchg=C.BPF_XCHG, cmpxchg=C.BPF_CMPXCHG)

#: ld_imm64 src_reg pseudo kinds, for annotations
PSEUDO_NAMES = {C.BPF_PSEUDO_MAP_FD: "map_fd", C.BPF_PSEUDO_MAP_VALUE: "map_value",
                C.BPF_PSEUDO_BTF_ID: "btf_id", C.BPF_PSEUDO_FUNC: "func",
                C.BPF_PSEUDO_MAP_IDX: "map_idx", C.BPF_PSEUDO_MAP_IDX_VALUE: "map_idx_value"}


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _check(field: str, value: int, lo: int, hi: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise InputError("Insn %s=%r out of range [%d, %d]" % (field, value, lo, hi))


@dataclass(frozen=True, repr=False)
class Insn:
    """One eBPF instruction; immutable and hashable.

    ``imm`` accepts signed or unsigned values (``0xffffffff`` is handy for
    masks) and is stored signed, so equal encodings compare equal.  It is 64
    bits wide for ``ld_imm64``, 32 bits otherwise.
    """

    code: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0

    def __post_init__(self) -> None:
        _check("code", self.code, 0, 0xFF)
        _check("dst", self.dst, 0, 10)
        _check("src", self.src, 0, 10)
        _check("off", self.off, -(1 << 15), (1 << 15) - 1)
        bits = 64 if self.code == _LD_IMM64 else 32
        _check("imm", self.imm, -(1 << (bits - 1)), (1 << bits) - 1)
        for name in ("dst", "src"):  # store Reg members as plain ints for clean reprs
            object.__setattr__(self, name, int(getattr(self, name)))
        object.__setattr__(self, "imm", _signed(self.imm, bits))

    @property
    def slots(self) -> int:
        """Number of 8-byte slots: 2 for ``ld_imm64``, else 1."""
        return 2 if self.code == _LD_IMM64 else 1

    @property
    def cls(self) -> int:
        """Instruction class (``BPF_LD`` .. ``BPF_ALU64``)."""
        return self.code & 0x07

    def encode(self, byteorder: str = "little") -> bytes:
        """8 bytes (16 for ``ld_imm64``) in the given byte order.

        Big-endian objects also swap the register nibbles (dst is the high
        nibble there), as the kernel's bitfield layout does.
        """
        regs = self.dst | self.src << 4 if byteorder == "little" else self.dst << 4 | self.src
        head = bytes((self.code, regs)) + self.off.to_bytes(2, byteorder, signed=True)
        if self.slots == 1:
            return head + self.imm.to_bytes(4, byteorder, signed=True)
        imm = self.imm & 0xFFFFFFFFFFFFFFFF
        return (head + (imm & 0xFFFFFFFF).to_bytes(4, byteorder)
                + bytes(4) + (imm >> 32).to_bytes(4, byteorder))

    def __str__(self) -> str:
        return _text(self)

    def __repr__(self) -> str:
        return "Insn(code=0x%02x, dst=%d, src=%d, off=%d, imm=%d)" % (
            self.code, self.dst, self.src, self.off, self.imm)


def encode(insns: Iterable[Insn], byteorder: str = "little") -> bytes:
    """Concatenate the encodings of a whole program."""
    return b"".join(insn.encode(byteorder) for insn in insns)


def decode(data: bytes, byteorder: str = "little") -> List[Insn]:
    """Split a program's bytes into instructions (``ld_imm64`` becomes one Insn).

    Raises ValueError naming the slot for a truncated buffer, an ``ld_imm64``
    without a clean second half, or out-of-range register numbers.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InputError(f"decode() takes instruction bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) % 8:
        raise InputError("program is %d bytes, not a multiple of 8: slot %d is truncated"
                         % (len(data), len(data) // 8))
    out: List[Insn] = []
    slot, nslots = 0, len(data) // 8
    while slot < nslots:
        raw = data[slot * 8:slot * 8 + 8]
        code, regs = raw[0], raw[1]
        dst, src = (regs & 0xF, regs >> 4) if byteorder == "little" else (regs >> 4, regs & 0xF)
        off = int.from_bytes(raw[2:4], byteorder, signed=True)
        imm = int.from_bytes(raw[4:8], byteorder, signed=code != _LD_IMM64)
        if code == _LD_IMM64:
            if slot + 1 >= nslots:
                raise InputError("slot %d: ld_imm64 is missing its second half" % slot)
            second = data[slot * 8 + 8:slot * 8 + 16]
            if any(second[:4]):
                raise InputError("slot %d: ld_imm64 second half has non-zero code/regs/off"
                                 % (slot + 1))
            imm |= int.from_bytes(second[4:], byteorder) << 32
        try:
            out.append(Insn(code, dst, src, off, imm))
        except ValueError as exc:
            raise InputError("slot %d: %s" % (slot, exc)) from None
        slot += out[-1].slots
    return out


def slot_offsets(insns: Sequence[Insn], start: int = 0) -> List[int]:
    """Slot number of each instruction, for mapping jump/relocation offsets."""
    out, slot = [], start
    for insn in insns:
        out.append(slot)
        slot += insn.slots
    return out


# --- disassembly ---------------------------------------------------------

def _plus(value: int) -> str:
    return "%s %d" % ("-" if value < 0 else "+", abs(value))


def _mem(reg: int, off: int) -> str:
    return "(r%d %s)" % (reg, _plus(off))


def _alu_text(i: Insn) -> Optional[str]:
    op, is_x, wide = i.code & 0xF0, i.code & C.BPF_X, i.cls == C.BPF_ALU64
    r = "r" if wide else "w"
    if op == C.BPF_END:
        if i.imm not in (16, 32, 64) or (wide and is_x):
            return None
        name = "bswap" if wide else ("be" if is_x else "le")
        return "r%d = %s%d r%d" % (i.dst, name, i.imm, i.dst)
    tmpl = _ALU_BY_CODE.get((op, i.off))
    if tmpl is None or (op == C.BPF_NEG and is_x):
        return None
    if op == C.BPF_MOV and i.off and (not is_x or (i.off == 32 and not wide)):
        return None  # movsx takes a register; w = (s32)w would be a plain mov
    return tmpl.format(d="%s%d" % (r, i.dst), s="%s%d" % (r, i.src) if is_x else i.imm)


def _jmp_text(i: Insn) -> Optional[str]:
    op, is_x, wide = i.code & 0xF0, i.code & C.BPF_X, i.cls == C.BPF_JMP
    if op == C.BPF_JA and not is_x:
        return "goto %+d" % i.off if wide else "gotol %+d" % i.imm
    if op in (C.BPF_CALL, C.BPF_EXIT) and wide and not is_x:
        return "call %d" % i.imm if op == C.BPF_CALL else "exit"
    sym = _JMP_BY_CODE.get(op)
    if sym is None:
        return None
    r = "r" if wide else "w"
    rhs = "%s%d" % (r, i.src) if is_x else str(i.imm)
    return "if %s%d %s %s goto %+d" % (r, i.dst, sym, rhs, i.off)


def _mem_text(i: Insn) -> Optional[str]:
    mode, size, cls = i.code & 0xE0, i.code & 0x18, i.cls
    bits = _BITS[size]
    if cls == C.BPF_LD:
        if i.code == _LD_IMM64:
            if i.src:
                return "ld_pseudo\tr%d, %d, %d" % (i.dst, i.src, i.imm)
            return "r%d = %d ll" % (i.dst, i.imm)
        if bits == 64:  # no 64-bit packet loads
            return None
        if mode == C.BPF_ABS:
            return "r0 = *(u%d *)skb[%d]" % (bits, i.imm)
        if mode == C.BPF_IND:
            extra = " " + _plus(i.imm) if i.imm else ""  # llvm never shows a non-zero imm
            return "r0 = *(u%d *)skb[r%d%s]" % (bits, i.src, extra)
        return None
    if cls == C.BPF_LDX and (mode == C.BPF_MEM or (mode == BPF_MEMSX and bits < 64)):
        sign = "s" if mode == BPF_MEMSX else "u"
        return "r%d = *(%s%d *)%s" % (i.dst, sign, bits, _mem(i.src, i.off))
    if cls in (C.BPF_ST, C.BPF_STX) and mode == C.BPF_MEM:
        rhs = "r%d" % i.src if cls == C.BPF_STX else str(i.imm)
        return "*(u%d *)%s = %s" % (bits, _mem(i.dst, i.off), rhs)
    if cls == C.BPF_STX and mode == C.BPF_ATOMIC and bits >= 32:
        return _atomic_text(i, bits)
    return None


def _atomic_text(i: Insn, bits: int) -> Optional[str]:
    r = "r" if bits == 64 else "w"
    src, addr = "%s%d" % (r, i.src), "r%d %s" % (i.dst, _plus(i.off))
    op = i.imm & ~C.BPF_FETCH
    if i.imm == C.BPF_XCHG:
        return "%s = xchg%s(%s, %s)" % (src, "_64" if bits == 64 else "32_32", addr, src)
    if i.imm == C.BPF_CMPXCHG:
        return "%s0 = cmpxchg%s(%s, %s0, %s)" % (r, "_64" if bits == 64 else "32_32", addr, r, src)
    if op not in _ATOMIC_ALU:
        return None
    name, sym = _ATOMIC_ALU[op]
    if i.imm & C.BPF_FETCH:
        return "%s = atomic_fetch_%s((u%d *)(%s), %s)" % (src, name, bits, addr, src)
    if op == C.BPF_ADD:  # the legacy XADD: llvm 14 prints the 64-bit register name
        src = "r%d" % i.src
    return "lock *(u%d *)(%s) %s %s" % (bits, addr, sym, src)


_TEXT_BY_CLASS = {C.BPF_ALU: _alu_text, C.BPF_ALU64: _alu_text,
                  C.BPF_JMP: _jmp_text, C.BPF_JMP32: _jmp_text}


def _text(i: Insn) -> str:
    """llvm-objdump text, ``<unknown>`` for encodings that are not instructions."""
    return _TEXT_BY_CLASS.get(i.cls, _mem_text)(i) or "<unknown>"


def _comment(i: Insn) -> str:
    """Annotation for error messages: helper name or pseudo kind."""
    if i.code == C.BPF_JMP | C.BPF_CALL:
        if i.src == C.BPF_PSEUDO_CALL:
            return "bpf-to-bpf call"
        if i.src == C.BPF_PSEUDO_KFUNC_CALL:
            return "kfunc"
        try:
            return "bpf_" + C.HelperId(i.imm).name
        except ValueError:
            return ""
    if i.code == _LD_IMM64 and i.src:
        return PSEUDO_NAMES.get(i.src, "")
    return ""


def disasm(insns: Iterable[Insn], helper_names: bool = False) -> List[str]:
    """One line of llvm-objdump syntax per instruction.

    ``helper_names`` appends ``# bpf_map_lookup_elem``-style comments to
    calls and ``# map_fd``-style ones to pseudo ``ld_imm64`` (not llvm output).
    """
    out = []
    for insn in insns:
        text, note = str(insn), _comment(insn) if helper_names else ""
        out.append("%s  # %s" % (text, note) if note else text)
    return out


def format_program(insns: Sequence[Insn], start: int = 0, helper_names: bool = True) -> str:
    """``slot: text`` lines (slots advance by 2 after ld_imm64), for error messages."""
    slots = slot_offsets(insns, start)
    width = len(str(slots[-1])) if slots else 1
    lines = disasm(insns, helper_names)
    return "\n".join("%*d: %s" % (width, s, t) for s, t in zip(slots, lines))


# --- builders --------------------------------------------------------------

T = TypeVar("T")
Operand = Union[Reg, int]
Target = Union[int, str]


_IMM_TARGET = (C.BPF_JMP | C.BPF_CALL, C.BPF_JMP32 | C.BPF_JA)  # jumps keeping their offset in imm


class Ref(NamedTuple):
    """A jump or call whose target is a label; :func:`assemble` resolves it."""

    insn: Insn
    label: str


def _size(size: int) -> int:
    if size not in SIZES:
        raise InputError("size must be one of 1, 2, 4, 8 bytes, not %r" % (size,))
    return SIZES[size]


def _source(operand: Operand) -> Tuple[int, int, int]:
    """(BPF_X or BPF_K, src register, imm) for a register-or-immediate operand."""
    return (C.BPF_X, int(operand), 0) if isinstance(operand, Reg) else (C.BPF_K, 0, operand)


def _lookup(table: Dict[str, T], kind: str, name: str) -> T:
    if name not in table:
        raise InputError("unknown %s op %r; expected one of %s" % (kind, name, ", ".join(table)))
    return table[name]


def _alu(cls: int, op: str, dst: int, operand: Operand) -> Insn:
    code, off, _ = _lookup(ALU_OPS, "alu", op)
    x, src, imm = _source(operand)
    return Insn(cls | code | x, dst, src, off, imm)


def alu64(op: str, dst: int, operand: Operand = 0) -> Insn:
    """64-bit ALU op by name (see ALU_OPS), e.g. ``alu64("add", R1, R2)``."""
    return _alu(C.BPF_ALU64, op, dst, operand)


def alu32(op: str, dst: int, operand: Operand = 0) -> Insn:
    """32-bit ALU op by name; the result is zero-extended into 64 bits."""
    return _alu(C.BPF_ALU, op, dst, operand)


def mov64(dst: int, operand: Operand) -> Insn:
    return alu64("mov", dst, operand)


def mov32(dst: int, operand: Operand) -> Insn:
    return alu32("mov", dst, operand)


def endian(kind: str, dst: int, bits: int) -> Insn:
    """``kind`` "le"/"be" convert from host order; "bswap" swaps unconditionally (v4)."""
    codes = {"le": C.BPF_ALU | C.BPF_TO_LE, "be": C.BPF_ALU | C.BPF_TO_BE, "bswap": C.BPF_ALU64}
    code = _lookup(codes, "endian", kind)
    if bits not in (16, 32, 64):
        raise InputError("endian bits must be 16, 32 or 64, not %r" % (bits,))
    return Insn(code | C.BPF_END, dst, imm=bits)


def ld_imm64(dst: int, imm: int, pseudo: int = 0) -> Insn:
    """Two-slot 64-bit load; ``pseudo`` is a BPF_PSEUDO_* src_reg kind."""
    return Insn(_LD_IMM64, dst, pseudo, 0, imm)


def ld_map_fd(dst: int, fd: int) -> Insn:
    return ld_imm64(dst, fd, C.BPF_PSEUDO_MAP_FD)


def ld_map_value(dst: int, fd: int, off: int = 0) -> Insn:
    """Address of ``off`` bytes into the value of array map ``fd`` (global data)."""
    return ld_imm64(dst, off << 32 | fd, C.BPF_PSEUDO_MAP_VALUE)


def ld_abs(size: int, imm: int) -> Insn:
    """Legacy packet load into r0 (socket filters)."""
    return Insn(C.BPF_LD | C.BPF_ABS | _size(size), imm=imm)


def ld_ind(size: int, src: int, imm: int = 0) -> Insn:
    return Insn(C.BPF_LD | C.BPF_IND | _size(size), src=src, imm=imm)


def ldx(size: int, dst: int, src: int, off: int = 0, signed: bool = False) -> Insn:
    """``dst = *(size *)(src + off)``; ``signed`` sign-extends (cpu v4 MEMSX)."""
    return Insn(C.BPF_LDX | (BPF_MEMSX if signed else C.BPF_MEM) | _size(size), dst, src, off)


def stx(size: int, dst: int, src: int, off: int = 0) -> Insn:
    """``*(size *)(dst + off) = src``."""
    return Insn(C.BPF_STX | C.BPF_MEM | _size(size), dst, src, off)


def st(size: int, dst: int, off: int, imm: int) -> Insn:
    """``*(size *)(dst + off) = imm``."""
    return Insn(C.BPF_ST | C.BPF_MEM | _size(size), dst, 0, off, imm)


def atomic(op: str, size: int, dst: int, src: int, off: int = 0, fetch: bool = False) -> Insn:
    """Atomic ``op`` on ``*(size *)(dst + off)`` with ``src``; size 4 or 8.

    ``fetch`` returns the old value in ``src``; xchg/cmpxchg always fetch
    (cmpxchg compares with and returns into r0).
    """
    if size not in (4, 8):
        raise InputError("atomic size must be 4 or 8 bytes, not %r" % (size,))
    imm = _lookup(ATOMIC_OPS, "atomic", op) | (C.BPF_FETCH if fetch else 0)
    return Insn(C.BPF_STX | C.BPF_ATOMIC | _size(size), dst, src, off, imm)


def _branch(insn: Insn, target: Target, field: str = "off") -> Union[Insn, Ref]:
    if isinstance(target, str):
        return Ref(insn, target)
    return replace(insn, **{field: target})


def _jmp(cls: int, op: str, dst: int, operand: Operand, target: Target) -> Union[Insn, Ref]:
    code, _ = _lookup(JMP_OPS, "jump", op)
    x, src, imm = _source(operand)
    return _branch(Insn(cls | code | x, dst, src, 0, imm), target)


def jmp(op: str, dst: int, operand: Operand, target: Target) -> Union[Insn, Ref]:
    """``if dst <op> operand goto target`` (64-bit compare); target in slots or a label."""
    return _jmp(C.BPF_JMP, op, dst, operand, target)


def jmp32(op: str, dst: int, operand: Operand, target: Target) -> Union[Insn, Ref]:
    """Like :func:`jmp` but compares the low 32 bits."""
    return _jmp(C.BPF_JMP32, op, dst, operand, target)


def ja(target: Target) -> Union[Insn, Ref]:
    """Unconditional ``goto``."""
    return _branch(Insn(C.BPF_JMP | C.BPF_JA), target)


def gotol(target: Target) -> Union[Insn, Ref]:
    """Unconditional jump with a 32-bit offset in ``imm`` (cpu v4)."""
    return _branch(Insn(C.BPF_JMP32 | C.BPF_JA), target, "imm")


def call(helper: int) -> Insn:
    """Call a kernel helper by number or ``HelperId``."""
    if isinstance(helper, bool) or not isinstance(helper, int):
        raise InputError(f"call() takes a helper number or HelperId, not {helper!r}")
    return Insn(C.BPF_JMP | C.BPF_CALL, imm=int(helper))


def call_local(target: Target) -> Union[Insn, Ref]:
    """bpf-to-bpf call; ``imm`` is the slot offset from the next instruction."""
    return _branch(Insn(C.BPF_JMP | C.BPF_CALL, src=C.BPF_PSEUDO_CALL), target, "imm")


def ld_func(dst: int, target: Target) -> Union[Insn, Ref]:
    """``dst`` = the address of a subprogram (a callback for bpf_loop and friends);
    ``imm`` is its slot offset from the next instruction, as for call_local."""
    return _branch(ld_imm64(dst, 0, C.BPF_PSEUDO_FUNC), target, "imm")


def exit() -> Insn:  # noqa: A001 - the instruction's name
    return Insn(C.BPF_JMP | C.BPF_EXIT)


def assemble(items: Iterable[Union[Insn, Ref, str]],
             labels_out: Optional[Dict[str, int]] = None) -> List[Insn]:
    """Resolve labels: a ``str`` item defines a label at the next instruction,
    a :class:`Ref` (from a builder given a label) jumps to it. ``labels_out``, a
    dict, receives each label's slot (where subprograms start, for func_info)."""
    pending: List[Tuple[int, Union[Insn, Ref]]] = []
    labels: Dict[str, int] = {}
    slot = 0
    for item in items:
        if isinstance(item, str):
            if item in labels:
                raise InputError("label %r defined twice" % item)
            labels[item] = slot
        else:
            pending.append((slot, item))
            slot += (item.insn if isinstance(item, Ref) else item).slots
    out: List[Insn] = []
    for slot, item in pending:
        if isinstance(item, Ref):
            if item.label not in labels:
                raise InputError("undefined label %r" % item.label)
            field = "imm" if item.insn.code in _IMM_TARGET or item.insn.code == _LD_IMM64 else "off"
            item = replace(item.insn, **{field: labels[item.label] - (slot + 1)})
        out.append(item)
    if labels_out is not None:
        labels_out.update(labels)
    return out
