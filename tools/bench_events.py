#!/usr/bin/env python3
"""Benchmark of the event readers: how many records per second Python consumes.

Usage (as root):
    python tools/bench_events.py [--records 200000] [--size 32] [--runs 5]
                                 [--live-seconds 1] [--json FILE]

The producer is a tc (sched_cls) program that sends one ``--size``-byte record per run
(bpf_ringbuf_output, or bpf_perf_event_output with BPF_F_CURRENT_CPU) and is run
``--records`` times by a single BPF_PROG_TEST_RUN (repeat=N). So the producer is
clean (no second process, no scheduling noise) and the rings hold all N records
(they are sized for it) before the reader starts; each reader figure is
N / the time to consume them, i.e. the reader's own throughput, not the wakeup path.

Per run, for the ring buffer and for the perf buffer:

- ``produce``: the TEST_RUN that writes the N records (kernel only, nothing read):
  the comparison point, what the kernel side sustains on this machine;
- ``consume``: ``consume()`` delivering raw bytes to a callback that appends them
  to a list;
- ``read``: the ``read(timeout=0)`` iterator instead of a callback;
- ``decode``: ``consume()`` with a ctypes Structure as record_type;
- ``live`` (with 2+ CPUs; ``--live-seconds 0`` skips it): a producer process on
  another CPU runs TEST_RUN(repeat=256) in a loop for ``--live-seconds`` while this
  process poll()s, so wakeups and the two sides contending are in the figure:
  records received per second, produced per second, and the share of outputs that
  failed because the ring was full (the reader could not keep up).

Each figure is the median of ``--runs`` runs (with min and max), after one untimed
warm-up run. This process is pinned to one CPU, so that all perf samples of the
batch metrics land in one ring. Every batch run checks that exactly N records
arrived with the right sequence numbers and that no output failed, and every live
run that received + failed == produced, so a figure never counts lost records.

The program builders here are also used by tests/kernel/test_events.py.
"""
import argparse
import ctypes
import datetime
import gc
import json
import os
import platform
import statistics
import sys
import time

try:
    import pybpf  # noqa: F401  (installed, or the checkout is on sys.path)
except ImportError:  # run from a checkout without installing: the repo is our parent
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchhost import cpu_model  # noqa: E402
from pybpf import asm  # noqa: E402
from pybpf.asm import R0, R1, R2, R3, R4, R5, R6, R7, R8, R10  # noqa: E402
from pybpf.events import PerfBuffer, RingBuffer  # noqa: E402
from pybpf.kernel import system  # noqa: E402
from pybpf.kernel.constants import BPF_F_CURRENT_CPU, HelperId  # noqa: E402
from pybpf.maps import Map  # noqa: E402
from pybpf.programs import Program  # noqa: E402

# -- producer programs (shared with the tests) --------------------------------------

HEADER_SIZE = 16  # seq u64, cpu u32, first 4 packet bytes
PACKET = bytes.fromhex("a1b2c3d4") + bytes(range(60))  # 64 bytes; TEST_RUN needs >= 14
SKB_DATA, SKB_DATA_END = 76, 80  # offsetof(struct __sk_buff, data / data_end)
TC_ACT_OK = 0
COUNTER_VALUE = "QQ"  # produced (fetch-add per run), failed outputs
MODES = ("output", "reserve", "discard_odd", "perf")


class EventHeader(ctypes.Structure):
    """The first 16 bytes of every record the producer programs send."""
    _fields_ = [("seq", ctypes.c_uint64), ("cpu", ctypes.c_uint32),
                ("packet", ctypes.c_uint8 * 4)]


def expected_record(seq, cpu, size, packet=PACKET):
    """The bytes the producer sends for run number seq on cpu."""
    head = seq.to_bytes(8, "little") + cpu.to_bytes(4, "little") + packet[:4]
    return head + bytes(i & 0xFF for i in range(HEADER_SIZE, size))


def _store_bytes(base, data):
    """Instructions writing data to the stack at r10 + base (8/4/2/1-byte stores)."""
    insns, pos = [], 0
    while pos < len(data):
        width = next(w for w in (8, 4, 2, 1) if pos + w <= len(data))
        value = int.from_bytes(data[pos:pos + width], "little")
        if width == 8:
            insns += [asm.ld_imm64(R1, value), asm.stx(8, R10, R1, base + pos)]
        else:  # st's imm is signed 32-bit: the low bytes are what counts
            insns.append(asm.st(width, R10, base + pos, value - (1 << 32)
                                if value >= 1 << 31 else value))
        pos += width
    return insns


