"""Filter stages: the BPF program that parses a tenant's data and keeps what its
filter passes, generated for each filter (no clang at run time).

A filter stage runs as the tail call after a dispatcher or the feed stage has put a
piece of an event's data in the CPU's scratch (``data[0..piece)``). It parses the
piece with the tenant's parse state, which carries numbers across pieces and events,
appends every kept number to ``kept[]``, adds to the tenant's counters, and tail-calls
the tenant's reduce stage. Two parsers give the same results:

``native`` (the default)
    a bpf_loop callback per 64-byte block, the block unrolled byte by byte with the
    parse state in registers; the filter test is inlined where each number ends.
``strtol``
    the thesis's way: bpf_strtoul converts each digit run that lies in the piece; a
    callback per byte position finds the runs. A run that reaches the end of the piece,
    or is longer than bpf_strtoul takes, continues digit by digit.

The number rules (docs/filterreduce.md): a number is a maximal run of ASCII digits,
negative when the byte before it is '-'; a run whose value does not fit a signed
64-bit integer is counted as out of range and not filtered.
"""
from .. import asm
from ..asm import R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10
from ..kernel.constants import HelperId
from . import codegen
from . import layout as L

PARSERS = ("native", "strtol")

# Offsets into the per-CPU scratch value and the tenant value.
_WORK_PIECE = L.offset(L.Scratch, "work.piece")
_WORK_NKEPT = L.offset(L.Scratch, "work.nkept")
_DATA = L.Scratch.data.offset
_KEPT = L.Scratch.kept.offset
_ACC, _MODE = L.Tenant.acc.offset, L.Tenant.mode.offset
_REDUCE_SLOT = L.Tenant.reduce_slot.offset
_RES = {name: L.offset(L.Tenant, f"res.{name}") for name in
        ("bytes", "seen", "out_of_range", "errors")}

# The parse context, on the stage's stack and shared with its bpf_loop callbacks
# through the callback's ctx pointer: (name, offset from its start).
# The count of kept numbers stays in the scratch value (work.nkept), not here: it
# indexes kept[], so the verifier tracks its range exactly, and a count on the stack
# would make every path through a block a state of its own.
_CTX_FIELDS = ("data", "scratch", "acc", "mode", "seen", "oor", "tail", "len", "skip",
               "lost")
C = {name: 8 * i for i, name in enumerate(_CTX_FIELDS)}
_CTX = -8 * len(_CTX_FIELDS)   # where the context starts below the frame pointer
_CPU_KEY = _CTX - 8

# Above this magnitude, one more digit may not fit: (2**63) // 10.
_OVERFLOW_AT = (1 << 63) // 10
_ALL_ONES = (1 << 64) - 1      # the magnitude of a number known to be out of range
_MINUS = ord("-") - ord("0")   # the '-' byte after subtracting '0' (-3)

IN, NEG, MINUS = L.MODE_IN_NUMBER, L.MODE_NEGATIVE, L.MODE_MINUS
_BLOCKS = L.PIECE // L.BLOCK


def _next_mode(mode, byte):
    """mode = MINUS if the byte (minus '0') was '-', else 0."""
    return [asm.mov64(mode, 0), asm.jmp("ne", byte, _MINUS, 1), asm.mov64(mode, MINUS)]


def _count(ctx, field, tmp):
    return [asm.ldx(8, tmp, ctx, C[field]), asm.alu64("add", tmp, 1),
            asm.stx(8, ctx, tmp, C[field])]


