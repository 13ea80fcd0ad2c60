"""Filter stages: the BPF program that parses a tenant's data and keeps what its
filter passes, generated for each filter (no clang at run time).

A filter stage runs as the tail call after a dispatcher or the feed stage has put a
piece of an event's data in the CPU's scratch (``data[0..piece)``). It parses the
piece with the tenant's parse state, which carries numbers across pieces and events,
appends every kept number to ``kept[]``, adds to the tenant's counters, and tail-calls
the tenant's reduce stage. Two parsers give the same results:

``native`` (the default)
    a bpf_loop callback per 64-byte block; the block is a state machine unrolled over
    its bytes, and the filter test is inlined wherever a number ends.
``strtol``
    the thesis's way: bpf_strtoul converts each digit run that lies in the piece; a
    callback per byte position finds the runs. A run that reaches the end of the piece,
    or is longer than bpf_strtoul takes, continues digit by digit.

The number rules (docs/filterreduce.md): a number is a maximal run of ASCII digits,
negative when the byte before it is '-'; a run whose value does not fit a signed
64-bit integer is counted as out of range and not filtered.

What the verifier needs from the code's shape, learnt the hard way on 6.1: the parse
context lives in the scratch map (``work.stage``), not on the stack. A bpf_loop
callback that writes its caller's stack returns a different state along every path,
and the caller's code after the loop is verified once per such state; map memory is
not tracked, so every path returns the same state. For the same reason numbers are
range-checked after a round trip through map memory: a value the verifier can bound
lets it predict branches, and a predicted branch makes it track the registers
involved exactly, so paths through a block stop merging.
"""
from .. import asm
from ..asm import R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10
from ..errors import PipelineError
from ..kernel.constants import (BPF_ALU, BPF_ALU64, BPF_CALL, BPF_EXIT, BPF_JMP, BPF_LD,
                                BPF_LDX, HelperId)
from . import codegen
from . import layout as L
from .names import PARSERS

BLOCK = L.BLOCK               # bytes per callback of the native parser (a power of 2)

# Offsets into the per-CPU scratch value and the tenant value.
_WORK_PIECE = L.offset(L.Scratch, "work.piece")
_WORK_NKEPT = L.offset(L.Scratch, "work.nkept")
_DATA = L.Scratch.data.offset
_KEPT = L.Scratch.kept.offset
_ACC, _MODE = L.Tenant.acc.offset, L.Tenant.mode.offset
_REDUCE_SLOT = L.Tenant.reduce_slot.offset
_RES = {name: L.offset(L.Tenant, f"res.{name}") for name in
        ("bytes", "seen", "out_of_range", "errors")}

# The parse context: u64 slots of work.stage in the scratch value.
_STAGE = L.offset(L.Scratch, "work.stage")
_SLOTS = ("value", "limit", "acc", "mode", "seen", "oor", "lost", "skip", "len", "tail",
          "signed")
S = {name: _STAGE + 8 * i for i, name in enumerate(_SLOTS)}
assert len(_SLOTS) * 8 <= L.Work.stage.size

_CPU_KEY = -8                  # the main program's stack: the CPU number, as a key
_STRTOUL_RESULT = -8           # the strtol callback's stack: bpf_strtoul's result

# Above this magnitude, one more digit may not fit: (2**63) // 10.
_OVERFLOW_AT = (1 << 63) // 10
_ALL_ONES = (1 << 64) - 1      # the magnitude of a number known to be out of range
_MINUS = ord("-") - ord("0")   # the '-' byte after subtracting '0' (-3)

IN, NEG, MINUS = L.MODE_IN_NUMBER, L.MODE_NEGATIVE, L.MODE_MINUS


def _count(ctx, slot, tmp):
    return [asm.ldx(8, tmp, ctx, S[slot]), asm.alu64("add", tmp, 1),
            asm.stx(8, ctx, tmp, S[slot])]


