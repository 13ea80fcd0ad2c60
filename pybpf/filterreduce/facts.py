"""What the backends' verdicts need to know about a kernel, gathered in one place.

:func:`gather` reads the running kernel (procfs, sysfs, tracefs, debugfs, the kernel
config, and the feature registry's probe loads for helpers and the kprobe PMU); the
verdicts in backends.py are plain functions of a :class:`Facts`, so the reasoning for
kernels other than the running one (a patched kernel, Debian's stock 6.1) is tested
without them.
"""
import dataclasses
import os
from typing import Dict, Optional, Tuple

from ..kernel import features, files, kconfig, mounts, release, security
from ..kernel.kallsyms import kallsyms_types
from ..kernel.tracefs import tracepoint_exists
from ..kernel.constants import HelperId, ProgType

SYMBOLS = ("_copy_to_iter", "copyout")
CONFIG = ("CONFIG_KPROBES", "CONFIG_KPROBE_EVENTS_ON_NOTRACE", "CONFIG_FTRACE_SYSCALLS",
          "CONFIG_FUNCTION_ERROR_INJECTION", "CONFIG_BPF_KPROBE_OVERRIDE")
# (program type, helper) pairs the pipeline's programs call.
HELPERS = ((ProgType.RAW_TRACEPOINT, HelperId.loop),
           (ProgType.RAW_TRACEPOINT, HelperId.probe_read_user),
           (ProgType.RAW_TRACEPOINT, HelperId.strtoul),
           (ProgType.KPROBE, HelperId.loop), (ProgType.KPROBE, HelperId.probe_read_kernel),
           (ProgType.KPROBE, HelperId.strtoul), (ProgType.KPROBE, HelperId.override_return))


@dataclasses.dataclass(frozen=True)
class Symbol:
    """Where a kernel function is listed; None: the list could not be read."""
    in_kallsyms: Optional[bool] = True
    blacklisted: Optional[bool] = False      # debugfs kprobes/blacklist
    ftrace_able: Optional[bool] = True       # tracefs available_filter_functions
    error_injectable: Optional[bool] = False  # debugfs error_injection/list


@dataclasses.dataclass(frozen=True)
class Facts:
    release: str
    privileged: bool = True
    kprobes: Optional[bool] = True            # a kprobe PMU or tracefs kprobe_events
    syscall_tracepoints: Optional[bool] = True  # raw sys_enter/sys_exit; None: unknown
    symbols: Dict[str, Symbol] = dataclasses.field(default_factory=dict)
    config: Dict[str, Optional[bool]] = dataclasses.field(default_factory=dict)
    helpers: Dict[Tuple[int, int], Optional[bool]] = dataclasses.field(default_factory=dict)

    def symbol(self, name):
        return self.symbols.get(name, Symbol(None, None, None, None))

    def helper(self, ptype, helper):
        return self.helpers.get((int(ptype), int(helper)))


def _mounted(fstype, target):
    """Where fstype is mounted; mounts it at target first when that is possible."""
    path = mounts.mount_point(fstype)
    if path is None and mounts.filesystem_supported(fstype):
        try:
            mounts.mount(fstype, target, fstype)
            path = target
        except OSError:
            pass
    return path


def gather(mount=True, kallsyms=None):
    """The Facts of the running kernel. With mount (what the pipeline does), tracefs
    and debugfs are mounted first when they exist and are not: attaching needs
    tracefs anyway, and debugfs holds the kprobe blacklist and the error-injection
    list. Without, what they would tell is unknown (None). kallsyms: {name: type}
    already read for SYMBOLS (the probe command's), else /proc/kallsyms is read."""
    privileged = security.has_bpf_privilege()
    mount = mount and privileged
    tracefs = mounts.find_tracefs() or (_mounted("tracefs", mounts.TRACEFS_PATHS[0])
                                        if mount else None)
    debugfs = _mounted("debugfs", mounts.DEBUGFS_PATH) if mount else \
        mounts.mount_point("debugfs")
    kprobes = features.have("kprobe_pmu") or bool(
        tracefs and os.path.exists(os.path.join(tracefs, "kprobe_events")))
    if not kprobes and kconfig.config_enabled("CONFIG_KPROBES") is None and not tracefs:
        kprobes = None
    syscall_tracepoints = kconfig.config_enabled("CONFIG_FTRACE_SYSCALLS")
    if tracefs:
        syscall_tracepoints = tracepoint_exists(tracefs, "raw_syscalls", "sys_enter")
    if kallsyms is None:
        kallsyms = kallsyms_types(SYMBOLS)

    def listed(root, rel, symbol, column):
        return files.file_lists_symbol(os.path.join(root, rel), symbol, column) \
            if root else None

    symbols = {s: Symbol(
        in_kallsyms=None if kallsyms is None else s in kallsyms,
        blacklisted=listed(debugfs, "kprobes/blacklist", s, 1),
        ftrace_able=listed(tracefs, "available_filter_functions", s, 0),
        error_injectable=listed(debugfs, "error_injection/list", s, 0)) for s in SYMBOLS}
    helpers = {}
    if privileged:
        for ptype, helper in HELPERS:
            helpers[(int(ptype), int(helper))] = features.have_helper(ptype, helper)
    return Facts(release=release.kernel_release(), privileged=privileged, kprobes=kprobes,
                 syscall_tracepoints=syscall_tracepoints, symbols=symbols, config={c: kconfig.config_enabled(c) for c in CONFIG},
                 helpers=helpers)
