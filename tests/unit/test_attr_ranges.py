"""Every integer bound for a kernel structure is range-checked before ctypes sees it.

ctypes stores ints modulo a field's width without a word, so max_entries=2**32+4 used
to reach the kernel as 4 and a u32 flags=2**40 as 0. The structures' constructors
refuse such values with an InputError naming the field; this walks every field of
every structure pybpf hands to the kernel.
"""
import ctypes

import pytest

import pybpf
from pybpf.kernel import attr
from pybpf.kernel.perf import PerfEventAttr

STRUCTS = sorted(set(attr.C_LAYOUTS) | {PerfEventAttr}, key=lambda c: c.__name__)


def _fields(cls):
    for field in cls._fields_:
        name, ctype = field[0], field[1]
        if issubclass(ctype, ctypes.Array) and ctype._type_ is ctypes.c_char:
            continue  # names: tested below
        array = issubclass(ctype, ctypes.Array)
        base = ctype._type_ if array else ctype
        bits = field[2] if len(field) == 3 else ctypes.sizeof(base) * 8
        signed = base(-1).value == -1
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        yield name, array, lo, hi


# PerfEventAttr sets its own size.
CASES = [(cls, *f) for cls in STRUCTS for f in _fields(cls)
         if not (cls is PerfEventAttr and f[0] == "size")]


@pytest.mark.parametrize("cls, name, array, lo, hi", CASES,
                         ids=[f"{c[0].__name__}.{c[1]}" for c in CASES])
def test_each_field_takes_its_range_and_refuses_the_rest(cls, name, array, lo, hi):
    wrap = (lambda v: (v,)) if array else (lambda v: v)
    for good in (lo, hi):
        got = getattr(cls(**{name: wrap(good)}), name)
        assert (got[0] if array else got) == good
    for bad in (lo - 1, hi + 1, 1 << 64, 1.0, "1"):
        with pytest.raises(pybpf.InputError, match=rf"{cls.__name__}\.{name}"):
            cls(**{name: wrap(bad)})


def test_arrays_refuse_more_values_than_they_hold():
    with pytest.raises(pybpf.InputError, match="holds 4 values, got 5"):
        attr.LinkCreateAttr(extra=(1, 2, 3, 4, 5))


def test_names_refuse_more_bytes_than_the_field_holds():
    assert attr.MapCreateAttr(map_name=b"x" * 16).map_name == b"x" * 16
    with pytest.raises(pybpf.InputError, match="map_name takes at most 16 bytes"):
        attr.MapCreateAttr(map_name=b"x" * 17)


def test_setting_a_field_later_has_the_same_check():
    attr.check(attr.MapElemAttr, "flags", (1 << 64) - 1)
    with pytest.raises(pybpf.InputError, match="MapElemAttr.flags"):
        attr.check(attr.MapElemAttr, "flags", 1 << 64)
