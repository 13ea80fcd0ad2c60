"""What the running kernel supports.

``probe()`` answers what ``bpftool feature probe kernel`` answers (which program types
load, which map types can be created, which helpers each program type may call), the
feature tests pybpf itself decides by (:mod:`pybpf.kernel.features`: perf, cgroup and
XDP links, tcx, batch operations, the probe PMUs, ...) and the tracing facts the e2BPF
pipeline's backends depend on: kprobe and tracepoint support, whether ``copyout`` can
be probed and overridden. Which backend works, and why not the others, is
pybpf.filterreduce.backends' verdict over those facts (the ``probe`` command prints
both).

Every answer comes from asking the kernel: a program type "loads" when a minimal
program of that type (``r0 = 0; exit``) is accepted, a helper is available to a type
when the verifier does not refuse the call by name (the probe loads of the feature
registry). Kernel facts that are files (/proc, /sys, tracefs, debugfs, the kernel
config) are read by :mod:`pybpf.kernel` modules. Nothing is mounted unless
``probe(mount=True)`` asks.
"""
import dataclasses
import errno
import functools
import os
import time
from typing import Dict, List, Optional

from .btf.probe import probe_blob_base
from .errors import BPFError
from .kernel import bpf as kbpf
from .kernel import btffiles, cpus, features, files, kconfig, mounts, release, security, sysctl
from .kernel.kallsyms import kallsyms_types
from .kernel.pmu import pmu_type
from .kernel.tracefs import tracepoint_exists
from .kernel.constants import BPF_F_NO_PREALLOC, AttachType, HelperId, MapType, ProgType
from .errors import ENOTSUPP

COPYOUT = "copyout"

# Verifying a call to these writes to the kernel log (trace_printk's banner,
# bpf_probe_write_user's warning), so like bpftool they are probed only when asked.
NOISY_HELPERS = (HelperId.trace_printk, HelperId.trace_vprintk, HelperId.probe_write_user)

# Types that load only with a BTF attach target (a kernel function, a struct_ops
# member, another program). Loading one with a target that cannot be valid (BTF type 1
# is never a function) gets a refusal that only a kernel knowing the type gives; an
# unknown type is refused with EINVAL before the verifier writes any log.
# type -> (load options, errno that proves the type, whether a verifier log must say so)
_BTF_TARGET = {
    ProgType.TRACING: ({"expected_attach_type": AttachType.TRACE_FENTRY, "attach_btf_id": 1},
                       errno.EINVAL, True),
    ProgType.LSM: ({"expected_attach_type": AttachType.LSM_MAC, "attach_btf_id": 1},
                   errno.EINVAL, True),
    ProgType.EXT: ({"attach_btf_id": 1}, errno.EINVAL, True),
    ProgType.STRUCT_OPS: ({}, ENOTSUPP, False),
}

# Build options behind types that a kernel may leave out, named in the answer when the
# kernel config says they are off. (Two dicts: equal IntEnum values would collide.)
_PROG_CONFIG = {
    ProgType.LIRC_MODE2: "CONFIG_BPF_LIRC_MODE2", ProgType.LSM: "CONFIG_BPF_LSM",
    ProgType.LWT_IN: "CONFIG_LWTUNNEL_BPF", ProgType.LWT_OUT: "CONFIG_LWTUNNEL_BPF",
    ProgType.LWT_XMIT: "CONFIG_LWTUNNEL_BPF", ProgType.LWT_SEG6LOCAL: "CONFIG_IPV6_SEG6_BPF",
    ProgType.CGROUP_SKB: "CONFIG_CGROUP_BPF", ProgType.CGROUP_SOCK: "CONFIG_CGROUP_BPF",
    ProgType.KPROBE: "CONFIG_BPF_EVENTS", ProgType.TRACEPOINT: "CONFIG_BPF_EVENTS",
}
_MAP_CONFIG = {
    MapType.SOCKMAP: "CONFIG_BPF_STREAM_PARSER", MapType.SOCKHASH: "CONFIG_BPF_STREAM_PARSER",
    MapType.XSKMAP: "CONFIG_XDP_SOCKETS", MapType.INODE_STORAGE: "CONFIG_BPF_LSM",
    MapType.CGROUP_STORAGE: "CONFIG_CGROUP_BPF",
    MapType.PERCPU_CGROUP_STORAGE: "CONFIG_CGROUP_BPF",
}

