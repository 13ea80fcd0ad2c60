"""Event readers against the running kernel: ring buffer maps and perf event arrays.

Records come from the tc producer programs of tools/bench_events.py, run with
BPF_PROG_TEST_RUN (repeat=N sends N records, on the CPU running the test). Every
record carries a sequence number, the CPU it was sent on and fixed bytes, so each
test checks exact contents and order, not just counts.
"""
import ctypes
import json
import os
import select
import struct
import threading
import time

import pytest
from toolbox import load_tool

from pybpf import events
from pybpf.errors import ClosedError
from pybpf.events import PerfBuffer, RingBuffer
from pybpf.kernel import system
from pybpf.maps import Map

PAGE = system.page_size()


bench = load_tool("bench_events")


@pytest.fixture
def counter():
    with bench.counter_map() as m:
        yield m


@pytest.fixture
def ringbuf():
    with Map.create("ringbuf", max_entries=PAGE) as m:
        yield m


@pytest.fixture
def perf_map():
    with Map.create("perf_event_array") as m:
        yield m


@pytest.fixture
def producers(counter):
    """producers(mode, target_map, size) -> loaded program, closed after the test."""
    made = []

    def make(mode, target, size=32):
        made.append(bench.producer(mode, target, counter, size))
        return made[-1]
    yield make
    for program in made:
        program.close()


def run(program, count):
    program.test_run(bench.PACKET, repeat=count)


def seq_of(record):
    return int.from_bytes(record[:8], "little")


def ring_mappings():
    """Lines of /proc/self/maps that map a BPF map or a perf event."""
    with open("/proc/self/maps") as f:
        return [line for line in f
                if "anon_inode:bpf-map" in line or "anon_inode:[perf_event]" in line]


@pytest.fixture
def pinned_cpu():
    """Pin the test thread (TEST_RUN runs the program on the calling CPU); restore."""
    saved = os.sched_getaffinity(0)

    def pin(cpu):
        os.sched_setaffinity(0, {cpu})
    yield pin
    os.sched_setaffinity(0, saved)


# -- ring buffer ----------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["output", "reserve"])
@pytest.mark.parametrize("size", [16, 21, 64])
def test_ringbuf_records_in_order_with_exact_contents(ringbuf, counter, producers,
                                                      pinned_cpu, mode, size):
    cpu = system.online_cpus()[0]
    pinned_cpu(cpu)
    program = producers(mode, ringbuf, size)
    got = []
    with RingBuffer(ringbuf, callback=got.append) as rb:
        run(program, 5)
        run(program, 3)
        assert rb.poll(timeout=5) == 8
        assert rb.consume() == 0
    assert got == [bench.expected_record(seq, cpu, size) for seq in range(8)]


def test_discarded_records_are_skipped(ringbuf, producers):
    program = producers("discard_odd", ringbuf, 24)
    with RingBuffer(ringbuf) as rb:
        run(program, 9)
        seqs = [seq_of(r) for r in rb.read(timeout=0)]
        assert seqs == [0, 2, 4, 6, 8]
        # Past the discarded tail the ring goes on: the consumer position covers it.
        run(program, 2)
        assert [seq_of(r) for r in rb.read(timeout=0)] == [10]


def test_wrap_around_many_times_the_ring_size(ringbuf, counter, producers):
    size = 100  # 112 bytes with header and padding: positions drift across the end
    program = producers("output", ringbuf, size)
    per_batch, batches = 30, 25  # 30 * 112 < 4096: each batch fits; 25 batches = 20 rings
    got = []
    with RingBuffer(ringbuf, callback=got.append) as rb:
        for _ in range(batches):
            run(program, per_batch)
            assert rb.consume() == per_batch
    assert counter[0] == (per_batch * batches, 0)  # no output failed
    assert [seq_of(r) for r in got] == list(range(per_batch * batches))
    assert all(r == bench.expected_record(seq_of(r), r[8], size) for r in got)
    record = 112
    crossing = [n for n in range(len(got)) if (n * record) % PAGE + record > PAGE]
    assert crossing, "no record straddled the end of the ring: the test lost its point"


def test_full_ring_refuses_output_and_keeps_what_fit(ringbuf, counter, producers):
    program = producers("output", ringbuf, 100)
    with RingBuffer(ringbuf) as rb:
        run(program, 100)  # room for 36 records of 112 bytes in 4096
        received = [seq_of(r) for r in rb.read(timeout=0)]
    produced, failed = counter[0]
    assert produced == 100 and failed > 0
    assert len(received) + failed == produced
    assert received == list(range(len(received)))


