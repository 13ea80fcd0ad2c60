"""kprobes and kretprobes: a program run when the kernel reaches a function (or an
address), or returns from it. SEC("kprobe/FUNC[+OFF]"), "kretprobe/FUNC",
"ksyscall/NAME" and "kretsyscall/NAME" (the syscall's entry point on this
architecture) attach here."""
import ctypes
import errno
import platform
import re

from ..kernel import kallsyms, perf, release
from ..kernel.constants import ProgType
from .common import AttachError, check_type, description, need_target
from .perflink import attach_legacy, attach_perf, choose_legacy, probe_pmu

OPTIONS = ()


def attach_kprobe(program, function=None, offset=0, *, address=None, retprobe=False,
                  maxactive=None, cookie=None, legacy=None, use_link=None):
    """Run a kprobe program when the kernel reaches function+offset (or a raw
    kernel address), or returns from it (retprobe=True).

    maxactive (kretprobes only): how many concurrent calls can be caught on return;
    only tracefs kprobe_events can set it ("rN:"), the perf PMU always uses the
    kernel's default, so giving it selects tracefs. legacy: None picks the PMU when
    present, True forces tracefs kprobe_events, False forbids it. cookie: a u64 the
    program reads with bpf_get_attach_cookie() (5.15+).
    """
    kind = "kretprobe" if retprobe else "kprobe"
    check_type(program, (ProgType.KPROBE,), f"{kind}s", f"{kind}/FUNCTION")
    if (function is None) == (address is None):
        raise AttachError(f"{kind}: give a kernel function name or address=, not both")
    if retprobe and offset:
        raise AttachError(f"a kretprobe fires when {function} returns: it takes no "
                          f"offset (got +{offset}); use a kprobe at the offset instead")
    if maxactive is not None and not retprobe:
        raise AttachError("maxactive applies to kretprobes only")
    if maxactive is not None and not 0 < maxactive <= 4096:
        raise AttachError(f"maxactive must be 1..4096 (the kernel's limit), "
                          f"got {maxactive}")
    if function is not None:
        _check_kernel_function(function)
    target = function if address is None else f"{address:#x}"
    where = f"{target}+{offset}" if offset else target
    what = description(kind, where)
    hints = _kprobe_hints(where, function, offset)
    if choose_legacy("kprobe", legacy, maxactive is not None, "kretprobe maxactive"):
        line_kind = ("r" + str(maxactive or "")) if retprobe else "p"
        return attach_legacy(program, "kprobe", target, line_kind, where, what,
                             cookie=cookie, use_link=use_link)
    pmu, config = probe_pmu("kprobe", retprobe)
    name = ctypes.create_string_buffer(function.encode()) if function is not None else None
    attr = perf.PerfEventAttr(type=pmu, config=config, disabled=1, sample_period=1)
    attr.config1 = ctypes.addressof(name) if name is not None else 0  # kprobe_func
    attr.config2 = offset if name is not None else address            # offset or addr
    pfd = perf.open_event(attr, -1, 0, hints=hints, detail=what)
    return attach_perf(program, pfd, what, cookie=cookie, use_link=use_link)


def attach_kretprobe(program, function=None, *, address=None, maxactive=None,
                     cookie=None, legacy=None, use_link=None):
    """attach_kprobe(..., retprobe=True): run program when function returns."""
    return attach_kprobe(program, function, address=address, retprobe=True,
                         maxactive=maxactive, cookie=cookie, legacy=legacy,
                         use_link=use_link)


def _kprobe_hints(where, function, offset):
    return {
        errno.ENOENT: f"the kernel has no probe-able function {function!r} (absent from "
                      f"/proc/kallsyms, or inlined into its callers)",
        errno.EINVAL: f"the kernel refused to probe {where}: the function is on the "
                      f"kprobe blacklist or marked notrace/__kprobes"
                      + (f", or +{offset} is not on an instruction boundary"
                         if offset else ""),
        errno.EILSEQ: f"+{offset} is not on an instruction boundary of {function}",
        errno.EADDRNOTAVAIL: f"{where} is not in kernel text that can be probed",
    }


def _check_kernel_function(function):
    """AttachError when function is not a probe-able kernel function by what
    /proc/kallsyms and the kprobe blacklist (when debugfs is mounted) say."""
    if ":" in function:  # MODULE:SYMBOL is the kernel's to resolve
        return
    types = kallsyms.kallsyms_types([function])
    if types is None:
        return  # cannot tell: the kernel will
    if function not in types:
        near = kallsyms.functions_like(function)
        raise AttachError(
            f"no kernel function {function!r} in /proc/kallsyms: it does not exist in "
            f"this kernel ({release.kernel_release()}) or the compiler inlined it"
            + (f"; similar: {', '.join(near)}" if near else ""))
    if types[function] not in "tTwW":
        raise AttachError(f"{function!r} is a kernel data symbol (kallsyms type "
                          f"{types[function]!r}), not a function: kprobes go on code")
    if kallsyms.kprobe_blacklisted(function):
        raise AttachError(f"{function!r} is on the kernel's kprobe blacklist (debugfs "
                          f"kprobes/blacklist): the kernel cannot probe it safely; probe "
                          f"a caller or a callee instead")


# The prefix of a syscall's entry point, per architecture (ksyscall/NAME sections).
_SYSCALL_PREFIX = {"x86_64": "__x64_sys_", "aarch64": "__arm64_sys_",
                   "s390x": "__s390x_sys_", "riscv64": "__riscv_sys_"}


def attach_section(program, sd):
    """kprobe/FUNC[+OFF], kretprobe/FUNC, ksyscall/NAME, kretsyscall/NAME."""
    target = need_target(sd, "FUNCTION[+OFFSET]")
    if sd.prefix in ("ksyscall", "kretsyscall"):
        function, offset = _SYSCALL_PREFIX.get(platform.machine(), "__x64_sys_") + target, 0
    else:
        m = re.fullmatch(r"([^+\s]+)(?:\+(0x[0-9a-fA-F]+|\d+))?", target)
        if not m:
            raise AttachError(f"cannot read {target!r} as FUNCTION[+OFFSET]")
        function, offset = m.group(1), int(m.group(2) or "0", 0)
    if sd.prefix in ("kretprobe", "kretsyscall"):
        return attach_kretprobe(program, function)
    return attach_kprobe(program, function, offset)