_PAGE = cpus.page_size()
_CGROUP_STORAGE_KEY = 16  # sizeof(struct bpf_cgroup_storage_key): u64 inode id, u32 type
# map type -> create arguments other than the default 4-byte key and value, 1 entry.
_MAP_PARAMS = {
    MapType.STACK_TRACE: {"value_size": 8},
    MapType.LPM_TRIE: {"key_size": 8, "value_size": 8, "flags": BPF_F_NO_PREALLOC},
    MapType.CGROUP_STORAGE: {"key_size": _CGROUP_STORAGE_KEY, "value_size": 8,
                             "max_entries": 0},
    MapType.PERCPU_CGROUP_STORAGE: {"key_size": _CGROUP_STORAGE_KEY, "value_size": 8,
                                    "max_entries": 0},
    MapType.QUEUE: {"key_size": 0},
    MapType.STACK: {"key_size": 0},
    MapType.BLOOM_FILTER: {"key_size": 0},
    MapType.RINGBUF: {"key_size": 0, "value_size": 0, "max_entries": _PAGE},
    MapType.USER_RINGBUF: {"key_size": 0, "value_size": 0, "max_entries": _PAGE},
    # Any value type id that names no struct_ops type: ENOTSUPP proves the map type.
    MapType.STRUCT_OPS: {"btf_vmlinux_value_type_id": 1},
}
# Local storage maps take no max_entries and need BTF type ids for key and value, from
# a BTF object of our own (the kernel's BTF is refused for maps).
_LOCAL_STORAGE = (MapType.SK_STORAGE, MapType.INODE_STORAGE, MapType.TASK_STORAGE)
_MAP_IN_MAP = (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS)


class _Record:
    """A dataclass that is also a JSON object (for --json)."""

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Answer(_Record):
    """One finding: ``ok`` is True, False or None (could not tell); ``detail`` says why."""
    ok: Optional[bool]
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class TypeSupport(_Record):
    """Whether a program type loads or a map type can be created."""
    available: bool
    error: Optional[str] = None  # errno name of the refusal ("EINVAL"), if refused
    detail: str = ""


@dataclasses.dataclass
class HelperMatrix(_Record):
    """Which helpers each program type may call."""
    available: Dict[str, List[str]]  # program type -> helper names ("bpf_strtol")
    not_probed: Dict[str, str]  # program type -> why its helpers were not probed
    probed: List[str]  # every helper name asked about, in id order
    skipped: List[str]  # helpers left out (they write to the kernel log); see full=
    newer: Dict[int, str]  # helper ids this kernel has beyond pybpf's constants
    loads: int = 0
    seconds: float = 0.0

    def is_available(self, prog_type, helper):
        """True/False, or None when that type or helper was not probed."""
        ptype, name = _type_name(prog_type), helper_name(helper)
        if ptype not in self.available or name not in self.probed:
            return None
        return name in self.available[ptype]