def test_poll_times_out_with_nothing(ringbuf):
    got = []
    with RingBuffer(ringbuf, callback=got.append) as rb:
        start = time.monotonic()
        assert rb.poll(timeout=0.2) == 0
        waited = time.monotonic() - start
        assert list(rb.read(timeout=0.1)) == []
        assert rb.poll(timeout=0) == 0
    assert got == []
    assert 0.1 <= waited < 30  # it waited, and it came back


def test_poll_wakes_up_for_a_record_from_another_thread(ringbuf, producers):
    program = producers("output", ringbuf, 16)
    timer = threading.Timer(0.2, run, (program, 1))
    got = []
    with RingBuffer(ringbuf, callback=got.append) as rb:
        timer.start()
        try:
            count = rb.poll(timeout=30)
        finally:
            timer.join()
    assert count == 1 and seq_of(got[0]) == 0


def test_close_from_another_thread_ends_a_wait(ringbuf):
    rb = RingBuffer(ringbuf, callback=lambda r: None)
    timer = threading.Timer(0.2, rb.close)
    timer.start()
    try:
        assert rb.poll() == 0  # no timeout: only close() can end it
    finally:
        timer.join()
    assert rb.closed
    with pytest.raises(ClosedError):
        rb.poll(0)


class Event(ctypes.Structure):
    _fields_ = [("seq", ctypes.c_uint64), ("cpu", ctypes.c_uint32),
                ("packet", ctypes.c_uint8 * 4), ("fill", ctypes.c_uint8 * 16)]


def test_decoding_with_ctypes_struct_format_and_callable(ringbuf, producers):
    program = producers("output", ringbuf, 32)
    with RingBuffer(ringbuf, record_type=Event) as rb:
        run(program, 2)
        events = list(rb.read(timeout=0))
    assert [e.seq for e in events] == [0, 1]
    assert bytes(events[0].packet) == bench.PACKET[:4]
    assert list(events[1].fill) == list(range(16, 32))

    with RingBuffer(ringbuf, record_type="<QI4s") as rb:  # a prefix of the record
        run(program, 1)
        assert list(rb.read(timeout=0)) == [(2, events[0].cpu, bench.PACKET[:4])]

    with RingBuffer(ringbuf, record_type=lambda b: (len(b), seq_of(b))) as rb:
        run(program, 1)
        assert list(rb.read(timeout=0)) == [(32, 3)]


def test_record_shorter_than_its_type_is_an_error_and_is_consumed(ringbuf, producers):
    program = producers("output", ringbuf, 16)
    with RingBuffer(ringbuf, callback=lambda r: None, record_type=Event) as rb:
        run(program, 2)
        with pytest.raises(ValueError, match="16-byte record is shorter than"):
            rb.consume()
        with pytest.raises(ValueError):  # the next one; the failed one is gone
            rb.consume()
        assert rb.consume() == 0


def test_callback_errors_propagate_after_consuming_the_record(ringbuf, producers):
    program = producers("output", ringbuf, 16)
    seen = []

    def callback(record):
        seen.append(seq_of(record))
        if len(seen) == 1:
            raise KeyError("boom")
    with RingBuffer(ringbuf, callback=callback) as rb:
        run(program, 3)
        with pytest.raises(KeyError):
            rb.consume()
        assert rb.consume() == 2
    assert seen == [0, 1, 2]


def test_a_callback_may_close_the_reader(ringbuf, producers):
    program = producers("output", ringbuf, 16)
    with Map.create("ringbuf", max_entries=PAGE) as other:
        seen = []

        def callback(record):
            seen.append(record)
            rb.close()
        rb = RingBuffer(ringbuf, callback=callback)
        rb.add(other, callback=callback)
        run(program, 3)
        assert rb.consume() == 1
        assert rb.closed and len(seen) == 1


def test_bad_arguments_are_refused(ringbuf, perf_map):
    with pytest.raises(TypeError, match="use PerfBuffer"):
        RingBuffer(perf_map)
    with pytest.raises(TypeError, match="use RingBuffer"):
        PerfBuffer(ringbuf)
    with pytest.raises(TypeError, match="record_type"):
        RingBuffer(ringbuf, record_type=3.5)
    with pytest.raises(ValueError, match="power-of-2"):  # after opening an event
        PerfBuffer(perf_map, pages=3)
    with RingBuffer(ringbuf) as rb:
        with pytest.raises(ValueError, match="callback"):
            rb.poll(0)
    with Map.create("ringbuf", max_entries=PAGE) as closed:
        pass
    with pytest.raises(ClosedError):
        RingBuffer(closed)


