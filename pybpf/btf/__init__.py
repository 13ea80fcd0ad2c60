"""BTF (BPF Type Format) in pure Python: parse, query, write back, sanitize, .BTF.ext.

    from pybpf.btf import Btf
    vm = Btf.vmlinux()                       # lazy: one scan, types decoded on use
    tid = vm.find_one("task_struct", "struct")
    for m in vm.members(tid): print(m.name, vm.type_name(m.type), m.bit_offset)

Modules: types (kind classes, BtfError), strings (string section), parse (header,
scan, record decoding), model (Btf), write (encoding), sanitize (older kernels, DATASEC
fix-ups), probe (kernel BTF feature detection), ext (.BTF.ext func/line/CO-RE info).
"""
from .model import VMLINUX, Btf
from .types import (
    CLASSES, FUNC_EXTERN, FUNC_GLOBAL, FUNC_STATIC, INT_BOOL, INT_CHAR, INT_SIGNED, VAR_EXTERN,
    VAR_GLOBAL, VAR_STATIC, VOID, Array, BtfError, BtfType, Const, Datasec, DeclTag, Enum,
    Enum64, EnumValue, Float, Func, FuncProto, Fwd, Int, Kind, Member, Param, Ptr, Restrict,
    Struct, Typedef, TypeTag, Union, Var, VarSecinfo, Void, Volatile,
)

__all__ = [
    "Btf", "BtfError", "VMLINUX", "Kind", "BtfType", "CLASSES", "VOID", "Void", "Int", "Ptr",
    "Array", "Struct", "Union", "Enum", "Fwd", "Typedef", "Volatile", "Const", "Restrict",
    "Func", "FuncProto", "Var", "Datasec", "Float", "DeclTag", "TypeTag", "Enum64", "Member",
    "EnumValue", "Param", "VarSecinfo", "INT_SIGNED", "INT_CHAR", "INT_BOOL", "FUNC_STATIC",
    "FUNC_GLOBAL", "FUNC_EXTERN", "VAR_STATIC", "VAR_GLOBAL", "VAR_EXTERN",
]
