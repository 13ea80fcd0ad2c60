#!/usr/bin/env python3
"""Benchmark of map operations from Python: what one element costs, and what batches save.

Usage (as root):
    python tools/bench_maps.py [--entries 100000] [--runs 5] [--json FILE]
    python tools/bench_maps.py --layers    # where the time of one lookup goes
    python tools/bench_maps.py --profile   # cProfile of a loop of lookups

For a HASH and an ARRAY map (key "I", value "Q") filled with ``--entries`` entries it
measures, in every run:

- single lookup and single update latency (``m[k]``, ``m[k] = v`` over every key in a
  shuffled order; total time / count, so the timer's own cost is not in the figure);
- two floors for a lookup, so the Python share of ``m[k]`` is visible: the kernel
  layer's ``ElemOps.lookup`` with pre-encoded key bytes, and a bare syscall() made
  the way ElemOps makes it (prebuilt attr and arguments, no lock, no copy out);
- iteration (``for k in m``: one BPF_MAP_GET_NEXT_KEY per key);
- reading and writing the whole map per key (``[(k, m[k]) for k in keys]``,
  ``for k, v in items: m[k] = v``) and by batch (``lookup_batch()``,
  ``update_batch()``), and the batch / per-key ratio of each, computed within each
  run so that the machine getting faster or slower between runs does not bias it;
- a floor for the batch read: its BPF_MAP_LOOKUP_BATCH calls with nothing decoded.

Each figure is the median of ``--runs`` runs with min and max, after ``--warmup``
untimed runs. The garbage collector stays on, as in a user's program, but is emptied
before each timed section. The targets from the performance issue are reported as
pass/miss, never asserted: timing depends on the machine.
"""
import argparse
import cProfile
import ctypes
import datetime
import errno
import gc
import json
import os
import platform
import pstats
import random
import statistics
import struct
import subprocess
import sys
import time

try:
    import pybpf  # installed, or the checkout is on sys.path
except ImportError:  # run from a checkout without installing: the repo is our parent
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import pybpf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchhost import cpu_model  # noqa: E402
from pybpf.errors import BPFError  # noqa: E402
from pybpf.kernel import attr as kattr  # noqa: E402
from pybpf.kernel import bpf as kbpf  # noqa: E402
from pybpf.kernel import system  # noqa: E402
from pybpf.kernel.constants import Cmd  # noqa: E402
from pybpf.kernel.syscall import NR_BPF, bpf_call, prebuilt_args, raw_call  # noqa: E402
from pybpf.maps import Map  # noqa: E402

KEY, VALUE = "I", "Q"
MAP_KINDS = ("hash", "array")
LOOKUP = int(Cmd.MAP_LOOKUP_ELEM)
BATCH_LOOKUP = Cmd.MAP_LOOKUP_BATCH
UNKNOWN_CMD = 1000  # bpf(2) answers EINVAL after copying the attr: entry cost, no map work

# name -> (unit, label in the table); the order is the order of the table.
METRICS = {
    "lookup_ns": ("ns/op", "single lookup      m[k]"),
    "update_ns": ("ns/op", "single update      m[k] = v"),
    "floor_elemops_ns": ("ns/op", "lookup floor: ElemOps.lookup(bytes)"),
    "floor_syscall_ns": ("ns/op", "lookup floor: bare syscall()"),
    "lookup_python_share": ("%", "  m[k] time above ElemOps.lookup"),
    "iterate_per_s": ("entries/s", "iteration          for k in m"),
    "perkey_lookup_per_s": ("entries/s", "per-key read       [(k, m[k]) ...]"),
    "batch_lookup_per_s": ("entries/s", "batch read         lookup_batch()"),
    "batch_lookup_ratio": ("x", "  batch / per-key read"),
    "floor_batch_lookup_per_s": ("entries/s", "batch read floor: kernel calls only"),
    "floor_batch_ratio": ("x", "  batch floor / per-key read"),
    "perkey_update_per_s": ("entries/s", "per-key write      m[k] = v loop"),
    "batch_update_per_s": ("entries/s", "batch write        update_batch()"),
    "batch_update_ratio": ("x", "  batch / per-key write"),
}
# Figures derived from the others of the same run, so that the machine getting faster
# or slower between runs does not bias them.
DERIVED = {
    "lookup_python_share":
        lambda f: 100.0 * (f["lookup_ns"] - f["floor_elemops_ns"]) / f["lookup_ns"],
    "batch_lookup_ratio": lambda f: f["batch_lookup_per_s"] / f["perkey_lookup_per_s"],
    "floor_batch_ratio": lambda f: f["floor_batch_lookup_per_s"] / f["perkey_lookup_per_s"],
    "batch_update_ratio": lambda f: f["batch_update_per_s"] / f["perkey_update_per_s"],
}

