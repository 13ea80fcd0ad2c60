"""Where the pipeline hooks the read path: one Backend per hook kind.

Every backend ends in the same dispatcher step (find the tenant, hand its bytes to
the stages); they differ in where the bytes are taken and what the kernel must have:

``copyout``
    kprobes on ``_copy_to_iter`` (which tells the thread its user range) and on
    ``copyout(to, from, n)``, which sees the kernel's source buffer right before the
    copy and can skip it with bpf_override_return. Needs a kernel patched with
    kernel-config/ (stock kernels inline copyout).
``copy_to_iter``
    a kprobe on ``_copy_to_iter(addr, bytes, iter)``, exported and out of line on
    stock kernels; the user buffer comes from the iov_iter through CO-RE.
``syscall``
    the raw syscall tracepoints: sys_enter records a tenant's buffer, sys_exit parses
    the bytes the call returned (read the user buffer back with
    bpf_probe_read_user). read(), pread64() and single-segment readv(), preadv(),
    preadv2() are followed; anything else (multi-segment vectors, mmap, splice,
    io_uring, 32-bit compat calls) is not, and shows up as bytes the pipeline did not
    see. Raw tracepoints, not the per-syscall ones: two attachments instead of ten,
    and the per-syscall ones take ~70 ms each to detach (perf events; 6.18).

:func:`verdicts` says, for a kernel's facts (facts.py; the running kernel's by
default), which backends work and what is missing for the others; :func:`choose`
picks the best that works. A verdict is a plain function of the facts.
"""
import dataclasses
from typing import Tuple

from .. import attach as _attach
from ..errors import PipelineError
from ..links import attach_raw_tracepoint
from ..kernel.constants import HelperId, ProgType
from . import facts as F
from .names import BACKEND_NAMES
from . import layout as L

ORDER = BACKEND_NAMES   # best first
KERNEL_CONFIG_HINT = ("build and boot a kernel with pybpf's kernel-config/ "
                      "(tools/build-kernel; docs/kernels.md)")


@dataclasses.dataclass(frozen=True)
class Verdict:
    """Whether a backend works on this kernel, and if not, why and what to do."""
    backend: str
    usable: bool
    missing: Tuple[str, ...] = ()
    notes: Tuple[str, ...] = ()
    can_override: bool = False

    def to_dict(self):
        return {"backend": self.backend, "usable": self.usable,
                "missing": list(self.missing), "notes": list(self.notes),
                "can_override": self.can_override}

    def explain(self):
        if self.usable:
            return f"{self.backend}: usable" + "".join(f"; {n}" for n in self.notes)
        return f"{self.backend}: not usable: " + "; ".join(self.missing)


class Backend:
    name = ""
    code = 0                      # layout.BACKEND_*
    can_skip = False              # can tenants skip the copy (FR_FLAG_OVERRIDE)
    prog_type = ProgType.TRACEPOINT
    dispatchers = ()              # programs of the shipped object this backend runs
    stage_suffix = "tp"           # which flavour of fr_feed_*/fr_reduce_* it needs
    helpers = ()                  # (helper, why) its programs call

    @property
    def programs(self):
        return self.dispatchers + (f"fr_feed_{self.stage_suffix}",
                                   f"fr_reduce_{self.stage_suffix}")

    def attach(self, programs):
        """Attach the dispatchers (name -> Program); returns the links."""
        raise NotImplementedError

    def verdict(self, facts):
        missing = list(self.missing(facts))
        for helper, why in self.helpers:
            if facts.privileged and facts.helper(self.prog_type, helper) is False:
                missing.append(f"{self.prog_type.name.lower()} programs may not call "
                               f"bpf_{helper.name} here ({why})")
        return self._verdict(facts, tuple(dict.fromkeys(missing)))   # each reason once

    def missing(self, facts):
        raise NotImplementedError

    def _verdict(self, facts, missing):
        return Verdict(self.name, not missing, missing)

    def for_kernel(self, verdict):
        """The backend with what this kernel can do of it (see CopyoutBackend)."""
        return self

    def __repr__(self):
        return f"<backend {self.name}>"


_LOOP = (HelperId.loop, "the parser's loop, kernel 5.17+")


def _attach_raw(prog, programs, tracepoint):
    return attach_raw_tracepoint(programs[prog], tracepoint)
