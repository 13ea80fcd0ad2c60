"""The kernel side of event readers: shared ring memory, epoll, BPF output perf events.

Two kinds of ring carry events from BPF programs to user space, and both are read
by mapping kernel memory into this process and following the producer's position:

- a BPF_MAP_TYPE_RINGBUF map: page 0 holds the consumer position (ours to write,
  mapped read-write); from page 1 on the producer position and then the data area,
  which the kernel maps *twice* back to back, so a record crossing the end of the
  ring reads as one contiguous run of bytes. Only that part is read-only: the kernel
  refuses a writable mapping of anything but the consumer page.
- a perf event ring (one per CPU, perf_event_open of PERF_COUNT_SW_BPF_OUTPUT): one
  control page (struct perf_event_mmap_page, with data_head and data_tail) then
  2^n data pages, mapped once, so records crossing the end come in two pieces.

Memory ordering. The producer (a BPF program, maybe on another CPU) publishes a
position with a release store after writing the record, and reads our consumer
position to know what it may overwrite. We must therefore load the producer's
position (and a ring buffer record's header) with acquire semantics and store ours
with release semantics. On x86 every aligned load is an acquire and every aligned
store a release (TSO), so plain accesses are correct there as long as each is ONE
instruction: loads go through ``struct.unpack_from`` (a fixed-size memcpy, one load)
and stores through a ctypes ``c_uint64`` cell (one store), never through
``struct.pack_into``, which zero-fills its target before writing (see
:class:`Words`). Python statements are not reordered by a compiler: each access is a
separate call into C. Elsewhere we call
libatomic's ``__atomic_load_N``/``__atomic_store_8`` with the acquire/release orders;
without libatomic we fall back to plain accesses with a RuntimeWarning, because a
weakly ordered CPU may then show a position before the bytes it covers.

Mappings are made with libc's mmap() (not Python's mmap module) because we need the
address for the atomic calls and read-only mappings; :class:`Mapping` owns each one
and unmaps it exactly once. Nothing here hands a view of the memory to callers: they
get copies, so no reference can outlive the unmap.
"""
import ctypes
import errno
import functools
import mmap as _mmap
import os
import platform
import select
import struct
import threading
import warnings

from ..errors import BPFError, ClosedError, InputError
from . import perf

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

_libc = ctypes.CDLL(None, use_errno=True)
_mmap_call = _libc.mmap
_mmap_call.restype = ctypes.c_void_p
_mmap_call.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_munmap_call = _libc.munmap
_munmap_call.restype = ctypes.c_int
_munmap_call.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_MAP_FAILED = ctypes.c_void_p(-1).value

U32 = struct.Struct("=I")
U64 = struct.Struct("=Q")


class Mapping:
    """One shared mmap(2) of a kernel object's memory, unmapped exactly once.

    ``view`` is a memoryview of the whole region (read-only unless writable). It is
    released before the unmap; callers only copy out of it and never keep slices.
    """

    address = 0  # so __del__ is safe when __init__ failed

    def __init__(self, fd, length, offset=0, writable=False, what="ring", hints=None):
        if length <= 0 or length % PAGE_SIZE or offset % PAGE_SIZE:
            raise InputError(f"{what}: mmap length and offset must be positive multiples "
                             f"of the page size ({PAGE_SIZE}), got {length} at {offset}")
        prot = _mmap.PROT_READ | (_mmap.PROT_WRITE if writable else 0)
        addr = _mmap_call(None, length, prot, _mmap.MAP_SHARED, fd, offset)
        if addr in (None, _MAP_FAILED):
            err = ctypes.get_errno()
            raise BPFError("mmap", err, f"{length} bytes of the {what} at offset {offset}",
                           hint=(hints or {}).get(err))
        self.address, self.length = addr, length
        view = memoryview((ctypes.c_char * length).from_address(addr)).cast("B")
        self.view = view if writable else view.toreadonly()

    @property
    def closed(self):
        return not self.address

    def close(self):
        addr, self.address = self.address, 0
        if addr:
            self.view.release()
            self.view = None
            _munmap_call(addr, self.length)

    def __del__(self):
        if self.address:
            warnings.warn(f"unclosed mapping of {self.length} bytes", ResourceWarning,
                          source=self)
            self.close()


