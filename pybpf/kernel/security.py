"""What may refuse a privileged caller: capabilities, kernel lockdown, and the causes
behind a tracing program's EPERM.

The kernel's EPERM names none of these; pybpf turns them into hints. Nothing is
mounted here: lockdown is read from securityfs when it is mounted, else from what
the kernel was booted with.
"""
import os
import re

from .btffiles import VMLINUX_BTF, vmlinux_btf_size
from .kconfig import config_enabled

CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39

LOCKDOWN_FILE = "/sys/kernel/security/lockdown"
LOCKDOWN_MODES = ("none", "integrity", "confidentiality")  # weakest first


def effective_capabilities():
    """The set of capability numbers in this process's effective set."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                mask = int(line.split()[1], 16)
                return {bit for bit in range(64) if mask >> bit & 1}
    return set()


def has_bpf_privilege():
    caps = effective_capabilities()
    return CAP_BPF in caps or CAP_SYS_ADMIN in caps


def lockdown_mode():
    """"none", "integrity" or "confidentiality" (None when unknown).

    The file lives in securityfs, which is often not mounted; the kernel command line
    and the securityfs mount are both consulted, and nothing is mounted here.
    """
    try:
        with open(LOCKDOWN_FILE) as f:
            return re.search(r"\[(\w+)\]", f.read()).group(1)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/cmdline") as f:
            m = re.search(r"\blockdown=(\w+)", f.read())
            return m.group(1) if m else None
    except OSError:
        return None


def lockdown_status():
    """(mode, source): the kernel lockdown mode and where it was learnt.

    securityfs states the current mode. Without it mounted, the mode the kernel was
    booted with is the strongest of CONFIG_LOCK_DOWN_KERNEL_FORCE_* and ``lockdown=``
    on the command line; it can only have been raised since, so that is a lower
    bound. (None, None) when nothing tells.
    """
    if os.access(LOCKDOWN_FILE, os.R_OK):
        return lockdown_mode(), "securityfs"
    if config_enabled("CONFIG_SECURITY_LOCKDOWN_LSM") is False:
        return "none", "CONFIG_SECURITY_LOCKDOWN_LSM is off"
    found = [(mode, f"CONFIG_LOCK_DOWN_KERNEL_FORCE_{mode.upper()}")
             for mode in LOCKDOWN_MODES
             if config_enabled(f"CONFIG_LOCK_DOWN_KERNEL_FORCE_{mode.upper()}")]
    cmdline = lockdown_mode()  # securityfs is unreadable: this is lockdown= from boot
    if cmdline in LOCKDOWN_MODES:
        found.append((cmdline, "lockdown= on the kernel command line"))
    if not found:
        return None, None
    return max(found, key=lambda item: LOCKDOWN_MODES.index(item[0]))


def tracing_refusal_hint():
    """Why a kernel refuses tracing programs (fentry/fexit/fmod_ret, also lsm and
    freplace) with EPERM although the caller is privileged, with what is known here.

    The kernel's EPERM names none of the usual causes: lockdown, a kernel built
    without BTF or without ftrace direct calls (the trampolines fentry needs), or an
    LSM policy.
    """
    facts = []
    mode, source = lockdown_status()
    if mode and mode != "none":
        facts.append(f"kernel lockdown is {mode!r} ({source})")
    if vmlinux_btf_size() is None:
        facts.append(f"there is no kernel BTF ({VMLINUX_BTF}; CONFIG_DEBUG_INFO_BTF)")
    direct = config_enabled("CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS")
    if direct is False:
        facts.append("the kernel is built without ftrace direct calls "
                     "(CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS)")
    here = f"; on this system: {'; '.join(facts)}" if facts else ""
    return ("this kernel refuses tracing (fentry/fexit/fmod_ret) programs; kernels do "
            "so under lockdown, without CONFIG_DEBUG_INFO_BTF or without ftrace direct "
            "calls (CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS), or by LSM policy" + here +
            "; attach with a tracepoint, a raw tracepoint or a kprobe "
            "(SEC(\"kprobe/FUNC\")) instead")