@dataclasses.dataclass
class ProbeResult:
    """Everything probe() found. Names of types are lower case ("socket_filter"), of
    helpers the kernel's ("bpf_strtol")."""
    kernel: Dict[str, object]  # release, config, BTF, JIT, privileges, lockdown
    tracing: Dict[str, object]  # filesystems, PMUs, kprobes, tracepoints, copyout
    program_types: Dict[str, TypeSupport]
    map_types: Dict[str, TypeSupport]
    helpers: Optional[HelperMatrix]  # None when probe(helpers=False)
    seconds: Dict[str, float]
    mounted: List[str]  # what probe(mount=True) mounted
    # pybpf.kernel.features.report(): the feature tests pybpf itself decides by
    features: Dict[str, dict] = dataclasses.field(default_factory=dict)

    def to_dict(self):
        """The JSON document of ``python -m pybpf probe --json``."""
        return {
            "kernel": _plain(self.kernel),
            "tracing": _plain(self.tracing),
            "program_types": {k: v.to_dict() for k, v in self.program_types.items()},
            "map_types": {k: v.to_dict() for k, v in self.map_types.items()},
            "helpers": self.helpers.to_dict() if self.helpers else None,
            "seconds": self.seconds,
            "mounted": self.mounted,
            "features": self.features,
        }


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value.to_dict() if hasattr(value, "to_dict") else value


def _type_name(value):
    return value.name.lower() if hasattr(value, "name") else str(value)


def helper_name(helper):
    """"bpf_strtol" for HelperId.strtol, its number or either name."""
    if isinstance(helper, str):
        return helper if helper.startswith("bpf_") else "bpf_" + helper
    return "bpf_" + HelperId(helper).name


def _errname(err):
    return "ENOTSUPP" if err == ENOTSUPP else errno.errorcode.get(err, str(err))


def _log_reason(log):
    """The verifier's last line that is not its statistics: the reason for a refusal."""
    lines = [ln for ln in (log or "").splitlines()
             if ln.strip() and not ln.startswith(("processed ", "verification time"))]
    return lines[-1] if lines else ""


def _refusal(e):
    """TypeSupport for a failed load or create: the errno and the kernel's reason."""
    reason = _log_reason(getattr(e, "log", "")) or os.strerror(e.errno)
    if e.errno == errno.EPERM and security.has_bpf_privilege():
        reason += " (refused although this process holds CAP_BPF or CAP_SYS_ADMIN)"
    return TypeSupport(False, _errname(e.errno), reason)


# ---- program types ------------------------------------------------------------------

def probe_program_type(ptype):
    """Whether a minimal program of ptype loads. For the types in _BTF_TARGET the
    expected refusal counts as "loads": the kernel knows the type."""
    ptype = ProgType(ptype)
    options, proof, needs_log = _BTF_TARGET.get(
        ptype, (features.LOAD_OPTIONS.get(ptype, {}), None, False))
    e = features.probe_load(ptype, features.RET0, options)
    if e is None:
        return TypeSupport(True)
    if proof is not None and e.errno == proof and (e.log.strip() or not needs_log):
        return TypeSupport(True, detail="known to the kernel; a program needs a BTF "
                           "attach target to load, so helpers are not probed")
    return _with_config_hint(_PROG_CONFIG.get(ptype), _refusal(e))


def _with_config_hint(option, support):
    """Name the build option behind a refused type when the kernel config has it off."""
    if option and kconfig.config_enabled(option) is False:
        return dataclasses.replace(support, detail=f"{support.detail} ({option} is off)")
    return support


# ---- map types ----------------------------------------------------------------------

def probe_map_type(mtype):
    """Whether a map of mtype can be created (with parameters that type accepts)."""
    mtype = MapType(mtype)
    args = {"key_size": 4, "value_size": 4, "max_entries": 1, "flags": 0}
    args.update(_MAP_PARAMS.get(mtype, {}))
    extra_fds = []
    try:
        if mtype in _LOCAL_STORAGE:
            extra_fds.append(kbpf.btf_load(probe_blob_base()))  # type 1: a 4-byte int
            args.update(max_entries=0, flags=BPF_F_NO_PREALLOC, btf_fd=extra_fds[-1],
                        btf_key_type_id=1, btf_value_type_id=1)
        if mtype in _MAP_IN_MAP:
            extra_fds.append(kbpf.map_create(MapType.ARRAY, 4, 4, 1))
            args["inner_map_fd"] = extra_fds[-1]
        kbpf.close(kbpf.map_create(mtype, **args))
    except BPFError as e:
        if mtype == MapType.STRUCT_OPS and e.errno == ENOTSUPP:
            return TypeSupport(True, detail="known to the kernel; a map needs a struct_ops "
                               "type from the kernel's BTF")
        return _with_config_hint(_MAP_CONFIG.get(mtype), _refusal(e))
    finally:
        for fd in extra_fds:
            kbpf.close(fd)
    return TypeSupport(True)