# -- ordered access to shared words ------------------------------------------------

_ACQUIRE, _RELEASE = 2, 3  # __ATOMIC_ACQUIRE, __ATOMIC_RELEASE
_TSO_MACHINES = ("x86_64", "amd64", "i386", "i686")


def _load_libatomic():
    for name in ("libatomic.so.1", "libatomic.so"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.__atomic_load_4.restype = ctypes.c_uint32
        lib.__atomic_load_4.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.__atomic_load_8.restype = ctypes.c_uint64
        lib.__atomic_load_8.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.__atomic_store_8.restype = None
        lib.__atomic_store_8.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int]
        return lib
    return None


class Words:
    """Acquire loads and release stores of aligned words in a :class:`Mapping`.

    ``load32(off)`` and ``load64(off)`` return a 1-tuple (so that the plain form is a
    bare C call, no Python frame per record); ``storer64(off)`` returns a function
    storing a u64 at that offset.

    This class is the plain-access form, correct on x86 (see the module docstring);
    :func:`words` picks the libatomic form on other CPUs. Stores go through a ctypes
    cell, one 8-byte store, and never through ``struct.pack_into``: it zero-fills
    the target before writing the value, and a kernel reading a consumer position
    of 0 in that window computes the free space from 0 and overwrites records not
    yet read (seen in perf rings under load before this was fixed; a ring buffer
    map's producer instead sees a full ring and drops records).
    """

    def __init__(self, mapping):
        self._address = mapping.address
        self.load32 = functools.partial(U32.unpack_from, mapping.view)
        self.load64 = functools.partial(U64.unpack_from, mapping.view)

    def storer64(self, off):
        cell = ctypes.c_uint64.from_address(self._address + off)
        return functools.partial(setattr, cell, "value")


class _AtomicWords(Words):
    def __init__(self, mapping):  # pylint: disable=super-init-not-called
        self._address = addr = mapping.address
        self.load32 = lambda off: (_atomic.__atomic_load_4(addr + off, _ACQUIRE),)
        self.load64 = lambda off: (_atomic.__atomic_load_8(addr + off, _ACQUIRE),)

    def storer64(self, off):
        addr = self._address + off
        return lambda value: _atomic.__atomic_store_8(addr, value, _RELEASE)


_atomic = None
_warned = False


def words(mapping):
    """Ordered word access to mapping for this CPU (see the module docstring)."""
    global _atomic, _warned
    if platform.machine().lower() in _TSO_MACHINES:
        return Words(mapping)
    if _atomic is None:
        _atomic = _load_libatomic() or False
    if _atomic:
        return _AtomicWords(mapping)
    if not _warned:
        _warned = True
        warnings.warn(f"libatomic is not installed: on {platform.machine()} the event "
                      f"readers use plain loads and stores, which a weakly ordered CPU "
                      f"may reorder; install libatomic1", RuntimeWarning, stacklevel=3)
    return Words(mapping)


# -- BPF ring buffer maps ------------------------------------------------------------

RINGBUF_CONSUMER_POS = 0  # in the consumer mapping
RINGBUF_PRODUCER_POS = 0  # in the producer mapping
RINGBUF_DATA = PAGE_SIZE  # the data area's offset in the producer mapping


def map_ringbuf(fd, size):
    """Map a RINGBUF map of ``size`` data bytes: (consumer page read-write, producer
    page + data area twice, read-only)."""
    consumer = Mapping(fd, PAGE_SIZE, 0, writable=True, what="ring buffer consumer page")
    try:
        producer = Mapping(fd, PAGE_SIZE + 2 * size, PAGE_SIZE,
                           what="ring buffer producer page and data")
    except BaseException:
        consumer.close()
        raise
    return consumer, producer


# -- perf event rings ---------------------------------------------------------------

# struct perf_event_mmap_page: the fields a reader uses, by byte offset.
PERF_DATA_HEAD, PERF_DATA_TAIL, PERF_DATA_OFFSET, PERF_DATA_SIZE = 1024, 1032, 1040, 1048
PERF_HEADER = struct.Struct("=IHH")  # struct perf_event_header: type, misc, size