# The targets: (metric, comparison, limit, text).
TARGETS = (
    ("lookup_ns", "<", 3000.0, "single lookup < 3 us"),
    ("batch_lookup_ratio", ">=", 10.0, "batch lookup >= 10x per-key"),
)


def value_of(key):
    """The value stored at key, so a batch read can be checked entry by entry."""
    return key * 3 + 1


class BareLookup:
    """A MAP_LOOKUP_ELEM attr over our own key and value buffers, and the syscall()
    arguments for it, built once: the least Python can do per element (copy the key
    in, call syscall() the way ElemOps does)."""

    def __init__(self, fd, key_size, value_size):
        self.key, self.value = bytearray(key_size), bytearray(value_size)
        # The ctypes views pin the bytearrays (no resize can move them) and give addresses.
        self._views = [(ctypes.c_char * len(b)).from_buffer(b) for b in (self.key, self.value)]
        self.attr = kattr.MapElemAttr(map_fd=fd, key=ctypes.addressof(self._views[0]),
                                      value=ctypes.addressof(self._views[1]))
        self.addr, self.size = ctypes.addressof(self.attr), ctypes.sizeof(self.attr)
        self.args = prebuilt_args(LOOKUP, self.attr)


class Bench:
    """One map under test, with the key orders and pre-encoded keys every run uses."""

    def __init__(self, kind, entries, seed, batch_size):
        self.kind, self.entries, self.batch_size = kind, entries, batch_size
        self.keys = list(range(entries))
        self.items = [(k, value_of(k)) for k in self.keys]
        self.shuffled = self.keys[:]
        random.Random(seed).shuffle(self.shuffled)
        self.shuffled_items = [(k, value_of(k)) for k in self.shuffled]
        pack = struct.Struct(KEY).pack
        self.raw_keys = [pack(k) for k in self.shuffled]
        self.map = Map.create(kind, key=KEY, value=VALUE, max_entries=entries,
                              name=f"bench_{kind}")
        try:
            self.map.update_batch(self.items)
            self.elem_ops = kbpf.ElemOps(self.map.fd, self.map.key_size, self.map.value_size)
            self.bare = BareLookup(self.map.fd, self.map.key_size, self.map.value_size)
        except BaseException:
            self.map.close()
            raise
        self.counts = {}

    def close(self):
        self.map.close()

    # Each measurement returns how many entries it handled; the counts are reported,
    # so a short batch read cannot pass for a fast one.

    def lookup(self):
        m = self.map
        for k in self.shuffled:
            m[k]
        return len(self.shuffled)

    def update(self):
        return self._write_each(self.shuffled_items)

    def _write_each(self, items):
        m = self.map
        for k, v in items:
            m[k] = v
        return len(items)

    def floor_elemops(self):
        lookup = self.elem_ops.lookup
        for raw in self.raw_keys:
            lookup(raw)
        return len(self.raw_keys)

    def floor_syscall(self):
        key, args = self.bare.key, self.bare.args
        found = 0
        for raw in self.raw_keys:
            key[:] = raw
            found += raw_call(*args) == 0
        return found

    def iterate(self):
        return sum(1 for _ in self.map)

    def perkey_lookup(self):
        m = self.map
        return len([(k, m[k]) for k in self.keys])

    def batch_lookup(self):
        return len(self.map.lookup_batch(self.batch_size))

    def floor_batch_lookup(self):
        """The MAP_LOOKUP_BATCH calls of lookup_batch() with nothing decoded: what a
        batch read costs in the kernel and ctypes, the bound for any Python decoding."""
        count = self.batch_size or min(self.entries, 4096)
        ks, vs = self.map.key_size, self.map.value_size
        token, resume, total = ctypes.create_string_buffer(max(ks, 8)), None, 0
        while True:
            keys = ctypes.create_string_buffer(count * ks)
            values = ctypes.create_string_buffer(count * vs)
            try:
                n, done = self.elem_ops.batch(BATCH_LOOKUP, resume, token, keys, values,
                                              count)
            except BPFError as e:  # a hash bucket larger than --batch-size: as pybpf does
                if e.errno != errno.ENOSPC or getattr(e, "batch_count", 0):
                    raise
                count *= 2
                continue
            total += n
            if done:
                return total
            resume = token.raw

    def perkey_update(self):
        """The same as update() in key order: the per-key twin of batch_update()."""
        return self._write_each(self.items)

    def batch_update(self):
        self.map.update_batch(self.items)
        return len(self.items)

    def verify(self):
        """The batch read returns every entry with the value written: else the
        throughput figures measured something other than what they claim."""
        got = dict(self.map.lookup_batch(self.batch_size))
        return len(got) == self.entries and all(got.get(k) == v for k, v in self.items)