def _emit(p, flt, negative, then, seen=None):
    """A number has ended: its magnitude is in R6, its sign is ``negative``; R9 is
    the scratch value. Count it (in register seen, or in the context), range-check it,
    run the filter on it and append it to kept[]; then go to label then. Uses R0-R3."""
    value, oor, full = f"{p}.val", f"{p}.oor", f"{p}.full"
    items = list(_count(R9, "seen", R2)) if seen is None else [asm.alu64("add", seen, 1)]
    items += [asm.stx(8, R9, R6, S["value"]), asm.ldx(8, R0, R9, S["value"]),
              # Magnitudes up to 2**63 - 1 fit; 2**63 only as INT64_MIN; more never.
              asm.mov64(R2, R0), asm.alu64("rsh", R2, 63), asm.jmp("eq", R2, 0, value)]
    if negative:
        items += [asm.mov64(R2, R0), asm.alu64("lsh", R2, 1), asm.jmp("eq", R2, 0, value)]
    items += [oor, *_count(R9, "oor", R2), asm.ja(then), value]
    if negative:
        items.append(asm.alu64("neg", R0))
    if is_function(flt):
        # A compiled Python function: inlined when small and leaf-like, else called as
        # a subprogram. Either way it may clobber R0-R5: the value waits in the
        # scratch map and the threshold is read again if it is gone.
        code = function_code(flt)
        items += [asm.stx(8, R9, R0, S["signed"]), asm.mov64(R1, R0)]
        items += code.inlined(f"{p}.fn") if code.inline else [asm.call_local(JIT_FILTER)]
        if R4 in code.clobbers:
            items.append(asm.ldx(8, R4, R9, S["limit"]))
        items += [asm.jmp("eq", R0, 0, then), asm.ldx(8, R0, R9, S["signed"])]
    elif codegen.drops_all(flt):
        return items + [asm.ja(then)]
    else:
        items += codegen.filter_code(flt, R0, (R1, R2, R3), then, f"{p}.f")
    items += [asm.ldx(4, R2, R9, _WORK_NKEPT), asm.jmp("ge", R2, L.KEPT_MAX, full),
              asm.mov64(R1, R2), asm.alu64("lsh", R1, 3), asm.alu64("add", R1, R9),
              asm.stx(8, R1, R0, _KEPT),
              asm.alu64("add", R2, 1), asm.stx(4, R9, R2, _WORK_NKEPT),
              asm.ja(then),
              full, *_count(R9, "lost", R2), asm.ja(then)]
    return items


def _callback_entry(name, limit):
    """Common start of a bpf_loop callback (index in R1, the scratch value pointer
    spilled at ctx in R2): R9 = the scratch value; returns at once for index >= limit
    (which never happens, but bounds the index for the verifier)."""
    return [name, asm.jmp("ge", R1, limit, f"{name}.ret"), asm.ldx(8, R9, R2, 0)]


def _callback_exit(name):
    return [f"{name}.ret", asm.mov64(R0, 0), asm.exit()]


# ---- the native parser ----------------------------------------------------------------
# A block is a state machine unrolled over its bytes: for every byte position there is
# code for each of four states, and the state is where the code runs, not a value in a
# register (so nothing is tested per byte but the byte itself):
#
#   OUT    not in a number, the byte before was not '-'
#   MINUS  not in a number, the byte before was '-'
#   POS    in a number that is positive
#   NEG    in a number that is negative
#
# Callback registers: R9 the scratch value, R8 the block's bytes, R6 the magnitude of
# the number being read, R5 numbers seen, R4 the overflow threshold (read from the
# map, so the verifier does not know it), R7 the byte that ended a number; R0-R3
# scratch. No helper is called, so none is clobbered.

_STATES = {"OUT": 0, "MINUS": MINUS, "POS": IN, "NEG": IN | NEG}


def _native_state(name, flt, state, k):
    """The code of one state at byte k of the block."""
    here, nxt = f"{name}.{state}{k}", (lambda s: f"{name}.{s}{k + 1}")
    items = [here, asm.ldx(1, R1, R8, k), asm.alu64("sub", R1, ord("0"))]
    if state in ("OUT", "MINUS"):
        other = f"{here}.nd"
        return items + [
            asm.jmp("gt", R1, 9, other),
            asm.mov64(R6, R1), asm.ja(nxt("NEG" if state == "MINUS" else "POS")),
            other, asm.jmp("eq", R1, _MINUS, nxt("MINUS")), asm.ja(nxt("OUT"))]
    end, ovf, after = f"{here}.end", f"{here}.ovf", f"{here}.after"
    return items + [
        asm.jmp("gt", R1, 9, end),
        asm.jmp("gt", R6, R4, ovf),
        asm.alu64("mul", R6, 10), asm.alu64("add", R6, R1), asm.ja(nxt(state)),
        ovf, asm.mov64(R6, -1), asm.ja(nxt(state)),        # out of range for good
        end, asm.mov64(R7, R1),
        *_emit(f"{here}.e", flt, state == "NEG", after,
               seen=None if _seen_in_memory(flt) else R5),
        after, asm.jmp("eq", R7, _MINUS, nxt("MINUS")), asm.ja(nxt("OUT"))]


