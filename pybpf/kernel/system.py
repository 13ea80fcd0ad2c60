"""Facts about the running system that bpf(2) callers need: kernel release, possible
CPUs, capabilities, sysctls, lockdown, bpffs and tracefs mounts.

Everything here reads procfs/sysfs; nothing above pybpf.kernel does. Values that cannot
change while the process runs are cached.
"""
import ctypes
import errno
import functools
import os
import platform
import resource
import re
import stat

from ..errors import BPFError, InputError

BPF_FS_MAGIC = 0xCAFE4A11
TRACEFS_MAGIC = 0x74726163
BPFFS_DEFAULT = "/sys/fs/bpf"
TRACEFS_PATHS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")

CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39


_FILE_KINDS = {stat.S_IFCHR: "character device", stat.S_IFBLK: "block device",
               stat.S_IFIFO: "FIFO", stat.S_IFSOCK: "socket", stat.S_IFDIR: "directory"}


def read_regular_file(path):
    """The bytes of the regular file at path, no more than its size says.

    An object or BTF file handed to pybpf may be anything: reading /dev/zero never
    ends, opening a FIFO blocks until someone writes. The file is opened without
    blocking and refused (InputError) unless it is a regular file; then exactly its
    st_size bytes are read, so a file that grows meanwhile cannot make the read
    longer. OSError (a missing file, no permission) passes through as Python's own.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = _FILE_KINDS.get(stat.S_IFMT(st.st_mode), "special file")
            raise InputError(f"{os.fspath(path)} is a {kind}, not a regular file; give "
                             f"the path of a file")
        with open(fd, "rb", closefd=False) as f:
            return f.read(st.st_size)
    except (MemoryError, OverflowError):
        raise InputError(f"{os.fspath(path)} is {st.st_size} bytes, more than this "
                         f"process can read into memory") from None
    finally:
        os.close(fd)


def page_size():
    return os.sysconf("SC_PAGE_SIZE")


@functools.lru_cache(maxsize=None)
def kernel_release():
    """``uname -r`` of the running kernel, e.g. ``"6.18.44-fc-v657"``."""
    return platform.release()


@functools.lru_cache(maxsize=None)
def kernel_version():
    """(major, minor, patch) of the running kernel."""
    nums = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", kernel_release())
    return tuple(int(n or 0) for n in nums.groups())


def kernel_version_code():
    """The LINUX_VERSION_CODE form, which BPF_PROG_LOAD's kern_version expects."""
    major, minor, patch = kernel_version()
    return (major << 16) | (minor << 8) | min(patch, 255)


def parse_cpu_list(text):
    """Parse a sysfs CPU list such as ``"0-3,5,7-8"`` into a sorted list of ints."""
    cpus = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return sorted(cpus)


@functools.lru_cache(maxsize=None)
def possible_cpus():
    """Number of per-CPU slots in a per-CPU map value: the kernel sizes them by the
    *possible* CPUs (highest possible CPU + 1), not the online ones."""
    with open("/sys/devices/system/cpu/possible") as f:
        return max(parse_cpu_list(f.read())) + 1


@functools.lru_cache(maxsize=None)
def online_cpus():
    with open("/sys/devices/system/cpu/online") as f:
        return parse_cpu_list(f.read())


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


def read_sysctl(name):
    """An integer sysctl such as ``kernel.unprivileged_bpf_disabled``, or None."""
    try:
        with open("/proc/sys/" + name.replace(".", "/")) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def lockdown_mode():
    """"none", "integrity" or "confidentiality" (None when unknown).

    The file lives in securityfs, which is often not mounted; the kernel command line
    and the securityfs mount are both consulted, and nothing is mounted here.
    """
    try:
        with open("/sys/kernel/security/lockdown") as f:
            return re.search(r"\[(\w+)\]", f.read()).group(1)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/cmdline") as f:
            m = re.search(r"\blockdown=(\w+)", f.read())
            return m.group(1) if m else None
    except OSError:
        return None


def memlock_accounting_is_rlimit():
    """Before 5.11, BPF memory was charged to RLIMIT_MEMLOCK instead of the memcg."""
    return kernel_version() < (5, 11)


@functools.lru_cache(maxsize=None)
def raise_memlock_rlimit():
    """Lift RLIMIT_MEMLOCK on kernels that charge BPF memory to it (once per process).

    Returns True when the limit was raised. On 5.11+ this does nothing: the default
    limit of 8 MiB would otherwise make map creation fail with EPERM for no reason
    a user could guess.
    """
    if not memlock_accounting_is_rlimit():
        return False
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK,
                           (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        return True
    except (ValueError, OSError):
        return False


class _Statfs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("_rest", ctypes.c_byte * 112)]