def _emit(p, flt, acc, mode, ctx, after, seen=None, next_from_byte=True):
    """A number has ended: its magnitude is in acc, its sign in mode's NEG bit, and
    (with next_from_byte) R1 holds the byte that ended it, minus '0'. Counts it (in
    register seen, or in the context), range-checks it, runs the filter on it and
    appends it to kept[]; then continues at label after with the next mode set.
    Uses R0-R3."""
    value, oor = f"{p}.val", f"{p}.oor"
    items = (list(_count(ctx, "seen", R2)) if seen is None
             else [asm.alu64("add", seen, 1)])
    # Magnitudes up to 2**63 - 1 fit; 2**63 only as INT64_MIN; more never.
    items += [asm.mov64(R0, acc), asm.alu64("rsh", R0, 63), asm.jmp("eq", R0, 0, value),
              asm.mov64(R0, acc), asm.alu64("lsh", R0, 1), asm.jmp("ne", R0, 0, oor),
              asm.jmp("set", mode, NEG, value),
              oor, *_count(ctx, "oor", R2)]
    items += _next_mode(mode, R1) if next_from_byte else [asm.mov64(mode, 0)]
    items += [asm.ja(after),
              value,
              # value = NEG ? -acc : acc, without a branch: (acc ^ m) - m, m = -neg
              asm.mov64(R2, mode), asm.alu64("rsh", R2, 1), asm.alu64("and", R2, 1),
              asm.alu64("neg", R2), asm.mov64(R0, acc), asm.alu64("xor", R0, R2),
              asm.alu64("sub", R0, R2)]
    items += _next_mode(mode, R1) if next_from_byte else [asm.mov64(mode, 0)]
    items += codegen.filter_code(flt, R0, (R1, R2, R3), after, f"{p}.f")
    full = f"{p}.full"
    items += [asm.ldx(8, R3, ctx, C["scratch"]), asm.ldx(4, R2, R3, _WORK_NKEPT),
              asm.jmp("ge", R2, L.KEPT_MAX, full),
              asm.mov64(R1, R2), asm.alu64("lsh", R1, 3), asm.alu64("add", R1, R3),
              asm.stx(8, R1, R0, _KEPT),
              asm.alu64("add", R2, 1), asm.stx(4, R3, R2, _WORK_NKEPT),
              asm.ja(after),
              full, *_count(ctx, "lost", R2), asm.ja(after)]
    return items


# ---- the native parser ----------------------------------------------------------------
# Callback registers: R9 the context, R8 the bytes, R6 acc, R7 mode, R5 numbers seen,
# R4 the overflow threshold; R0-R3 scratch. No helper is called, so none is clobbered.

def _native_byte(p, flt, offset):
    """Parse the byte at R8 + offset."""
    cont, ovf, other, end, nxt = (f"{p}.{s}" for s in ("cont", "ovf", "nd", "end", "next"))
    return [
        asm.ldx(1, R1, R8, offset), asm.alu64("sub", R1, ord("0")),
        asm.jmp("gt", R1, 9, other),
        # a digit: the first of a number takes its sign from the byte before
        asm.jmp("set", R7, IN, cont),
        asm.alu64("rsh", R7, 1), asm.alu64("and", R7, NEG), asm.alu64("or", R7, IN),
        asm.mov64(R6, R1), asm.ja(nxt),
        cont, asm.jmp("gt", R6, R4, ovf),
        asm.alu64("mul", R6, 10), asm.alu64("add", R6, R1), asm.ja(nxt),
        ovf, asm.mov64(R6, -1), asm.ja(nxt),
        # not a digit: it ends the number, if one is open
        other, asm.jmp("set", R7, IN, end),
        *_next_mode(R7, R1), asm.ja(nxt),
        end, *_emit(f"{p}.e", flt, R6, R7, R9, nxt, seen=R5),
        nxt,
    ]


def _native_callback(name, flt, block):
    """bpf_loop callback (index, ctx): parse ``block`` bytes. For block == L.BLOCK the
    bytes are block ``index`` of data[]; for 1 they are byte ``index`` of the tail."""
    limit, base = (_BLOCKS, C["data"]) if block == L.BLOCK else (L.BLOCK, C["tail"])
    shift = block.bit_length() - 1
    items = [name,
             asm.jmp("ge", R1, limit, f"{name}.ret"),
             asm.mov64(R9, R2), asm.ldx(8, R8, R9, base)]
    if shift:
        items.append(asm.alu64("lsh", R1, shift))
    items += [asm.alu64("add", R8, R1),
              asm.ldx(8, R6, R9, C["acc"]), asm.ldx(8, R7, R9, C["mode"]),
              asm.ldx(8, R5, R9, C["seen"]), asm.ld_imm64(R4, _OVERFLOW_AT)]
    for k in range(block):
        items += _native_byte(f"{name}.b{k}", flt, k)
    items += [asm.stx(8, R9, R6, C["acc"]), asm.stx(8, R9, R7, C["mode"]),
              asm.stx(8, R9, R5, C["seen"]),
              f"{name}.ret", asm.mov64(R0, 0), asm.exit()]
    return items