def _native_callback(name, flt, block):
    """bpf_loop callback (index, ctx): parse ``block`` bytes. For block > 1 they are
    block ``index`` of data[]; for 1, byte ``index`` of the tail after the last block."""
    limit = L.PIECE // block if block > 1 else BLOCK
    items = _callback_entry(name, limit)
    if block > 1:
        items += [asm.mov64(R8, R9), asm.alu64("add", R8, _DATA),
                  asm.alu64("lsh", R1, block.bit_length() - 1)]
    else:
        items += [asm.ldx(8, R8, R9, S["tail"]), asm.jmp("gt", R8, L.PIECE, f"{name}.ret"),
                  asm.alu64("add", R8, R9), asm.alu64("add", R8, _DATA)]
    seen = [] if _seen_in_memory(flt) else [asm.ldx(8, R5, R9, S["seen"])]
    items += [asm.alu64("add", R8, R1), asm.ldx(8, R6, R9, S["acc"]), *seen,
              asm.ldx(8, R4, R9, S["limit"]),
              # enter the state the mode names
              asm.ldx(8, R7, R9, S["mode"]),
              asm.jmp("set", R7, IN, f"{name}.in"),
              asm.jmp("set", R7, MINUS, f"{name}.MINUS0"), asm.ja(f"{name}.OUT0"),
              f"{name}.in", asm.jmp("set", R7, NEG, f"{name}.NEG0"), asm.ja(f"{name}.POS0")]
    for k in range(block):
        for state in _STATES:
            items += _native_state(name, flt, state, k)
    done = f"{name}.done"
    for state, mode in _STATES.items():
        items += [f"{name}.{state}{block}", asm.mov64(R7, mode), asm.ja(done)]
    seen = [] if _seen_in_memory(flt) else [asm.stx(8, R9, R5, S["seen"])]
    items += [done, asm.stx(8, R9, R6, S["acc"]), asm.stx(8, R9, R7, S["mode"]), *seen,
              *_callback_exit(name)]
    return items


def _loop(callback):
    """bpf_loop(R1 times, callback, &scratch pointer on the stack, 0)."""
    return [asm.ld_func(R2, callback), asm.mov64(R3, R10), asm.alu64("add", R3, _CTX),
            asm.mov64(R4, 0), asm.call(HelperId.loop)]


def _native_loops():
    """Main-program part: whole blocks through one callback, the rest byte by byte.
    R7 scratch value, R9 piece length."""
    return [
        asm.mov64(R1, R9), asm.alu64("rsh", R1, BLOCK.bit_length() - 1),
        *_loop("native.block"),
        asm.mov64(R1, R9), asm.alu64("and", R1, BLOCK - 1),
        asm.jmp("eq", R1, 0, "parsed"),
        asm.mov64(R2, R9), asm.alu64("and", R2, -BLOCK), asm.stx(8, R7, R2, S["tail"]),
        *_loop("native.byte"),
    ]


# ---- the strtol parser ----------------------------------------------------------------
# Callback registers: R9 the scratch value, R8 the byte, R6 its index and then the
# magnitude, R7 the mode (FR_MODE_*, in the context between calls); R0-R5 are
# clobbered by bpf_strtoul.

def _strtol_emit(p, flt, then):
    """_emit for a sign known only from the mode in R7."""
    neg = f"{p}.neg"
    return [asm.jmp("set", R7, NEG, neg),
            *_emit(f"{p}.pos", flt, False, then),
            neg, *_emit(f"{p}.neg", flt, True, then)]