def test_several_rings_in_one_reader(ringbuf, producers):
    with Map.create("ringbuf", max_entries=PAGE) as second, \
            bench.counter_map() as counter2:
        first_prog = producers("output", ringbuf, 16)
        second_prog = bench.producer("reserve", second, counter2, 24)
        try:
            a, b = [], []
            with RingBuffer(ringbuf, callback=a.append) as rb:
                rb.add(second, callback=b.append, record_type="<Q")
                run(second_prog, 2)
                assert rb.poll(timeout=5) == 2
                run(first_prog, 1)
                run(second_prog, 1)
                assert rb.poll(timeout=5) == 2
        finally:
            second_prog.close()
    assert [seq_of(r) for r in a] == [0] and b == [0, 1, 2]


def test_fileno_is_readable_when_records_wait(ringbuf, producers):
    program = producers("output", ringbuf, 16)
    with RingBuffer(ringbuf, callback=lambda r: None) as rb:
        assert select.select([rb], [], [], 0)[0] == []
        run(program, 1)
        assert select.select([rb], [], [], 5)[0] == [rb]
        assert rb.consume() == 1
        with pytest.raises(ValueError, match="already read"):
            rb.add(ringbuf)


def test_a_new_reader_resumes_where_the_last_stopped(ringbuf, producers):
    program = producers("output", ringbuf, 16)
    run(program, 4)
    with RingBuffer(ringbuf) as rb:
        it = rb.read(timeout=0)
        assert [seq_of(next(it)), seq_of(next(it))] == [0, 1]
    with RingBuffer(ringbuf) as rb:
        assert [seq_of(r) for r in rb.read(timeout=0)] == [2, 3]


def test_close_unmaps_everything(ringbuf, perf_map):
    before = ring_mappings()
    rb = RingBuffer(ringbuf)
    pb = PerfBuffer(perf_map, pages=1)
    assert len(ring_mappings()) == len(before) + 2 + len(pb.cpus)
    rb.close()
    pb.close()
    rb.close()  # twice is harmless
    assert ring_mappings() == before
    with pytest.raises(ClosedError):
        rb.consume()
    with pytest.raises(ClosedError):
        next(pb.read(timeout=0))


def test_unclosed_reader_warns_and_releases(ringbuf):
    before = ring_mappings()
    rb = RingBuffer(ringbuf)
    with pytest.warns(ResourceWarning, match="unclosed RingBuffer"):
        del rb
        import gc
        gc.collect()
    assert ring_mappings() == before


class _Memory:
    """Stands in for a kring.Mapping: plain process memory with a view and address."""

    def __init__(self, length):
        self._buf = (ctypes.c_char * length)()
        self.view = memoryview(self._buf).cast("B")
        self.address = ctypes.addressof(self._buf)

    def close(self):
        pass


class FakeRing:
    """The ring buffer protocol in plain memory, to place records (busy ones too)
    exactly where a test needs them; the kernel's data area is mapped twice, so
    every write lands in both copies."""

    SIZE = 64

    def __init__(self):
        self.consumer, self.producer = _Memory(PAGE), _Memory(PAGE + 2 * self.SIZE)
        self.ring = events._Ring(self.SIZE, self.consumer, self.producer)
        self.head = 0

    def _write(self, pos, data):
        for i, byte in enumerate(data):
            off = (pos + i) % self.SIZE
            for copy in (0, self.SIZE):
                self.producer.view[PAGE + copy + off] = byte

    def put(self, data, busy=False, discard=False, length=None):
        """Append a record; returns its position (for finish())."""
        pos = self.head
        header = (len(data) if length is None else length) | \
            (events.BPF_RINGBUF_BUSY_BIT if busy else 0) | \
            (events.BPF_RINGBUF_DISCARD_BIT if discard else 0)
        self._write(pos, struct.pack("=II", header, 0) + data)
        self.head += (len(data) + 8 + 7) & ~7
        struct.pack_into("=Q", self.producer.view, 0, self.head)
        return pos

    def finish(self, pos):
        header = struct.unpack_from("=I", self.producer.view, PAGE + pos % self.SIZE)[0]
        self._write(pos, struct.pack("=I", header & ~events.BPF_RINGBUF_BUSY_BIT))

    def take(self):
        """The next record the reader yields, or events._NOTHING."""
        return next(self.ring.records(), events._NOTHING)

    def consumer_pos(self):
        return struct.unpack_from("=Q", self.consumer.view, 0)[0]