# ---- helpers ------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def helper_supported(ptype, helper_id):
    """(True/False, detail): whether programs of ptype may call the helper here, from
    one probe load per process. False when the program type itself does not load."""
    ptype = ProgType(ptype)
    support = probe_program_type(ptype)
    if not support.available:
        return False, f"{ptype.name.lower()} programs do not load: {support.detail}"
    ok, _ = features.helper_answer(ptype, helper_id)
    return ok, "refused by the verifier" if not ok else "available"


def _newer_helpers(first_id, ptype=ProgType.SOCKET_FILTER, limit=64):
    """{id: kernel name} of helper ids from first_id up that this kernel knows.

    Helper ids are dense, so the first id the verifier calls "invalid func" ends the
    list. Log level 2 prints every instruction, so the call line names the helper even
    when the load succeeds.
    """
    found = {}
    for helper_id in range(first_id, first_id + limit):
        e = features.probe_load(ptype, features.calling(helper_id), {}, log_level=2)
        log = getattr(e, "log", "") if e is not None else ""
        if e is not None and features.UNKNOWN_ID in log:
            break
        named = features.CALL_NAME.search(log)
        found[helper_id] = named.group(1) if named else f"helper_{helper_id}"
    return found


def helper_ids(full=False):
    """The helper ids to probe: every HelperId but unspec, less NOISY_HELPERS unless full."""
    return [h for h in HelperId if h and (full or h not in NOISY_HELPERS)]


def probe_helpers(program_types, full=False):
    """The helper matrix over the program types that loaded (a dict name -> TypeSupport).

    One load per (type, helper): about 6,000 on a 6.x kernel. Types that need a BTF
    attach target are not probed, as bpftool does not: ``r0 = call; exit`` cannot be
    loaded without one, and a refused load says nothing about the helper.
    """
    started = time.perf_counter()
    ids = helper_ids(full)
    names = {int(h): helper_name(h) for h in ids}
    newer = _newer_helpers(max(HelperId) + 1)
    for helper_id, name in newer.items():
        ids.append(helper_id)
        names[helper_id] = name
    matrix = HelperMatrix({}, {}, [names[int(h)] for h in ids],
                          [helper_name(h) for h in NOISY_HELPERS if not full], newer)
    for tname, support in program_types.items():
        ptype = ProgType[tname.upper()]
        if not support.available:
            matrix.not_probed[tname] = "the program type does not load"
            continue
        if ptype in _BTF_TARGET:
            matrix.not_probed[tname] = "programs of this type need a BTF attach target"
            continue
        matrix.available[tname] = [names[int(h)] for h in ids if features.helper_answer(ptype, h)[0]]
        matrix.loads += len(ids)
    matrix.seconds = time.perf_counter() - started
    return matrix


# ---- tracing facts ------------------------------------------------------------------

TRACING_FILESYSTEMS = (("tracefs", "tracefs", mounts.TRACEFS_PATHS[0]),
                       ("debugfs", "debugfs", mounts.DEBUGFS_PATH),
                       ("securityfs", "securityfs", mounts.SECURITYFS_PATH))