def _strtol_callback(flt):
    p = "strtol"
    ret, store, mode = f"{p}.ret", f"{p}.store", f"{p}.mode"
    return [
        *_callback_entry(p, L.PIECE),
        asm.ldx(8, R3, R9, S["skip"]), asm.jmp("lt", R1, R3, ret),
        asm.mov64(R6, R1),
        asm.mov64(R8, R9), asm.alu64("add", R8, _DATA), asm.alu64("add", R8, R1),
        asm.ldx(8, R7, R9, S["mode"]),
        asm.ldx(1, R1, R8, 0), asm.alu64("sub", R1, ord("0")),
        asm.jmp("gt", R1, 9, f"{p}.nd"),
        asm.jmp("set", R7, IN, f"{p}.cont"),
        # A number starts here: its sign from the byte before, its value from strtoul.
        asm.alu64("rsh", R7, 1), asm.alu64("and", R7, NEG), asm.alu64("or", R7, IN),
        asm.ldx(8, R2, R9, S["len"]), asm.alu64("sub", R2, R6),
        asm.jmp("slt", R2, 1, ret),
        asm.jmp("le", R2, L.STRTOL_MAX - 1, 1), asm.mov64(R2, L.STRTOL_MAX - 1),
        asm.mov64(R1, R8), asm.mov64(R3, 10), asm.mov64(R4, R10),
        asm.alu64("add", R4, _STRTOUL_RESULT),
        asm.call(HelperId.strtoul),
        asm.jmp("slt", R0, 0, f"{p}.erange"),
        asm.ldx(8, R2, R10, _STRTOUL_RESULT), asm.stx(8, R9, R2, S["acc"]),
        asm.mov64(R3, R6), asm.alu64("add", R3, R0), asm.stx(8, R9, R3, S["skip"]),
        # Does the run go on past what strtoul took (the piece's end, or a long run)?
        asm.ldx(8, R4, R9, S["len"]), asm.jmp("ge", R3, R4, store),
        asm.jmp("ge", R3, L.PIECE, store),
        asm.mov64(R4, R9), asm.alu64("add", R4, R3), asm.ldx(1, R4, R4, _DATA),
        asm.alu64("sub", R4, ord("0")), asm.jmp("le", R4, 9, store),
        # No: the number is complete; the byte after it comes next, in mode 0.
        asm.mov64(R6, R2),
        *_strtol_emit(f"{p}.e1", flt, f"{p}.zero"),
        f"{p}.zero", asm.mov64(R7, 0), asm.ja(store),
        # Beyond 64 bits: the rest of the run only keeps it out of range.
        f"{p}.erange", asm.ld_imm64(R2, _ALL_ONES), asm.stx(8, R9, R2, S["acc"]),
        asm.mov64(R3, R6), asm.alu64("add", R3, 1), asm.stx(8, R9, R3, S["skip"]),
        asm.ja(store),
        # A digit continuing a number carried over: digit by digit.
        f"{p}.cont", asm.ldx(8, R6, R9, S["acc"]), asm.ldx(8, R2, R9, S["limit"]),
        asm.jmp("gt", R6, R2, f"{p}.ovf"),
        asm.alu64("mul", R6, 10), asm.alu64("add", R6, R1),
        asm.stx(8, R9, R6, S["acc"]), asm.ja(ret),
        f"{p}.ovf", asm.ld_imm64(R2, _ALL_ONES), asm.stx(8, R9, R2, S["acc"]), asm.ja(ret),
        # Not a digit: it ends a carried number, and may be the '-' of the next one.
        f"{p}.nd", asm.jmp("set", R7, IN, f"{p}.end"),
        mode, asm.mov64(R7, 0), asm.jmp("ne", R1, _MINUS, store),
        asm.mov64(R7, MINUS), asm.ja(store),
        f"{p}.end", asm.ldx(8, R6, R9, S["acc"]),
        *_strtol_emit(f"{p}.e2", flt, f"{p}.reload"),
        # The emit used R1: take the byte again to set the next mode.
        f"{p}.reload", asm.ldx(1, R1, R8, 0), asm.alu64("sub", R1, ord("0")), asm.ja(mode),
        store, asm.stx(8, R9, R7, S["mode"]),
        *_callback_exit(p),
    ]


def _strtol_loops():
    return [asm.mov64(R1, R9), *_loop("strtol")]


# ---- the program ----------------------------------------------------------------------

_CTX = -16                     # the main program's stack: the scratch pointer, for callbacks

# Each program's subprograms: (label, argument count); bpf_loop callbacks take two.
_CALLBACKS = {"native": (("native.block", 2), ("native.byte", 2)), "strtol": (("strtol", 2),)}


def _add_to(tenant, field, slot, tmp, tmp2):
    return [asm.ldx(8, tmp, tenant, _RES[field]), asm.ldx(8, tmp2, R7, S[slot]),
            asm.alu64("add", tmp, tmp2), asm.stx(8, tenant, tmp, _RES[field])]


