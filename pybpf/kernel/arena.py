"""Writing into a BPF arena through a mapping at the address the arena fixes.

An arena created with map_extra fixes its user address range there, and the kernel
maps it only at that address (the mapping must also span the whole arena). Python's
mmap cannot ask for an address, so this goes through libc's mmap(2), with
MAP_FIXED_NOREPLACE rather than libbpf's MAP_FIXED: an address already used in this
process is an error naming it, never a silently replaced mapping.
"""
import ctypes
import errno as _errno
import mmap as _mmap

from ..errors import BPFError
from .libc import LIBC, errno

MAP_FIXED_NOREPLACE = 0x100000  # Linux 4.17+
_MAP_FAILED = ctypes.c_void_p(-1).value

_mmap_fn = LIBC.mmap
_mmap_fn.restype = ctypes.c_void_p
_mmap_fn.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                     ctypes.c_int, ctypes.c_long)
_munmap = LIBC.munmap
_munmap.restype = ctypes.c_int
_munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)


def write(fd, length, address, offset, data):
    """Map the arena fd (length bytes, at address, or where the kernel likes when
    address is 0), copy data to offset, and unmap it. The first mapping of an arena
    without map_extra fixes its address range; the pages written stay in the arena."""
    if not address:
        view = _mmap.mmap(fd, length, _mmap.MAP_SHARED, _mmap.PROT_READ | _mmap.PROT_WRITE)
        try:
            view[offset:offset + len(data)] = data
        finally:
            view.close()
        return
    got = _mmap_fn(address, length, _mmap.PROT_READ | _mmap.PROT_WRITE,
                   _mmap.MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0)
    if got in (None, _MAP_FAILED):
        raise BPFError("mmap", errno(), hint=f"the arena must be mapped at {address:#x} "
                       f"(its map_extra), which this process may already use")
    try:
        if got != address:  # kernels before 4.17 take the flag as a mere hint
            raise BPFError("mmap", _errno.EINVAL, hint=f"the kernel mapped the arena at {got:#x}, "
                           f"not at {address:#x} (its map_extra)")
        ctypes.memmove(got + offset, bytes(data), len(data))
    finally:
        _munmap(got, length)
