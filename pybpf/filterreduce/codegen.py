"""A filter tree (:mod:`.expr`) as BPF instructions.

:func:`filter_code` emits the test for one number held in a register: the code falls
through when the filter keeps the number and jumps to a label when it drops it.
Conditions short-circuit as Python's do; nothing is called and nothing is stored, so
the code can be repeated inline at every place a parser finishes a number.

BPF's own ``%`` is unsigned and its jump immediates are 32-bit, so Python's floor
modulo is built from unsigned operations on the magnitude, and constants that do not
fit 32 bits go through a register.
"""
import itertools

from .. import asm
from ..errors import InputError
from .expr import Bool, Compare, Const, Not, Or, Var

_JUMP = {"<": "slt", "<=": "sle", ">": "sgt", ">=": "sge", "==": "eq", "!=": "ne"}
_NEGATE = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}
_SWAP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def _fits_imm(value):
    return -(1 << 31) <= value < (1 << 31)


class _Gen:
    """Emits into ``items`` (asm instructions, Refs and label strings)."""

    def __init__(self, value, temps, prefix):
        if len(temps) < 3:
            raise InputError("filter code needs three temporary registers")
        self.value, self.temps, self.prefix = value, tuple(temps), prefix
        self.items = []
        self._labels = itertools.count()

    def label(self, what):
        return f"{self.prefix}.{what}{next(self._labels)}"

    def emit(self, *items):
        self.items.extend(items)

    # -- terms --------------------------------------------------------------------

    def load_const(self, reg, value):
        if _fits_imm(value):
            self.emit(asm.mov64(reg, value))
        else:
            self.emit(asm.ld_imm64(reg, value & ((1 << 64) - 1)))

    def term(self, term, dst):
        """Evaluate term into dst (which may be the value register itself for x)."""
        if isinstance(term, Var):
            if dst != self.value:
                self.emit(asm.mov64(dst, self.value))
        elif isinstance(term, Const):
            self.load_const(dst, term.value)
        else:
            self.term(term.term, dst)
            self.floor_mod(dst, term.divisor)

    def floor_mod(self, reg, divisor):
        """reg = reg % divisor with Python's meaning (the sign of the divisor)."""
        magnitude = abs(divisor)
        tmp = self.temps[2]
        if 0 < magnitude < (1 << 31):
            by = magnitude
        else:
            self.emit(asm.ld_imm64(tmp, magnitude))
            by = tmp
        negative, fix, done = self.label("neg"), self.label("fix"), self.label("mod")
        self.emit(asm.jmp("slt", reg, 0, negative),
                  asm.alu64("mod", reg, by),     # x >= 0: the unsigned remainder
                  asm.ja(fix),
                  negative,
                  asm.alu64("neg", reg),         # |x| (2**63 for INT64_MIN, as u64)
                  asm.alu64("mod", reg, by),
                  asm.jmp("eq", reg, 0, done),
                  asm.alu64("neg", reg),         # |d| - (|x| mod |d|)
                  asm.alu64("add", reg, by),
                  fix)
        if divisor < 0:                          # from [0, |d|) into (d, 0]
            self.emit(asm.jmp("eq", reg, 0, done),
                      asm.alu64("sub", reg, tmp) if by is tmp else asm.alu64("add", reg, divisor))
        self.emit(done)

    # -- conditions ---------------------------------------------------------------

    def compare(self, node, target, when):
        """Jump to target when (node is true) == when; fall through otherwise."""
        op, left, right = node.op, node.left, node.right
        if isinstance(left, Const) and not isinstance(right, Const):
            op, left, right = _SWAP[op], right, left
        if not when:
            op = _NEGATE[op]
        lhs = self.value if isinstance(left, Var) else self.temps[0]
        self.term(left, lhs)
        if isinstance(right, Const) and _fits_imm(right.value):
            self.emit(asm.jmp(_JUMP[op], lhs, right.value, target))
            return
        rhs = self.value if isinstance(right, Var) else self.temps[1]
        self.term(right, rhs)
        self.emit(asm.jmp(_JUMP[op], lhs, rhs, target))

    def jump_if(self, node, target, when):
        """Jump to target when the condition's value equals when, else fall through."""
        if isinstance(node, Bool):
            if node.value == when:
                self.emit(asm.ja(target))
        elif isinstance(node, Compare):
            self.compare(node, target, when)
        elif isinstance(node, Not):
            self.jump_if(node.part, target, not when)
        else:
            # And jumps away on the first false part, Or on the first true one.
            decisive = isinstance(node, Or)
            if decisive == when:
                for part in node.parts:
                    self.jump_if(part, target, when)
            else:
                skip = self.label("skip")
                for part in node.parts[:-1]:
                    self.jump_if(part, skip, decisive)
                self.jump_if(node.parts[-1], target, when)
                self.emit(skip)


def drops_all(flt):
    """Whether the filter drops every number (its tree folded to False): then the
    code after filter_code is unreachable, which the verifier refuses outright, so
    callers leave it out."""
    return flt is not None and flt.tree == Bool(False)


def filter_code(flt, value, temps, drop, prefix):
    """Items testing the signed 64-bit number in register ``value``: they fall through
    when the filter keeps it and jump to label ``drop`` when it does not. ``temps``
    are three scratch registers (never ``value``); labels start with ``prefix``.
    A filter of None keeps everything and emits nothing."""
    if flt is None:
        return []
    gen = _Gen(value, temps, prefix)
    gen.jump_if(flt.tree, drop, False)
    return gen.items