# metric -> (Bench method, "latency" (ns per op) or "rate" (entries per second)).
MEASURES = {
    "lookup_ns": (Bench.lookup, "latency"),
    "update_ns": (Bench.update, "latency"),
    "floor_elemops_ns": (Bench.floor_elemops, "latency"),
    "floor_syscall_ns": (Bench.floor_syscall, "latency"),
    "iterate_per_s": (Bench.iterate, "rate"),
    "perkey_lookup_per_s": (Bench.perkey_lookup, "rate"),
    "batch_lookup_per_s": (Bench.batch_lookup, "rate"),
    "floor_batch_lookup_per_s": (Bench.floor_batch_lookup, "rate"),
    "perkey_update_per_s": (Bench.perkey_update, "rate"),
    "batch_update_per_s": (Bench.batch_update, "rate"),
}


def timed(func, kind="latency"):
    """(figure, count) for one call of func, which returns how many ops it did."""
    gc.collect()
    start = time.perf_counter()
    count = func()
    elapsed = time.perf_counter() - start
    if kind == "latency":
        return elapsed * 1e9 / max(count, 1), count
    return count / elapsed, count


def one_run(benches):
    """{kind: {metric: figure}} for one pass over every map and metric."""
    run = {}
    for bench in benches:
        figures = {}
        for metric, (method, kind) in MEASURES.items():
            figures[metric], bench.counts[metric] = timed(lambda: method(bench), kind)
        for name, derive in DERIVED.items():
            figures[name] = derive(figures)
        run[bench.kind] = figures
    return run


def repeat(args, run_once):
    """run_once() for the warm-up runs (discarded) and the timed runs (returned)."""
    runs = [run_once() for _ in range(args.warmup + args.runs)]
    return runs[args.warmup:]


def summarise(samples):
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples),
            "samples": samples}


