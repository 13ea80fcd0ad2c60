"""The base of every Python object that owns a kernel file descriptor.

A map, program, link or perf event is released when its last fd closes, so the fd's
lifetime *is* the object's lifetime. Each owner closes its fd exactly once: on
``close()``, at the end of a ``with`` block, or (with a ResourceWarning, like an
unclosed file) when garbage-collected.
"""
import os
import warnings

from . import args
from .errors import ClosedError, InputError
from .kernel import bpf as kbpf
from .kernel import mounts


class FdObject:
    """Owns one file descriptor."""

    _fd = -1  # so __del__ is safe when __init__ failed early

    def __init__(self, fd):
        self._fd = fd

    @property
    def fd(self):
        """The open file descriptor; ClosedError after close()."""
        if self._fd < 0:
            raise ClosedError(f"{self._describe()} is closed")
        return self._fd

    def fileno(self):
        return self.fd

    @property
    def closed(self):
        return self._fd < 0

    def close(self):
        """Release the fd; closing twice is harmless."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            kbpf.close(fd)

    def __enter__(self):
        self.fd  # refuse to enter a closed object
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if self._fd >= 0:
            warnings.warn(f"unclosed {self._describe()}", ResourceWarning, source=self)
            self.close()

    def _describe(self):
        return type(self).__name__


_NOUNS = {"map": "map", "prog": "program", "link": "link"}


class Pinnable(FdObject):
    """A kernel BPF object (map, program, link): it has a kernel id, reports info(),
    and can outlive its fd by being pinned in a bpffs directory."""

    _id = None

    @property
    def id(self):
        """The kernel's id for this object (what bpftool and ``pybpf ... list`` show)."""
        if self._id is None:
            self._id = self.info().id
        return self._id

    def pin(self, path):
        """Pin at path (on a bpffs mount); the object stays loaded until unpinned."""
        kbpf.obj_pin(self.fd, args.path(path, "a pin path"))

    @staticmethod
    def unpin(path):
        """Remove a pin (the object goes away once nothing else holds it)."""
        unpin(path)


def open_pinned(path, kind, file_flags=0):
    """The fd of the object of kind ("map", "prog", "link") pinned at path.

    What the kernel's bare EACCES or EINVAL would not say is refused first: a path
    outside bpffs or a directory is no pin; and one of another kind (a pinned
    program opened as a map) is refused with a message naming both."""
    noun = _NOUNS[kind]
    path = args.path(path, "a pin path")
    if os.path.lexists(path):
        if not mounts.is_bpffs(path):
            raise InputError(f"{path} is not on a bpf filesystem, so it is not a pin")
        if os.path.isdir(path):
            raise InputError(f"{path} is a directory in bpffs, not a pinned {noun}")
    fd = kbpf.obj_get(path, file_flags)
    try:
        found = kbpf.object_kind(fd)
    except BaseException:
        kbpf.close(fd)
        raise
    if found != kind:
        kbpf.close(fd)
        raise InputError(f"{path} is a pinned "
                         f"{_NOUNS.get(found, 'BPF object of another kind')}, not a {noun}")
    return fd


def pin_all(pins):
    """Pin every (object, path) of pins: all of them, or none.

    Paths are resolved first (symlinks and ``..``), and the directories they need are
    created below the deepest one that exists, which must be on bpffs: that is checked
    before anything is created, so a refused call leaves no directory behind. A path
    that exists already is refused before anything is pinned. If a pin fails anyway
    (another process pinned the same path meanwhile), what this call pinned and the
    directories it created are removed, and nothing else: a path someone else pinned
    stays theirs.
    """
    pins = [(obj, os.path.realpath(path)) for obj, path in pins]
    taken = [path for _, path in pins if os.path.lexists(path)]
    if taken:
        raise InputError(f"already pinned: {', '.join(taken)}; unpin or pin somewhere else")
    missing = []  # directories to create, parents first
    for _, path in pins:
        missing += [d for d in _missing_dirs(os.path.dirname(path)) if d not in missing]
    made = []  # (path, inode) of what this call created, to remove exactly those
    try:
        for directory in missing:
            os.mkdir(directory)
            made.append((directory, os.lstat(directory).st_ino))
        for obj, path in pins:
            obj.pin(path)
            made.append((path, os.lstat(path).st_ino))
    except BaseException:
        for path, inode in reversed(made):
            _remove_own(path, inode)
        raise


def _missing_dirs(directory):
    """The directories from the deepest existing ancestor of directory down to it,
    refusing an ancestor that is not a directory on bpffs."""
    missing = []
    while not os.path.lexists(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    if not os.path.isdir(directory):
        raise InputError(f"cannot pin below {directory!r}: it is not a directory")
    if not mounts.is_bpffs(directory):
        raise InputError(f"cannot pin below {directory!r}: it is not on a bpf filesystem; "
                         f"pins live in bpffs (mount it with `mount -t bpf bpf "
                         f"{mounts.BPFFS_DEFAULT}` and pin below it)")
    return missing[::-1]


def _remove_own(path, inode):
    """Remove a pin or directory this process made, unless it is now someone else's
    (another inode) or, for a directory, holds someone else's pins."""
    try:
        if os.lstat(path).st_ino != inode:
            return
        if os.path.isdir(path):
            os.rmdir(path)
        else:
            os.unlink(path)
    except OSError:
        pass  # gone already, or not empty: either way not ours to remove


def unpin(path):
    """Remove the pin at path, refusing paths outside bpffs (never unlink a real file).

    A missing pin in a bpffs directory is FileNotFoundError, not "not on bpffs"."""
    path = args.path(path, "a pin path")
    where = path if os.path.lexists(path) else os.path.dirname(os.path.abspath(path))
    if not mounts.is_bpffs(where):
        raise InputError(f"{path!r} is not on a bpf filesystem: not a pin")
    kbpf.unlink(path)
