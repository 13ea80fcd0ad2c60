"""Names of the kernel's numbered kinds: map, program, attach and link types.

pybpf's constants are generated from one UAPI header (6.12), and a kernel may be
newer: 6.18 has attach type 57 (trace_uprobe_session), which they lack. Such numbers
are passed through everywhere, never refused, and shown under the running kernel's
own name for them, which its BTF carries in ``enum bpf_attach_type`` and friends; only
a kernel without BTF gives "attach type 57".
"""
import functools

from .btf import Btf, BtfError
from .kernel.constants import AttachType, LinkType, MapType, ProgType

# kind -> (enum name in kernel BTF, prefix its members carry, what to call a number)
_KERNEL_ENUMS = {
    MapType: ("bpf_map_type", "BPF_MAP_TYPE_", "map type"),
    ProgType: ("bpf_prog_type", "BPF_PROG_TYPE_", "program type"),
    AttachType: ("bpf_attach_type", "BPF_", "attach type"),
    LinkType: ("bpf_link_type", "BPF_LINK_TYPE_", "link type"),
}


def type_name(value, kind):
    """"hash" for (MapType.HASH or 1, MapType); for a number kind lacks, the running
    kernel's name ("trace_uprobe_session"), else e.g. "attach type 57"."""
    try:
        return kind(value).name.lower()
    except ValueError:
        return kernel_names(kind).get(value) or f"{_KERNEL_ENUMS[kind][2]} {value}"


@functools.lru_cache(maxsize=None)
def kernel_names(kind):
    """{number: name} of kind's enum in the running kernel's BTF ({} without BTF)."""
    enum, prefix, _ = _KERNEL_ENUMS[kind]
    try:
        btf = Btf.vmlinux()
        values = btf.type(btf.find_one(enum, "enum")).values
    except (BtfError, OSError):
        return {}
    return {v.value: v.name[len(prefix):].lower() for v in values
            if v.name.startswith(prefix) and not v.name.startswith("__")}