def _copy_stack_to(dst, base, size):
    """Copy size bytes from r10 + base to the memory at register dst (r1 scratch)."""
    insns, pos = [], 0
    while pos < size:
        width = next(w for w in (8, 4, 2, 1) if pos + w <= size)
        insns += [asm.ldx(width, R1, R10, base + pos), asm.stx(width, dst, R1, pos)]
        pos += width
    return insns


def producer(mode, target, counter, size=32):
    """A tc program sending one ``size``-byte record (see expected_record) per run.

    tc rather than XDP: TEST_RUN with repeat > 1 swaps an XDP program into the XDP
    dispatcher and back, which costs milliseconds per call (measured: a repeat=16 call
    took 16 ms on the 6.18 development machine), a cost sched_cls programs do not have.

    mode: "output" (bpf_ringbuf_output), "reserve" (reserve + submit), "discard_odd"
    (reserve, then discard odd sequence numbers and submit even ones), "perf"
    (bpf_perf_event_output, BPF_F_CURRENT_CPU). target is the RINGBUF or
    PERF_EVENT_ARRAY map; counter an ARRAY map of value COUNTER_VALUE whose slot 0
    counts runs (the sequence numbers) and failed outputs.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if not HEADER_SIZE <= size <= 256:
        raise ValueError(f"record size must be {HEADER_SIZE}..256 bytes, got {size}")
    base = -8 - ((size + 7) & ~7)  # the record on the stack; r10-4 holds the map key
    insns = [
        asm.mov64(R6, R1),
        asm.st(4, R10, -4, 0),
        asm.ld_map_fd(R1, counter.fd), asm.mov64(R2, R10), asm.alu64("add", R2, -4),
        asm.call(HelperId.map_lookup_elem),
        asm.jmp("eq", R0, 0, "out"),
        asm.mov64(R8, R0),
        asm.mov64(R7, 1), asm.atomic("add", 8, R8, R7, 0, fetch=True),  # r7 = seq
        asm.call(HelperId.get_smp_processor_id),
        asm.stx(8, R10, R7, base), asm.stx(4, R10, R0, base + 8),
        asm.ldx(4, R2, R6, SKB_DATA), asm.ldx(4, R3, R6, SKB_DATA_END),
        asm.mov64(R4, R2), asm.alu64("add", R4, 4), asm.jmp("gt", R4, R3, "out"),
        asm.ldx(4, R4, R2, 0), asm.stx(4, R10, R4, base + 12),
    ]
    insns += _store_bytes(base + HEADER_SIZE,
                          expected_record(0, 0, size)[HEADER_SIZE:])
    if mode == "output":
        insns += [asm.ld_map_fd(R1, target.fd), asm.mov64(R2, R10),
                  asm.alu64("add", R2, base), asm.mov64(R3, size), asm.mov64(R4, 0),
                  asm.call(HelperId.ringbuf_output), asm.jmp("eq", R0, 0, "out")]
    elif mode == "perf":
        insns += [asm.mov64(R1, R6), asm.ld_map_fd(R2, target.fd),
                  asm.ld_imm64(R3, BPF_F_CURRENT_CPU), asm.mov64(R4, R10),
                  asm.alu64("add", R4, base), asm.mov64(R5, size),
                  asm.call(HelperId.perf_event_output), asm.jmp("eq", R0, 0, "out")]
    else:
        insns += [asm.ld_map_fd(R1, target.fd), asm.mov64(R2, size), asm.mov64(R3, 0),
                  asm.call(HelperId.ringbuf_reserve),
                  asm.jmp("eq", R0, 0, "failed"),
                  asm.mov64(R6, R0)]
        insns += _copy_stack_to(R6, base, size)
        release = [asm.mov64(R1, R6), asm.mov64(R2, 0)]
        if mode == "discard_odd":
            insns += [asm.mov64(R1, R7), asm.alu64("and", R1, 1),
                      asm.jmp("eq", R1, 0, "submit"),
                      *release, asm.call(HelperId.ringbuf_discard), asm.ja("out"),
                      "submit"]
        insns += [*release, asm.call(HelperId.ringbuf_submit), asm.ja("out")]
    insns += ["failed",
              asm.mov64(R7, 1), asm.atomic("add", 8, R8, R7, 8),
              "out",
              asm.mov64(R0, TC_ACT_OK), asm.exit()]
    return Program.load("sched_cls", asm.assemble(insns), name=f"pybpf_ev_{mode}"[:15])


def counter_map():
    return Map.create("array", key="I", value=COUNTER_VALUE, max_entries=1)


def produce(program, count):
    """Run program count times in one BPF_PROG_TEST_RUN; returns the seconds taken."""
    start = time.perf_counter()
    program.test_run(PACKET, repeat=count)
    return time.perf_counter() - start


def run_alongside(reader, program, cpu, repeat, *, calls=None, seconds=None):
    """Produce from a child process on cpu (TEST_RUN with repeat, ``calls`` times or
    for ``seconds``) while reader poll()s in this one, then consume() what is left.
    Returns the seconds the child ran. A process, not a thread: the two sides then
    contend as a real producer and reader do, not for the GIL."""
    pid = os.fork()
    if pid == 0:  # the producer: never return into the caller (or pytest)
        status = 1
        try:
            os.sched_setaffinity(0, {cpu})
            end = time.monotonic() + seconds if seconds is not None else None
            done = 0
            while done < calls if calls is not None else time.monotonic() < end:
                program.test_run(PACKET, repeat=repeat)
                done += 1
            status = 0
        finally:
            os._exit(status)
    start = time.perf_counter()
    while True:
        finished, status = os.waitpid(pid, os.WNOHANG)
        if finished:
            break
        reader.poll(timeout=0.01)
    elapsed = time.perf_counter() - start
    reader.consume()
    if status:
        raise RuntimeError(f"the producer process failed (wait status {status})")
    return elapsed


# -- the benchmark ------------------------------------------------------------------

RING_KINDS = ("ringbuf", "perf")
METRICS = ("produce", "consume", "read", "decode")
LIVE_BATCH = 256  # records per TEST_RUN in the live producer


def _pow2_at_least(n):
    return 1 << max(0, (n - 1).bit_length())


def ring_bytes(kind, records, size):
    """Ring size that holds records records of size bytes (with headers, padding)."""
    per = ((size + 8 + 7) & ~7) if kind == "ringbuf" else ((size + 4 + 7) & ~7) + 8
    return _pow2_at_least(max(per * records, system.page_size()))


class _Setup:
    """The maps, program and reader of one ring kind, reused across runs."""

    def __init__(self, kind, records, size, cpu):
        self.kind, self.records, self.size, self.cpu = kind, records, size, cpu
        self.counter = counter_map()
        self.objects = [self.counter]
        try:
            nbytes = ring_bytes(kind, records, size)
            if kind == "ringbuf":
                self.target = Map.create("ringbuf", max_entries=nbytes)
            else:
                self.target = Map.create("perf_event_array")
            self.objects.append(self.target)
            self.program = producer("output" if kind == "ringbuf" else "perf",
                                    self.target, self.counter, size)
            self.objects.append(self.program)
        except BaseException:
            self.close()
            raise
        self.pages = nbytes // system.page_size()

    def reader(self, callback=None, record_type=None, cpus=None):
        if self.kind == "ringbuf":
            return RingBuffer(self.target, callback, record_type)
        return PerfBuffer(self.target, callback, record_type, pages=self.pages,
                          cpus=cpus or [self.cpu])

    def _collector(self, got):
        """A callback appending each record's bytes to got, for either reader."""
        if self.kind == "ringbuf":
            return got.append
        return lambda cpu, record: got.append(record)

    def run(self, metric):
        """Produce records and time what metric measures; returns records/second."""
        got = []
        callback = None if metric == "read" else self._collector(got)
        record_type = EventHeader if metric == "decode" else None
        with self.reader(callback, record_type) as r:
            first, failed0 = self.counter[0]
            produce_seconds = produce(self.program, self.records)
            gc.collect()
            start = time.perf_counter()
            if metric == "read":
                for item in r.read(timeout=0):
                    got.append(item)
            else:
                r.consume()
            seconds = time.perf_counter() - start
        if metric == "read" and self.kind == "perf":
            got = [record for _cpu, record in got]
        seqs = [rec.seq if metric == "decode" else int.from_bytes(rec[:8], "little")
                for rec in got]
        failed = self.counter[0][1] - failed0
        if failed or seqs != list(range(first, first + self.records)):
            raise RuntimeError(f"{self.kind}: got {len(seqs)} of the {self.records} records "
                               f"produced ({failed} outputs failed: ring too small?)")
        return self.records / (produce_seconds if metric == "produce" else seconds)

    def run_live(self, seconds, producer_cpu):
        """A producer process on producer_cpu runs TEST_RUN(repeat=LIVE_BATCH) for
        seconds while this process poll()s: records received and produced per second,
        and the share of outputs that failed because the ring was full."""
        got = []
        cpus = sorted({self.cpu, producer_cpu})
        with self.reader(self._collector(got), cpus=cpus) as r:
            produced0, failed0 = self.counter[0]
            elapsed = run_alongside(r, self.program, producer_cpu, LIVE_BATCH,
                                    seconds=seconds)
        produced, failed = (a - b for a, b in zip(self.counter[0], (produced0, failed0)))
        if len(got) + failed != produced:
            raise RuntimeError(f"{self.kind}: {len(got)} received + {failed} failed != "
                               f"{produced} produced")
        return {"received": len(got) / elapsed, "produced": produced / elapsed,
                "dropped_share": failed / produced if produced else 0.0}

    def close(self):
        for obj in reversed(self.objects):
            obj.close()


