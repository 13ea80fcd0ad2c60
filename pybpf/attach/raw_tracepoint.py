"""Raw tracepoints: a program run on a tracepoint with its raw arguments, through a
kernel BPF link (BPF_RAW_TRACEPOINT_OPEN). SEC("raw_tracepoint/NAME"), "raw_tp/NAME"
and their writable ".w" forms attach here."""
from ..kernel import bpf as kbpf
from ..kernel.constants import ProgType
from ..links import BpfLink
from .common import check_type, need_target

OPTIONS = ()


def attach_raw_tracepoint(program, name):
    """Attach a raw_tracepoint program to the tracepoint called name (e.g. "sys_enter")."""
    return BpfLink(kbpf.raw_tracepoint_open(name, program.fd), program,
                   f"raw_tracepoint/{name}")


def attach_section(program, sd):
    """raw_tracepoint/NAME, raw_tp/NAME (and .w)."""
    name = need_target(sd, "NAME")
    check_type(program, (ProgType.RAW_TRACEPOINT, ProgType.RAW_TRACEPOINT_WRITABLE),
               "raw tracepoints", f"raw_tracepoint/{name}")
    return attach_raw_tracepoint(program, name)