def build(flt, parser, scratch_fd, tenants_fd, stages_fd):
    """(instructions, functions) of the filter stage for flt (an expr.Filter, or None
    to keep every number); functions are (name, slot, argument count) for BTF
    func_info, which the verifier wants for callbacks.

    Main program registers: R6 the program's context (for the tail call), R7 the
    scratch value, R8 the tenant, R9 the piece's length."""
    if parser not in PARSERS:
        raise PipelineError(f"unknown parser {parser!r}; known: {', '.join(PARSERS)}")
    items = [
        asm.mov64(R6, R1),
        asm.call(HelperId.get_smp_processor_id), asm.stx(4, R10, R0, _CPU_KEY),
        asm.mov64(R2, R10), asm.alu64("add", R2, _CPU_KEY), asm.ld_map_fd(R1, scratch_fd),
        asm.call(HelperId.map_lookup_elem), asm.jmp("eq", R0, 0, "out"),
        asm.mov64(R7, R0), asm.stx(8, R10, R7, _CTX),
        asm.ld_map_fd(R1, tenants_fd), asm.mov64(R2, R7),    # work.key is at offset 0
        asm.call(HelperId.map_lookup_elem), asm.jmp("eq", R0, 0, "out"),
        asm.mov64(R8, R0),
        asm.ldx(4, R9, R7, _WORK_PIECE), asm.jmp("gt", R9, L.PIECE, "out"),
        asm.st(4, R7, _WORK_NKEPT, 0),
        asm.ld_imm64(R1, _OVERFLOW_AT), asm.stx(8, R7, R1, S["limit"]),
        asm.ldx(8, R1, R8, _ACC), asm.stx(8, R7, R1, S["acc"]),
        asm.ldx(8, R1, R8, _MODE), asm.stx(8, R7, R1, S["mode"]),
        asm.stx(8, R7, R9, S["len"]),
    ]
    items += [asm.st(8, R7, S[f], 0) for f in ("seen", "oor", "skip", "lost")]
    items += _native_loops() if parser == "native" else _strtol_loops()
    items += [
        "parsed",
        asm.ldx(8, R1, R7, S["acc"]), asm.stx(8, R8, R1, _ACC),
        asm.ldx(8, R1, R7, S["mode"]), asm.stx(8, R8, R1, _MODE),
        *_add_to(R8, "seen", "seen", R1, R2),
        *_add_to(R8, "out_of_range", "oor", R1, R2),
        *_add_to(R8, "errors", "lost", R1, R2),
        *_add_to(R8, "bytes", "len", R1, R2),
        asm.mov64(R1, R6), asm.ld_map_fd(R2, stages_fd), asm.ldx(4, R3, R8, _REDUCE_SLOT),
        asm.call(HelperId.tail_call),
        # Still here: the reduce slot is empty.
        asm.mov64(R1, 1), asm.atomic("add", 8, R8, R1, _RES["errors"]),
        "out", asm.mov64(R0, 0), asm.exit(),
    ]
    if parser == "native":
        items += _native_callback("native.block", flt, BLOCK)
        items += _native_callback("native.byte", flt, 1)
    else:
        items += _strtol_callback(flt)
    subprograms = list(_CALLBACKS[parser])
    if is_function(flt) and not function_code(flt).inline:
        items += [JIT_FILTER, *function_code(flt).insns]
        subprograms.append((JIT_FILTER, 1))
    labels = {}
    insns = asm.assemble(items, labels_out=labels)
    functions = [("fr_filter", 0, 1)] + [(name.replace(".", "_"), labels[name], nargs)
                                         for name, nargs in subprograms]
    return insns, functions


JIT_FILTER = "jit.keep"


def is_function(flt):
    """Whether flt is a filter compiled from a Python function (custom.Function), as
    opposed to an expression (expr.Filter) or None."""
    return hasattr(flt, "code")


INLINE_MAX = 64        # instructions of a compiled filter worth repeating at every end


class FunctionCode:
    """A compiled filter's instructions and how the stage can use them: inline (no
    calls, no stack, no callee-saved register written, short) or as a subprogram."""

    def __init__(self, insns):
        self.insns = insns
        self.clobbers = {i.dst for i in insns if i.cls in _WRITES_DST}
        calls = any(i.code == BPF_JMP | BPF_CALL for i in insns)
        uses_stack = any(R10 in (i.dst, i.src) for i in insns)
        self.inline = (len(insns) <= INLINE_MAX and not calls and not uses_stack
                       and not self.clobbers & {R6, R7, R8, R9})
        if not self.inline:
            self.clobbers = {R0, R1, R2, R3, R4, R5}

    def inlined(self, prefix):
        """The instructions with every exit turned into a jump past their end."""
        slots = asm.slot_offsets(self.insns)
        total = slots[-1] + self.insns[-1].slots
        out = []
        for at, insn in zip(slots, self.insns):
            out.append(asm.ja(total - (at + 1)) if insn.code == _EXIT else insn)
        return out


_EXIT = BPF_JMP | BPF_EXIT
_WRITES_DST = (BPF_ALU, BPF_ALU64, BPF_LD, BPF_LDX)


def function_code(flt):
    """FunctionCode of a compiled filter (custom.Function keeps it)."""
    return flt.code


def _seen_in_memory(flt):
    """Count numbers in the scratch map rather than in R5 (which a compiled filter
    may clobber)."""
    return is_function(flt) and R5 in function_code(flt).clobbers