def _native_loops():
    """Main-program part: whole blocks through one callback, the rest byte by byte.
    R7 scratch value, R9 piece length."""
    return [
        asm.mov64(R1, R9), asm.alu64("rsh", R1, L.BLOCK.bit_length() - 1),
        asm.ld_func(R2, "native.block"), asm.mov64(R3, R10), asm.alu64("add", R3, _CTX),
        asm.mov64(R4, 0), asm.call(HelperId.loop),
        asm.mov64(R1, R9), asm.alu64("and", R1, L.BLOCK - 1),
        asm.jmp("eq", R1, 0, "parsed"),
        asm.mov64(R2, R9), asm.alu64("and", R2, -L.BLOCK),
        asm.mov64(R3, R7), asm.alu64("add", R3, _DATA), asm.alu64("add", R3, R2),
        asm.stx(8, R10, R3, _CTX + C["tail"]),
        asm.ld_func(R2, "native.byte"), asm.mov64(R3, R10), asm.alu64("add", R3, _CTX),
        asm.mov64(R4, 0), asm.call(HelperId.loop),
    ]


# ---- the strtol parser ----------------------------------------------------------------
# Callback registers: R9 the context, R8 the byte, R6 its index, R7 mode; the rest is
# in the context, since bpf_strtoul clobbers R0-R5.

def _strtol_callback(flt):
    p = "strtol"
    ret = f"{p}.ret"
    store_mode = [asm.stx(8, R9, R7, C["mode"]), asm.ja(ret)]
    return [
        p,
        asm.jmp("ge", R1, L.PIECE, ret),
        asm.mov64(R9, R2),
        asm.ldx(8, R3, R9, C["skip"]), asm.jmp("lt", R1, R3, ret),
        asm.mov64(R6, R1),
        asm.ldx(8, R8, R9, C["data"]), asm.alu64("add", R8, R1),
        asm.ldx(8, R7, R9, C["mode"]),
        asm.ldx(1, R1, R8, 0), asm.alu64("sub", R1, ord("0")),
        asm.jmp("gt", R1, 9, f"{p}.nd"),
        asm.jmp("set", R7, IN, f"{p}.cont"),
        # A number starts here: its sign from the byte before, its value from strtoul.
        asm.alu64("rsh", R7, 1), asm.alu64("and", R7, NEG), asm.alu64("or", R7, IN),
        asm.ldx(8, R2, R9, C["len"]), asm.alu64("sub", R2, R6),
        asm.jmp("slt", R2, 1, ret),
        asm.jmp("le", R2, L.STRTOL_MAX - 1, 1), asm.mov64(R2, L.STRTOL_MAX - 1),
        asm.mov64(R1, R8), asm.mov64(R3, 10), asm.mov64(R4, R10), asm.alu64("add", R4, -8),
        asm.call(HelperId.strtoul),
        asm.jmp("slt", R0, 0, f"{p}.erange"),
        asm.ldx(8, R2, R10, -8),
        asm.stx(8, R9, R2, C["acc"]),
        asm.mov64(R3, R6), asm.alu64("add", R3, R0), asm.stx(8, R9, R3, C["skip"]),
        # Does the run go on past what strtoul took (the piece's end, or a long run)?
        asm.ldx(8, R4, R9, C["len"]), asm.jmp("ge", R3, R4, f"{p}.carry"),
        asm.jmp("ge", R3, L.PIECE, f"{p}.carry"),
        asm.ldx(8, R4, R9, C["data"]), asm.alu64("add", R4, R3), asm.ldx(1, R4, R4, 0),
        asm.alu64("sub", R4, ord("0")), asm.jmp("le", R4, 9, f"{p}.carry"),
        asm.mov64(R6, R2),
        *_emit(f"{p}.e1", flt, R6, R7, R9, f"{p}.carry", next_from_byte=False),
        # The mode for the next position (a carried number keeps IN set).
        f"{p}.carry", *store_mode,
        # Beyond 64 bits: the rest of the run only keeps it out of range.
        f"{p}.erange", asm.ld_imm64(R2, _ALL_ONES), asm.stx(8, R9, R2, C["acc"]),
        asm.mov64(R3, R6), asm.alu64("add", R3, 1), asm.stx(8, R9, R3, C["skip"]),
        *store_mode,
        # A digit continuing a number carried over: digit by digit.
        f"{p}.cont", asm.ldx(8, R6, R9, C["acc"]), asm.ld_imm64(R2, _OVERFLOW_AT),
        asm.jmp("gt", R6, R2, f"{p}.ovf"),
        asm.alu64("mul", R6, 10), asm.alu64("add", R6, R1),
        asm.stx(8, R9, R6, C["acc"]), asm.ja(ret),
        f"{p}.ovf", asm.ld_imm64(R2, _ALL_ONES), asm.stx(8, R9, R2, C["acc"]), asm.ja(ret),
        # Not a digit: it ends a carried number, and may be the '-' of the next one.
        f"{p}.nd", asm.jmp("set", R7, IN, f"{p}.end"),
        *_next_mode(R7, R1), *store_mode,
        f"{p}.end", asm.ldx(8, R6, R9, C["acc"]),
        *_emit(f"{p}.e2", flt, R6, R7, R9, f"{p}.stored"),
        f"{p}.stored", *store_mode,
        ret, asm.mov64(R0, 0), asm.exit(),
    ]


