"""Pseudo filesystems BPF needs, told apart by their statfs magic: bpffs (pins),
tracefs (trace events, probe entries), debugfs and securityfs (what the probe reads),
cgroup2 (cgroup programs).

Nothing is mounted implicitly: :func:`mount` is called by the code that needs a
filesystem (tracefs before a tracepoint's id is read) or by an explicit request.
"""
import ctypes
import errno
import os

from ..errors import BPFError, InputError
from .files import read_lines
from .libc import LIBC

# statfs f_type values, <linux/magic.h>
BPF_FS_MAGIC = 0xCAFE4A11
TRACEFS_MAGIC = 0x74726163
CGROUP1_SUPER_MAGIC = 0x27E0EB
CGROUP2_SUPER_MAGIC = 0x63677270

BPFFS_DEFAULT = "/sys/fs/bpf"
TRACEFS_PATHS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
DEBUGFS_PATH = "/sys/kernel/debug"
SECURITYFS_PATH = "/sys/kernel/security"
CGROUP2_DEFAULT = "/sys/fs/cgroup/unified"


class _Statfs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("_rest", ctypes.c_byte * 112)]


def fs_type(path):
    """statfs(2) f_type of the filesystem holding path (the magic numbers above)."""
    buf = _Statfs()
    if LIBC.statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
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
    if LIBC.mount(source.encode(), target.encode(), fstype.encode(), 0, None) != 0:
        err = ctypes.get_errno()
        raise BPFError(f"mount -t {fstype} {source} {target}", err)


def umount(target):
    """umount(2) what mount() mounted at target; needs root."""
    if LIBC.umount2(target.encode(), 0) != 0:
        err = ctypes.get_errno()
        raise BPFError(f"umount {target}", err)


def filesystem_supported(fstype):
    """Whether the kernel can mount fstype (listed in /proc/filesystems)."""
    for line in read_lines("/proc/filesystems") or ():
        if line.split() and line.split()[-1] == fstype:
            return True
    return False


def mount_point(fstype):
    """Where a filesystem of type fstype (e.g. "debugfs", "securityfs") is mounted in
    this mount namespace, or None."""
    for line in read_lines("/proc/self/mounts") or ():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == fstype:
            return fields[1].replace("\\040", " ")
    return None
