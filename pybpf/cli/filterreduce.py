"""``python -m pybpf attach copyout``: the e2BPF filter-reduce pipeline.

    python -m pybpf attach copyout FILE... [--filter EXPR] [--reduce OPS]
        [--backend auto|copyout|copy_to_iter|syscall] [--parser native|strtol]
        [--chunk BYTES] [--override] [--json] [--quiet] [--pin DIR]
    python -m pybpf attach copyout --scheduler ADDR WORKER:PATH...   # on a Dask
                                            # cluster's nodes (cli/cluster.py)
    python -m pybpf attach copyout          # the main job: a generated 64 MiB sample,
                                            # checked against user space
    python -m pybpf detach DIR              # remove a pipeline left with --pin DIR
    python -m pybpf gen-numbers OUT SIZE [options]   # test data

Each FILE is read through the pipeline: the kernel parses its numbers, keeps those
the filter passes and reduces them; the result and the stats (backend, parser, bytes,
numbers seen and kept, time, throughput) are printed. Exit status 0 when every file
was processed (and, for the sample, the result matched user space), else 1.
"""
import argparse
import os
import sys
import tempfile
import time

from ..errors import PipelineError
from ..filterreduce.names import BACKEND_NAMES, DEFAULT_CHUNK, PARSERS, REDUCTIONS
from . import command_parser, emit_json

SAMPLE_SIZE = 64 << 20
SAMPLE_FILTER = "x >= 500000 or x % 7 == 0"
SAMPLE_OPTIONS = dict(low=0, high=999_999, negatives=0.25, separators=(b"\n", b" ", b","),
                      seed=2021)

_JSON_HELP = """\
--json prints a list with one object per file: file, backend, parser, filter, bytes,
numbers_seen, numbers_kept, numbers_out_of_range, one key per requested reduction
(count, sum, min, max, avg; min/max/avg are null when nothing was kept), events,
overridden, seconds, mb_per_s. For the sample (no FILE), the list holds the pipeline's
result and the user-space one (backend "python"), and each has "matches"."""


