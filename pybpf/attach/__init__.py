"""Attach loaded programs to their hooks; every function returns a :class:`~pybpf.links.Link`.

    link = attach(obj.programs["count"], obj.spec.programs["count"].section_def)
    link = attach_kprobe(prog, "do_sys_openat2")
    link = attach_uprobe(prog, "libc", "malloc", pid=1234)
    link = attach_usdt(prog, "/usr/bin/python3", "python", "function__entry")
    link = attach_tracepoint(prog, "syscalls/sys_enter_getpid")
    link = attach_perf_event(prog, sample_freq=99)          # every CPU
    link = attach_cgroup(prog, "/sys/fs/cgroup/unified/app")
    link = attach_xdp(prog, "eth0")
    link = attach_uprobe_multi(prog, "libc", "str*")          # one link, many functions
    link = attach_netfilter(prog, "ipv4", "output")

One module per kind of hook, each with the attach_* functions of that kind and an
``attach_section(program, section_def, **options)`` that :func:`attach` calls for the
sections whose row in :mod:`pybpf.sections` names the module: kprobe (kprobes,
kretprobes, ksyscall), kprobe_multi (kprobe.multi, kretprobe.multi, kprobe.session),
uprobe, uprobe_multi (uprobe.multi, uretprobe.multi), usdt, tracepoint, raw_tracepoint,
perf_event (sampling events), tracing (fentry/fexit/fmod_ret/tp_btf/lsm), cgroup,
xdp, tc, tcx (tcx/ and tc/ingress|egress), netfilter. A module's
``OPTIONS`` are the keyword arguments of attach() it takes (iface=, pid=, ...).
perflink holds what the perf-event hooks share (BPF perf links or the ioctl, legacy
tracefs probes), netdev and netlink what xdp and tc share, common the rest.

Each hook takes the newest kernel interface the kernel has (pybpf.kernel.features
says which): a kernel BPF link where there is one, else the older mechanism, as
each module's docstring says. Mistakes a user can make (a function that does not
exist, a tracepoint that does not exist, a binary without the symbol, a program of
the wrong type for the hook, a missing option) raise :class:`AttachError` naming the
problem and the fix before any kernel object is made; a hook this kernel lacks is a
:class:`HookNotSupportedError`; refusals by the kernel are
:class:`~pybpf.errors.BPFError` with a hint saying what the errno means for this hook.
"""
import importlib

from ..errors import UnsupportedError
from ..exports import lazy
from ..sections import Elsewhere, SectionDef, hooks, parse
from .common import AttachError, HookNotSupportedError, LinkSet

# The attach_* functions and link classes come from their hook's module when first
# used (pybpf.exports): attaching a kprobe need not import netlink, USDT notes or XDP.
__getattr__, __dir__ = lazy(__name__, {
    "CGROUP1_SUPER_MAGIC": "..kernel.mounts", "cleanup_stale_probes": "..kernel.tracefs",
    "CgroupAttachment": ".cgroup", "attach_cgroup": ".cgroup",
    "attach_kprobe": ".kprobe", "attach_kretprobe": ".kprobe",
    "KprobeMultiLink": ".kprobe_multi", "attach_kprobe_multi": ".kprobe_multi",
    "NetfilterLink": ".netfilter", "attach_netfilter": ".netfilter",
    "attach_perf_event": ".perf_event",
    "PerfEventLink": ".perflink", "ProbeBpfLink": ".perflink",
    "attach_raw_tracepoint": ".raw_tracepoint",
    "TcxLink": ".tc", "attach_tc": ".tc", "attach_tcx": ".tcx",
    "attach_tracepoint": ".tracepoint", "attach_tracing": ".tracing",
    "LIB_DIRS": ".uprobe", "attach_uprobe": ".uprobe", "attach_uretprobe": ".uprobe",
    "function_offset": ".uprobe", "resolve_binary": ".uprobe",
    "UsdtLink": ".usdt", "attach_usdt": ".usdt",
    "UprobeMultiLink": ".uprobe_multi", "attach_uprobe_multi": ".uprobe_multi",
    "attach_xdp": ".xdp",
})

__all__ = [
    "AttachError", "attach", "attach_kprobe", "attach_kretprobe", "attach_uprobe",
    "attach_uretprobe", "attach_tracepoint", "attach_raw_tracepoint",
    "attach_perf_event", "attach_tracing", "attach_cgroup", "cleanup_stale_probes",
    "resolve_binary", "PerfEventLink", "ProbeBpfLink", "CgroupAttachment", "LinkSet",
    "HookNotSupportedError", "attach_xdp", "attach_tc", "options_of", "function_offset",
    "LIB_DIRS", "CGROUP1_SUPER_MAGIC", "attach_usdt", "UsdtLink", "attach_uprobe_multi",
    "UprobeMultiLink", "attach_kprobe_multi", "KprobeMultiLink", "attach_tcx", "TcxLink",
    "attach_netfilter", "NetfilterLink",
]


def _module(hook):
    """The module of pybpf.attach that a row of the section table names."""
    return importlib.import_module(f"{__name__}.{hook}")


def _hook_module(sd):
    """The pybpf.attach module that attaches sd's programs, or the Elsewhere saying
    why none does. (A SectionDef made by hand without a hook gets its row's.)"""
    hook = sd.hook if sd.hook is not None else parse(sd.section).hook
    return hook if isinstance(hook, Elsewhere) else _module(hook)


def options_of(section_def):
    """The keyword arguments of attach() that section_def's programs take
    (e.g. ("iface", "xdp_flags") for "xdp")."""
    hook = _hook_module(section_def)
    return () if isinstance(hook, Elsewhere) else hook.OPTIONS


def attach(program, section_def, *, iface=None, cgroup=None, pid=None, xdp_flags=0,
           pf=None, hooknum=None, priority=None, flags=None):
    """Attach program where its section says: ``kprobe/FUNC[+OFF]``,
    ``kprobe.multi/PATTERN``, ``uprobe/PATH:FUNC[+OFF]``, ``uprobe.multi/PATH:PATTERN``,
    ``usdt/PATH:PROVIDER:NAME``, ``tracepoint/CAT/NAME``, ``raw_tp/NAME``,
    fentry/fexit/fmod_ret, cgroup sections (cgroup=PATH), xdp/tc/tcx (iface=NAME),
    netfilter (pf=, hooknum=, priority=, flags=).

    section_def is a :class:`~pybpf.sections.SectionDef` (``obj.spec.programs[name]
    .section_def``) or a section name. pid narrows uprobes and USDT probes to one
    process.
    """
    sd = parse(section_def) if isinstance(section_def, str) else section_def
    if not isinstance(sd, SectionDef):
        raise UnsupportedError(f"section_def must be a SectionDef or a section name, "
                               f"got {type(section_def).__name__}")
    hook = _hook_module(sd)
    taken = options_of(sd)
    given = {"iface": iface, "cgroup": cgroup, "pid": pid, "xdp_flags": xdp_flags or None,
             "pf": pf, "hooknum": hooknum, "priority": priority, "flags": flags}
    for option, value in given.items():
        if value is not None and option not in taken:
            kinds = [name for name in hooks() if option in _module(name).OPTIONS]
            kinds = ", ".join(kinds[:-1]) + " and " * (len(kinds) > 1) + kinds[-1]
            raise AttachError(f"{option}= does not apply to {sd.section!r} programs "
                              f"(it is for {kinds} programs)")
    if isinstance(hook, Elsewhere):
        raise AttachError(hook.reason)
    return hook.attach_section(program, sd, **{o: given[o] for o in taken
                                               if given[o] is not None})

