"""Making a map in the kernel from a MapSpec: the one BPF_MAP_CREATE of pybpf.

Both forms of :meth:`pybpf.maps.Map.create` end here, so type information is passed,
and dropped, in one place. The keyword form has checked its arguments already and
wants its BTF used or an error; a spec from an object file is created exactly as the
object defines it (the kernel, not argument checks, judges the definition, as with
libbpf: local-storage maps want max_entries 0, bloom filters no key, STRUCT_OPS a
kernel value type), with libbpf's adjustments and its retry without BTF.
"""
import dataclasses
import errno

from .errors import BPFError
from .kernel import bpf as kbpf
from .kernel import cpus
from .kernel.constants import MapType
from .typenames import type_name


def create_fd(spec, *, inner_fd=0, btf_fd=0, name=None, hints=None, btf_optional=False):
    """The fd of a new map as spec defines it. btf_optional: when the kernel refuses
    the map with its BTF types, create it without them (a STRUCT_OPS map, which
    exists only with BTF, excepted)."""
    common = dict(key_size=spec.key_size, value_size=spec.value_size,
                  max_entries=spec.max_entries, flags=spec.flags,
                  name=spec.name if name is None else name, inner_map_fd=inner_fd,
                  numa_node=spec.numa_node, map_extra=spec.map_extra, hints=hints)
    typed = dict(btf_fd=btf_fd, btf_key_type_id=spec.btf_key_type_id,
                 btf_value_type_id=spec.btf_value_type_id,
                 btf_vmlinux_value_type_id=spec.btf_vmlinux_value_type_id)
    if not btf_optional:
        return kbpf.map_create(spec.type, **common, **typed)
    if btf_fd and (spec.btf_key_type_id or spec.btf_value_type_id or
                   spec.btf_vmlinux_value_type_id):
        try:
            return kbpf.map_create(spec.type, **common, **typed)
        except BPFError:
            if spec.btf_vmlinux_value_type_id:
                raise
            # otherwise retried without type information, as libbpf does
    return kbpf.map_create(spec.type, **common)


def create_from_spec(spec, *, inner_fd=0, btf_fd=0):
    """(fd, key format, value format) of the map an object's spec defines; errors
    name the map."""
    created = dataclasses.replace(spec, max_entries=_max_entries(spec))
    key = spec.key_format
    if key is None and spec.init_values and spec.key_size == 4:
        key = "I"  # .values slots are u32 indexes (keys of a hash of maps too)
    try:
        fd = create_fd(created, inner_fd=inner_fd, btf_fd=btf_fd,
                       name=kernel_name(spec.kernel_name or spec.name), btf_optional=True,
                       hints={errno.EINVAL: _refused_hint(spec)})
    except BPFError as e:
        what = f"map {spec.name!r}"
        raise type(e)(e.cmd, e.errno, f"{what}: {e.detail}" if e.detail else what,
                      e.hint) from None
    return fd, key if spec.key_size else None, spec.value_format if spec.value_size else None


def kernel_name(name):
    """name as libbpf hands it to the kernel: bytes the kernel refuses become '_',
    cut to the kernel's 15 bytes."""
    raw = name.encode("utf-8", "surrogateescape")
    return bytes(b if b < 0x80 and b in kbpf.NAME_BYTES else ord("_")
                 for b in raw)[:kbpf.NAME_MAX]


def _max_entries(spec):
    """max_entries as libbpf would create the map: a ring buffer's size rounded up to
    a power-of-2 number of pages (the kernel takes nothing else), and a perf event
    array without a size gets one slot per possible CPU."""
    n = spec.max_entries
    if spec.type in (MapType.RINGBUF, MapType.USER_RINGBUF) and n:
        page = cpus.page_size()
        pages = 1
        while pages * page < n:
            pages *= 2
        return pages * page
    if spec.type == MapType.PERF_EVENT_ARRAY and not n:
        return cpus.possible_cpus()
    return n


def _refused_hint(spec):
    return (f"the kernel refused map {spec.name!r} as defined ({type_name(spec.type, MapType)}, "
            f"key_size={spec.key_size}, value_size={spec.value_size}, "
            f"max_entries={spec.max_entries}, flags={spec.flags:#x})")