def machine():
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "kernel": system.kernel_release(),
            "python": platform.python_version(),
            "implementation": platform.python_implementation(), "pybpf": pybpf_version(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def pybpf_version():
    """The commit of the pybpf measured, "+dirty" when pybpf/ has uncommitted changes,
    or None outside a git checkout: figures are only comparable for the same code."""
    package = os.path.dirname(os.path.abspath(pybpf.__file__))
    try:
        head = subprocess.run(["git", "-C", package, "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", package, "status", "--porcelain", "--", "."],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def cpu_times():
    """(busy seconds of the whole machine, of this process, steal seconds, wall time)."""
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        user, nice, system_, idle, iowait, irq, softirq, steal = map(
            int, f.readline().split()[1:9])
    own = os.times()
    return ((user + nice + system_ + irq + softirq) / tick, own.user + own.system,
            steal / tick, time.monotonic())


def other_load(before, after):
    """How busy the machine was with work other than ours between two cpu_times():
    percent of all cores used by other processes, and percent stolen by the host."""
    busy, own, steal, wall = (b - a for a, b in zip(before, after))
    capacity = wall * (os.cpu_count() or 1) / 100.0

    def pct(seconds):  # counters tick at 1/CLK_TCK s: clamp their rounding
        return min(max(seconds / capacity, 0.0), 100.0)
    return {"other_processes_pct": pct(busy - own), "steal_pct": pct(steal)}


def check_targets(maps):
    results = []
    for kind, doc in maps.items():
        for metric, op, limit, text in TARGETS:
            value = doc["metrics"][metric]["median"]
            ok = value < limit if op == "<" else value >= limit
            results.append({"map": kind, "target": text, "metric": metric, "op": op,
                            "limit": limit, "median": value, "pass": ok})
    return results


def command_line(args):
    return (f"python tools/bench_maps.py --entries {args.entries} --runs {args.runs} "
            f"--warmup {args.warmup} --maps {','.join(args.maps)}"
            + (f" --batch-size {args.batch_size}" if args.batch_size else "")
            + (" --layers" if args.layers else ""))


def with_benches(args, kinds, body):
    """The JSON document header plus body(benches), with every map closed afterwards."""
    doc = {"tool": "tools/bench_maps.py", "command": command_line(args), "machine": machine(),
           "config": {"entries": args.entries, "runs": args.runs, "warmup": args.warmup,
                      "key": KEY, "value": VALUE, "maps": list(kinds),
                      "batch_size": args.batch_size, "seed": args.seed},
           "loadavg_before": os.getloadavg()}
    start = cpu_times()
    benches = []
    try:
        for kind in kinds:
            benches.append(Bench(kind, args.entries, args.seed, args.batch_size))
        doc.update(body(benches))
    finally:
        for bench in benches:
            bench.close()
    doc["loadavg_after"] = os.getloadavg()
    doc["machine_load"] = other_load(start, cpu_times())
    return doc


def run(args):
    """The benchmark; returns the JSON document."""
    def body(benches):
        runs = repeat(args, lambda: one_run(benches))
        return {"maps": {
            b.kind: {"metrics": {m: dict(summarise([r[b.kind][m] for r in runs]),
                                         unit=METRICS[m][0]) for m in METRICS},
                     "counts": dict(b.counts), "verified": b.verify()}
            for b in benches}}
    doc = with_benches(args, args.maps, body)
    doc["targets"] = check_targets(doc["maps"])
    return doc


# ---- where one lookup's time goes ---------------------------------------------------

def layer_loops(bench):
    """(label, loop) pairs, each adding one layer of what ``m[k]`` does to the previous
    one; every loop does one lookup per key and returns the count."""
    m, keys, raw_keys = bench.map, bench.shuffled, bench.raw_keys
    ops, bare = bench.elem_ops, bench.bare
    kbuf, args = bare.key, bare.args
    unknown = prebuilt_args(UNKNOWN_CMD, bare.attr)
    pack, unpack = struct.Struct(KEY).pack, struct.Struct(VALUE).unpack

    def python_loop():
        for raw in raw_keys:
            pass
        return len(raw_keys)

    def unknown_cmd():
        for raw in raw_keys:
            raw_call(*unknown)
        return len(raw_keys)

    def bare_lookup():
        for raw in raw_keys:
            kbuf[:] = raw
            raw_call(*args)
        return len(raw_keys)

    def elemops():
        for raw in raw_keys:
            ops.lookup(raw)
        return len(raw_keys)

    def elemops_struct():
        for k in keys:
            unpack(ops.lookup(pack(k)))[0]
        return len(keys)

    def getitem():
        for k in keys:
            m[k]
        return len(keys)

    return [
        ("Python for loop, nothing in it", python_loop),
        ("ctypes syscall(), bpf(2) unknown cmd (EINVAL)", unknown_cmd),
        ("ctypes syscall(), MAP_LOOKUP_ELEM + key copy", bare_lookup),
        ("ElemOps.lookup(key bytes)", elemops),
        ("+ struct pack key / unpack value", elemops_struct),
        ("m[k] (Map + Codec layers)", getitem),
    ]


def argtypes_loop(bench):
    """The bare lookup through bpf_call, whose argtypes make ctypes convert all four
    arguments on every call (the element path before it moved to raw_call)."""
    kbuf, raw_keys = bench.bare.key, bench.raw_keys
    addr, size = bench.bare.addr, bench.bare.size

    def loop():
        for raw in raw_keys:
            kbuf[:] = raw
            bpf_call(NR_BPF, LOOKUP, addr, size)
        return len(raw_keys)
    return COMPARISON + "bare lookup via bpf_call (argtypes)", loop


COMPARISON = "for comparison: "


def layers(args):
    """Median ns per lookup of each layer on a hash map, and the step between layers."""
    def body(benches):
        loops = layer_loops(benches[0]) + [argtypes_loop(benches[0])]
        runs = repeat(args, lambda: [timed(loop)[0] for _, loop in loops])
        return {"layers": [dict(summarise([r[i] for r in runs]), label=label, unit="ns/op")
                           for i, (label, _) in enumerate(loops)]}
    return with_benches(args, ["hash"], body)


def layers_table(doc):
    """The human-readable report of layers(); "step" is the cost a layer adds."""
    lines = header(doc) + [f"{'layer (hash map, one lookup per key)':52}"
                           f"{'ns/op median [min .. max]':30}{'step':>8}"]
    previous = None
    for row in doc["layers"]:
        step = "" if previous is None else f"{row['median'] - previous:+,.0f}"
        lines.append(f"{row['label']:52}{cell(row, 'ns/op'):30}{step:>8}")
        if not row["label"].startswith(COMPARISON):
            previous = row["median"]
    return "\n".join(lines)


# ---- output -------------------------------------------------------------------------

def fmt(value, unit):
    if unit == "x":
        return f"{value:.1f}x"
    if unit == "%":
        return f"{value:.0f}%"
    if unit == "entries/s":
        return f"{value / 1e6:.2f} M/s" if value >= 1e6 else f"{value / 1e3:.0f} k/s"
    return f"{value:,.0f}"


def cell(stats, unit):
    return f"{fmt(stats['median'], unit)} [{fmt(stats['min'], unit)} .. {fmt(stats['max'], unit)}]"


def header(doc):
    mach, cfg, load = doc["machine"], doc["config"], doc["machine_load"]
    return [
        f"pybpf map benchmark, {mach['date']}: {doc['command']}",
        f"{mach['cpu']}, {mach['cores']} cores, kernel {mach['kernel']}, "
        f"{mach['implementation']} {mach['python']}, pybpf {mach['pybpf'] or 'version unknown'}",
        f"{cfg['entries']} entries, key {cfg['key']!r} value {cfg['value']!r}; median "
        f"[min .. max] of {cfg['runs']} runs after {cfg['warmup']} warm-up",
        f"while it ran, other processes used {load['other_processes_pct']:.0f}% of the "
        f"{mach['cores']} cores, the host stole {load['steal_pct']:.0f}%; load average "
        f"{doc['loadavg_before'][0]:.2f} before, {doc['loadavg_after'][0]:.2f} after",
        "",
    ]


def table(doc):
    """The human-readable report of run()."""
    kinds = list(doc["maps"])
    width = 38
    colw = 2 + max(len(cell(doc["maps"][k]["metrics"][m], METRICS[m][0]))
                   for k in kinds for m in METRICS)
    lines = header(doc)
    lines.append(f"{'operation':{width}}{'unit':11}" + "".join(f"{k:{colw}}" for k in kinds))
    for metric, (unit, label) in METRICS.items():
        lines.append(f"{label:{width}}{unit:11}" + "".join(
            f"{cell(doc['maps'][k]['metrics'][metric], unit):{colw}}" for k in kinds))
    lines.append("")
    for k in kinds:
        counts = doc["maps"][k]["counts"]
        lines.append(f"{k}: batch read returned {counts['batch_lookup_per_s']} entries, "
                     f"iteration {counts['iterate_per_s']}; values verified: "
                     f"{'yes' if doc['maps'][k]['verified'] else 'NO'}")
    lines.append("targets (from the issue; medians):")
    for t in doc["targets"]:
        unit = METRICS[t["metric"]][0]
        shown = f"{t['median'] / 1000:.2f} us" if unit == "ns/op" else fmt(t["median"], unit)
        lines.append(f"  {t['map']:6} {t['target']:32} {shown:>10}   "
                     f"{'pass' if t['pass'] else 'MISS'}")
    return "\n".join(lines)


def profile_lookups(args, top=15):
    """cProfile a loop of hash-map lookups (the profiler adds its own cost per call, so
    read the shares, not the absolute times; --layers gives those)."""
    bench = Bench("hash", args.entries, args.seed, None)
    try:
        profiler = cProfile.Profile()
        profiler.runcall(bench.lookup)
    finally:
        bench.close()
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(top)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--entries", type=int, default=100000, help="entries per map (100000)")
    p.add_argument("--runs", type=int, default=5, help="timed runs; the median is reported (5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first (1)")
    p.add_argument("--maps", default=",".join(MAP_KINDS),
                   help="comma-separated map kinds (hash,array)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="entries per lookup_batch syscall (default: pybpf's)")
    p.add_argument("--seed", type=int, default=1, help="seed of the shuffled key order")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON ('-': stdout)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--layers", action="store_true",
                      help="instead: time one lookup layer by layer (hash map)")
    mode.add_argument("--profile", action="store_true",
                      help="instead: cProfile --entries hash-map lookups, print the top")
    args = p.parse_args(argv)
    args.maps = [k.strip() for k in args.maps.split(",") if k.strip()]
    bad = [k for k in args.maps if k not in MAP_KINDS]
    if bad or not args.maps:
        p.error(f"--maps takes {', '.join(MAP_KINDS)}; got {args.maps}")
    if args.entries < 1 or args.runs < 1 or args.warmup < 0:
        p.error("--entries and --runs must be at least 1, --warmup at least 0")
    return args


def emit(doc, text, json_path):
    if json_path == "-":
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    print(text)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")


def main(argv=None):
    args = parse_args(argv)
    if args.profile:
        profile_lookups(args)
        return 0
    if args.layers:
        doc = layers(args)
        emit(doc, layers_table(doc), args.json)
        return 0
    doc = run(args)
    emit(doc, table(doc), args.json)
    return 0 if all(b["verified"] for b in doc["maps"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
