"""Filling in a linked program what only this load knows, on a copy of its spec.

A ProgramSpec names its maps and externs and carries its CO-RE records; here they
become this load's map fds, the kernel's BTF ids and kallsyms addresses, and field
offsets of the kernel's types. The result is a new spec, so the parsed one stays as
it was and can be loaded again (another time, another kernel).
"""
import dataclasses
import struct

from .btf import core
from .kernel.constants import (BPF_PSEUDO_BTF_ID, BPF_PSEUDO_KFUNC_CALL,
                               BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE)
from .specs import CALL, INSN, KCONFIG

# A call to this helper id marks an instruction the loader could not resolve; the
# verifier refuses it only if the program can reach it (the same value libbpf uses,
# so tools that know one recognise the other).
POISON_HELPER = core.POISON_HELPER


def relocated(pspec, externs, map_fds, ksyms, btf=None, cache=None, arena_base=0,
              module_btfs=None):
    """(copy of pspec with every reference filled in, [poisoned CO-RE results]).

    externs: the object's Extern specs by name; map_fds: name -> fd of this load's
    maps; ksyms: what :func:`pybpf.ksyms.resolve_ksyms` found; btf, cache: the
    object's BTF and a :class:`pybpf.btf.core.CoreCache` of the kernel's, when the
    program has CO-RE records; arena_base: where in the arena the loader put the
    object's __arena globals; module_btfs: module -> (its index in the program's
    fd_array, its BTF fd), for the ksyms that live in modules."""
    image = bytearray(pspec.insns)
    poisoned = []
    for site in pspec.core_sites:
        res = core.apply_relocation(image, site.relo, btf, cache, btf.byteorder,
                                    site.section, site.index, at=site.slot * INSN)
        if res.poisoned:
            poisoned.append(res)
    for slot, r in pspec.relocs.items():
        at = slot * INSN
        if r.kind == "map":
            _set_ld_imm64(image, at, BPF_PSEUDO_MAP_FD, map_fds[r.target], 0)
        elif r.kind == "map_value":
            _set_ld_imm64(image, at, BPF_PSEUDO_MAP_VALUE, map_fds[r.target], r.offset)
        elif r.kind == "arena":
            _set_ld_imm64(image, at, BPF_PSEUDO_MAP_VALUE, map_fds[r.target],
                          arena_base + r.offset)
        else:
            _relocate_extern(image, at, r, externs[r.target], map_fds, ksyms,
                             module_btfs or {})
    return dataclasses.replace(pspec, insns=bytes(image)), poisoned


def _relocate_extern(image, at, r, ext, map_fds, ksyms, module_btfs):
    if ext.section == KCONFIG:
        _set_ld_imm64(image, at, BPF_PSEUDO_MAP_VALUE, map_fds[KCONFIG], ext.offset)
        return
    found = ksyms.get(ext.name)
    if r.kind == "kfunc":
        if found is None or found[0] != "func":
            struct.pack_into("<BBhi", image, at, CALL, 0, 0, POISON_HELPER)
        else:
            slot = module_btfs[found[2]][0] if found[2] else 0  # 0: vmlinux
            struct.pack_into("<BBhi", image, at, CALL, BPF_PSEUDO_KFUNC_CALL << 4, slot,
                             found[1])
    elif found is None:
        _set_ld_imm64(image, at, 0, 0, 0)   # a missing weak ksym reads as NULL
    elif found[0] == "addr":
        _set_ld_imm64(image, at, 0, found[1] & 0xFFFFFFFF, found[1] >> 32)
    else:
        btf_fd = module_btfs[found[2]][1] if found[2] else 0  # 0: vmlinux
        _set_ld_imm64(image, at, BPF_PSEUDO_BTF_ID, found[1], btf_fd)


def _set_ld_imm64(image, at, src, lo, hi):
    image[at + 1] = (image[at + 1] & 0x0F) | (src << 4)
    struct.pack_into("<i", image, at + 4, _s32(lo))
    struct.pack_into("<i", image, at + 12, _s32(hi))


def _s32(v):
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v
