"""Linking each program with the subprograms it calls, once, at parse time.

The kernel loads one instruction array per program, so a program's image is its own
function followed by every function it reaches through calls and callback addresses
(breadth first, each once), with those instructions pointed at where their callees
landed. Doing it while parsing, as cilium/ebpf's flattenPrograms does, gives every
ProgramSpec its own instructions: loading then only fills in what the kernel decides
(map fds, extern ids, CO-RE offsets) on a copy, and never needs the ELF's sections.
Relocations and the .BTF.ext records move with the functions into the image's slots.

One function is placed although nothing calls it: a program's exception callback
(bpf_throw, 6.7+), named by a ``btf_decl_tag("exception_callback:NAME")`` on the
program's BTF FUNC. The kernel looks it up by name among the program's func_info
and refuses the program when it is missing ("exception callback type id not found
in func_info"), so it goes last in the image, with its own callees, as libbpf does.
"""
import dataclasses
import struct

from .btf import ext as X
from .btf import types as T
from .kernel.constants import BPF_PSEUDO_CALL, BPF_PSEUDO_FUNC
from .specs import CALL, INSN, LD_IMM64, CoreSite, ObjectError, Placement

_CODE_KINDS = ("call", "func")
EXCEPTION_CALLBACK = "exception_callback:"


def link_programs(obj):
    """Give every program of the parsed ObjectFile obj its linked instructions."""
    callbacks = _exception_callbacks(obj)
    for name, pspec in obj.programs.items():
        obj.programs[name] = link(obj, pspec, callbacks.get(pspec.function.name))


def link(obj, pspec, exception_callback=None):
    """pspec with its linked image, relocations, CO-RE sites and func/line info; the
    function named exception_callback is placed after everything the program calls."""
    layout, placed, queue = [], {}, [pspec.function]
    last = _function_named(obj, pspec, exception_callback) if exception_callback else None
    image = bytearray()
    while queue or last:
        if not queue:
            queue, last = [last], None
        fn = queue.pop(0)
        key = (fn.section, fn.start)
        if key in placed:
            continue
        placed[key] = len(image) // INSN
        layout.append(Placement(fn, placed[key]))
        image += obj.code[fn.section][fn.start * INSN:fn.end * INSN]
        for slot, target in _calls(obj, fn):
            callee = obj.function_at(*target)
            if callee is None:
                raise ObjectError(
                    f"program {pspec.name!r}: instruction {slot} of {fn.section} calls "
                    f"{target[0]}+{target[1]}, which is not the start of a function")
            queue.append(callee)
    # Second pass: now every function has its place, point calls at them.
    for fn, base in layout:
        for slot, target in _calls(obj, fn):
            at = base + slot - fn.start
            rel = placed[target] - (at + 1)
            struct.pack_into("<i", image, at * INSN + 4, rel)
            if image[at * INSN] == LD_IMM64:
                image[at * INSN + 1] = (image[at * INSN + 1] & 0x0F) | (BPF_PSEUDO_FUNC << 4)
    func_info, line_info = _btf_ext_for(obj.btf_ext, layout)
    return dataclasses.replace(
        pspec, insns=bytes(image), layout=tuple(layout), relocs=_relocs(obj, layout),
        core_sites=_core_sites(obj.btf_ext, layout), func_info=func_info,
        line_info=line_info, license=obj.license, kern_version=obj.kern_version)


def _exception_callbacks(obj):
    """{function name: its exception callback's name} from the object's decl tags."""
    btf, out = obj.btf, {}
    if btf is None:
        return out
    for type_id in btf.own_ids():
        t = btf.type(type_id)
        if (isinstance(t, T.DeclTag) and t.name.startswith(EXCEPTION_CALLBACK)
                and t.component_idx in (-1, 0xFFFFFFFF)):
            target = btf.type(t.type)
            if isinstance(target, T.Func):
                out[target.name] = t.name[len(EXCEPTION_CALLBACK):]
    return out


def _function_named(obj, pspec, name):
    for fns in obj.functions.values():
        for fn in fns:
            if fn.name == name:
                return fn
    raise ObjectError(f"program {pspec.name!r}: its exception callback {name!r} (the "
                      f"decl tag {EXCEPTION_CALLBACK}{name}) is no function of this object")


def _calls(obj, fn):
    """(slot, (section, target slot)) of every call/callback in fn to code."""
    relocs = obj.relocs.get(fn.section, {})
    code = obj.code[fn.section]
    for slot in range(fn.start, fn.end):
        r = relocs.get(slot)
        if r is not None:
            if r.kind in _CODE_KINDS:
                yield slot, r.target
            continue
        op, regs, _off, imm = struct.unpack_from("<BBhi", code, slot * INSN)
        if op == CALL and regs >> 4 == BPF_PSEUDO_CALL:
            yield slot, (fn.section, slot + imm + 1)  # a call within the section


def _relocs(obj, layout):
    """The map, global data and extern references of the image, by its slots."""
    out = {}
    for fn, base in layout:
        for slot, r in obj.relocs.get(fn.section, {}).items():
            if not fn.start <= slot < fn.end or r.kind in _CODE_KINDS:
                continue
            if r.kind != "kfunc" and slot + 1 >= fn.end:  # the rest are ld_imm64s
                raise ObjectError(f"function {fn.name!r}: the ld_imm64 at slot {slot} "
                                  f"of {fn.section} is cut off by the function's end")
            at = base + slot - fn.start
            out[at] = dataclasses.replace(r, slot=at)
    return out


def _core_sites(ext, layout):
    if ext is None:
        return ()
    sites = []
    for fn, base in layout:
        for index, relo in enumerate(ext.core_relos.get(fn.section, ())):
            slot = relo.insn_off // INSN
            if fn.start <= slot < fn.end:
                sites.append(CoreSite(fn.section, index, relo, base + slot - fn.start))
    return tuple(sites)


def _btf_ext_for(ext, layout):
    """func_info and line_info for the linked image, as the kernel wants them."""
    if ext is None:
        return None, None
    func_info = line_info = b""
    for fn, base in layout:
        lo, hi = fn.start * INSN, fn.end * INSN
        func_info += X.encode_func_info(
            X.slice_records(ext.func_info.get(fn.section, []), lo, hi), base)
        line_info += X.encode_line_info(
            X.slice_records(ext.line_info.get(fn.section, []), lo, hi), base)
    if not func_info:
        return None, None
    return (func_info, X.FUNC_INFO_SIZE), (line_info, X.LINE_INFO_SIZE) if line_info \
        else None
