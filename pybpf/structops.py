"""Binding an object's ``.struct_ops`` tables to the kernel's ops types at load.

A STRUCT_OPS map's value is the kernel's ``struct bpf_struct_ops_<name>``, and each of
its programs says which function pointer it fills by a member index of the kernel's
``struct <name>``: both come from the kernel's BTF, which parsing never sees, and
objects whose ops type or members this kernel lacks are refused (as libbpf does).
"""
from .specs import ObjectError


def struct_ops_value(spec, mspec, kbtf):
    """(value size, type id) of the kernel's ``struct bpf_struct_ops_<name>``, the
    value the STRUCT_OPS map mspec of the ObjectFile spec holds."""
    ops = mspec.struct_ops
    wrapper = kbtf.find(f"bpf_struct_ops_{ops.type_name}", "struct")
    kernel_type = kbtf.find(ops.type_name, "struct")
    if not wrapper or not kernel_type:
        raise ObjectError(f"map {mspec.name!r}: this kernel has no struct_ops type "
                          f"'struct {ops.type_name}'")
    kernel_members = {m.name for m in kbtf.members(kernel_type[0])}
    for m in spec.btf.members(ops.type_id):
        if m.name not in kernel_members and _nonzero_member(spec.btf, ops, m):
            raise ObjectError(f"map {mspec.name!r}: struct {ops.type_name} has no "
                              f"member {m.name!r} in this kernel")
    return kbtf.size_of(wrapper[0]), wrapper[0]


def struct_ops_target(spec, pspec, target_btf):
    """(attach_btf_id, member index) for a struct_ops program: the kernel's ops
    struct and which of its function pointers the program implements."""
    for mspec in spec.maps.values():
        ops = mspec.struct_ops
        member = next((m for m, p in (ops.programs.items() if ops else ())
                       if p == pspec.name), None)
        if member is None:
            continue
        kbtf = target_btf()
        type_id = kbtf.find(ops.type_name, "struct")[0]
        names = [m.name for m in kbtf.members(type_id)]
        return type_id, names.index(member)
    raise ObjectError(f"program {pspec.name!r} (section {pspec.section_def.section!r}) "
                      f"is in no .struct_ops variable, so nothing says which kernel "
                      f"ops member it implements")


def _nonzero_member(btf, ops, member):
    """Whether the object sets member (a program or non-zero bytes): a member the
    kernel's type lacks is an error only then."""
    if member.name in ops.programs:
        return True
    start = member.bit_offset // 8
    return any(ops.data[start:start + btf.size_of(member.type)])
