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
    the syscall tracepoints: sys_enter_* records a tenant's buffer, sys_exit_* parses
    the bytes the call returned (read the user buffer back with
    bpf_probe_read_user). read(), pread64() and single-segment readv(), preadv(),
    preadv2() are followed; anything else (multi-segment vectors, mmap, splice,
    io_uring) is not, and shows up as bytes the pipeline did not see.

:func:`verdicts` says, for the running kernel, which backends work and what is
missing for the others; :func:`choose` picks the best that works.
"""
import dataclasses
import os
from typing import Tuple

from .. import attach as _attach
from ..errors import PipelineError
from ..kernel import system
from ..kernel.constants import HelperId, ProgType
from . import layout as L

ORDER = ("copyout", "copy_to_iter", "syscall")   # best first
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
    prog_type = ProgType.TRACEPOINT
    dispatchers = ()              # programs of the shipped object this backend runs
    stage_suffix = "tp"           # which flavour of fr_feed_*/fr_reduce_* it needs

    @property
    def programs(self):
        return self.dispatchers + (f"fr_feed_{self.stage_suffix}",
                                   f"fr_reduce_{self.stage_suffix}")

    def attach(self, programs):
        """Attach the dispatchers (name -> Program); returns the links."""
        raise NotImplementedError

    def verdict(self):
        raise NotImplementedError

    def __repr__(self):
        return f"<backend {self.name}>"


def _kprobe_support(missing, symbols, absent_hint=""):
    """Append to missing what keeps kprobes on symbols from working here."""
    if system.pmu_type("kprobe") is None:
        tracefs = system.find_tracefs()
        if not (tracefs and os.path.exists(os.path.join(tracefs, "kprobe_events"))):
            off = system.config_enabled("CONFIG_KPROBES") is False
            missing.append("this kernel has no kprobes" + (" (CONFIG_KPROBES is off)" if off
                                                            else "") +
                           ": boot one with CONFIG_KPROBES=y and CONFIG_KPROBE_EVENTS=y")
            return
    found = system.kallsyms_types(symbols)
    tracefs = system.find_tracefs()
    on_notrace = system.config_enabled("CONFIG_KPROBE_EVENTS_ON_NOTRACE")
    for symbol in symbols:
        if found is not None and symbol not in found:
            missing.append(f"{symbol} is not a probe-able function of this kernel "
                           f"({system.kernel_release()}; not in /proc/kallsyms)"
                           + absent_hint)
        elif system.kprobe_blacklisted(symbol):
            missing.append(f"{symbol} is on the kernel's kprobe blacklist")
        elif on_notrace is not True and tracefs and system.file_lists_symbol(
                os.path.join(tracefs, "available_filter_functions"), symbol, 0) is False:
            # The kernel refuses kprobes on functions ftrace cannot hook ("Could not
            # probe notrace function") unless built with KPROBE_EVENTS_ON_NOTRACE;
            # everything in lib/ (iov_iter.c included) is built without ftrace.
            missing.append(f"{symbol} is a notrace function on this kernel (its source "
                           f"file is built without ftrace, as all of lib/ is) and "
                           f"CONFIG_KPROBE_EVENTS_ON_NOTRACE is off, so kprobes on it "
                           f"are refused; {KERNEL_CONFIG_HINT}")


def _helpers(ptype, helpers, missing):
    from ..probe import helper_supported
    for helper, why in helpers:
        ok, detail = helper_supported(ptype, helper)
        if ok is False:
            missing.append(f"{ptype.name.lower()} programs may not call "
                           f"bpf_{helper.name} ({why}; {detail})")


_LOOP = (HelperId.loop, "the parser's loop, kernel 5.17+")


class SyscallBackend(Backend):
    name, code = "syscall", L.BACKEND_SYSCALL
    prog_type, stage_suffix = ProgType.TRACEPOINT, "tp"
    dispatchers = ("fr_sys_enter_buf", "fr_sys_enter_iov", "fr_sys_exit")
    ENTER_BUF = ("read", "pread64")
    ENTER_IOV = ("readv", "preadv", "preadv2")

    def attach(self, programs):
        links = []
        try:
            for call in self.ENTER_BUF + self.ENTER_IOV:
                enter = programs["fr_sys_enter_buf" if call in self.ENTER_BUF
                                 else "fr_sys_enter_iov"]
                # Exit first: an enter without its exit would leave armed entries.
                links.append(_attach.attach_tracepoint(programs["fr_sys_exit"],
                                                       "syscalls", f"sys_exit_{call}"))
                links.append(_attach.attach_tracepoint(enter, "syscalls", f"sys_enter_{call}"))
        except BaseException:
            for link in links:
                link.close()
            raise
        return links

    def verdict(self):
        missing = []
        tracefs = system.find_tracefs()
        if tracefs is None and system.filesystem_supported("tracefs"):
            try:
                system.mount("tracefs", system.TRACEFS_PATHS[0], "tracefs")
                tracefs = system.TRACEFS_PATHS[0]
            except OSError:
                pass
        if tracefs is None:
            missing.append("tracefs is not available (CONFIG_TRACING), so there are no "
                           "tracepoints to attach to")
        else:
            absent = [f"sys_{w}_{c}" for c in self.ENTER_BUF + self.ENTER_IOV
                      for w in ("enter", "exit")
                      if not system.tracepoint_exists(tracefs, "syscalls", f"sys_{w}_{c}")]
            if absent:
                missing.append(f"no syscall tracepoints {', '.join(absent[:3])}... "
                               f"(boot a kernel with CONFIG_FTRACE_SYSCALLS=y)")
        if system.pmu_type("tracepoint") is None:
            missing.append("no tracepoint PMU (CONFIG_PERF_EVENTS, CONFIG_EVENT_TRACING)")
        _helpers(ProgType.TRACEPOINT, (_LOOP, (HelperId.probe_read_user,
                                               "reading the bytes read() returned, 5.5+")),
                 missing)
        return Verdict(self.name, not missing, tuple(missing),
                       ("the data is copied to user space, then read back by the "
                        "pipeline",))


class _KprobeBackend(Backend):
    """Backends whose dispatchers are kprobes: kprobes = ((program, function), ...)."""
    prog_type, stage_suffix = ProgType.KPROBE, "kp"
    kprobes = ()
    absent_hint = ""

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

    def missing(self):
        missing = []
        _kprobe_support(missing, [f for _, f in self.kprobes], self.absent_hint)
        _helpers(ProgType.KPROBE, (_LOOP, (HelperId.probe_read_kernel,
                                           "reading the kernel's buffer, 5.5+")), missing)
        return tuple(missing)


class CopyToIterBackend(_KprobeBackend):
    name, code = "copy_to_iter", L.BACKEND_COPY_TO_ITER
    kprobes = (("fr_copy_to_iter", "_copy_to_iter"),)

    def verdict(self):
        missing = self.missing()
        return Verdict(self.name, not missing, missing,
                       ("sees the kernel's buffer before the copy; cannot skip the copy "
                        "(_copy_to_iter is not error-injectable)",))


class CopyoutBackend(_KprobeBackend):
    name, code = "copyout", L.BACKEND_COPYOUT
    kprobes = (("fr_copyout_arm", "_copy_to_iter"), ("fr_copyout", "copyout"))
    absent_hint = f": stock kernels inline copyout; {KERNEL_CONFIG_HINT}"

    def verdict(self):
        missing = self.missing()
        override, note = self.override_verdict()
        return Verdict(self.name, not missing, missing, (note,), override)

    @staticmethod
    def override_verdict():
        """(usable, why): whether bpf_override_return can make copyout skip the copy."""
        if system.config_enabled("CONFIG_BPF_KPROBE_OVERRIDE") is False:
            return False, ("no override: CONFIG_BPF_KPROBE_OVERRIDE is off "
                           f"({KERNEL_CONFIG_HINT})")
        from ..probe import helper_supported
        ok, detail = helper_supported(ProgType.KPROBE, HelperId.override_return)
        if ok is False:
            return False, f"no override: kprobe programs may not call " \
                          f"bpf_override_return ({detail})"
        listed = _error_injectable("copyout")
        if listed is False:
            return False, ("no override: copyout is not on the error-injection list "
                           f"(ALLOW_ERROR_INJECTION; {KERNEL_CONFIG_HINT})")
        if listed is None:
            return True, ("override assumed: debugfs is not mounted, so the "
                          "error-injection list was not read")
        return True, "override available: copyout is on the error-injection list"


def _error_injectable(symbol):
    debugfs = system.mount_point("debugfs")
    if debugfs is None and system.filesystem_supported("debugfs"):
        try:
            system.mount("debugfs", "/sys/kernel/debug", "debugfs")
            debugfs = "/sys/kernel/debug"
        except OSError:
            return None
    if debugfs is None:
        return None
    return system.file_lists_symbol(os.path.join(debugfs, "error_injection", "list"),
                                    symbol, 0)


BACKENDS = {b.name: b for b in (CopyoutBackend(), CopyToIterBackend(), SyscallBackend())}


def get(name):
    try:
        return BACKENDS[name]
    except KeyError:
        raise PipelineError(f"unknown backend {name!r}; choose from auto, "
                            f"{', '.join(ORDER)}") from None


def verdicts():
    """{name: Verdict} for every backend, best first."""
    return {name: BACKENDS[name].verdict() for name in ORDER}


def choose(name="auto", override=False):
    """(Backend, why): the backend to use. "auto" takes the best that works (with
    override, the best that can also skip the copy); a named one must work here."""
    if not system.has_bpf_privilege():
        raise PipelineError("the filter-reduce pipeline loads and attaches BPF programs: "
                            "run it as root, or with CAP_BPF and CAP_PERFMON")
    if name != "auto":
        backend = get(name)
        v = backend.verdict()
        if not v.usable:
            hint = f"; {KERNEL_CONFIG_HINT}" if name == "copyout" and \
                KERNEL_CONFIG_HINT not in " ".join(v.missing) else ""
            raise PipelineError(f"the {name} backend does not work on this kernel "
                                f"({system.kernel_release()}): {'; '.join(v.missing)}{hint}")
        if override and not v.can_override:
            raise PipelineError(_no_override(name, v))
        return backend, f"{name} (asked for)"
    found = verdicts()
    for name in ORDER:
        v = found[name]
        if v.usable and (v.can_override or not override):
            others = [f"{n}: {'; '.join(found[n].missing)}" for n in ORDER[:ORDER.index(name)]]
            why = f"{name}, the best this kernel supports" + (
                f" (not {'; not '.join(others)})" if others else "")
            return BACKENDS[name], why
    if override:
        raise PipelineError(_no_override("any", found["copyout"]))
    raise PipelineError("no filter-reduce backend works on this kernel ("
                        f"{system.kernel_release()}): " + " | ".join(
                            found[n].explain() for n in ORDER))


def _no_override(name, verdict):
    why = verdict.notes[0] if verdict.notes else "; ".join(verdict.missing)
    return (f"--override needs the copyout backend with bpf_override_return, which "
            f"{'this kernel lacks' if name == 'any' else name + ' cannot do'}: {why}; "
            f"{KERNEL_CONFIG_HINT}")
