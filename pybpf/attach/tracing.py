"""Tracing programs: fentry, fexit, fmod_ret, tp_btf and lsm programs, attached to the
kernel function (or BTF tracepoint, LSM hook) they were loaded for, and freplace
programs, which replace the function of another BPF program they were loaded against
(``BpfObject.load(replace=...)``). The sections of those names (and their sleepable
".s" forms) attach here.
"""
import errno

from ..errors import ENOTSUPP, BPFError, NotSupportedError
from ..kernel import bpf as kbpf
from ..kernel import security
from ..kernel.constants import ProgType
from ..links import BpfLink
from .common import AttachError, check_type

OPTIONS = ()

_TRACING_TYPES = (ProgType.TRACING, ProgType.LSM, ProgType.EXT)


def attach_tracing(program, attach_type=None, *, cookie=None):
    """Attach a fentry/fexit/fmod_ret/tp_btf (or lsm) program to the kernel function
    it was loaded for (its attach_btf_id), with BPF_RAW_TRACEPOINT_OPEN, which every
    kernel with tracing programs has, as libbpf does. Only a cookie needs
    BPF_LINK_CREATE (5.19+), and with it the program's expected attach_type (the
    loader's SectionDef has it); a kernel without it answers NotSupportedError."""
    check_type(program, _TRACING_TYPES, "fentry/fexit/fmod_ret/lsm hooks",
               "fentry/FUNCTION")
    hints = {errno.EPERM: security.tracing_refusal_hint(),
             errno.EACCES: security.tracing_refusal_hint(),
             ENOTSUPP: "this kernel cannot attach BPF trampolines here (needs x86_64 or "
                       "arm64 with CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS)",
             errno.EBUSY: "another program of this kind already replaces the function "
                          "(fmod_ret/freplace allow one)"}
    description = f"tracing/{program.name}" if getattr(program, "name", "") else "tracing"
    if cookie:
        if attach_type is None:
            raise AttachError("a cookie for a tracing program needs its attach_type "
                              "(e.g. AttachType.TRACE_FENTRY)")
        try:
            fd = kbpf.link_create(program.fd, 0, attach_type, extra=(0, cookie), hints=hints)
        except BPFError as e:
            if e.errno != errno.EINVAL:  # what kernels before 5.19 answer
                raise
            raise NotSupportedError(
                "cookies on tracing links", "5.19", description,
                "attach without cookie= on this kernel (or, on a kernel that has them, "
                "give the attach_type the program was loaded for)", e.cmd, e.errno) from None
        return BpfLink(fd, program, description)
    try:
        return BpfLink(kbpf.raw_tracepoint_open(None, program.fd), program, description)
    except BPFError as e:
        raise BPFError(e.cmd, e.errno, description, hints.get(e.errno, e.hint)) from None


def attach_section(program, sd):
    """fentry/FUNC, fexit/FUNC, fmod_ret/FUNC, tp_btf/NAME, lsm/HOOK (and .s), and
    freplace/FUNC."""
    return attach_tracing(program, sd.expected_attach_type)