_libc = ctypes.CDLL(None, use_errno=True)


def fs_type(path):
    """statfs(2) f_type of the filesystem holding path (the magic numbers above)."""
    buf = _Statfs()
    if _libc.statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
        err = ctypes.get_errno()
        raise BPFError("statfs", err, path)
    return buf.f_type & 0xFFFFFFFF


def is_bpffs(path):
    try:
        return fs_type(path) == BPF_FS_MAGIC
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return False
        raise


def check_pin_path(path):
    """Raise ValueError unless path's directory is on a bpffs mount.

    The kernel answers EPERM or EINVAL for a pin outside bpffs, which names neither
    the path nor the fix; this check does both before any syscall.
    """
    parent = os.path.dirname(os.path.abspath(path)) or "/"
    if not os.path.isdir(parent):
        raise InputError(f"cannot pin at {path!r}: directory {parent!r} does not exist "
                         f"(create it inside a bpffs mount such as {BPFFS_DEFAULT})")
    if not is_bpffs(parent):
        raise InputError(
            f"cannot pin at {path!r}: {parent!r} is not on a bpf filesystem; pins live in "
            f"bpffs (mount it with `mount -t bpf bpf {BPFFS_DEFAULT}` and pin below it)")


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def set_parent_death_signal(signum):
    """prctl(PR_SET_PDEATHSIG): have the kernel send signum to this process when the
    thread that created it exits, however it exits (a SIGKILL included)."""
    if _libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
        raise BPFError("prctl(PR_SET_PDEATHSIG)", ctypes.get_errno())


def find_tracefs():
    """Path of a mounted tracefs, or None."""
    for path in TRACEFS_PATHS:
        try:
            if fs_type(path) == TRACEFS_MAGIC:
                return path
        except OSError:
            continue
    return None


def mount(source, target, fstype):
    """mount(2) a pseudo filesystem (bpffs, tracefs, securityfs); needs root."""
    os.makedirs(target, exist_ok=True)
    if _libc.mount(source.encode(), target.encode(), fstype.encode(), 0, None) != 0:
        err = ctypes.get_errno()
        raise BPFError(f"mount -t {fstype} {source} {target}", err)


def fdinfo(fd):
    """/proc/self/fdinfo/FD as a dict: the kernel reports there what BPF_OBJ_GET_INFO
    does not, e.g. whether a map is frozen, and which kind of object an fd is."""
    out = {}
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key.strip()] = value.strip()
    return out


# ---- what the kernel was built with and what it exposes (used by pybpf.probe) -------
#
# Each function answers None where the answer cannot be read (a file absent or a
# filesystem not mounted), so callers can tell "no" from "unknown".

KERNEL_CONFIG_PATHS = ("/proc/config.gz", "/boot/config-{release}")
VMLINUX_BTF = "/sys/kernel/btf/vmlinux"
PMU_DIR = "/sys/bus/event_source/devices"
LOCKDOWN_MODES = ("none", "integrity", "confidentiality")  # weakest first


def _read_lines(path, opener=open):
    """The lines of a text file, or None when it cannot be read."""
    try:
        with opener(path, "rt") as f:
            return f.read().splitlines()
    except (OSError, EOFError, UnicodeDecodeError):
        return None


@functools.lru_cache(maxsize=None)
def kernel_config():
    """(options, path): the running kernel's build configuration and where it was read.

    ``options`` maps ``"CONFIG_X"`` to its value (``"y"``, ``"m"``, a number or a quoted
    string), and options the file lists as "is not set" to ``"n"``. Both are ``None``
    when neither /proc/config.gz (CONFIG_IKCONFIG_PROC) nor /boot/config-RELEASE exists:
    many answers about kprobes and error injection exist only here.
    """
    import gzip  # only needed here; most of pybpf never reads the config
    for template in KERNEL_CONFIG_PATHS:
        path = template.format(release=kernel_release())
        lines = _read_lines(path, gzip.open if path.endswith(".gz") else open)
        if lines is None:
            continue
        options = {}
        for line in lines:
            unset = re.match(r"# (CONFIG_\w+) is not set", line)
            if unset:
                options[unset.group(1)] = "n"
            elif line.startswith("CONFIG_"):
                name, _, value = line.partition("=")
                options[name] = value
        return options, path
    return None, None


def config_enabled(name):
    """True when CONFIG option name is y or m, False when the config says otherwise or
    does not list it (the option does not exist for this kernel), None without a config."""
    options, _ = kernel_config()
    if options is None:
        return None
    return options.get(name, "n") in ("y", "m")