def register(sub):
    p = command_parser(sub, "attach", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_subparsers(dest="what", metavar="PIPELINE")
    what.required = True
    c = what.add_parser("copyout", help="parse, filter and reduce the numbers of files "
                                        "inside the kernel while they are read",
                        description=__doc__, epilog=_JSON_HELP,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("files", nargs="*", metavar="FILE",
                   help="files to read (none: a generated 64 MiB sample, checked against "
                        "user space)")
    c.add_argument("--filter", metavar="EXPR",
                   help="Python expression over x, e.g. 'x >= 100', '10 <= x < 20', "
                        "'x %% 3 == 0 and x < 0' (default: keep every number; the "
                        f"sample's: {SAMPLE_FILTER.replace('%', '%%')!r})")
    c.add_argument("--reduce", default=",".join(REDUCTIONS), metavar="OPS",
                   help=f"comma-separated, from {','.join(REDUCTIONS)} (default: all)")
    c.add_argument("--filter-py", metavar="MODULE_OR_FILE:FUNC",
                   help="a Python function keep(x) -> bool as the filter, compiled to BPF "
                        "(the jit extra: pip install 'pybpf[jit]'; docs/jit.md)")
    c.add_argument("--reduce-py", metavar="MODULE_OR_FILE:NAME",
                   help="a pybpf.filterreduce.Reduce defined in a module or file, as the "
                        "reduction (its state's fields are printed)")
    c.add_argument("--backend", default="auto", choices=("auto",) + BACKEND_NAMES,
                   help="where to hook the read path (default: the best this kernel has)")
    c.add_argument("--parser", default="native", choices=PARSERS,
                   help="native: a digit loop; strtol: bpf_strtoul per number (the "
                        "thesis's way)")
    c.add_argument("--chunk", type=int, default=DEFAULT_CHUNK, metavar="BYTES",
                   help=f"bytes per read() (default {DEFAULT_CHUNK})")
    c.add_argument("--override", action="store_true",
                   help="skip the copy to user space (copyout backend on a kernel built "
                        "with kernel-config/)")
    c.add_argument("--pin", metavar="DIR",
                   help="leave the pipeline attached and pinned under DIR (bpffs) for "
                        "other processes; remove it with: python -m pybpf detach DIR")
    c.add_argument("--sample-size", type=_size, default=SAMPLE_SIZE, metavar="SIZE",
                   help="size of the generated sample when no FILE is given (default 64M)")
    c.add_argument("--scheduler", metavar="ADDR",
                   help="run on the Dask cluster at ADDR, each file on a worker holding "
                        "it; files are then WORKER:/path (the dask extra; docs/dask.md)")
    c.add_argument("--connect-timeout", type=float, default=30, metavar="SECONDS",
                   help="with --scheduler, how long to try to reach it (default 30)")
    c.add_argument("--json", action="store_true", help="print JSON (see below)")
    c.add_argument("--quiet", action="store_true",
                   help="print only the results: no progress, no backend notes")
    c.set_defaults(func=run_attach)

    d = command_parser(sub, "detach",
                       description="Remove the filter-reduce pipeline pinned under DIR: its "
                                   "links (which detaches it), its maps and DIR itself.")
    d.add_argument("directory", metavar="DIR")
    d.set_defaults(func=run_detach)

    g = command_parser(sub, "gen-numbers",
                       description="Write SIZE bytes of numbers to OUT, e.g. "
                                   "gen-numbers data.txt 64M --filter 'x >= 500000' "
                                   "--filter-factor 0.25")
    g.add_argument("out", metavar="OUT")
    g.add_argument("size", type=_size, metavar="SIZE", help="bytes, or with K, M, G")
    g.add_argument("--min", type=int, default=0, help="smallest magnitude (default 0)")
    g.add_argument("--max", type=int, default=999_999, help="largest magnitude")
    g.add_argument("--negatives", type=float, default=0.0, metavar="SHARE",
                   help="share of negative numbers, 0..1")
    g.add_argument("--separators", default="\\n", metavar="CHARS",
                   help="separator characters to draw from (backslash escapes allowed; "
                        "default \\n)")
    g.add_argument("--filter", metavar="EXPR", help="the filter the factor refers to")
    g.add_argument("--filter-factor", type=float, metavar="SHARE",
                   help="share of numbers --filter drops, 0..1")
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(func=run_gen)


def load_object(spec, option):
    """The object NAME of MODULE_OR_FILE:NAME: a module to import, or a .py file."""
    import importlib
    import importlib.util
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name:
        raise PipelineError(f"{option} takes MODULE_OR_FILE:NAME, e.g. filters.py:keep, "
                            f"got {spec!r}")
    try:
        if where.endswith(".py") or os.sep in where:
            if not os.path.isfile(where):
                raise PipelineError(f"{option}: no file {where}")
            loaded = importlib.util.spec_from_file_location(
                os.path.splitext(os.path.basename(where))[0], where)
            module = importlib.util.module_from_spec(loaded)
            loaded.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except ImportError as e:
        raise PipelineError(f"{option}: cannot import {where}: {e}") from None
    if not hasattr(module, name):
        raise PipelineError(f"{option}: {where} has no {name!r}")
    return getattr(module, name)


def _size(text):
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.strip().lower().rstrip("ib")
    try:
        return int(t[:-1]) * units[t[-1]] if t and t[-1] in units else int(t)
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (bytes, or with K, M, G)")


class _Progress:
    """A progress line on stderr when it is a terminal and the work lasts > 1 s."""

    def __init__(self, enabled):
        self.enabled = enabled and sys.stderr.isatty()
        self.started = time.monotonic()
        self.shown = 0.0

    def __call__(self, done, total):
        now = time.monotonic()
        if not self.enabled or now - self.started < 1 or now - self.shown < 0.2:
            return
        self.shown = now
        rate = done / (now - self.started) / 1e6
        sys.stderr.write(f"\r  {done / 2**20:.1f} of {total / 2**20:.1f} MiB, "
                         f"{rate:.0f} MB/s ")
        sys.stderr.flush()

    def clear(self):
        if self.enabled and self.shown:
            sys.stderr.write("\r" + " " * 40 + "\r")
            sys.stderr.flush()
        self.started, self.shown = time.monotonic(), 0.0


def _describe(res, reductions):
    lines = [f"{res.file}: backend {res.backend}, parser {res.parser}, "
             f"filter {res.filter or '(none: every number)'}",
             f"  bytes {res.bytes}, numbers seen {res.numbers_seen}, kept "
             f"{res.numbers_kept}" + (f", out of range {res.numbers_out_of_range}"
                                      if res.numbers_out_of_range else "")]
    shown = []
    for r in reductions:
        v = res.value(r)
        shown.append(f"{r} {'-' if v is None else (f'{v:.6g}' if isinstance(v, float) else v)}")
    lines.append("  " + "  ".join(shown))
    if res.custom is not None:
        lines += [f"  {name} {value}" for name, value in res.custom.items()]
    if res.throughput:
        lines.append(f"  {res.seconds:.3f} s, {res.throughput / 1e6:.0f} MB/s")
    return "\n".join(lines)


def run_attach(args):
    if args.pin and args.override:
        raise PipelineError("--override with --pin would skip copies for every tenant "
                            "of the pinned pipeline; register tenants with the override "
                            "flag instead (docs/filterreduce.md)")
    sample_run = not args.files and not args.pin
    if args.filter_py and args.filter is not None:
        raise PipelineError("give --filter or --filter-py, not both")
    flt = args.filter if args.filter is not None else (SAMPLE_FILTER if sample_run else None)
    if args.filter_py:
        flt = load_object(args.filter_py, "--filter-py")
    reduce = load_object(args.reduce_py, "--reduce-py") if args.reduce_py else args.reduce
    if args.scheduler:
        from . import cluster
        return cluster.run(args, flt, reduce, _describe)
    from ..filterreduce import FilterReduce
    with FilterReduce(flt, reduce, backend=args.backend, parser=args.parser,
                      chunk=args.chunk, override=args.override) as fr:
        if not args.quiet and not args.json:
            print(f"pybpf: backend {fr.why}", file=sys.stderr)
        if sample_run:
            return _sample(fr, args)
        progress = _Progress(not args.quiet)
        results = []
        for path in args.files:
            res = fr.read(path, progress=progress)
            progress.clear()
            results.append(res)
            if not args.json:
                print(_describe(res, fr.reductions))
        if args.json:
            emit_json([r.to_dict(fr.reductions) for r in results])
        if args.pin:
            fr.pipeline.pin(args.pin)
            fr.pipeline.set_default_filter(fr.slot)
            if not args.quiet:
                print(f"pybpf: pipeline pinned under {args.pin} ({fr.backend} backend, "
                      f"filter slot {fr.slot}); remove it with: python -m pybpf detach "
                      f"{args.pin}", file=sys.stderr)
    return 0


def _sample(fr, args):
    """The main job: a generated sample through the pipeline and through user space."""
    from ..filterreduce import reference, sample
    progress = _Progress(not args.quiet)
    with tempfile.TemporaryDirectory(prefix="pybpf-sample-") as tmp:
        path = os.path.join(tmp, "numbers.txt")
        started = time.perf_counter()
        sample.generate(path, args.sample_size, **SAMPLE_OPTIONS)
        if not args.quiet and not args.json:
            print(f"pybpf: generated a {args.sample_size / 2**20:.0f} MiB sample in "
                  f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
        res = fr.read(path, progress=progress)
        progress.clear()
        ref = reference.read_file(path, fr.filter)
    matches = res.same_numbers(ref)
    if args.json:
        emit_json([dict(r.to_dict(fr.reductions), matches=matches) for r in (res, ref)])
    else:
        print(_describe(res.replace(file="sample (pipeline)"), fr.reductions))
        print(_describe(ref.replace(file="sample (user space, Python)"), fr.reductions))
        verdict = "the results match" if matches else "THE RESULTS DIFFER"
        speed = f"; the pipeline was {ref.seconds / res.seconds:.0f}x as fast as the " \
                f"Python reader" if res.seconds else ""
        print(f"{verdict}{speed}")
    return 0 if matches else 1


def run_detach(args):
    from ..filterreduce import detach
    removed = detach(args.directory)
    print(f"pybpf: removed {len(removed)} pins and {args.directory}", file=sys.stderr)
    return 0


def run_gen(args):
    from ..filterreduce import sample
    seps = tuple(args.separators.encode().decode("unicode_escape").encode("latin-1"))
    count = sample.generate(args.out, args.size, low=args.min, high=args.max,
                            negatives=args.negatives, separators=[bytes([c]) for c in seps],
                            filter=args.filter, filter_factor=args.filter_factor,
                            seed=args.seed)
    print(f"pybpf: wrote {args.size} bytes ({count} numbers) to {args.out}",
          file=sys.stderr)
    return 0