def test_protocol_busy_record_stops_reading_until_submitted():
    fake = FakeRing()
    fake.put(b"first...")
    busy = fake.put(b"second..", busy=True)
    fake.put(b"third...")
    assert fake.take() == b"first..."
    assert fake.take() is events._NOTHING  # not past the busy one: order holds
    assert fake.consumer_pos() == 16
    fake.finish(busy)
    assert [fake.take(), fake.take()] == [b"second..", b"third..."]
    assert fake.take() is events._NOTHING and fake.consumer_pos() == 48


def test_protocol_discarded_skipped_and_wrapping_record_read_whole():
    fake = FakeRing()
    for n in range(3):                  # 16 bytes each: positions 0..47
        fake.put(bytes([n]) * 8)
    assert [fake.take() for _ in range(3)] == [bytes([n]) * 8 for n in range(3)]
    fake.put(b"", discard=True)         # 8 bytes: 48..55
    fake.put(bytes(range(20)))          # 32 bytes: 56..87, crossing the end at 64
    assert fake.take() == bytes(range(20))
    assert fake.take() is events._NOTHING
    assert fake.consumer_pos() == 88


def test_protocol_corrupt_length_is_an_error_not_a_wild_read():
    fake = FakeRing()
    fake.put(b"12345678", length=1000)
    with pytest.raises(RuntimeError, match="corrupt ring buffer record"):
        fake.take()


def test_concurrent_producer_on_another_cpu(ringbuf, counter, producers, pinned_cpu):
    """A producer process on one CPU, this reader on another: every record arrives
    whole and in order, and what did not fit was refused, not mangled."""
    cpus = system.online_cpus()
    if len(cpus) < 2:
        pytest.skip("needs 2 online CPUs to run producer and reader in parallel")
    program = producers("reserve", ringbuf, 200)
    runs = 3000
    pinned_cpu(cpus[0])
    got = []
    with RingBuffer(ringbuf, callback=got.append) as rb:
        bench.run_alongside(rb, program, cpus[1], 1, calls=runs)
    produced, failed = counter[0]
    assert produced == runs and len(got) + failed == runs
    seqs = [seq_of(r) for r in got]
    assert seqs == sorted(seqs)
    assert all(r == bench.expected_record(seq_of(r), cpus[1], 200) for r in got)


# -- perf buffer ----------------------------------------------------------------------

def test_perf_samples_arrive_on_the_cpu_that_sent_them(perf_map, producers, pinned_cpu):
    cpus = system.online_cpus()
    if len(cpus) < 2:
        pytest.skip("needs 2 online CPUs to tell per-CPU rings apart")
    program = producers("perf", perf_map, 24)
    got = []
    with PerfBuffer(perf_map, callback=lambda cpu, r: got.append((cpu, r)),
                    record_type=24) as pb:
        assert pb.cpus == cpus
        pinned_cpu(cpus[0])
        run(program, 3)
        pinned_cpu(cpus[1])
        run(program, 2)
        assert pb.poll(timeout=5) == 5
        assert pb.lost == 0
    assert got == ([(cpus[0], bench.expected_record(s, cpus[0], 24)) for s in range(3)]
                   + [(cpus[1], bench.expected_record(s, cpus[1], 24)) for s in (3, 4)])


def test_perf_raw_records_carry_padding_that_record_type_strips(perf_map, producers,
                                                                 pinned_cpu):
    cpu = system.online_cpus()[0]
    pinned_cpu(cpu)
    program = producers("perf", perf_map, 21)
    with PerfBuffer(perf_map, cpus=[cpu]) as pb:
        run(program, 1)
        [(got_cpu, raw)] = list(pb.read(timeout=0))
    # 4-byte size + 21 bytes = 25, padded to 32: the size field says 28.
    assert got_cpu == cpu and len(raw) == 28
    assert raw[:21] == bench.expected_record(0, cpu, 21)


def test_perf_wrap_around(perf_map, counter, producers, pinned_cpu):
    cpu = system.online_cpus()[0]
    pinned_cpu(cpu)
    size = 100  # 8 header + 4 size + 100 data = 112 bytes per sample
    program = producers("perf", perf_map, size)
    per_batch, batches = 30, 20
    got = []
    with PerfBuffer(perf_map, callback=lambda c, r: got.append(r), record_type=size,
                    pages=1, cpus=[cpu]) as pb:
        for _ in range(batches):
            run(program, per_batch)
            assert pb.consume() == per_batch
        assert pb.lost == 0
    assert counter[0] == (per_batch * batches, 0)
    assert got == [bench.expected_record(s, cpu, size) for s in range(per_batch * batches)]
    crossing = [n for n in range(len(got)) if (n * 112) % PAGE + 112 > PAGE]
    assert crossing, "no sample straddled the end of the ring: the test lost its point"