def vmlinux_btf_size():
    """Size in bytes of the kernel's own BTF (CONFIG_DEBUG_INFO_BTF), or None without it."""
    try:
        return os.stat(VMLINUX_BTF).st_size
    except OSError:
        return None


def kallsyms_types(names):
    """{name: symbol type letter} for those of names that /proc/kallsyms lists.

    A function the compiler inlined everywhere has no symbol, so it cannot be probed;
    this is the first thing to check about a kprobe target. Module symbols count too.
    Returns None when /proc/kallsyms cannot be read.
    """
    found = _kallsyms(names)
    return None if found is None else {name: kind for name, (kind, _) in found.items()}


def kallsyms_addresses(names):
    """{name: address} of those of names that /proc/kallsyms lists (typeless __ksym
    externs want them), {} when it cannot be read (or kptr_restrict hides them: 0)."""
    return {name: addr for name, (_, addr) in (_kallsyms(names) or {}).items()}


def _kallsyms(names):
    """{name: (type letter, address)} from the first /proc/kallsyms line of each of
    names, or None when the file cannot be read."""
    wanted, found = set(names), {}
    try:
        with open("/proc/kallsyms") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 3 and fields[2] in wanted and fields[2] not in found:
                    found[fields[2]] = (fields[1], int(fields[0], 16))
    except OSError:
        return None
    return found


def pmu_type(name):
    """The perf_event_attr.type number of a dynamic PMU such as "kprobe", "uprobe" or
    "tracepoint" (from sysfs), or None when this kernel has no such PMU."""
    lines = _read_lines(os.path.join(PMU_DIR, name, "type"))
    try:
        return int(lines[0]) if lines else None
    except ValueError:
        return None


def filesystem_supported(fstype):
    """Whether the kernel can mount fstype (listed in /proc/filesystems)."""
    for line in _read_lines("/proc/filesystems") or ():
        if line.split() and line.split()[-1] == fstype:
            return True
    return False


def mount_point(fstype):
    """Where a filesystem of type fstype (e.g. "debugfs", "securityfs") is mounted in
    this mount namespace, or None."""
    for line in _read_lines("/proc/self/mounts") or ():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == fstype:
            return fields[1].replace("\\040", " ")
    return None


def tracepoint_exists(tracefs, category, name):
    """Whether tracefs (a mount path) has the trace event category:name."""
    return os.path.isfile(os.path.join(tracefs, "events", category, name, "id"))


def file_lists_symbol(path, symbol, column):
    """Whether a whitespace-separated text file has symbol in the given column (lines
    with fewer columns are skipped); None when the file cannot be read.

    Serves tracefs available_filter_functions (column 0: the functions ftrace can hook),
    debugfs kprobes/blacklist (column 1: "ADDR-ADDR<TAB>symbol") and
    error_injection/list (column 0: the functions bpf_override_return may override).
    """
    try:
        with open(path) as f:
            for line in f:
                fields = line.split()
                if len(fields) > column and fields[column] == symbol:
                    return True
    except OSError:
        return None
    return False


def lockdown_status():
    """(mode, source): the kernel lockdown mode and where it was learnt.

    securityfs states the current mode. Without it mounted, the mode the kernel was
    booted with is the strongest of CONFIG_LOCK_DOWN_KERNEL_FORCE_* and ``lockdown=``
    on the command line; it can only have been raised since, so that is a lower
    bound. (None, None) when nothing tells.
    """
    if os.access("/sys/kernel/security/lockdown", os.R_OK):
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


# ---- attach: perf PMUs, kprobe targets, cgroups, tracing refusals (pybpf.attach) ----

CGROUP2_SUPER_MAGIC = 0x63677270


def pmu_format(pmu, field):
    """Where a dynamic PMU wants field (e.g. the kprobe PMU's "retprobe") in
    perf_event_attr: (attr member, first bit, last bit) from sysfs ``format/FIELD``
    ("config:0" -> ("config", 0, 0), "config:32-63" -> ("config", 32, 63)), or None
    when the PMU or the field does not exist."""
    lines = _read_lines(os.path.join(PMU_DIR, pmu, "format", field))
    m = re.match(r"(\w+):(\d+)(?:-(\d+))?$", lines[0].strip()) if lines else None
    if not m:
        return None
    return m.group(1), int(m.group(2)), int(m.group(3) or m.group(2))


def kprobe_blacklisted(function):
    """Whether function is on the kernel's kprobe blacklist (debugfs
    kprobes/blacklist), or None when debugfs is not mounted (it is not mounted here:
    debugfs exposes much more than this list)."""
    debugfs = mount_point("debugfs")
    if debugfs is None:
        return None
    return file_lists_symbol(os.path.join(debugfs, "kprobes", "blacklist"), function, 1)


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
