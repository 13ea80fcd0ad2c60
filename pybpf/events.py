"""Reading the events BPF programs send: ring buffer maps and perf event arrays.

A BPF program hands records to user space through one of two kernel rings:

- :class:`RingBuffer` reads BPF_MAP_TYPE_RINGBUF maps (``bpf_ringbuf_output``,
  ``bpf_ringbuf_reserve``/``submit``/``discard``, kernel 5.8+): one ring shared by all
  CPUs, records in commit order, exact record lengths.
- :class:`PerfBuffer` reads BPF_MAP_TYPE_PERF_EVENT_ARRAY maps
  (``bpf_perf_event_output``): one perf event ring per CPU, which this reader opens
  and stores in the map; records arrive per CPU, and a full ring drops samples and
  reports how many (see :attr:`PerfBuffer.lost`).

Both map the rings into this process and read records in place (no system call per
record), wait with epoll, and share one API::

    with RingBuffer(events_map, record_type=Event) as rb:
        for event in rb.read(timeout=1.0):  # stops after 1 s without a record
            ...

    rb = RingBuffer(events_map, callback=handle)
    while running:
        rb.poll(timeout=0.5)                # handle() each record; returns the count

``record_type`` decodes each record: a ctypes type, a struct format or an int (that
many bytes), which read the start of the record (a shorter record is an error), or
any callable taking the record's bytes. Without it records are ``bytes``. Records are
always copies: nothing a callback keeps points into the shared ring.

Each reader owns its mappings and epoll fd (and for perf, the perf event fds) and
releases them on ``close()``. The map itself stays the caller's. A reader may be used
from several threads: one lock serialises reading, so close() waits for the record
being delivered instead of unmapping memory under it, then ends a waiting poll().
Read each ring with one reader: two would each consume part of it.

docs/events.md has the ring layouts, the pitfalls and throughput figures.
"""
import threading
import time
import warnings

from . import codec as _codec
from .errors import BPFError, ClosedError, Error, InputError, UnsupportedError
from .kernel import bpf as kbpf
from .kernel import ring as kring
from .kernel.cpus import online_cpus, possible_cpus
from .kernel.constants import (BPF_RINGBUF_BUSY_BIT, BPF_RINGBUF_DISCARD_BIT,
                               BPF_RINGBUF_HDR_SZ, PERF_RECORD_LOST, PERF_RECORD_SAMPLE,
                               MapType)



class CorruptRingError(Error, RuntimeError):
    """A ring's header or record says something no kernel writes: the map is shared
    with a writer that is not the kernel, or the mapping is not what it claims."""


_NOTHING = object()  # read(): no record ready (None may be a decoded record)
_LEN_MASK = ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT) & 0xFFFFFFFF


def _decoder(record_type):
    """bytes -> record for a record_type (see the module docstring); None: bytes."""
    if record_type is None:
        return None
    try:
        codec = _codec.make_codec(record_type, what="record_type")
    except TypeError:
        if callable(record_type):
            return record_type
        raise UnsupportedError(f"record_type must be a ctypes type, a struct format, a size in "
                               f"bytes or a callable taking bytes, not {record_type!r}") from None
    size, decode, name = codec.size, codec.decode, codec._name()

    def decode_prefix(data):
        if len(data) < size:
            raise InputError(f"a {len(data)}-byte record is shorter than record_type "
                             f"{name} ({size} bytes)")
        return decode(data if len(data) == size else data[:size])
    return decode_prefix


def _check_map(map_, expected, reader, other, callback):
    """Refuse what reader cannot read: other names the reader for the other ring type."""
    if callback is not None and not callable(callback):
        raise InputError(f"callback is a function taking a record, not {callback!r}")
    found = getattr(map_, "type", None)
    if found != expected:
        kind = getattr(found, "name", type(map_).__name__)
        other_type = MapType.PERF_EVENT_ARRAY if expected == MapType.RINGBUF else MapType.RINGBUF
        raise UnsupportedError(f"{reader} reads {expected.name} maps, not {kind}"
                               + (f"; use {other}" if found == other_type else ""))
    map_.fd  # refuse a closed map now, not at the first poll


