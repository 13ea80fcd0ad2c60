"""The BPF code generated for filter expressions, run by the kernel (XDP programs
under BPF_PROG_TEST_RUN) and compared with Python's meaning of the same source."""
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filters import filters, values
from pybpf import asm
from pybpf.asm import R0, R1, R2, R3, R4
from pybpf.filterreduce import codegen, expr
from pybpf.filterreduce.expr import INT64_MAX, INT64_MIN, FilterError
from pybpf.programs import Program

KEEP, DROP = 1, 0


def filter_program(flt):
    """An XDP program returning KEEP/DROP for the s64 in the packet's first 8 bytes."""
    items = [
        asm.ldx(4, R2, R1, 0), asm.ldx(4, R3, R1, 4),      # xdp_md.data, data_end
        asm.mov64(R4, R2), asm.alu64("add", R4, 8), asm.jmp("gt", R4, R3, "drop"),
        asm.ldx(8, R0, R2, 0),
        *codegen.filter_code(flt, R0, (R1, R2, R3), "drop", "t"),
        *([] if codegen.drops_all(flt) else [asm.mov64(R0, KEEP), asm.exit()]),
        "drop", asm.mov64(R0, DROP), asm.exit(),
    ]
    return Program.load("xdp", asm.assemble(items))


def run(prog, x):
    return prog.test_run(struct.pack("<q", x) + bytes(8)).retval


def interesting(flt):
    """Values near every constant of the filter (where comparisons flip)."""
    found = set()

    def walk(node):
        for field in getattr(node, "__dataclass_fields__", {}):
            v = getattr(node, field)
            if isinstance(v, int) and not isinstance(v, bool):
                found.update((v - 1, v, v + 1, -v))
            elif isinstance(v, tuple):
                for item in v:
                    walk(item)
            else:
                walk(v)
    walk(flt.tree)
    return [v for v in found if INT64_MIN <= v <= INT64_MAX]


@pytest.mark.parametrize("source", [
    "x >= 100", "x % 3 == 0 and x < 0", "not (10 <= x <= 20)", "x % 2",
    "x % -7 == -3", "x % 10000000000 == 7 or x > 5000000000", "x < -4294967296",
    "x % 9223372036854775807 == 0", "x % 3 < x % 5", "x == x", "x != x",
])
def test_chosen_filters_at_their_edges(source):
    flt = expr.parse(source)
    keep = expr.predicate(flt)
    edges = interesting(flt) + [INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX - 1,
                                INT64_MAX] + list(range(-30, 31))
    with filter_program(flt) as prog:
        wrong = [x for x in edges if run(prog, x) != (KEEP if keep(x) else DROP)]
    assert wrong == []


@settings(max_examples=150, deadline=None)
@given(filters(), st.lists(values, min_size=5, max_size=20))
def test_generated_code_agrees_with_python(source, xs):
    try:
        flt = expr.parse(source)
    except FilterError:
        return
    keep = expr.predicate(flt)
    with filter_program(flt) as prog:
        for x in xs + interesting(flt):
            assert run(prog, x) == (KEEP if keep(x) else DROP), (source, x)


def test_no_filter_emits_nothing():
    assert codegen.filter_code(None, R0, (R1, R2, R3), "drop", "t") == []


def test_three_temporaries_are_required():
    with pytest.raises(ValueError, match="three temporary registers"):
        codegen.filter_code(expr.parse("x > 1"), R0, (R1, R2), "drop", "t")
