"""Attach loaded programs to their hooks; every function returns a :class:`~pybpf.links.Link`.

    link = attach(obj.programs["count"], obj.spec.programs["count"].section_def)
    link = attach_kprobe(prog, "do_sys_openat2")
    link = attach_uprobe(prog, "libc", "malloc", pid=1234)
    link = attach_tracepoint(prog, "syscalls/sys_enter_getpid")
    link = attach_perf_event(prog, sample_freq=99)          # every CPU
    link = attach_cgroup(prog, "/sys/fs/cgroup/unified/app")

How each kind of hook is reached, newest kernel interface first:

- kprobes, uprobes, tracepoints and sampling events are perf events
  (perf_event_open of the ``kprobe``/``uprobe`` PMU, 4.17+, or of a tracefs event id),
  with the program attached by BPF_LINK_CREATE (BPF_PERF_EVENT, 5.15+: a pinnable
  :class:`BpfLink`, and the only way to pass a ``cookie``) or else by
  PERF_EVENT_IOC_SET_BPF (a :class:`PerfEventLink` that owns the perf event fd).
- Kernels without the probe PMUs, and kretprobes with ``maxactive`` (the PMU has no
  field for it), use legacy tracefs kprobe_events/uprobe_events entries. Those are
  global and outlive the process, so pybpf names them ``pybpf_<pid>_<n>_<target>``
  and removes them when the link closes, on exceptions and at interpreter exit;
  entries of pybpf processes that were killed are removed by
  :func:`cleanup_stale_probes`, which the first legacy attach of a process runs.
- fentry/fexit/fmod_ret/lsm/tp_btf: BPF_LINK_CREATE with the program's attach type,
  else BPF_RAW_TRACEPOINT_OPEN without a name.
- cgroups: BPF_LINK_CREATE on the cgroup (5.7+), else BPF_PROG_ATTACH with
  BPF_F_ALLOW_MULTI (a :class:`CgroupAttachment`, detached with BPF_PROG_DETACH).
- xdp and tc: :mod:`pybpf.netattach`.

Mistakes a user can make (a function that does not exist, a tracepoint that does not
exist, a binary without the symbol, a program of the wrong type for the hook, a
missing option) raise :class:`AttachError` naming the problem and the fix before any
kernel object is made; refusals by the kernel are :class:`~pybpf.errors.BPFError`
with a hint saying what the errno means for this hook.
"""
import atexit
import ctypes
import errno
import glob
import os
import platform
import re
import shutil
import socket
import threading
import weakref

from . import elf
from .errors import ENOTSUPP, BPFError, InputError, NotSupportedError, UnsupportedError
from .kernel import bpf as kbpf
from .kernel import (cpus, features, kallsyms, mounts, perf, procs, release, security, sysctl,
                     tracefs)
from .kernel.pmu import PMU_DIR, pmu_format, pmu_type
from .kernel.constants import BPF_F_ALLOW_MULTI, AttachType, ProgType
from .links import BpfLink, Link, attach_raw_tracepoint
from .sections import SectionDef, parse

__all__ = [
    "AttachError", "attach", "attach_kprobe", "attach_kretprobe", "attach_uprobe",
    "attach_uretprobe", "attach_tracepoint", "attach_raw_tracepoint",
    "attach_perf_event", "attach_tracing", "attach_cgroup", "cleanup_stale_probes",
    "resolve_binary", "PerfEventLink", "ProbeBpfLink", "CgroupAttachment", "LinkSet",
]


class AttachError(InputError):
    """The attach request cannot work as given; the message names what to change."""


class HookNotSupportedError(NotSupportedError, AttachError):
    """This kernel lacks the hook asked for (no kprobes, no uprobe PMU, ...): a
    NotSupportedError, and an AttachError as every refusal of an attach request
    before any kernel object is made."""


cleanup_stale_probes = tracefs.cleanup_stale_probes


# ---- link kinds ----------------------------------------------------------------------

# Links whose kernel state outlives the process (tracefs entries, BPF_PROG_ATTACH
# attachments): closed at interpreter exit if the program did not close them.
_outliving = weakref.WeakSet()


class _OwnsProbe:
    """Mixin: after the link's fd is closed, remove its legacy tracefs entry."""

    probe = None
    _pinned = False

    def close(self):
        super().close()
        if self.probe is not None:
            # A pinned link keeps the probe busy: one attempt, then leave it for
            # cleanup_stale_probes() once the pin is gone.
            if self._pinned:
                tracefs.remove_probe_event(self.probe.kind, self.probe.name, attempts=1)
            else:
                self.probe.remove()
            self.probe = None


class PerfEventLink(_OwnsProbe, Link):
    """A program attached to a perf event with PERF_EVENT_IOC_SET_BPF (kernels before
    5.15). The fd is the perf event's: closing it detaches the program. Also owns the
    tracefs entry of a legacy probe."""

    def __init__(self, fd, program, description, probe=None):
        super().__init__(fd, program, description)
        self.probe = probe
        if probe is not None:
            _outliving.add(self)


class ProbeBpfLink(_OwnsProbe, BpfLink):
    """A kernel perf link (BPF_LINK_CREATE) on a legacy tracefs probe: closing it also
    removes the entry. If pinned, the entry stays while the pin keeps the link."""

    def __init__(self, fd, program, description, probe):
        super().__init__(fd, program, description)
        self.probe = probe
        _outliving.add(self)

    def pin(self, path):
        super().pin(path)
        self._pinned = True