class _Reader:
    """What both readers share: rings, one epoll over them, a lock, waiting, close."""

    _rings = ()
    _closed = True  # until __init__ has built the parts close() releases

    def __init__(self):
        self._lock = threading.RLock()
        self._rings = []
        self._epoll = kring.Epoll()
        self._closed = False

    # -- reading ------------------------------------------------------------------

    def consume(self):
        """Deliver every record already in the rings to the callbacks, without
        waiting; returns how many were delivered."""
        with self._lock:
            self._check_open()
            count = 0
            for ring in self._rings:
                deliver = self._deliverer(ring)
                for item in self._items(ring):
                    count += 1
                    deliver(item)
                    if self._closed:  # the callback closed us: the rings are unmapped
                        return count
            return count

    def poll(self, timeout=None):
        """Wait up to ``timeout`` seconds (None: until a record comes, 0: not at all)
        for records, deliver them to the callbacks and return how many; 0 when the
        time ran out, or when another thread closed the reader during the wait."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            count = self.consume()
            remaining = None if deadline is None else deadline - time.monotonic()
            if count or (remaining is not None and remaining <= 0):
                return count
            if not self._wait(remaining) and self._closed:
                return 0
            # Woken or timed out: consume again. A record that is still being written
            # wakes us without being readable, hence a loop rather than one retry.

    def read(self, timeout=None):
        """Iterate over records as they arrive (the callbacks are not called); stops
        once ``timeout`` seconds pass without one (None: never by itself), or when the
        reader is closed (from another thread, or from the loop's body).

        Each record is consumed just before it is yielded, so leaving the loop early
        loses nothing."""
        self._check_open()
        while True:
            got = False
            for ring in list(self._rings):
                items = self._items(ring)
                while True:
                    with self._lock:
                        if self._closed:  # never resume a generator over unmapped memory
                            return
                        item = next(items, _NOTHING)
                    if item is _NOTHING:
                        break
                    got = True
                    yield item
            if not got and not self._wait(timeout):
                return

    def _wait(self, timeout):
        """True when a ring became readable within timeout seconds; False when the
        time ran out or the reader was closed meanwhile."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                if self._epoll.wait(remaining):
                    return True
            except ClosedError:
                return False
            if deadline is not None and time.monotonic() >= deadline:
                return False
        return False

    def _check_open(self):
        if self._closed:
            raise ClosedError(f"{type(self).__name__} is closed")

    def fileno(self):
        """The epoll fd: readable when a ring has records (for selectors/asyncio)."""
        self._check_open()
        return self._epoll.fileno()

    # -- lifetime -----------------------------------------------------------------

    @property
    def closed(self):
        return self._closed

    def close(self):
        """Unmap every ring and close the fds this reader opened; closing twice is
        harmless. From another thread: waits for records being delivered to finish,
        and ends a poll() or read() that is waiting."""
        lock = getattr(self, "_lock", None)
        if lock is None:  # __init__ failed before building anything
            return
        with lock:
            if self._closed:
                return
            self._closed = True
            errors = []
            for ring in self._rings:
                try:
                    ring.close()
                except Exception as e:  # release the rest before reporting
                    errors.append(e)
            self._epoll.close()  # also ends waits in other threads (they hold no lock)
            if errors:
                raise errors[0]

    def __enter__(self):
        self._check_open()
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if not self._closed:
            warnings.warn(f"unclosed {type(self).__name__}", ResourceWarning, source=self)
            self.close()

    def __repr__(self):
        state = "closed" if self._closed else f"{len(self._rings)} ring(s)"
        return f"<{type(self).__name__} {state}>"


# -- ring buffer maps -------------------------------------------------------------------

class _Ring:
    """One RINGBUF map's mappings and our consumer position in it."""

    map = None  # the RingBufMap, when opened from one

    def __init__(self, size, consumer, producer, callback=None, decode=None):
        self.size, self.mask = size, size - 1
        self.consumer, self.producer = consumer, producer
        self.callback, self.decode = callback, decode
        self.cons_words = kring.words(consumer)
        self.prod_words = kring.words(producer)
        self.view = producer.view
        # Start where the last reader stopped (the kernel keeps the position).
        self.pos = self.cons_words.load64(kring.RINGBUF_CONSUMER_POS)[0]
        self.prod = self.pos

    @classmethod
    def open(cls, map_, callback, record_type):
        decode = _decoder(record_type)  # refuse a bad type before mapping anything
        consumer, producer = kring.map_ringbuf(map_.fd, map_.max_entries)
        ring = cls(map_.max_entries, consumer, producer, callback, decode)
        ring.map = map_
        return ring

    def records(self):
        """Yield each committed record's bytes (skipping discarded ones) until none
        is ready. The consumer position is published (release store) before a record
        is yielded, so it counts as consumed even if its handler fails."""
        view, mask, limit = self.view, self.mask, self.size - BPF_RINGBUF_HDR_SZ
        load32, load64 = self.prod_words.load32, self.prod_words.load64
        publish = self.cons_words.storer64(kring.RINGBUF_CONSUMER_POS)
        pos, prod = self.pos, self.prod
        while True:
            if pos >= prod:
                prod = self.prod = load64(kring.RINGBUF_PRODUCER_POS)[0]
                if pos >= prod:
                    return
            off = kring.RINGBUF_DATA + (pos & mask)
            header = load32(off)[0]  # acquire: the record's bytes are visible
            if header & BPF_RINGBUF_BUSY_BIT:
                return  # reserved but not yet submitted: records stay in order
            length = header & _LEN_MASK
            if length > limit:
                raise CorruptRingError(f"corrupt ring buffer record at position {pos}: "
                                       f"length {length} exceeds the ring's {self.size} bytes")
            pos += (length + BPF_RINGBUF_HDR_SZ + 7) & ~7
            self.pos = pos
            if header & BPF_RINGBUF_DISCARD_BIT:
                publish(pos)
                continue
            start = off + BPF_RINGBUF_HDR_SZ  # the double mapping: never wraps
            data = view[start:start + length].tobytes()
            publish(pos)
            yield data

    def close(self):
        self.consumer.close()
        self.producer.close()


class RingBuffer(_Reader):
    """Reader of BPF ring buffer maps (pybpf.maps.RingBufMap).

    ``callback(record)`` receives each record in :meth:`poll`/:meth:`consume`;
    :meth:`read` iterates instead. :meth:`add` puts more ring buffer maps, each with its
    own callback and record_type, under the same poll.
    """

    def __init__(self, map, callback=None, record_type=None):  # noqa: A002 - the API's word
        super().__init__()
        try:
            self.add(map, callback, record_type)
        except BaseException:
            self.close()
            raise

    def add(self, map, callback=None, record_type=None):  # noqa: A002
        """Read another RINGBUF map through this reader."""
        with self._lock:
            self._check_open()
            _check_map(map, MapType.RINGBUF, "RingBuffer", "PerfBuffer", callback)
            if any(ring.map is map for ring in self._rings):
                raise InputError(f"{map!r} is already read by this RingBuffer")
            ring = _Ring.open(map, callback, record_type)
            try:
                self._epoll.add(map.fd, len(self._rings))
            except BaseException:
                ring.close()
                raise
            self._rings.append(ring)

    @staticmethod
    def _deliverer(ring):
        if ring.callback is None:
            raise InputError("poll() and consume() hand records to a callback: give "
                             "RingBuffer(..., callback=...) or iterate with read()")
        return ring.callback

    @staticmethod
    def _items(ring):
        if ring.decode is None:
            return ring.records()
        return map(ring.decode, ring.records())


# -- perf event arrays -------------------------------------------------------------------

class _PerfRing:
    """One CPU's BPF output perf event: its fd, its mapped ring and our tail."""

    def __init__(self, cpu, pages, wakeup_events, wakeup_bytes):
        self.cpu = cpu
        self.fd = kring.open_bpf_output(cpu, wakeup_events, wakeup_bytes)
        try:
            self.mapping = kring.map_perf_ring(self.fd, pages)
        except BaseException:
            kbpf.close(self.fd)
            raise
        self.words = kring.words(self.mapping)
        self.view = self.mapping.view
        self.base = self.words.load64(kring.PERF_DATA_OFFSET)[0] or kring.PAGE_SIZE
        self.size = self.words.load64(kring.PERF_DATA_SIZE)[0] or pages * kring.PAGE_SIZE
        self.mask = self.size - 1
        self.tail = self.words.load64(kring.PERF_DATA_TAIL)[0]
        self.head = self.tail

    def _copy(self, pos, length):
        """length bytes from ring position pos, joining the pieces of a wrapped record."""
        off = pos & self.mask
        start = self.base + off
        if off + length <= self.size:
            return bytes(self.view[start:start + length])
        first = self.size - off
        return (bytes(self.view[start:start + first])
                + bytes(self.view[self.base:self.base + length - first]))

    def records(self):
        """Yield (PERF_RECORD_SAMPLE, raw bytes) or (PERF_RECORD_LOST, count) for each
        record until none is ready; other record types are skipped. data_tail is
        published (release store) before each is yielded."""
        view, base, mask = self.view, self.base, self.mask
        load64, publish = self.words.load64, self.words.storer64(kring.PERF_DATA_TAIL)
        unpack_header, unpack_u32 = kring.PERF_HEADER.unpack_from, kring.U32.unpack_from
        tail, head = self.tail, self.head
        while True:
            if tail >= head:
                head = self.head = load64(kring.PERF_DATA_HEAD)[0]  # acquire
                if tail >= head:
                    return
            # Records are 8-byte aligned and the ring a power of 2 >= 8 bytes: the
            # 8-byte header and the sample's 4-byte size field never wrap; data may.
            rtype, _misc, size = unpack_header(view, base + (tail & mask))
            if size < 8 or size > head - tail:
                raise CorruptRingError(f"corrupt perf ring on CPU {self.cpu}: record of "
                                       f"{size} bytes at {tail} (head {head})")
            item = None
            if rtype == PERF_RECORD_SAMPLE and size >= 12:
                raw_size = unpack_u32(view, base + ((tail + 8) & mask))[0]
                if raw_size > size - 12:
                    raise CorruptRingError(f"corrupt perf sample on CPU {self.cpu}: raw "
                                           f"size {raw_size} in a {size}-byte record")
                item = (PERF_RECORD_SAMPLE, self._copy(tail + 12, raw_size))
            elif rtype == PERF_RECORD_LOST and size >= 24:  # header, u64 id, u64 lost
                item = (PERF_RECORD_LOST, int.from_bytes(self._copy(tail + 16, 8), "little"))
            tail = self.tail = tail + size
            publish(tail)  # the kernel may reuse the space now
            if item is not None:
                yield item

    def close(self):
        try:
            self.mapping.close()
        finally:
            kbpf.close(self.fd)


class PerfBuffer(_Reader):
    """Reader of a BPF_MAP_TYPE_PERF_EVENT_ARRAY map (pybpf.maps.PerfEventArrayMap).

    Opens one PERF_COUNT_SW_BPF_OUTPUT perf event per CPU (default: every online
    CPU), stores each at its CPU's index in the map (what ``bpf_perf_event_output``
    with BPF_F_CURRENT_CPU looks up) and maps ``pages`` data pages (a power of 2) of
    ring for each. ``callback(cpu, record)`` receives samples; :meth:`read` yields
    ``(cpu, record)`` pairs.

    A full ring drops samples; the kernel reports the count in the ring *when the next
    sample fits*, and then :attr:`lost` grows and ``lost_callback(cpu, count)`` is called.

    Perf pads each sample so that its size field and data fill a multiple of 8 bytes,
    and the size field counts the padding, whose bytes are not zeroed: a raw record is
    its program's data plus 0-7 bytes of junk. Give ``record_type`` (an int for raw
    bytes of that length, or a type) to get exactly the bytes the program sent.

    ``wakeup_events`` (default 1) wakes :meth:`poll` every that many samples;
    ``wakeup_bytes`` instead wakes it once that many bytes are waiting (fewer wakeups
    under load, but a lone small sample waits until more arrive).
    """

    def __init__(self, map, callback=None, record_type=None, *,  # noqa: A002
                 lost_callback=None, pages=8, cpus=None, wakeup_events=1, wakeup_bytes=0):
        super().__init__()
        try:
            _check_map(map, MapType.PERF_EVENT_ARRAY, "PerfBuffer", "RingBuffer", callback)
            if lost_callback is not None and not callable(lost_callback):
                raise InputError(f"lost_callback is a function, not {lost_callback!r}")
            self.map = map
            self.callback, self.lost_callback = callback, lost_callback
            self.decode = _decoder(record_type)
            self.lost = 0
            self.lost_by_cpu = {}
            cpus = online_cpus() if cpus is None else sorted(set(cpus))
            too_big = [c for c in cpus if c >= map.max_entries]
            if too_big:
                raise InputError(f"the perf event array has {map.max_entries} slots but "
                                 f"CPU {too_big[0]} needs slot {too_big[0]}: create it "
                                 f"with max_entries >= the number of possible CPUs "
                                 f"({possible_cpus()})")
            for cpu in cpus:
                self._open_cpu(cpu, pages, wakeup_events, wakeup_bytes)
        except BaseException:
            self.close()
            raise

    def _open_cpu(self, cpu, pages, wakeup_events, wakeup_bytes):
        ring = _PerfRing(cpu, pages, wakeup_events, wakeup_bytes)
        try:
            self._epoll.add(ring.fd, len(self._rings))
            self.map[cpu] = ring.fd
        except BaseException:
            ring.close()
            raise
        self._rings.append(ring)
        self.lost_by_cpu[cpu] = 0

    @property
    def cpus(self):
        """The CPUs this reader has a ring for."""
        return [ring.cpu for ring in self._rings]

    def _note_lost(self, ring, count):
        self.lost += count
        self.lost_by_cpu[ring.cpu] += count
        if self.lost_callback is not None:
            self.lost_callback(ring.cpu, count)

    def _items(self, ring):
        """(cpu, record) for each sample of ring; lost counts are noted on the way."""
        cpu, decode = ring.cpu, self.decode
        for kind, value in ring.records():
            if kind == PERF_RECORD_LOST:
                self._note_lost(ring, value)
                if self._closed:  # the lost_callback closed us
                    return
            else:
                yield cpu, (decode(value) if decode else value)

    def _deliverer(self, ring):
        callback = self.callback
        if callback is None:
            raise InputError("poll() and consume() hand records to a callback: give "
                             "PerfBuffer(..., callback=...) or iterate with read()")
        return lambda item: callback(*item)

    def close(self):
        """Remove this reader's events from the map (so the program's output to them
        fails with ENOENT instead of filling rings nobody reads), unmap the rings and
        close the perf event fds."""
        lock = getattr(self, "_lock", None)
        if lock is None:
            return
        with lock:
            map_ = getattr(self, "map", None)
            if not self._closed and map_ is not None and not map_.closed:
                for ring in self._rings:
                    try:
                        del map_[ring.cpu]
                    except (BPFError, KeyError):
                        pass  # the slot was emptied meanwhile: nothing of ours left
            super().close()
