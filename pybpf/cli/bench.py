"""``python -m pybpf bench thesis``: the e2BPF thesis's evaluation (chapter 6) re-run
on this kernel or in the VM tiers, written as report.md, CSVs and PNG plots."""
import argparse
import os
import sys

from . import command_parser

_KERNELS = ("host", "vm-stock", "vm-patched")


def register(sub):
    p = command_parser(sub, "bench")
    which = p.add_subparsers(dest="bench", metavar="BENCHMARK")
    which.required = True
    t = which.add_parser(
        "thesis", help="the thesis's chapter 6 experiments, with its numbers beside ours",
        description="Re-run the e2BPF thesis's evaluation (6.2.1-6.4): verification by "
        "size, helper and tail-call costs, the override, the pipeline against user "
        "space, and the break-even size. Writes DIR/report.md, a CSV per experiment, "
        "results.json and, with matplotlib (pip install 'pybpf[plot]'), PNG plots.")
    t.add_argument("--out", default="thesis-report", metavar="DIR",
                   help="where the report goes (default: ./thesis-report)")
    t.add_argument("--quick", action="store_true",
                   help="a reduced grid: every experiment, a few minutes")
    t.add_argument("--kernel", choices=_KERNELS, default="host",
                   help="host: the running kernel; vm-stock / vm-patched: boot the VM "
                        "tier's stock or patched 6.1 under QEMU and run there (needs a "
                        "source checkout)")
    t.add_argument("--sizes", type=_sizes, metavar="MB,...",
                   help="the file sizes of 6.3 and 6.4 (default: the thesis's 16-112 MB; "
                        "--quick: 1,4)")
    t.add_argument("--runs", type=_positive, metavar="N", help="runs per point")
    t.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="the VM's wall-time limit (default: 30 min quick, 4 h full)")
    t.add_argument("--quiet", action="store_true", help="no progress on stderr")
    t.add_argument("--environment", help=argparse.SUPPRESS)
    t.add_argument("--emulated", action="store_true", help=argparse.SUPPRESS)
    t.add_argument("--no-plots", dest="plots", action="store_false", help=argparse.SUPPRESS)
    t.set_defaults(func=run_thesis)


def _sizes(text):
    try:
        sizes = [int(x) for x in text.split(",") if x]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"sizes are whole megabytes, comma-separated "
                                         f"(e.g. 16,32,64), not {text!r}")
    return sizes


def _positive(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"runs is a whole number of 1 or more, not {text!r}")
    return int(text)


def run_thesis(args):
    from ..evaluation import grid as G
    grid = (G.QUICK if args.quick else G.FULL).with_options(args.sizes, args.runs)
    if args.kernel != "host":
        from ..evaluation import vm
        argv = (["--quick"] if args.quick else []) + \
            (["--sizes", ",".join(map(str, args.sizes))] if args.sizes else []) + \
            (["--runs", str(args.runs)] if args.runs else [])
        timeout = args.timeout or (1800 if args.quick else 4 * 3600)
        status = vm.run(args.kernel, args.out, argv, grid, timeout)
        if status == 0:
            print(os.path.join(os.path.abspath(args.out), "report.md"))
        else:
            print(f"pybpf bench thesis: the run in the VM failed (exit {status}); its "
                  f"output is in {os.path.join(args.out, 'output.log')}", file=sys.stderr)
        return status
    if os.geteuid() != 0:
        print("pybpf bench thesis: needs root (it loads and attaches BPF programs)",
              file=sys.stderr)
        return 1
    from ..evaluation import runner
    environment = args.environment or "the host, no virtualisation layer in between"
    doc = runner.run(args.out, grid, environment, emulated=args.emulated, quiet=args.quiet,
                     draw=args.plots)
    print(os.path.join(os.path.abspath(args.out), "report.md"))
    failed = [s["key"] for s in doc["sections"] if s["skipped"]]
    if failed and not args.quiet:
        print(f"skipped on this kernel: {', '.join(failed)} (the report says why)",
              file=sys.stderr)
    return 0