class CgroupAttachment(Link):
    """A program attached to a cgroup with BPF_PROG_ATTACH (BPF_F_ALLOW_MULTI): the
    pre-5.7 way, which the kernel does not tie to any fd. ``close()`` detaches with
    BPF_PROG_DETACH. The fd is the cgroup directory's; a duplicate of the program fd
    is kept so the program can be named at detach time even if the caller closed it.
    """

    def __init__(self, cgroup_fd, program, attach_type, description):
        super().__init__(cgroup_fd, program, description)
        self.attach_type = attach_type
        self._prog_fd = os.dup(program.fd)
        _outliving.add(self)

    def close(self):
        if self.closed:
            return
        try:
            kbpf.prog_detach(self._fd, self._prog_fd, self.attach_type)
        except BPFError as e:
            if e.errno != errno.ENOENT:  # already detached (cgroup removed, ...)
                raise
        finally:
            kbpf.close(self._prog_fd)
            super().close()


class LinkSet(Link):
    """Several links that act as one, e.g. a sampling program on every CPU. ``links``
    are the members (pin those one by one); ``fd`` is the first member's."""

    def __init__(self, links, program, description):
        super().__init__(links[0].fd, program, description)
        self.links = list(links)

    def close(self):
        self._fd = -1  # borrowed from the first member, which closes it
        links, self.links = self.links, []
        for link in links:
            link.close()


def _at_exit():
    for link in list(_outliving):
        try:
            link.close()
        except Exception:  # noqa: BLE001 - exiting: release what can be released
            pass
    tracefs.remove_all_created()


def _forget_after_fork():
    """A forked child shares the parent's links but does not own them: its exit must
    not detach them or remove the parent's tracefs entries."""
    global _outliving
    _outliving = weakref.WeakSet()
    tracefs.forget_created()


atexit.register(_at_exit)
os.register_at_fork(after_in_child=_forget_after_fork)


# ---- common checks ---------------------------------------------------------------------

def _type_name(ptype):
    return ptype.name.lower() if isinstance(ptype, ProgType) else str(ptype)


def _check_type(program, allowed, hook, section):
    """AttachError unless program.type is one of allowed."""
    if program.type in allowed:
        return
    name = f" {program.name!r}" if getattr(program, "name", "") else ""
    want = " or ".join(_type_name(t) for t in allowed)
    raise AttachError(
        f"program{name} has type {_type_name(program.type)}, but {hook} run {want} "
        f"programs: load it from a SEC(\"{section}\") section (or as ProgType."
        f"{allowed[0].name}) to attach it there")


def _description(kind, target):
    return f"{kind}/{target}" if target else kind


# ---- perf events ------------------------------------------------------------------------

_PERF_HINTS = {
    errno.EEXIST: "another program is already attached to this perf event",
    errno.EINVAL: "the kernel refused this program for this event type (kprobe/uprobe "
                  "events take kprobe programs, tracepoints tracepoint programs, "
                  "sampling events perf_event programs)"}


def _attach_perf(program, pfd, description, *, cookie=None, use_link=None, probe=None):
    """Attach program to the perf event pfd, which this takes ownership of (and of
    probe, the legacy tracefs entry behind the event, if any).

    use_link None takes a BPF perf link (BPF_LINK_CREATE) where the kernel has them
    (features: bpf_perf_link, 5.15) and PERF_EVENT_IOC_SET_BPF elsewhere; True or
    False force one way (tests use False to exercise the ioctl).
    """
    try:
        if use_link is None:
            use_link = features.have("bpf_perf_link")
            if not use_link and cookie:
                raise features.missing("bpf_perf_link", description,
                                       "a bpf_cookie needs BPF perf links; attach without "
                                       "cookie= on this kernel")
        elif use_link:
            features.require("bpf_perf_link", description)
        elif cookie:
            raise AttachError("a bpf_cookie is passed only through BPF perf links: "
                              "use_link=False cannot carry one")
        if use_link:
            lfd = kbpf.link_create(program.fd, pfd, AttachType.PERF_EVENT,
                                   extra=(cookie or 0,), hints=_PERF_HINTS)
            try:
                perf.enable(pfd)
            except BaseException:
                kbpf.close(lfd)
                raise
            # The link holds the perf event: our fd is no longer needed, and a pinned
            # link keeps the event alive after this process.
            perf.close(pfd)
            pfd = -1
            if probe is not None:
                return ProbeBpfLink(lfd, program, description, probe)
            return BpfLink(lfd, program, description)
        perf.set_bpf(pfd, program.fd, _PERF_HINTS)
        perf.enable(pfd)
        link = PerfEventLink(pfd, program, description, probe)
        pfd = -1
        return link
    except BaseException:
        if pfd >= 0:
            perf.close(pfd)
        if probe is not None:
            probe.remove()
        raise


def _open_trace_event(event_id, description, pid=None):
    """A perf event on trace event event_id (a tracepoint or legacy probe)."""
    attr = perf.PerfEventAttr(type=perf.PERF_TYPE_TRACEPOINT, config=event_id,
                              sample_period=1, disabled=1)
    return perf.open_event(attr, *_pid_cpu(pid), detail=description)