_STRTOUL = (HelperId.strtoul, "the strtol parser, kernel 5.2+")


class SyscallBackend(Backend):
    name, code = "syscall", L.BACKEND_SYSCALL
    prog_type, stage_suffix = ProgType.RAW_TRACEPOINT, "raw"
    dispatchers = ("fr_sys_enter", "fr_sys_exit")
    helpers = (_LOOP, _STRTOUL,
               (HelperId.probe_read_user, "reading the bytes read() returned, 5.5+"))

    def attach(self, programs):
        # Exit first: an enter without its exit would leave armed entries.
        links = [_attach_raw("fr_sys_exit", programs, "sys_exit")]
        try:
            links.append(_attach_raw("fr_sys_enter", programs, "sys_enter"))
        except BaseException:
            links[0].close()
            raise
        return links

    def missing(self, facts):
        if facts.syscall_tracepoints is False:
            yield ("no raw syscall tracepoints sys_enter/sys_exit (boot a kernel with "
                   "CONFIG_FTRACE_SYSCALLS=y)")

    def _verdict(self, facts, missing):
        return Verdict(self.name, not missing, missing,
                       ("the data is copied to user space, then read back from there",))


class _KprobeBackend(Backend):
    """Backends whose dispatchers are kprobes: kprobes = ((program, function), ...)."""
    prog_type, stage_suffix = ProgType.KPROBE, "kp"
    kprobes = ()
    absent_hint = ""
    helpers = (_LOOP, _STRTOUL,
               (HelperId.probe_read_kernel, "reading the kernel's buffer, 5.5+"))

    @property
    def dispatchers(self):
        return tuple(prog for prog, _ in self.kprobes)

    def attach(self, programs):
        links = []
        try:
            for prog, function in self.kprobes:
                links.append(_attach.attach_kprobe(programs[prog], function))
        except BaseException:
            for link in links:
                link.close()
            raise
        return links

    def missing(self, facts):
        if facts.kprobes is False:
            off = facts.config.get("CONFIG_KPROBES") is False
            yield ("this kernel has no kprobes" + (" (CONFIG_KPROBES is off)" if off else "")
                   + ": boot one with CONFIG_KPROBES=y and CONFIG_KPROBE_EVENTS=y")
            return
        for _, function in self.kprobes:
            sym = facts.symbol(function)
            if sym.in_kallsyms is False:
                yield (f"{function} is not a probe-able function of this kernel "
                       f"({facts.release}; not in /proc/kallsyms){self.absent_hint}")
            elif sym.blacklisted:
                yield f"{function} is on the kernel's kprobe blacklist"
            elif sym.ftrace_able is False and \
                    facts.config.get("CONFIG_KPROBE_EVENTS_ON_NOTRACE") is not True:
                # The kernel refuses kprobes on functions ftrace cannot hook ("Could not
                # probe notrace function") unless built with KPROBE_EVENTS_ON_NOTRACE,
                # and all of lib/ (iov_iter.c included) is built without ftrace.
                yield (f"{function} is a notrace function on this kernel (its source "
                       f"file is built without ftrace, as all of lib/ is) and "
                       f"CONFIG_KPROBE_EVENTS_ON_NOTRACE is off, so kprobes on it are "
                       f"refused; {KERNEL_CONFIG_HINT}")


class CopyToIterBackend(_KprobeBackend):
    name, code = "copy_to_iter", L.BACKEND_COPY_TO_ITER
    kprobes = (("fr_copy_to_iter", "_copy_to_iter"),)

    def _verdict(self, facts, missing):
        return Verdict(self.name, not missing, missing,
                       ("sees the kernel's buffer before the copy; cannot skip the copy "
                        "(_copy_to_iter is not error-injectable)",))


class CopyoutBackend(_KprobeBackend):
    name, code = "copyout", L.BACKEND_COPYOUT
    absent_hint = f": stock kernels inline copyout; {KERNEL_CONFIG_HINT}"

    def __init__(self, can_skip=True):
        self.can_skip = can_skip

    @property
    def kprobes(self):
        # fr_copyout_skip before fr_copyout: kprobes on one function run newest first
        # (programs/filterreduce.bpf.c says why the order matters). Without the
        # override the skip program would not even load.
        skip = (("fr_copyout_skip", "copyout"),) if self.can_skip else ()
        return (("fr_copyout_arm", "_copy_to_iter"),) + skip + (("fr_copyout", "copyout"),)

    def for_kernel(self, verdict):
        return self if verdict.can_override else CopyoutBackend(can_skip=False)

    def _verdict(self, facts, missing):
        override, note = override_verdict(facts)
        return Verdict(self.name, not missing, missing, (note,), override)