def _strtol_loops():
    return [asm.mov64(R1, R9), asm.ld_func(R2, "strtol"), asm.mov64(R3, R10),
            asm.alu64("add", R3, _CTX), asm.mov64(R4, 0), asm.call(HelperId.loop)]


# ---- the program ----------------------------------------------------------------------

def _add_to(tenant, field, value, tmp):
    return [asm.ldx(8, tmp, tenant, _RES[field]), asm.alu64("add", tmp, value),
            asm.stx(8, tenant, tmp, _RES[field])]


# Each program's subprograms: (label, argument count); bpf_loop callbacks take two.
_CALLBACKS = {"native": (("native.block", 2), ("native.byte", 2)), "strtol": (("strtol", 2),)}


def build(flt, parser, scratch_fd, tenants_fd, stages_fd):
    """(instructions, functions) of the filter stage for flt (an expr.Filter, or None
    to keep every number); functions are (name, slot, argument count) for BTF
    func_info, which the verifier wants for callbacks."""
    if parser not in PARSERS:
        raise ValueError(f"unknown parser {parser!r}; known: {', '.join(PARSERS)}")
    ctx = lambda field: _CTX + C[field]  # noqa: E731
    items = [
        asm.mov64(R6, R1),
        asm.call(HelperId.get_smp_processor_id), asm.stx(4, R10, R0, _CPU_KEY),
        asm.mov64(R2, R10), asm.alu64("add", R2, _CPU_KEY), asm.ld_map_fd(R1, scratch_fd),
        asm.call(HelperId.map_lookup_elem), asm.jmp("eq", R0, 0, "out"),
        asm.mov64(R7, R0),
        asm.ld_map_fd(R1, tenants_fd), asm.mov64(R2, R7),    # work.key is at offset 0
        asm.call(HelperId.map_lookup_elem), asm.jmp("eq", R0, 0, "out"),
        asm.mov64(R8, R0),
        asm.ldx(4, R9, R7, _WORK_PIECE), asm.jmp("gt", R9, L.PIECE, "out"),
        asm.mov64(R1, R7), asm.alu64("add", R1, _DATA), asm.stx(8, R10, R1, ctx("data")),
        asm.stx(8, R10, R7, ctx("scratch")), asm.st(4, R7, _WORK_NKEPT, 0),
        asm.ldx(8, R1, R8, _ACC), asm.stx(8, R10, R1, ctx("acc")),
        asm.ldx(8, R1, R8, _MODE), asm.stx(8, R10, R1, ctx("mode")),
        asm.stx(8, R10, R9, ctx("len")),
    ]
    items += [asm.st(8, R10, ctx(f), 0) for f in ("seen", "oor", "skip", "lost")]
    items += _native_loops() if parser == "native" else _strtol_loops()
    items += [
        "parsed",
        asm.ldx(8, R1, R10, ctx("acc")), asm.stx(8, R8, R1, _ACC),
        asm.ldx(8, R1, R10, ctx("mode")), asm.stx(8, R8, R1, _MODE),
        asm.ldx(8, R2, R10, ctx("seen")), *_add_to(R8, "seen", R2, R1),
        asm.ldx(8, R2, R10, ctx("oor")), *_add_to(R8, "out_of_range", R2, R1),
        asm.ldx(8, R2, R10, ctx("lost")), *_add_to(R8, "errors", R2, R1),
        *_add_to(R8, "bytes", R9, R1),
        asm.mov64(R1, R6), asm.ld_map_fd(R2, stages_fd), asm.ldx(4, R3, R8, _REDUCE_SLOT),
        asm.call(HelperId.tail_call),
        # Still here: the reduce slot is empty.
        asm.mov64(R1, 1), asm.atomic("add", 8, R8, R1, _RES["errors"]),
        "out", asm.mov64(R0, 0), asm.exit(),
    ]
    if parser == "native":
        items += _native_callback("native.block", flt, L.BLOCK)
        items += _native_callback("native.byte", flt, 1)
    else:
        items += _strtol_callback(flt)
    labels = {}
    insns = asm.assemble(items, labels_out=labels)
    functions = [("fr_filter", 0, 1)] + [(name.replace(".", "_"), labels[name], nargs)
                                         for name, nargs in _CALLBACKS[parser]]
    return insns, functions
