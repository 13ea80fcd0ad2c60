"""A program on a perf event: what kprobes, uprobes, tracepoints and sampling events
share.

Each of those hooks is a perf event (perf_event_open of the ``kprobe``/``uprobe`` PMU,
4.17+, or of a tracefs event id), and the program goes onto it by BPF_LINK_CREATE
(BPF_PERF_EVENT, 5.15+: a pinnable :class:`~pybpf.links.BpfLink`, and the only way to
pass a ``cookie``) or else by PERF_EVENT_IOC_SET_BPF (a :class:`PerfEventLink` that
owns the perf event fd); which one, the feature registry says.

Kernels without the probe PMUs, and kretprobes with ``maxactive`` (the PMU has no field
for it), use legacy tracefs kprobe_events/uprobe_events entries. Those are global and
outlive the process, so pybpf names them ``pybpf_<pid>_<n>_<target>`` and removes them
when the link closes, on exceptions and at interpreter exit; entries of pybpf
processes that were killed are removed by :func:`~pybpf.kernel.tracefs.cleanup_stale_probes`,
which the first legacy attach of a process runs.
"""
import errno
import threading

from ..kernel import bpf as kbpf
from ..kernel import features, perf, tracefs
from ..kernel.constants import AttachType
from ..kernel.pmu import PMU_DIR, pmu_format, pmu_type
from ..links import BpfLink, Link
from .common import AttachError, HookNotSupportedError, outlives


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
            outlives(self)


class ProbeBpfLink(_OwnsProbe, BpfLink):
    """A kernel perf link (BPF_LINK_CREATE) on a legacy tracefs probe: closing it also
    removes the entry. If pinned, the entry stays while the pin keeps the link."""

    def __init__(self, fd, program, description, probe):
        super().__init__(fd, program, description)
        self.probe = probe
        outlives(self)

    def pin(self, path):
        super().pin(path)
        self._pinned = True


_HINTS = {
    errno.EEXIST: "another program is already attached to this perf event",
    errno.EINVAL: "the kernel refused this program for this event type (kprobe/uprobe "
                  "events take kprobe programs, tracepoints tracepoint programs, "
                  "sampling events perf_event programs)"}


def attach_perf(program, pfd, description, *, cookie=None, use_link=None, probe=None):
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
                                   extra=(cookie or 0,), hints=_HINTS)
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
        perf.set_bpf(pfd, program.fd, _HINTS)
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


def open_trace_event(event_id, description, pid=None):
    """A perf event on trace event event_id (a tracepoint or legacy probe)."""
    attr = perf.PerfEventAttr(type=perf.PERF_TYPE_TRACEPOINT, config=event_id,
                              sample_period=1, disabled=1)
    return perf.open_event(attr, *pid_cpu(pid), detail=description)


def pid_cpu(pid):
    """(pid, cpu) for perf_event_open: a probe in every process is pid -1 on "cpu 0"
    (the BPF program runs on every CPU regardless); one process is pid on any CPU."""
    return (-1, 0) if pid is None else (pid, -1)


_legacy_started = threading.Event()


def attach_legacy(program, kind, target, line_kind, definition, description, *,
                  pid=None, cookie=None, use_link=None):
    """Attach through a new tracefs probe entry ("LINE_KIND:.../NAME DEFINITION"),
    removed again if anything fails. The process's first entry cleans up stale ones."""
    if not _legacy_started.is_set():
        _legacy_started.set()
        tracefs.cleanup_stale_probes()
    probe = tracefs.add_probe_event(kind, tracefs.event_name(target), line_kind, definition)
    try:
        pfd = open_trace_event(probe.id, description, pid)
    except BaseException:
        probe.remove()
        raise
    return attach_perf(program, pfd, description, cookie=cookie, use_link=use_link,
                       probe=probe)


_RETPROBE_FEATURES = {"kprobe": "kretprobe_pmu", "uprobe": "uretprobe_pmu"}


def probe_pmu(kind, retprobe):
    """(PMU type, config bits) for a probe of kind ("kprobe", "uprobe") through its
    perf PMU, which choose_legacy has found present."""
    if not retprobe:
        return pmu_type(kind), 0
    feature = _RETPROBE_FEATURES[kind]
    if not features.have(feature):
        raise features.missing(feature, f"this kernel's {kind} PMU does not say how to ask "
                               f"for a return probe ({PMU_DIR}/{kind}/format/retprobe)",
                               "use legacy=True", HookNotSupportedError)
    return pmu_type(kind), 1 << pmu_format(kind, "retprobe")[1]


def choose_legacy(kind, legacy, needs_tracefs, why):
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
