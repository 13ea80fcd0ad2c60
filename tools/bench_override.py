#!/usr/bin/env python3
"""Skipping the copy: read() latency with and without bpf_override_return, and how
reliably the copies are skipped, for single reads of 4 to 160 MB (the thesis's
Figures 6.5 and 6.6, where the override grew unreliable and was given up beyond
80 MB).

For each size, a file (tools/bench_filterreduce.py's, filter factor 50 %, copied to
a fresh tmpfs) is read with one read() into one buffer (filled with a marker first)
in four ways, each --runs times:

- plain: no pipeline attached;
- copyout: the pipeline parses, filters and reduces, and the copy happens;
- copyout+override: the same, and the copy is skipped;
- copy_to_iter: the pipeline on the other kprobe backend, for comparison.

For the override it counts the copies the kernel made to the buffer (pages whose
marker changed) against the copies the pipeline skipped, and checks each result
against the C loop of tools/bench/fr_cloop.c (as exact as the Python reference, and
fast enough under emulation). Needs the kernel built from kernel-config/ (run it in
the patched VM: tools/vm-run --kernel IMAGE --command 'python tools/bench_override.py').

    python tools/bench_override.py [--sizes 4,16,32,64,80,96,128,160] [--runs 3]
        [--json FILE] [--markdown FILE]
"""
import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))

from bench_filterreduce import FILTER, build_cloop, c_loop, data_file  # noqa: E402
from benchhost import report  # noqa: E402
from pybpf.filterreduce import FilterReduce, verdicts  # noqa: E402
from pybpf.kernel import system  # noqa: E402

MARKER = 0xA5
PAGE = system.page_size()


def one_read(path, buf):
    """(seconds, count) of one read() of the file into buf."""
    with open(path, "rb", buffering=0) as f:
        started = time.perf_counter()
        count = f.readinto(buf)
        return time.perf_counter() - started, count


def measure(args):
    found = verdicts()
    if not (found["copyout"].usable and found["copyout"].can_override):
        raise SystemExit("bench_override: needs the copyout backend with its override "
                         "(the kernel built from kernel-config/): "
                         + found["copyout"].explain())
    rows = []
    with tempfile.TemporaryDirectory() as mnt, tempfile.TemporaryDirectory() as build:
        cloop = build_cloop(build)
        system.mount("tmpfs", mnt, "tmpfs")
        try:
            readers = {"copyout": FilterReduce(FILTER, backend="copyout"),
                       "copyout+override": FilterReduce(FILTER, backend="copyout",
                                                        override=True),
                       "copy_to_iter": FilterReduce(FILTER, backend="copy_to_iter")}
            try:
                for size in args.sizes:
                    path = data_file(os.path.expanduser(args.cache), size, 50, mnt)
                    rows.append(_size_row(path, size << 20, readers, args.runs, cloop))
                    print(_row_text(rows[-1]), flush=True)
            finally:
                for fr in readers.values():
                    fr.close()
        finally:
            os.system(f"umount {mnt}")
    return {"date": datetime.date.today().isoformat(), "kernel": platform.release(),
            "cpus": os.cpu_count(), "filter": FILTER, "runs": args.runs, "rows": rows}


def _agrees(res, want):
    return all(getattr(res, k) == want[k] for k in ("bytes", "numbers_seen", "numbers_kept",
                                                   "sum", "min", "max"))


def _size_row(path, size, readers, runs, cloop):
    want = c_loop(cloop, path, 1 << 20, 1)[2]
    buf = bytearray(size)
    row = {"size_mb": size >> 20, "reads": {}}
    plain = []
    for _ in range(runs):
        buf[:] = bytes([MARKER]) * size
        seconds, count = one_read(path, buf)
        assert count == size
        plain.append(seconds)
    row["reads"]["plain"] = {"seconds": statistics.median(plain)}
    for name, fr in readers.items():
        times, copied_pages, skipped = [], [], []
        for _ in range(runs):
            buf[:] = bytes([MARKER]) * size
            with fr.tenant(buf) as t:
                seconds, count = one_read(path, buf)
                res = t.result(expected_bytes=count)
            if count != size or not _agrees(res, want):
                raise SystemExit(f"{name}: a wrong result for {size} bytes")
            times.append(seconds)
            # Pages the kernel copied into: any byte no longer the marker.
            copied_pages.append(sum(1 for i in range(0, size, PAGE)
                                    if buf[i:i + PAGE].count(MARKER) != min(PAGE, size - i)))
            skipped.append(res.overridden)
        row["reads"][name] = {"seconds": statistics.median(times),
                              "copied_pages": max(copied_pages),
                              "skipped_copies": min(skipped), "events": res.events}
    return row


def _row_text(row):
    r = row["reads"]
    base = r["plain"]["seconds"]
    parts = [f"{row['size_mb']:>4} MB: plain {base * 1000:.1f} ms"]
    for name in ("copyout", "copyout+override", "copy_to_iter"):
        e = r[name]
        parts.append(f"{name} {e['seconds'] * 1000:.1f} ms ({e['seconds'] / base:.2f}x), "
                     f"{e['copied_pages']} pages copied, {e['skipped_copies']} of "
                     f"{e['events']} copies skipped")
    return "; ".join(parts)


def markdown(doc):
    out = [f"Measured {doc['date']}, Linux {doc['kernel']} under QEMU (software emulation: "
           f"compare within a column's run, not with the host), {doc['cpus']} vCPUs; "
           f"filter `{doc['filter']}`, one read() per file into a marker-filled buffer, "
           f"medians of {doc['runs']} runs.", "",
           "| read size | plain read() | copyout | copyout + override | saved by the "
           "override | copies skipped / made | copy_to_iter |",
           "|---|---|---|---|---|---|---|"]
    for row in doc["rows"]:
        r = row["reads"]
        plain, co, ov, ci = (r[k]["seconds"] for k in
                             ("plain", "copyout", "copyout+override", "copy_to_iter"))
        o = r["copyout+override"]
        out.append(f"| {row['size_mb']} MB | {plain * 1000:.1f} ms | {co * 1000:.1f} ms | "
                   f"{ov * 1000:.1f} ms | {(co - ov) * 1000:.1f} ms ({(co - ov) / co:.0%}) | "
                   f"{o['skipped_copies']} / {o['copied_pages']} pages | {ci * 1000:.1f} ms |")
    return "\n".join(out) + "\n"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=lambda t: [int(x) for x in t.split(",")],
                   default=[4, 16, 32, 64, 80, 96, 128, 160], help="MB, comma-separated")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--cache", default=os.environ.get("PYBPF_BENCH_CACHE",
                                                     "~/.cache/pybpf/bench-filterreduce"),
                   help="where bench_filterreduce.py keeps its data files")
    p.add_argument("--json")
    p.add_argument("--markdown")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    doc = measure(args)
    report(doc, markdown(doc), args.json, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
