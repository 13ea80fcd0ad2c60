"""Finding the kernel's side of an object's ``__ksym`` externs, before any load.

Typed externs (kfuncs, kernel variables) are BTF ids in the kernel's BTF (vmlinux's, or
a loaded module's when vmlinux lacks them); typeless
ones (``extern const void sym __ksym``) only an address, from kallsyms. As libbpf
does, so both accept the same objects, every extern is looked up first: an object
whose strong (non-__weak) extern this kernel lacks fails to load even when only
programs that are not loaded (SEC("?...")) use it.
"""
from .btf import types as T
from .kernel import kallsyms
from .specs import KSYMS, ObjectError


def resolve_ksyms(spec, kernel_btfs):
    """name -> ("func"|"var", BTF id, module or None), ("addr", address, None) or None
    (weak, missing) for each .ksyms extern of the ObjectFile spec; kernel_btfs() gives
    the kernel's :class:`pybpf.kernelbtf.KernelBtfs`."""
    found = {}
    externs = spec.externs.values()
    undeclared = sorted(e.name for e in externs if not e.section)
    if undeclared:
        raise ObjectError(
            f"extern {', '.join(map(repr, undeclared))} is declared neither __ksym nor "
            f"__kconfig: it is defined by another BPF object; link the objects into one "
            f"first (bpftool gen object OUT.o A.o B.o)")
    typeless = []
    for ext in (e for e in externs if e.section == KSYMS):
        kind = _ksym_kind(spec.btf, ext)
        if kind is None:
            typeless.append(ext)
            continue
        hit = kernel_btfs().find(ext.name, kind)
        found[ext.name] = (kind, hit[1], hit[0]) if hit else None
        if not hit and not ext.weak:
            raise ObjectError(f"extern {kind} {ext.name!r} (.ksyms) is not in the "
                              f"kernel's BTF (vmlinux or a loaded module's): load the "
                              f"module that has it, or declare it __weak to make it "
                              f"optional")
    if typeless:
        addresses = kallsyms.kallsyms_addresses(e.name for e in typeless)
        for ext in typeless:
            addr = addresses.get(ext.name)
            found[ext.name] = ("addr", addr, None) if addr else None
            if not addr and not ext.weak:
                raise ObjectError(
                    f"extern {ext.name!r} (typeless __ksym) is not in /proc/kallsyms "
                    f"(or kallsyms hides addresses: kptr_restrict); declare it __weak "
                    f"to make it optional")
    return found


def _ksym_kind(btf, ext):
    """"func" or "var" for a typed ksym, None for a typeless one (only its address,
    found in kallsyms, is wanted). clang gives ``extern void X __ksym`` no VAR at all
    (btf_type_id 0) and ``extern const void X`` a VAR of const void: both typeless,
    as libbpf takes them, so symbols kernel BTF lacks (``_stext``) load too."""
    if btf is None:
        return "func"
    if not ext.btf_type_id:
        return None
    if isinstance(btf.type(ext.btf_type_id), T.Func):
        return "func"
    return "var" if btf.resolve(ext.btf_type_id) else None
