"""Custom reduce stages: the program that runs a compiled Python step function
(custom.Reduce) over the numbers a filter stage kept.

It takes the place of the shipped count/sum/min/max stage in a tenant's reduce slot,
with the same contract: fold ``kept[0..nkept)`` into the tenant's state, count them
as kept, clear ``nkept`` and tail-call the feed stage while the event has more data.
The state is the tenant's fr_state value (layout.State), whose slots the step
function reads and writes through the pointer it is given; a step that indexes a
state array out of range returns 1, and the stage counts it in the state's last slot.
"""
from .. import asm
from ..asm import R0, R1, R2, R3, R4, R6, R7, R8, R9, R10
from ..kernel.constants import HelperId
from . import layout as L

_WORK_NKEPT = L.offset(L.Scratch, "work.nkept")
_WORK_LEN, _WORK_DONE = L.offset(L.Scratch, "work.len"), L.offset(L.Scratch, "work.done")
_KEPT = L.Scratch.kept.offset
_RES_KEPT = L.offset(L.Tenant, "res.kept")
_RES_ERRORS = L.offset(L.Tenant, "res.errors")
_ERRORS_SLOT = (L.STATE_SLOTS - 1) * 8
_CPU_KEY = -8
_CTX = -24            # the callbacks' context: [scratch, state]
STEP = "reduce.step"


def build(step_insns, scratch_fd, tenants_fd, states_fd, stages_fd):
    """(instructions, functions) of the reduce stage around step_insns, the compiled
    step(state, x) (a self-contained function: pybpf.jit's instructions())."""
    items = [
        asm.mov64(R6, R1),
        asm.call(HelperId.get_smp_processor_id), asm.stx(4, R10, R0, _CPU_KEY),
        asm.mov64(R2, R10), asm.alu64("add", R2, _CPU_KEY), asm.ld_map_fd(R1, scratch_fd),
        asm.call(HelperId.map_lookup_elem), asm.jmp("eq", R0, 0, "out"),
        asm.mov64(R7, R0),
        asm.ld_map_fd(R1, tenants_fd), asm.mov64(R2, R7),      # work.key is at offset 0
        asm.call(HelperId.map_lookup_elem), asm.jmp("eq", R0, 0, "out"),
        asm.mov64(R8, R0),
        asm.ld_map_fd(R1, states_fd), asm.mov64(R2, R7),
        asm.call(HelperId.map_lookup_elem), asm.jmp("eq", R0, 0, "nostate"),
        asm.mov64(R9, R0),
        asm.stx(8, R10, R7, _CTX), asm.stx(8, R10, R9, _CTX + 8),
        asm.ldx(4, R1, R7, _WORK_NKEPT), asm.jmp("gt", R1, L.KEPT_MAX, "out"),
        asm.stx(8, R10, R1, _CTX + 16),
        asm.ld_func(R2, "reduce.each"), asm.mov64(R3, R10), asm.alu64("add", R3, _CTX),
        asm.mov64(R4, 0), asm.call(HelperId.loop),
        asm.ldx(8, R1, R10, _CTX + 16), asm.atomic("add", 8, R8, R1, _RES_KEPT),
        "more",
        asm.st(4, R7, _WORK_NKEPT, 0),
        asm.ldx(4, R1, R7, _WORK_DONE), asm.ldx(4, R2, R7, _WORK_LEN),
        asm.jmp("ge", R1, R2, "out"),
        asm.mov64(R1, R6), asm.ld_map_fd(R2, stages_fd), asm.mov64(R3, L.SLOT_FEED),
        asm.call(HelperId.tail_call),
        "out", asm.mov64(R0, 0), asm.exit(),
        # The tenant has no state (it registered without one): nothing to fold into.
        "nostate", asm.mov64(R1, 1), asm.atomic("add", 8, R8, R1, _RES_ERRORS),
        asm.ja("more"),
        # bpf_loop callback (index, ctx): step(state, kept[index]).
        "reduce.each",
        asm.jmp("ge", R1, L.KEPT_MAX, "each.ret"),
        asm.ldx(8, R3, R2, 0), asm.ldx(8, R6, R2, 8),
        asm.alu64("lsh", R1, 3), asm.alu64("add", R3, R1), asm.ldx(8, R2, R3, _KEPT),
        asm.mov64(R1, R6), asm.call_local(STEP),
        asm.jmp("eq", R0, 0, "each.ret"),
        asm.mov64(R1, 1), asm.atomic("add", 8, R6, R1, _ERRORS_SLOT),
        "each.ret", asm.mov64(R0, 0), asm.exit(),
        STEP, *step_insns,
    ]
    labels = {}
    insns = asm.assemble(items, labels_out=labels)
    functions = [("fr_reduce", 0, 1), ("reduce_each", labels["reduce.each"], 2),
                 ("reduce_step", labels[STEP], 2)]
    return insns, functions
