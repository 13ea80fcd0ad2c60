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

BPF_FS_MAGIC = 0xCAFE4A11
TRACEFS_MAGIC = 0x74726163
BPFFS_DEFAULT = "/sys/fs/bpf"
TRACEFS_PATHS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")

CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39


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
        raise OSError(err, os.strerror(err), path)
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
        raise ValueError(f"cannot pin at {path!r}: directory {parent!r} does not exist "
                         f"(create it inside a bpffs mount such as {BPFFS_DEFAULT})")
    if not is_bpffs(parent):
        raise ValueError(
            f"cannot pin at {path!r}: {parent!r} is not on a bpf filesystem; pins live in "
            f"bpffs (mount it with `mount -t bpf bpf {BPFFS_DEFAULT}` and pin below it)")


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
        raise OSError(err, f"mount -t {fstype} {source} {target}: {os.strerror(err)}")


def fdinfo(fd):
    """/proc/self/fdinfo/FD as a dict: the kernel reports there what BPF_OBJ_GET_INFO
    does not, e.g. whether a map is frozen, and which kind of object an fd is."""
    out = {}
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key.strip()] = value.strip()
    return out
