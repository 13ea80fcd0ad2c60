"""The base of every Python object that owns a kernel file descriptor.

A map, program, link or perf event is released when its last fd closes, so the fd's
lifetime *is* the object's lifetime. Each owner closes its fd exactly once: on
``close()``, at the end of a ``with`` block, or (with a ResourceWarning, like an
unclosed file) when garbage-collected.
"""
import os
import warnings

from .errors import ClosedError, InputError
from .kernel import bpf as kbpf
from .kernel import system


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

    @staticmethod
    def _open_pin(path, kind, noun, file_flags=0):
        """The fd of the object pinned at path, refusing one of another kind (a
        pinned program opened as a map) with a message naming both."""
        fd = kbpf.obj_get(path, file_flags)
        found = kbpf.object_kind(fd)
        if found != kind:
            kbpf.close(fd)
            raise InputError(f"{path} is a pinned {found or 'object'}, not a {noun}")
        return fd

    def pin(self, path):
        """Pin at path (on a bpffs mount); the object stays loaded until unpinned."""
        kbpf.obj_pin(self.fd, path)

    @staticmethod
    def unpin(path):
        """Remove a pin (the object goes away once nothing else holds it)."""
        unpin(path)


def unpin(path):
    """Remove the pin at path, refusing paths outside bpffs (never unlink a real file).

    A missing pin in a bpffs directory is FileNotFoundError, not "not on bpffs"."""
    where = path if os.path.lexists(path) else os.path.dirname(os.path.abspath(path))
    if not system.is_bpffs(where):
        raise InputError(f"{path!r} is not on a bpf filesystem: not a pin")
    kbpf.unlink(path)