def bench(records, size, runs, kinds=RING_KINDS, live_seconds=1.0):
    saved = os.sched_getaffinity(0)
    cpu = min(saved)
    others = sorted(set(system.online_cpus()) - {cpu})
    os.sched_setaffinity(0, {cpu})
    results = {}
    try:
        for kind in kinds:
            setup = _Setup(kind, records, size, cpu)
            try:
                for metric in METRICS:  # warm-up: page faults, caches, allocator
                    setup.run(metric)
                samples = {m: [] for m in METRICS}
                live = []
                for _ in range(runs):
                    for metric in METRICS:
                        samples[metric].append(setup.run(metric))
                    if others and live_seconds > 0:
                        live.append(setup.run_live(live_seconds, others[0]))
            finally:
                setup.close()
            results[kind] = {m: _stats(v) for m, v in samples.items()}
            results[kind]["ring_bytes"] = ring_bytes(kind, records, size)
            if live:
                results[kind]["live"] = {
                    key: _stats([run[key] for run in live],
                                "share" if key == "dropped_share" else "records/s")
                    for key in live[0]}
    finally:
        os.sched_setaffinity(0, saved)
    return results


def _stats(values, unit="records/s"):
    return {"unit": unit, "median": statistics.median(values),
            "min": min(values), "max": max(values), "runs": len(values)}