def test_perf_lost_samples_are_counted(perf_map, counter, producers, pinned_cpu):
    cpu = system.online_cpus()[0]
    pinned_cpu(cpu)
    program = producers("perf", perf_map, 64)
    reported = []
    with PerfBuffer(perf_map, record_type=bench.EventHeader, pages=1, cpus=[cpu],
                    lost_callback=lambda c, n: reported.append((c, n))) as pb:
        run(program, 1000)  # about 50 fit in one page
        first = [e.seq for _, e in pb.read(timeout=0)]
        # The kernel writes the lost count when the next sample fits: send one more.
        run(program, 1)
        second = [e.seq for _, e in pb.read(timeout=0)]
        lost = pb.lost
        assert pb.lost_by_cpu == {cpu: lost}
    produced, failed = counter[0]
    assert produced == 1001
    assert 0 < lost == failed
    assert reported == [(cpu, lost)]
    assert len(first) + len(second) + lost == produced
    assert first == list(range(len(first))) and second == [1000]


def test_perf_concurrent_producer_overflowing_the_ring(perf_map, counter, producers,
                                                       pinned_cpu):
    """A producer process outrunning this reader on a one-page ring: every sample read
    is whole, and received + lost == produced. (Storing data_tail with
    struct.pack_into, which zero-fills before writing, let the kernel overwrite
    unread samples here: the reader then met garbage headers.)"""
    cpus = system.online_cpus()
    if len(cpus) < 2:
        pytest.skip("needs 2 online CPUs to run producer and reader in parallel")
    program = producers("perf", perf_map, 32)
    pinned_cpu(cpus[0])
    got = []
    with PerfBuffer(perf_map, callback=lambda c, r: got.append(r), record_type=32,
                    pages=1, cpus=[cpus[1]]) as pb:
        bench.run_alongside(pb, program, cpus[1], 256, seconds=0.5)
        pinned_cpu(cpus[1])  # one more sample makes the kernel report pending losses
        run(program, 1)
        pb.consume()
        lost = pb.lost
    produced, failed = counter[0]
    assert len(got) + lost == produced and lost == failed
    assert all(r == bench.expected_record(seq_of(r), cpus[1], 32) for r in got)
    seqs = [seq_of(r) for r in got]
    assert seqs == sorted(seqs) and seqs[-1] == produced - 1


def test_perf_wakeup_bytes_holds_back_the_wakeup(perf_map, producers, pinned_cpu):
    cpu = system.online_cpus()[0]
    pinned_cpu(cpu)
    program = producers("perf", perf_map, 32)
    with PerfBuffer(perf_map, cpus=[cpu], wakeup_bytes=PAGE) as lazy:
        run(program, 1)  # 48 bytes: below the watermark, no wakeup
        assert select.select([lazy], [], [], 0.1)[0] == []
        assert len(list(lazy.read(timeout=0))) == 1  # but readable all the same
    with PerfBuffer(perf_map, cpus=[cpu]) as eager:
        run(program, 1)
        assert select.select([eager], [], [], 5)[0] == [eager]


def test_perf_close_removes_the_events_from_the_map(perf_map, counter, producers):
    program = producers("perf", perf_map, 16)
    with PerfBuffer(perf_map) as pb:
        run(program, 1)
        assert len(list(pb.read(timeout=0))) == 1
    run(program, 1)  # no event in the slot now: the output fails, nothing else happens
    assert counter[0] == (2, 1)


def test_perf_map_too_small_for_the_cpus():
    cpus = system.online_cpus()
    if max(cpus) == 0:
        pytest.skip("needs a CPU numbered 1 or more")
    with Map.create("perf_event_array", max_entries=1) as small:
        with pytest.raises(ValueError, match="max_entries"):
            PerfBuffer(small)


def test_perf_timeout_and_read_iterator(perf_map):
    with PerfBuffer(perf_map, callback=lambda cpu, r: None) as pb:
        assert pb.poll(timeout=0.1) == 0
        assert list(pb.read(timeout=0.05)) == []


# -- the benchmark tool ---------------------------------------------------------------

def test_bench_tool_runs_and_reports_every_metric(tmp_path):
    out = tmp_path / "bench.json"
    assert bench.main(["--records", "2000", "--runs", "1", "--live-seconds", "0.2",
                       "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert set(doc["readers"]) == set(bench.RING_KINDS)
    for result in doc["readers"].values():
        for metric in bench.METRICS:
            assert result[metric]["median"] > 0
        if len(system.online_cpus()) > 1:
            assert result["live"]["received"]["median"] > 0
            assert 0 <= result["live"]["dropped_share"]["median"] <= 1
