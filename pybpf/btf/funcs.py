"""Minimal BTF for hand-built programs that have subprograms.

The verifier wants BTF func_info for a program whose instructions hold more than one
function once any of them is a callback (``bpf_loop`` and friends: "missing btf
func_info"). clang writes that BTF for C; for instructions built with pybpf.asm,
:func:`for_functions` writes the smallest BTF that satisfies the kernel: each
function takes its number of ``long`` arguments (pointers are 64-bit too) and
returns ``long``; the program's entry is global, the others static.
"""
from ..errors import InputError
from . import ext
from . import types as T
from .model import Btf


def for_functions(functions):
    """``(btf, func_info)`` for ``functions``, a sequence of (name, first instruction
    slot, argument count) with the program's entry first at slot 0; ``func_info`` is
    the ``(bytes, record size)`` pair Program.load takes."""
    functions = sorted(functions, key=lambda f: f[1])
    if not functions or functions[0][1] != 0:
        raise InputError("the first function must start at instruction 0")
    btf = Btf()
    long_id = btf.add(T.Int("long", 8, T.INT_SIGNED, 0, 64))
    records = []
    for i, (name, slot, nargs) in enumerate(functions):
        params = tuple(T.Param(f"a{j}", long_id) for j in range(nargs))
        proto = btf.add(T.FuncProto("", long_id, params))
        linkage = T.FUNC_GLOBAL if i == 0 else T.FUNC_STATIC
        func = btf.add(T.Func(name, proto, linkage))
        records.append(ext.FuncInfo(slot * ext.INSN_SIZE, func))
    return btf, (ext.encode_func_info(records), ext.FUNC_INFO_SIZE)