def machine():
    return {"kernel": platform.release(), "machine": platform.machine(), "cpu": cpu_model(),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "date": datetime.date.today().isoformat()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=200_000,
                        help="records produced per run (default 200000)")
    parser.add_argument("--size", type=int, default=32,
                        help=f"record size in bytes, {HEADER_SIZE}..256 (default 32)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs (default 5)")
    parser.add_argument("--kind", choices=RING_KINDS, action="append",
                        help="only this reader (repeatable; default both)")
    parser.add_argument("--live-seconds", type=float, default=1.0,
                        help="length of each live run, 0 to skip them (default 1)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.records < 1 or args.runs < 1:
        parser.error("--records and --runs must be at least 1")
    results = bench(args.records, args.size, args.runs, tuple(args.kind or RING_KINDS),
                    args.live_seconds)
    doc = {"machine": machine(), "records": args.records, "size": args.size,
           "runs": args.runs, "readers": results}
    print(f"{args.records} records of {args.size} bytes per run, median of {args.runs} "
          f"runs (min-max), records/second")
    for kind, result in results.items():
        rows = [(m, result[m]) for m in METRICS]
        rows += [(f"live {k}", v) for k, v in result.get("live", {}).items()]
        for name, s in rows:
            fmt = "{:>12.3f}" if s["unit"] == "share" else "{:>12,.0f}"
            low, high = (fmt.format(s[k]).strip() for k in ("min", "max"))
            print(f"  {kind:8} {name:20} {fmt.format(s['median'])}  ({low} - {high})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