def mount_tracing_filesystems():
    """Mount tracefs, debugfs and securityfs where they belong when the kernel has them
    and they are not mounted; returns the mount points mounted. Needs root.

    They hold what the probe reads beyond /proc and /sys: trace events, kprobe_events
    (tracefs), the kprobe blacklist and error-injection list (debugfs), the lockdown
    mode (securityfs). They stay mounted: attach needs tracefs anyway.
    """
    mounted = []
    for fstype, source, target in TRACING_FILESYSTEMS:
        if mounts.filesystem_supported(fstype) and mounts.mount_point(fstype) is None:
            mounts.mount(source, target, fstype)
            mounted.append(target)
    return mounted


def _tracefs():
    """(path or None, mountable): a mounted tracefs, else whether one could be."""
    path = mounts.find_tracefs() or mounts.mount_point("tracefs")
    return path, path is not None or mounts.filesystem_supported("tracefs")


def _kprobes(tracefs):
    """Whether kprobes can be created: the kprobe PMU (4.17+) or tracefs kprobe_events."""
    pmu = pmu_type("kprobe")
    config = kconfig.config_enabled("CONFIG_KPROBES")
    events = os.path.exists(os.path.join(tracefs, "kprobe_events")) if tracefs else None
    if pmu is not None:
        return Answer(True, f"kprobe PMU type {pmu}")
    if events:
        return Answer(True, "tracefs kprobe_events (no kprobe PMU: a kernel before 4.17)")
    if config is False:
        return Answer(False, "CONFIG_KPROBES is off")
    if tracefs:
        return Answer(False, "no kprobe PMU and no kprobe_events in tracefs")
    return Answer(None, "no kprobe PMU; tracefs is not mounted to look for kprobe_events")


def _read_tracepoints(tracefs):
    """syscalls:sys_enter_read and sys_exit_read: from tracefs, else the kernel config."""
    names = ("sys_enter_read", "sys_exit_read")
    if tracefs:
        missing = [n for n in names if not tracepoint_exists(tracefs, "syscalls", n)]
        if missing:
            return Answer(False, f"tracefs has no syscalls:{', syscalls:'.join(missing)} "
                          f"(CONFIG_FTRACE_SYSCALLS)")
        return Answer(True, f"present in {tracefs}/events/syscalls")
    config = kconfig.config_enabled("CONFIG_FTRACE_SYSCALLS")
    if config is None:
        return Answer(None, "tracefs is not mounted and the kernel config is not readable")
    if not config:
        return Answer(False, "CONFIG_FTRACE_SYSCALLS is off: no syscall tracepoints")
    return Answer(True, "CONFIG_FTRACE_SYSCALLS=y (tracefs is not mounted to list them; "
                  "attach mounts it)")


def _symbol_facts(symbol, kallsyms, tracefs, debugfs):
    """Where the kprobe target symbol is listed: kallsyms ({name: type} read for it),
    the kprobe blacklist, ftrace's functions, the error-injection list (None for a list
    that cannot be read)."""
    facts = {"in_kallsyms": None if kallsyms is None else symbol in kallsyms}
    lists = {
        "kprobe_blacklisted": (debugfs, "kprobes/blacklist", 1),
        "ftrace_able": (tracefs, "available_filter_functions", 0),
        "error_injectable": (debugfs, "error_injection/list", 0),
    }
    for key, (root, rel, column) in lists.items():
        facts[key] = (files.file_lists_symbol(os.path.join(root, rel), symbol, column)
                      if root else None)
    return facts