def _pid_cpu(pid):
    """(pid, cpu) for perf_event_open: a probe in every process is pid -1 on "cpu 0"
    (the BPF program runs on every CPU regardless); one process is pid on any CPU."""
    return (-1, 0) if pid is None else (pid, -1)


_legacy_started = threading.Event()


def _attach_legacy(program, kind, target, line_kind, definition, description, *,
                   pid=None, cookie=None, use_link=None):
    """Attach through a new tracefs probe entry ("LINE_KIND:.../NAME DEFINITION"),
    removed again if anything fails. The process's first entry cleans up stale ones."""
    if not _legacy_started.is_set():
        _legacy_started.set()
        tracefs.cleanup_stale_probes()
    probe = tracefs.add_probe_event(kind, tracefs.event_name(target), line_kind, definition)
    try:
        pfd = _open_trace_event(probe.id, description, pid)
    except BaseException:
        probe.remove()
        raise
    return _attach_perf(program, pfd, description, cookie=cookie, use_link=use_link,
                        probe=probe)


def _probe_pmu(kind, retprobe):
    """(PMU type, config bits) for a probe of kind through its perf PMU, which
    _choose_legacy has found present."""
    if not retprobe:
        return pmu_type(kind), 0
    if not features.have(f"{kind[0]}ret{kind[1:]}_pmu"):
        raise features.missing(
            f"{kind[0]}ret{kind[1:]}_pmu", f"this kernel's {kind} PMU does not say how to "
            f"ask for a return probe ({PMU_DIR}/{kind}/format/retprobe)",
            "use legacy=True", HookNotSupportedError)
    return pmu_type(kind), 1 << pmu_format(kind, "retprobe")[1]


def _choose_legacy(kind, legacy, needs_tracefs, why):
    """True to use tracefs, False for the PMU; a HookNotSupportedError when this
    kernel has neither, AttachError when the request rules out the one it has."""
    has_pmu = features.have(f"{kind}_pmu")
    if legacy is False and needs_tracefs:
        raise AttachError(f"{why} is possible only through tracefs {kind}_events, "
                          f"but legacy=False forbids that")
    use_tracefs = legacy or needs_tracefs or not has_pmu
    if use_tracefs and not features.have(f"{kind}_events"):
        if kind == "kprobe":
            raise features.missing(
                "kprobe_events", "this kernel has no kprobes (built without CONFIG_KPROBES "
                "or CONFIG_KPROBE_EVENTS): neither the kprobe PMU "
                f"({PMU_DIR}/kprobe) nor tracefs kprobe_events exists; use a "
                "tracepoint, a raw tracepoint or fentry instead", error=HookNotSupportedError)
        raise features.missing(f"{kind}_events", f"this kernel has no {kind}s through "
                               f"tracefs (CONFIG_{kind.upper()}_EVENTS)" +
                               ("" if has_pmu else " nor the uprobe PMU"),
                               error=HookNotSupportedError)
    if legacy is False and not has_pmu:
        raise features.missing(f"{kind}_pmu", f"this kernel has no {kind} PMU "
                               f"({PMU_DIR}/{kind})", "attach with legacy=None to use "
                               "tracefs", HookNotSupportedError)
    return bool(use_tracefs)


# ---- kprobes ------------------------------------------------------------------------------

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
    _check_type(program, (ProgType.KPROBE,), f"{kind}s", f"{kind}/FUNCTION")
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
    description = _description(kind, where)
    hints = _kprobe_hints(where, function, offset)
    if _choose_legacy("kprobe", legacy, maxactive is not None, "kretprobe maxactive"):
        line_kind = ("r" + str(maxactive or "")) if retprobe else "p"
        return _attach_legacy(program, "kprobe", target, line_kind, where, description,
                              cookie=cookie, use_link=use_link)
    pmu, config = _probe_pmu("kprobe", retprobe)
    name = ctypes.create_string_buffer(function.encode()) if function is not None else None
    attr = perf.PerfEventAttr(type=pmu, config=config, disabled=1, sample_period=1)
    attr.config1 = ctypes.addressof(name) if name is not None else 0  # kprobe_func
    attr.config2 = offset if name is not None else address            # offset or addr
    pfd = perf.open_event(attr, -1, 0, hints=hints, detail=description)
    return _attach_perf(program, pfd, description, cookie=cookie, use_link=use_link)


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


# ---- uprobes --------------------------------------------------------------------------------

LIB_DIRS = ("/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/local/lib")


def resolve_binary(binary, pid=None):
    """The path of binary: a path as given; else a library name ("libc", "c",
    "libc.so.6") loaded in process pid or this process (from /proc/PID/maps); else an
    executable on PATH; else a library in the standard library directories."""
    if "/" in binary:
        if not os.path.isfile(binary):
            raise AttachError(f"uprobe target {binary!r} does not exist (or is not a "
                              f"regular file)")
        return os.path.realpath(binary)
    for maps_pid in ([pid] if pid is not None else []) + ["self"]:
        for path in procs.mapped_files(maps_pid):
            if _library_matches(os.path.basename(path), binary):
                return path
    found = shutil.which(binary)
    if found:
        return os.path.realpath(found)
    for directory in LIB_DIRS:
        # the directory itself and its multiarch subdirectories (x86_64-linux-gnu)
        for path in sorted(glob.glob(os.path.join(directory, "*.so*"))
                           + glob.glob(os.path.join(directory, "*", "*.so*"))):
            if _library_matches(os.path.basename(path), binary) and os.path.isfile(path):
                return os.path.realpath(path)
    where = f"process {pid}'s or " if pid is not None else ""
    raise AttachError(
        f"cannot find {binary!r}: it is not a library mapped in {where}this process, "
        f"not an executable on PATH and not in {', '.join(LIB_DIRS)}; give its full path")