def open_bpf_output(cpu, wakeup_events=1, wakeup_bytes=0):
    """perf_event_open() a PERF_COUNT_SW_BPF_OUTPUT event on cpu (any process), the
    target of bpf_perf_event_output() for that CPU. The kernel wakes pollers every
    ``wakeup_events`` samples, or once ``wakeup_bytes`` bytes are waiting if given
    (the attr's watermark flag makes wakeup_events count bytes)."""
    attr = perf.PerfEventAttr(type=perf.PERF_TYPE_SOFTWARE,
                              config=perf.PERF_COUNT_SW_BPF_OUTPUT, sample_period=1,
                              sample_type=perf.PERF_SAMPLE_RAW,
                              watermark=1 if wakeup_bytes else 0,
                              wakeup_events=wakeup_bytes or wakeup_events)
    return perf.open_event(attr, pid=-1, cpu=cpu, detail=f"BPF output event on CPU {cpu}")


def map_perf_ring(fd, data_pages):
    """Map a perf event's control page and ``data_pages`` (a power of 2) data pages
    read-write: a writable mapping tells the kernel we publish data_tail, so it never
    overwrites unread records (it counts them as lost instead)."""
    if data_pages < 1 or data_pages & (data_pages - 1):
        raise InputError(f"a perf ring needs a power-of-2 number of data pages, "
                         f"got {data_pages}")
    limit = _read_int("/proc/sys/kernel/perf_event_mlock_kb")
    return Mapping(fd, (1 + data_pages) * PAGE_SIZE, 0, writable=True,
                   what="perf event ring", hints={errno.EPERM: (
                       f"perf rings beyond kernel.perf_event_mlock_kb ({limit} KiB per "
                       f"user) need CAP_IPC_LOCK: run as root or use fewer pages")})


def _read_int(path):
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


# -- waiting -------------------------------------------------------------------------

class Epoll:
    """An epoll instance over event fds, each registered with an integer token.

    close() may come from another thread while one waits. Closing the fds under a
    waiter is not safe: epoll_wait() without a timeout sleeps on even after its fd is
    closed, and the fd number may be reused meanwhile. So a wake-up pipe is part of the
    set, close() writes to it and the last waiter out closes the fds; with no waiter,
    close() closes them at once.
    """

    def __init__(self):
        self._ep = select.epoll()
        self._tokens = {}
        self._state = threading.Lock()  # guards _waiters and _closing
        self._waiters, self._closing = 0, False
        self._wake_r = self._wake_w = -1
        try:
            self._wake_r, self._wake_w = os.pipe()  # close-on-exec, as Python makes fds
            os.set_blocking(self._wake_w, False)
            self._ep.register(self._wake_r, select.EPOLLIN)
        except BaseException:
            self._release()
            raise

    def fileno(self):
        return self._ep.fileno()

    def add(self, fd, token):
        with self._state:
            if self._closing:
                raise ClosedError("the event reader is closed")
            self._ep.register(fd, select.EPOLLIN)
            self._tokens[fd] = token

    def wait(self, timeout=None):
        """Tokens of the fds that are readable; waits up to timeout seconds (None:
        forever, 0: not at all), or until close() (then: ClosedError). Signals do not
        end the wait early (PEP 475)."""
        with self._state:
            if self._closing:
                raise ClosedError("the event reader is closed")
            self._waiters += 1
        try:
            events = self._ep.poll(-1 if timeout is None else timeout)
        finally:
            with self._state:
                self._waiters -= 1
                if self._closing and not self._waiters:
                    self._release()
        tokens = [self._tokens.get(fd) for fd, _ in events]
        if None in tokens:  # the wake-up pipe (it has no token): close() was called
            raise ClosedError("the event reader is closed")
        return tokens

    def close(self):
        """Close the epoll fd and the wake-up pipe, now or (when another thread is
        waiting) as soon as that wait ends, which this makes happen at once."""
        with self._state:
            if self._closing:
                return
            self._closing = True
            if self._waiters:
                os.write(self._wake_w, b"!")
            else:
                self._release()

    def _release(self):
        self._ep.close()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