def override_verdict(facts):
    """(usable, why): whether bpf_override_return can make copyout skip the copy."""
    cfg = facts.config
    if cfg.get("CONFIG_FUNCTION_ERROR_INJECTION") is False:
        return False, f"no override: CONFIG_FUNCTION_ERROR_INJECTION is off ({KERNEL_CONFIG_HINT})"
    if cfg.get("CONFIG_BPF_KPROBE_OVERRIDE") is False:
        return False, f"no override: CONFIG_BPF_KPROBE_OVERRIDE is off ({KERNEL_CONFIG_HINT})"
    if facts.helper(ProgType.KPROBE, HelperId.override_return) is False:
        return False, "no override: kprobe programs may not call bpf_override_return here"
    listed = facts.symbol("copyout").error_injectable
    if listed is False:
        return False, ("no override: copyout is not on the error-injection list "
                       f"(ALLOW_ERROR_INJECTION; {KERNEL_CONFIG_HINT})")
    if listed is None:
        return True, ("override assumed: the error-injection list could not be read "
                      "(debugfs)")
    return True, "override available: copyout is on the error-injection list"


BACKENDS = {b.name: b for b in (CopyoutBackend(), CopyToIterBackend(), SyscallBackend())}


def by_code(code, can_skip):
    """The backend a pinned pipeline's fr_info names (layout.BACKEND_*)."""
    for b in BACKENDS.values():
        if b.code == code:
            return CopyoutBackend(can_skip) if b.name == "copyout" else b
    raise PipelineError(f"the pinned pipeline names backend {code}, which this pybpf "
                        f"does not know")


def get(name):
    try:
        return BACKENDS[name]
    except KeyError:
        raise PipelineError(f"unknown backend {name!r}; choose from auto, "
                            f"{', '.join(ORDER)}") from None


def verdicts(facts=None):
    """{name: Verdict} for every backend, best first (facts: the running kernel's by
    default)."""
    facts = facts or F.gather()
    return {name: BACKENDS[name].verdict(facts) for name in ORDER}


def choose(name="auto", override=False, facts=None):
    """(Backend, why): the backend to use. "auto" takes the best that works (with
    override, the best that can also skip the copy); a named one must work here."""
    facts = facts or F.gather()
    if not facts.privileged:
        raise PipelineError("the filter-reduce pipeline loads and attaches BPF programs: "
                            "run it as root, or with CAP_BPF and CAP_PERFMON")
    if name != "auto":
        backend = get(name)
        v = backend.verdict(facts)
        if not v.usable:
            hint = f"; {KERNEL_CONFIG_HINT}" if name == "copyout" and \
                KERNEL_CONFIG_HINT not in " ".join(v.missing) else ""
            raise PipelineError(f"the {name} backend does not work on this kernel "
                                f"({facts.release}): {'; '.join(v.missing)}{hint}")
        if override and not v.can_override:
            raise PipelineError(_no_override(name, v))
        return backend.for_kernel(v), f"{name} (asked for)"
    found = verdicts(facts)
    for name in ORDER:
        v = found[name]
        if v.usable and (v.can_override or not override):
            others = [f"{n}: {'; '.join(found[n].missing)}" for n in ORDER[:ORDER.index(name)]]
            why = f"{name}, the best this kernel supports" + (
                f" (not {'; not '.join(others)})" if others else "")
            return BACKENDS[name].for_kernel(v), why
    if override:
        raise PipelineError(_no_override("any", found["copyout"]))
    raise PipelineError(f"no filter-reduce backend works on this kernel ({facts.release}): "
                        + " | ".join(found[n].explain() for n in ORDER))


def _no_override(name, verdict):
    why = verdict.notes[0] if verdict.notes else "; ".join(verdict.missing)
    return (f"--override needs the copyout backend with bpf_override_return, which "
            f"{'this kernel lacks' if name == 'any' else name + ' cannot do'}: {why}; "
            f"{KERNEL_CONFIG_HINT}")