def _library_matches(base, name):
    stem = name[3:] if name.startswith("lib") else name
    return base == name or base.startswith(f"lib{stem}.so") or base.startswith(f"{name}.so")


def function_offset(path, symbol):
    """File offset of function symbol in ELF file path (.symtab first, then .dynsym),
    the number a uprobe is attached at."""
    try:
        image = elf.ElfFile.from_path(path)
    except elf.ElfError as e:
        raise AttachError(f"{path} is not an ELF file a uprobe can go in: {e}") from None
    name = symbol.split("@")[0]
    for table in (image.symbols(), image.dynamic_symbols()):
        matches = [s for s in table if s.defined and s.value
                   and (s.name == symbol or s.name.split("@")[0] == name)]
        funcs = [s for s in matches if s.type == elf.STT_FUNC]
        if funcs:
            try:
                return image.vaddr_to_offset(funcs[0].value)
            except elf.ElfError as e:
                raise AttachError(f"{symbol!r} in {path}: {e}") from None
        if any(s.type == elf.STT_GNU_IFUNC for s in matches):
            raise AttachError(
                f"{symbol!r} in {path} is an indirect function (IFUNC): its address is "
                f"the resolver that picks an implementation at load time, not the code "
                f"that runs; probe the implementation by name or offset instead")
        if matches:
            raise AttachError(f"{symbol!r} in {path} is not a function (a data symbol)")
    stripped = "" if image.symbols() else " (it is stripped: no .symtab)"
    near = sorted({s.name for t in (image.symbols(), image.dynamic_symbols()) for s in t
                   if name and name in s.name and s.type == elf.STT_FUNC}, key=len)[:5]
    raise AttachError(f"{path} has no function {symbol!r} in .symtab or .dynsym"
                      f"{stripped}" + (f"; similar: {', '.join(near)}" if near else ""))


def attach_uprobe(program, binary, symbol=None, offset=0, *, retprobe=False, pid=None,
                  cookie=None, ref_ctr_offset=0, legacy=None, use_link=None):
    """Run a kprobe-type program when code in binary at symbol+offset runs (or when
    that function returns, retprobe=True) in process pid, or in every process.

    binary: a path, a library name ("libc", "c"), or an executable on PATH.
    symbol: a function in its .symtab or .dynsym; without it, offset is a file
    offset. ref_ctr_offset: file offset of a USDT semaphore the kernel increments
    while probed. legacy/use_link/cookie as for attach_kprobe.
    """
    kind = "uretprobe" if retprobe else "uprobe"
    _check_type(program, (ProgType.KPROBE,), f"{kind}s", f"{kind}/BINARY:FUNCTION")
    if symbol is None and not offset:
        raise AttachError(f"{kind}: give a function name or a file offset in {binary}")
    if pid is not None:
        _check_pid(pid)
    path = resolve_binary(binary, pid)
    if retprobe and symbol is not None and offset:
        raise AttachError(f"a uretprobe fires when {symbol} returns: it takes no offset")
    file_offset = (function_offset(path, symbol) if symbol is not None else 0) + offset
    where = f"{path}:{symbol}" if symbol is not None else f"{path}:{offset:#x}"
    if symbol is not None and offset:
        where += f"+{offset}"
    description = _description(kind, where)
    hints = {errno.EINVAL: f"the kernel refused a uprobe at offset {file_offset:#x} of "
                           f"{path} (not in the file, or not on an instruction)",
             errno.ESRCH: f"there is no process {pid}"}
    if _choose_legacy("uprobe", legacy, False, ""):
        if re.search(r"\s", path):
            raise AttachError(f"tracefs uprobe_events cannot name {path!r} (whitespace); "
                              f"use the uprobe PMU (legacy=None) or a path without spaces")
        definition = f"{path}:{file_offset:#x}" + (
            f"({ref_ctr_offset:#x})" if ref_ctr_offset else "")
        return _attach_legacy(program, "uprobe", f"{os.path.basename(path)}_{symbol or offset}",
                              "r" if retprobe else "p", definition, description, pid=pid,
                              cookie=cookie, use_link=use_link)
    pmu, config = _probe_pmu("uprobe", retprobe)
    if ref_ctr_offset:
        if not features.have("uprobe_ref_ctr"):
            raise features.missing("uprobe_ref_ctr", "this kernel's uprobe PMU has no "
                                   "ref_ctr_offset", error=HookNotSupportedError)
        config |= ref_ctr_offset << pmu_format("uprobe", "ref_ctr_offset")[1]
    name = ctypes.create_string_buffer(os.fsencode(path))
    attr = perf.PerfEventAttr(type=pmu, config=config, disabled=1, sample_period=1,
                              config1=ctypes.addressof(name), config2=file_offset)
    pfd = perf.open_event(attr, *_pid_cpu(pid), hints=hints, detail=description)
    return _attach_perf(program, pfd, description, cookie=cookie, use_link=use_link)