def probe_tracing(symbol=COPYOUT, more_symbols=()):
    """Filesystems, PMUs, kprobes, the read() syscall tracepoints and the kprobe target.
    "kallsyms" holds the symbol types of symbol and more_symbols, from one read of
    /proc/kallsyms (~40 ms of the kernel's time), for callers that ask about several."""
    tracefs, mountable = _tracefs()
    debugfs = mounts.mount_point("debugfs")
    kallsyms = kallsyms_types([symbol, *more_symbols])
    return {
        "tracefs": tracefs,
        "tracefs_mountable": mountable,
        "debugfs": debugfs,
        "securityfs": mounts.mount_point("securityfs"),
        "pmus": {name: pmu_type(name) for name in ("kprobe", "uprobe", "tracepoint")},
        "kprobes": _kprobes(tracefs),
        "read_tracepoints": _read_tracepoints(tracefs),
        "symbol": symbol,
        "symbol_facts": _symbol_facts(symbol, kallsyms, tracefs, debugfs),
        "kallsyms": kallsyms,
        "config": {name: kconfig.config_enabled(name) for name in (
            "CONFIG_KPROBES", "CONFIG_KPROBE_EVENTS", "CONFIG_UPROBE_EVENTS",
            "CONFIG_FTRACE_SYSCALLS", "CONFIG_FUNCTION_ERROR_INJECTION",
            "CONFIG_BPF_KPROBE_OVERRIDE", "CONFIG_BPF_EVENTS")},
    }


def probe_kernel():
    """Release, kernel config, BTF, JIT, privileges, lockdown."""
    _, config_path = kconfig.kernel_config()
    btf = btffiles.vmlinux_btf_size()
    jit = sysctl.read_sysctl("net.core.bpf_jit_enable")
    mode, source = security.lockdown_status()
    return {
        "release": release.kernel_release(),
        "version": list(release.kernel_version()),
        "config": config_path,
        "btf": Answer(btf is not None, f"{btffiles.VMLINUX_BTF}, {btf} bytes" if btf
                      else "no /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF is off)"),
        "jit": Answer(None if jit is None else jit >= 1, _jit_detail(jit)),
        "unprivileged_bpf_disabled": sysctl.read_sysctl("kernel.unprivileged_bpf_disabled"),
        "privileged": security.has_bpf_privilege(),
        "lockdown": {"mode": mode, "source": source,
                     "detail": _lockdown_detail(mode, source)},
    }


def _jit_detail(jit):
    if jit is None:
        return "net.core.bpf_jit_enable is not readable"
    always = kconfig.config_enabled("CONFIG_BPF_JIT_ALWAYS_ON")
    return f"net.core.bpf_jit_enable={jit}" + (", CONFIG_BPF_JIT_ALWAYS_ON" if always else "")


def _lockdown_detail(mode, source):
    if source is None:
        return "unknown (securityfs not mounted, and neither the kernel config nor the " \
               "command line tells)"
    if source == "securityfs":
        return f"{mode} (securityfs)"
    return (f"{mode} (from {source}; securityfs not mounted, so a lockdown raised after "
            f"boot would not show)")


# ---- everything ---------------------------------------------------------------------

def probe(helpers=True, full=False, mount=False, symbol=COPYOUT, more_symbols=()):
    """Probe the running kernel. Needs root (CAP_BPF + CAP_PERFMON at least) for
    meaningful answers: without them every load is refused.

    ``helpers=False`` skips the helper matrix; ``full=True`` also probes NOISY_HELPERS; ``mount=True`` first mounts
    tracefs, debugfs and securityfs (see mount_tracing_filesystems).
    """
    started = time.perf_counter()
    mounted = mount_tracing_filesystems() if mount else []
    seconds = {}
    t = time.perf_counter()
    prog_types = {_type_name(p): probe_program_type(p) for p in ProgType if p}
    seconds["program_types"] = time.perf_counter() - t
    t = time.perf_counter()
    map_types = {_type_name(m): probe_map_type(m) for m in MapType if m}
    seconds["map_types"] = time.perf_counter() - t
    matrix = probe_helpers(prog_types, full) if helpers else None
    seconds["helpers"] = matrix.seconds if matrix else 0.0
    kernel, tracing = probe_kernel(), probe_tracing(symbol, more_symbols)
    found = features.report(mount=mount)
    seconds["total"] = time.perf_counter() - started
    return ProbeResult(kernel, tracing, prog_types, map_types, matrix, seconds, mounted,
                       found)