def attach_uretprobe(program, binary, symbol=None, offset=0, *, pid=None, cookie=None,
                     legacy=None, use_link=None):
    """attach_uprobe(..., retprobe=True): run program when the function returns."""
    return attach_uprobe(program, binary, symbol, offset, retprobe=True, pid=pid,
                         cookie=cookie, legacy=legacy, use_link=use_link)


def _check_pid(pid):
    if not isinstance(pid, int) or pid <= 0:
        raise AttachError(f"pid must be a positive process id, got {pid!r}")
    if not procs.process_exists(pid):
        raise AttachError(f"there is no process {pid}")


# ---- tracepoints and sampling events --------------------------------------------------------

def attach_tracepoint(program, category, name=None, *, cookie=None, use_link=None):
    """Run a tracepoint program on trace event category/name (or "category:name"),
    e.g. attach_tracepoint(prog, "syscalls/sys_enter_getpid"). Mounts tracefs if
    needed: the event's id is read there."""
    if name is None:
        category, _, name = str(category).replace(":", "/").partition("/")
    if not category or not name or "/" in name:
        raise AttachError(f"a tracepoint is named CATEGORY/NAME, e.g. "
                          f"syscalls/sys_enter_getpid; got {category}/{name}")
    _check_type(program, (ProgType.TRACEPOINT,), "tracepoints", f"tracepoint/{category}/{name}")
    try:
        event_id = tracefs.tracepoint_id(category, name)
    except LookupError as e:
        raise AttachError(str(e.args[0])) from None
    description = f"tracepoint/{category}/{name}"
    pfd = _open_trace_event(event_id, description)
    return _attach_perf(program, pfd, description, cookie=cookie, use_link=use_link)


def attach_perf_event(program, *, sample_period=None, sample_freq=None,
                      event_type=perf.PERF_TYPE_SOFTWARE,
                      config=perf.PERF_COUNT_SW_CPU_CLOCK, cpu=None, pid=None,
                      cookie=None, use_link=None):
    """Run a perf_event program on every sample of a sampling event: every
    sample_period events (nanoseconds for the cpu-clock default), or sample_freq
    times a second. event_type/config choose the event (perf.PERF_TYPE_* and
    perf.PERF_COUNT_*). On every online CPU unless cpu= or pid= narrows it; several
    CPUs give a :class:`LinkSet`."""
    _check_type(program, (ProgType.PERF_EVENT,), "sampling events", "perf_event")
    if (sample_period is None) == (sample_freq is None):
        raise AttachError("a sampling event needs exactly one of sample_period= (events "
                          "between samples) or sample_freq= (samples per second)")
    rate = sample_period if sample_freq is None else sample_freq
    if not isinstance(rate, int) or rate <= 0:
        raise AttachError(f"sample_period/sample_freq must be a positive int, got {rate!r}")
    limit = sysctl.read_sysctl("kernel.perf_event_max_sample_rate")
    if sample_freq is not None and limit and sample_freq > limit:
        raise AttachError(f"sample_freq={sample_freq} is above "
                          f"kernel.perf_event_max_sample_rate={limit}")
    if pid is not None:
        _check_pid(pid)
        targets = [(pid, -1 if cpu is None else cpu)]
    else:
        targets = [(-1, c) for c in ([cpu] if cpu is not None else cpus.online_cpus())]
    hints = {
        errno.ENOENT: f"this machine has no perf event type={event_type} config={config} "
                      f"(virtual machines often lack hardware counters: use the "
                      f"default software cpu-clock)",
        errno.EOPNOTSUPP: "this event cannot sample (its PMU has no overflow interrupt)",
        errno.EINVAL: "the kernel refused the sampling event (a bad type/config, or a "
                      "frequency above kernel.perf_event_max_sample_rate)",
        errno.ENODEV: f"there is no CPU {cpu}",
    }
    links = []
    try:
        for target_pid, target_cpu in targets:
            attr = perf.PerfEventAttr(type=event_type, config=config, disabled=1,
                                      sample_period=rate, freq=int(sample_freq is not None))
            description = f"perf_event/cpu{target_cpu}" if target_pid < 0 else \
                f"perf_event/pid{target_pid}"
            pfd = perf.open_event(attr, target_pid, target_cpu, hints=hints,
                                  detail=description)
            links.append(_attach_perf(program, pfd, description, cookie=cookie,
                                      use_link=use_link))
    except BaseException:
        for link in links:
            link.close()
        raise
    if len(links) == 1:
        return links[0]
    return LinkSet(links, program, f"perf_event on {len(links)} CPUs")


# ---- tracing (BTF-based) programs ---------------------------------------------------------

_TRACING_TYPES = (ProgType.TRACING, ProgType.LSM)


def attach_tracing(program, attach_type=None, *, cookie=None):
    """Attach a fentry/fexit/fmod_ret/tp_btf (or lsm) program to the kernel function
    it was loaded for (its attach_btf_id), with BPF_RAW_TRACEPOINT_OPEN, which every
    kernel with tracing programs has, as libbpf does. Only a cookie needs
    BPF_LINK_CREATE (5.19+), and with it the program's expected attach_type (the
    loader's SectionDef has it); a kernel without it answers NotSupportedError."""
    _check_type(program, _TRACING_TYPES, "fentry/fexit/fmod_ret/lsm hooks",
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


# ---- cgroups ------------------------------------------------------------------------------

A = AttachType
_CGROUP_HOOKS = {
    ProgType.CGROUP_SKB: (A.CGROUP_INET_INGRESS, A.CGROUP_INET_EGRESS),
    ProgType.CGROUP_SOCK: (A.CGROUP_INET_SOCK_CREATE, A.CGROUP_INET_SOCK_RELEASE,
                           A.CGROUP_INET4_POST_BIND, A.CGROUP_INET6_POST_BIND),
    ProgType.CGROUP_SOCK_ADDR: tuple(t for t in A if t.name.startswith(
        ("CGROUP_INET4_", "CGROUP_INET6_", "CGROUP_UDP4_", "CGROUP_UDP6_", "CGROUP_UNIX_"))
        and "POST_BIND" not in t.name),
    ProgType.SOCK_OPS: (A.CGROUP_SOCK_OPS,),
    ProgType.CGROUP_DEVICE: (A.CGROUP_DEVICE,),
    ProgType.CGROUP_SYSCTL: (A.CGROUP_SYSCTL,),
    ProgType.CGROUP_SOCKOPT: (A.CGROUP_GETSOCKOPT, A.CGROUP_SETSOCKOPT),
    ProgType.LSM: tuple(t for t in A if t.name == "LSM_CGROUP"),
}
# Where one attach type is the obvious one for a program type.
_CGROUP_DEFAULT = {ProgType.CGROUP_SOCK: A.CGROUP_INET_SOCK_CREATE,
                   ProgType.SOCK_OPS: A.CGROUP_SOCK_OPS,
                   ProgType.CGROUP_DEVICE: A.CGROUP_DEVICE,
                   ProgType.CGROUP_SYSCTL: A.CGROUP_SYSCTL}
CGROUP1_SUPER_MAGIC = mounts.CGROUP1_SUPER_MAGIC


def attach_cgroup(program, cgroup, attach_type=None, *, use_link=None):
    """Attach a cgroup program (cgroup_skb, cgroup/sock_create, sockops, ...) to a
    cgroup v2 directory (a path or an open directory fd) for attach_type; the
    program runs for every process in that cgroup and its descendants.

    use_link None: BPF_LINK_CREATE where the kernel has cgroup links (features:
    bpf_link, 5.7), else BPF_PROG_ATTACH with BPF_F_ALLOW_MULTI; True/False force one.
    """
    hooks = _CGROUP_HOOKS.get(program.type)
    if not hooks:
        _check_type(program, tuple(_CGROUP_HOOKS), "cgroup hooks", "cgroup_skb/egress")
    if attach_type is None:
        attach_type = _CGROUP_DEFAULT.get(program.type)
        if attach_type is None:
            raise AttachError(
                f"a {_type_name(program.type)} program can attach at "
                f"{', '.join(t.name.lower() for t in hooks)}: say which with attach_type= "
                f"(or use a section naming it, e.g. cgroup_skb/egress)")
    attach_type = AttachType(attach_type)
    if attach_type not in hooks:
        raise AttachError(f"a {_type_name(program.type)} program cannot attach at "
                          f"{attach_type.name.lower()}; it attaches at "
                          f"{', '.join(t.name.lower() for t in hooks)}")
    cg_fd, label = _open_cgroup(cgroup)
    description = f"cgroup/{attach_type.name.lower()} on {label}"
    try:
        if use_link is None:
            use_link = features.have("bpf_link")
        elif use_link:
            features.require("bpf_link", description)
        if use_link:
            fd = kbpf.link_create(program.fd, cg_fd, attach_type, hints=_CGROUP_HINTS)
            kbpf.close(cg_fd)  # the link holds the cgroup
            return BpfLink(fd, program, description)
        kbpf.prog_attach(cg_fd, program.fd, attach_type, BPF_F_ALLOW_MULTI)
    except NotSupportedError:
        kbpf.close(cg_fd)
        raise
    except BPFError as e:
        kbpf.close(cg_fd)
        raise BPFError(e.cmd, e.errno, description,
                       _CGROUP_HINTS.get(e.errno, e.hint)) from None
    except BaseException:
        kbpf.close(cg_fd)
        raise
    return CgroupAttachment(cg_fd, program, attach_type, description)


_CGROUP_HINTS = {
    errno.EINVAL: "the kernel refused this attach type for the program: a program is "
                  "loaded for one attach type (its section, e.g. cgroup/sock_create) "
                  "and attaches only there",
    errno.EPERM: "the cgroup already has a program attached without BPF_F_ALLOW_MULTI "
                 "(by another tool); detach that first",
}


def _open_cgroup(cgroup):
    """(fd, label) of a cgroup v2 directory; AttachError for anything else."""
    if isinstance(cgroup, int):
        return os.dup(cgroup), f"fd {cgroup}"
    path = os.fspath(cgroup)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise AttachError(f"cgroup {path!r} does not exist; create it with mkdir inside "
                          f"the cgroup v2 mount ({_cgroup2_mount()})") from None
    except NotADirectoryError:
        raise AttachError(f"cgroup {path!r} is not a directory") from None
    try:
        fstype = mounts.fs_type(path)
    except OSError:
        fstype = None
    if fstype != mounts.CGROUP2_SUPER_MAGIC:
        os.close(fd)
        what = "a cgroup v1 hierarchy" if fstype == CGROUP1_SUPER_MAGIC else \
            "not on a cgroup filesystem"
        raise AttachError(f"{path!r} is {what}: BPF programs attach to cgroup v2 "
                          f"directories ({_cgroup2_mount()})")
    return fd, path


def _cgroup2_mount():
    where = mounts.mount_point("cgroup2")
    return f"mounted at {where}" if where else \
        "not mounted here: `mount -t cgroup2 none /sys/fs/cgroup/unified`"


# ---- dispatch by section --------------------------------------------------------------------

_SYSCALL_PREFIX = {"x86_64": "__x64_sys_", "aarch64": "__arm64_sys_",
                   "s390x": "__s390x_sys_", "riscv64": "__riscv_sys_"}
_NOT_ATTACHABLE = {
    "socket": "socket filters are not attached to a hook: attach with "
              "sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF (50), program.fd)",
    "sk_reuseport": "sk_reuseport programs attach to a socket: "
                    "sock.setsockopt(SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF (52), program.fd)",
    "sk_skb": "sk_skb programs attach to a sockmap/sockhash (BPF_PROG_ATTACH with the "
              "map's fd), not to a hook",
    "sk_msg": "sk_msg programs attach to a sockmap/sockhash (BPF_PROG_ATTACH with the "
              "map's fd), not to a hook",
    "perf_event": "perf_event programs need a sampling event: call pybpf.attach."
                  "attach_perf_event(program, sample_period=N or sample_freq=HZ)",
    "freplace": "freplace programs replace a function of another loaded program; attach "
                "them with BPF_LINK_CREATE naming that program",
    "iter": "iterators are not attached to a hook: create a link for them and read it",
    "syscall": "syscall programs are run with program.test_run(), not attached",
    "struct_ops": "struct_ops programs are registered through their struct_ops map",
    "usdt": "USDT probes need the note section of the binary; attach_uprobe() at the "
            "probe's address (and ref_ctr_offset for its semaphore) instead",
    "action": "tc actions are installed with `tc action`, not attached by pybpf",
    "lirc_mode2": "lirc_mode2 programs attach to a /dev/lircN device (BPF_PROG_ATTACH)",
    "flow_dissector": "flow dissectors attach to a network namespace (BPF_PROG_ATTACH "
                      "with the netns fd)",
    "sk_lookup": "sk_lookup programs attach to a network namespace (BPF_LINK_CREATE "
                 "with the netns fd)",
    "lwt": "lightweight tunnel programs are installed on a route "
           "(`ip route add ... encap bpf in|out|xmit obj FILE section NAME`)",
}
_OPTION_KINDS = {"iface": ("xdp", "tc"), "xdp_flags": ("xdp",), "pid": ("uprobe", "uretprobe"),
                 "cgroup": ("cgroup",)}


def attach(program, section_def, *, iface=None, cgroup=None, pid=None, xdp_flags=0):
    """Attach program where its section says: ``kprobe/FUNC[+OFF]``,
    ``uprobe/PATH:FUNC[+OFF]``, ``tracepoint/CAT/NAME``, ``raw_tp/NAME``,
    fentry/fexit/fmod_ret, cgroup sections (cgroup=PATH), xdp/tc (iface=NAME).

    section_def is a :class:`~pybpf.sections.SectionDef` (``obj.spec.programs[name]
    .section_def``) or a section name. pid narrows uprobes to one process.
    """
    sd = parse(section_def) if isinstance(section_def, str) else section_def
    if not isinstance(sd, SectionDef):
        raise UnsupportedError(f"section_def must be a SectionDef or a section name, "
                               f"got {type(section_def).__name__}")
    family = _family(sd)
    given = {"iface": iface, "cgroup": cgroup, "pid": pid, "xdp_flags": xdp_flags or None}
    for option, kinds in _OPTION_KINDS.items():
        if given[option] is not None and family not in kinds:
            raise AttachError(f"{option}= does not apply to {sd.section!r} programs "
                              f"(it is for {' and '.join(kinds)} programs)")
    handler = _HANDLERS.get(family)
    if handler is None:
        reason = _NOT_ATTACHABLE.get(family) or (
            f"attach() does not know how to attach {sd.section!r} programs")
        raise AttachError(reason)
    return handler(program, sd, iface=iface, cgroup=cgroup, pid=pid, xdp_flags=xdp_flags)


def _family(sd):
    """The hook family of a section ("kprobe", "cgroup", "tracing", ...): its prefix
    without "/..." and ".s"-style suffixes, with aliases folded together."""
    base = sd.prefix.split("/")[0]
    if base.startswith(("cgroup", "sockops", "lsm_cgroup")):
        return "cgroup"
    if base in ("kprobe.multi", "kretprobe.multi"):
        return "kprobe.multi"
    if base.startswith("xdp") and "/" in sd.prefix:
        return "xdp-map"
    base = base.split(".")[0]
    if base in ("tp_btf", "fentry", "fexit", "fmod_ret", "lsm"):
        return "tracing"
    if base.startswith("lwt_"):
        return "lwt"
    return {"tp": "tracepoint", "raw_tp": "raw_tracepoint", "classifier": "tc",
            "ksyscall": "kprobe", "kretsyscall": "kretprobe"}.get(base, base)


def _need_target(sd, form):
    if not sd.target:
        raise AttachError(f"section {sd.section!r} does not say where to attach "
                          f"({sd.prefix}/{form}); call the attach_* function with the "
                          f"target instead")
    return sd.target


def _kprobe_target(sd):
    target = _need_target(sd, "FUNCTION[+OFFSET]")
    if sd.kind in ("ksyscall", "kretsyscall"):
        prefix = _SYSCALL_PREFIX.get(platform.machine(), "__x64_sys_")
        return prefix + target, 0
    m = re.fullmatch(r"([^+\s]+)(?:\+(0x[0-9a-fA-F]+|\d+))?", target)
    if not m:
        raise AttachError(f"cannot read {target!r} as FUNCTION[+OFFSET]")
    return m.group(1), int(m.group(2) or "0", 0)


def _do_kprobe(program, sd, **_):
    function, offset = _kprobe_target(sd)
    if _family(sd) == "kretprobe":
        return attach_kretprobe(program, function)
    return attach_kprobe(program, function, offset)


def _do_uprobe(program, sd, pid=None, **_):
    target = _need_target(sd, "PATH:FUNCTION[+OFFSET]")
    path, sep, func = target.rpartition(":")
    m = re.fullmatch(r"([^+\s]*)(?:\+(0x[0-9a-fA-F]+|\d+))?", func)
    if not sep or not path or not m or not (m.group(1) or m.group(2)):
        raise AttachError(f"uprobe section target {target!r} is not PATH:FUNCTION[+OFFSET]")
    symbol, offset = m.group(1), int(m.group(2) or "0", 0)
    if re.fullmatch(r"0x[0-9a-fA-F]+|\d+", symbol or ""):
        symbol, offset = None, int(symbol, 0) + offset
    return attach_uprobe(program, path, symbol or None, offset,
                         retprobe=_family(sd) == "uretprobe", pid=pid)


def _do_tracepoint(program, sd, **_):
    return attach_tracepoint(program, _need_target(sd, "CATEGORY/NAME"))


def _do_raw_tracepoint(program, sd, **_):
    name = _need_target(sd, "NAME")
    _check_type(program, (ProgType.RAW_TRACEPOINT, ProgType.RAW_TRACEPOINT_WRITABLE),
                "raw tracepoints", f"raw_tracepoint/{name}")
    return attach_raw_tracepoint(program, name)


def _do_tracing(program, sd, **_):
    return attach_tracing(program, sd.expected_attach_type)


def _do_cgroup(program, sd, cgroup=None, **_):
    if cgroup is None:
        raise AttachError(f"{sd.section!r} programs attach to a cgroup: pass cgroup= "
                          f"(a cgroup v2 directory, {_cgroup2_mount()})")
    if sd.expected_attach_type is None and program.type == ProgType.CGROUP_SKB:
        raise AttachError(f"section {sd.section!r} does not say ingress or egress: use "
                          f"cgroup_skb/ingress or cgroup_skb/egress, or attach_cgroup("
                          f"program, cgroup, attach_type=...)")
    return attach_cgroup(program, cgroup, sd.expected_attach_type)


def _netattach(program, sd, iface):
    if iface is None:
        raise AttachError(f"{sd.section!r} programs attach to a network interface: "
                          f"pass iface= (e.g. iface=\"eth0\")")
    try:
        socket.if_nametoindex(iface)
    except OSError:
        raise AttachError(f"there is no network interface {iface!r} (list them with "
                          f"`ip link`)") from None
    try:
        from . import netattach
    except ImportError as e:
        raise AttachError(f"attaching {sd.section!r} programs needs pybpf.netattach, "
                          f"which cannot be imported here ({e})") from None
    return netattach


def _do_xdp(program, sd, iface=None, xdp_flags=0, **_):
    _check_type(program, (ProgType.XDP,), "XDP hooks", "xdp")
    return _netattach(program, sd, iface).attach_xdp(program, iface, xdp_flags)


def _do_tc(program, sd, iface=None, **_):
    _check_type(program, (ProgType.SCHED_CLS,), "tc hooks", "tc")
    return _netattach(program, sd, iface).attach_tc(program, iface, "ingress")


def _not_here(message):
    def handler(program, sd, **_):
        raise AttachError(message)
    return handler


_HANDLERS = {
    "kprobe": _do_kprobe, "kretprobe": _do_kprobe, "uprobe": _do_uprobe,
    "uretprobe": _do_uprobe, "tracepoint": _do_tracepoint,
    "raw_tracepoint": _do_raw_tracepoint, "tracing": _do_tracing, "cgroup": _do_cgroup,
    "xdp": _do_xdp, "tc": _do_tc,
    "kprobe.multi": _not_here("kprobe.multi sections need BPF_TRACE_KPROBE_MULTI links, "
                              "which attach() does not create yet; attach the program "
                              "to each function with attach_kprobe()"),
    "xdp-map": _not_here("xdp/devmap and xdp/cpumap programs run from a devmap/cpumap "
                         "entry: store the program fd in the map value, do not attach it"),
}
