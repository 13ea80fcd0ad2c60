"""``python -m pybpf run OBJ.o [options] [-- CMD ARGS...]``: load, attach, run, report.

Loads every program and map of a clang-built object, attaches each program where its
section name says (``SEC("xdp")`` to --iface, ``SEC("cgroup/...")`` to --cgroup,
``SEC("tracepoint/...")`` to that tracepoint, ...), keeps them attached while CMD runs
(or for --duration seconds, or until Ctrl-C or SIGTERM), then detaches them and prints
what every map holds. Programs stored in a program array are tail-call targets and
are not attached themselves.

Exit status: CMD's when a command ran (128+N when signal N ended it), else 0; 1 when
loading, attaching or starting the command failed.

Killed with SIGKILL, run cleans up nothing, but the kernel does much of it: programs on
BPF links (tracepoints, cgroups, XDP, tcx for tc on 6.6+) detach, and CMD is killed
too (a parent-death signal). Netlink tc filters (kernels before 6.6) and XDP on
kernels before 5.9 stay attached; docs/architecture.md lists what survives.
"""
import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import time

from ..errors import Error, InputError, MissingError
from ..fd import Pinnable, pin_all
from ..kernel import procs
from ..kernel.constants import MapType, XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE
from ..typenames import type_name
from ..loader import BpfObject
from . import command_parser, emit_json, loadopts, runevents
from .runreport import Report

_XDP_MODES = {"auto": 0, "native": XDP_FLAGS_DRV_MODE, "generic": XDP_FLAGS_SKB_MODE}
_TAIL_CALL = re.compile(r"^([\w.]+)\[(\d+)\]=(\w+)$")
_KILL_AFTER = 5.0  # seconds a command gets to exit after SIGTERM before SIGKILL
_POLL = 0.05  # seconds between looks at the command and the signals
_EPILOG = """\
JSON output (--json): {"object", "programs": [{"name", "section", "id", "attached"}],
"command": {"argv", "pid", "exit_status"} or null, "seconds", "maps": {MAP: [{"key",
"value"}, ...]}, "unreadable_maps": [{"name", "type", "reason"}], "events": [...],
"event_counts": {MAP: N}, "lost_events": {MAP: N}, "warnings": [...]}. Keys, values
and globals are decoded through the object's BTF (structs as objects, arrays as
lists, char arrays as strings, enums by name), hex strings of their bytes where it
has none; per-CPU values are lists, one per CPU; program and map arrays hold ids.
Global data (.bss, .data, .rodata) shows as {VARIABLE: value}.

Events: records of every ring buffer and perf event array, read while the programs
are attached: {"map", "cpu" (perf only), "size", "value"} decoded through
--event-type, else {"map", "size", "hex", "text": [printable runs]}. With
--json-lines each is printed as one JSON line when it arrives, and the report
follows as a last line {"report": {...}}. With --json an error is a document too:
{"object", "error", "stage"}."""


def _seconds(text):
    """--duration's type: a finite number of seconds, 0 or more (nan compares false
    with every deadline, so it would never end; for no end, give no --duration)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds, 0 or more "
                                         f"(leave --duration out to run until Ctrl-C)")
    return value


def register(sub):
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--pin", metavar="DIR",
                         help="pin programs at DIR/NAME, maps at DIR/maps/NAME and links at "
                              "DIR/links/NAME (bpffs): they stay attached after this command")
    options.add_argument("--duration", type=_seconds, metavar="S",
                         help="detach after S seconds (and stop CMD if it still runs)")
    options.add_argument("--json", action="store_true", help="print one JSON document")
    options.add_argument("--iface", metavar="IF", help="interface for XDP and tc programs")
    options.add_argument("--xdp-mode", choices=sorted(_XDP_MODES), default="auto",
                         help="XDP in the driver (native), generic XDP, or native where "
                              "the driver has it (auto)")
    options.add_argument("--cgroup", metavar="PATH", help="cgroup for cgroup programs")
    options.add_argument("--program", action="append", metavar="NAME",
                         help="attach only this program (repeatable)")
    options.add_argument("--tail-call", action="append", default=[], metavar="MAP[I]=PROG",
                         help="store program PROG at index I of program array MAP before "
                              "attaching (repeatable)")
    options.add_argument("--json-lines", action="store_true",
                         help="print each event as a JSON line, then the report as one")
    options.add_argument("--event-type", action="append", default=[],
                         metavar="[MAP=]TYPE",
                         help="decode event records as TYPE: a struct/union/typedef of "
                              "the object's BTF, or HEADER.h:NAME from a C header; MAP= "
                              "for one map only (repeatable)")
    loadopts.add_arguments(options)
    p = command_parser(sub, "run", parents=[options],
                       description=__doc__, epilog=_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("object", help="ELF object built with clang -target bpf")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ARGS",
                   help="command to run while the programs are attached")
    p.set_defaults(func=run, _options=options)


def run(args):
    try:
        _split_command(args)
        runevents.check_event_options(args)
    except Error as e:
        return _fail(args, "arguments", str(e))
    stop = _StopSignals()
    try:
        obj = BpfObject.open(args.object)
    except (Error, OSError) as e:
        return _fail(args, "open", f"{args.object}: {e}")
    with stop, obj:
        try:
            programs = loadopts.apply(obj, args)
            types = runevents.event_types(obj, args.event_type)
        except (Error, OSError) as e:
            return _fail(args, "options", f"{args.object}: {e}", obj)
        try:
            obj.load(programs=programs)
            for spec in args.tail_call:
                _tail_call(obj, spec)
        except (Error, OSError) as e:
            return _fail(args, "load", f"{args.object}: {e}", obj)
        events = runevents.Events(obj, types, json_lines=args.json_lines,
                                  collect=args.json)
        try:
            events.open()
        except (Error, OSError) as e:
            return _fail(args, "events", f"{args.object}: {e}", obj)
        try:
            return _attach_and_run(args, obj, stop, events)
        finally:
            events.close()


def _attach_and_run(args, obj, stop, events):
    links, report = {}, Report(obj)
    report.warnings(obj.warnings)
    try:
        try:
            for name in _programs_to_attach(args, obj, report):
                links[name] = _attach(args, obj, name)
                report.attached(name, links[name])
            if args.pin:
                _pin(args.pin, obj, links, report)
        except (Error, OSError) as e:
            return _fail(args, "attach", str(e), obj)
        report.print_attached()
        status = _wait(args, stop, report, events)
    finally:
        for link in links.values():
            link.close()  # a pinned link stays attached
    events.drain()
    report.doc.update(events.summary())
    report.maps()
    if args.json:
        emit_json(report.doc)
    elif args.json_lines:
        print(json.dumps({"report": report.doc}))
    else:
        report.print_maps()
    return status


def _split_command(args):
    """argparse leaves options given after OBJ in the command remainder; parse those
    here, and take what follows ``--`` as the command. (argparse drops that ``--``
    itself when it directly follows OBJ, hence the first test.)"""
    rest = args.command
    if rest and not rest[0].startswith("-"):
        before, args.command = [], rest
    elif "--" in rest:
        at = rest.index("--")
        before, args.command = rest[:at], rest[at + 1:]
    else:
        before, args.command = rest, []
    if before:
        args._options.parse_args(before, namespace=args)


# ---- attaching -------------------------------------------------------------------

def fill_prog_array(obj, map_name, slots):
    """Store programs of a loaded BpfObject in one of its program arrays by name:
    fill_prog_array(obj, "jumps", {1: "b", 2: "c"})."""
    m = obj.maps.get(map_name)
    if m is None:
        raise MissingError(f"no map {map_name!r} in {obj.spec.name} (has "
                           f"{', '.join(obj.maps) or 'none'})")
    if m.type != MapType.PROG_ARRAY:
        raise InputError(f"map {map_name!r} is {type_name(m.type, MapType)}, not a program array")
    for index, prog_name in slots.items():
        prog = obj.programs.get(prog_name)
        if prog is None:
            raise MissingError(f"no loaded program {prog_name!r} in {obj.spec.name} (has "
                               f"{', '.join(obj.programs) or 'none'})")
        m[index] = prog


def _tail_call(obj, spec):
    match = _TAIL_CALL.match(spec)
    if not match:
        raise InputError(f"--tail-call {spec!r}: write MAP[INDEX]=PROGRAM, e.g. jumps[1]=b")
    fill_prog_array(obj, match.group(1), {int(match.group(2)): match.group(3)})


def _programs_to_attach(args, obj, report):
    if args.program:
        unknown = [n for n in args.program if n not in obj.programs]
        if unknown:
            raise MissingError(f"no program {', '.join(map(repr, unknown))} in {obj.spec.name} "
                               f"(has {', '.join(obj.programs)})")
        return list(args.program)
    targets = _tail_call_targets(obj)
    for name in obj.programs:
        if name in targets:
            report.skipped(name, f"tail-call target in {targets[name]}")
    return [name for name in obj.programs if name not in targets]


def _tail_call_targets(obj):
    """{program name: program array holding it} for the object's own programs."""
    by_id = {prog.id: name for name, prog in obj.programs.items()}
    found = {}
    for map_name, m in obj.maps.items():
        if m.type == MapType.PROG_ARRAY:
            for _, prog_id in m.items():
                if prog_id in by_id:
                    found[by_id[prog_id]] = map_name
    return found


def _attach(args, obj, name):
    from ..attach import attach  # not at the top: load and --help need none of it
    sd = obj.spec.programs[name].section_def
    what = f"program {name!r} (section {sd.section!r})"
    options = _options_for(sd, args, what)
    try:
        return attach(obj.programs[name], sd, **options)
    except (Error, OSError) as e:
        raise _AttachError(f"{what}: {e}") from None


def _options_for(sd, args, what):
    """The command line's options that apply to this section (attach() refuses the
    others, and one object may hold XDP and tracing programs alike): those its hook
    takes (pybpf.attach.options_of)."""
    from ..attach import options_of
    taken, opts = options_of(sd), {}
    if "iface" in taken:
        if not args.iface:
            raise _AttachError(f"{what} attaches to a network interface: pass --iface IF")
        opts["iface"] = args.iface
    if "xdp_flags" in taken:
        opts["xdp_flags"] = _XDP_MODES[args.xdp_mode]
    if "cgroup" in taken:
        if not args.cgroup:
            raise _AttachError(f"{what} attaches to a cgroup: pass --cgroup PATH (a cgroup "
                               f"v2 directory)")
        opts["cgroup"] = args.cgroup
    return opts


class _AttachError(InputError):
    """Attaching one program failed; the message names the program."""


def _pin(directory, obj, links, report):
    """Pin programs and maps (BpfObject.pin's layout) and links at DIR/links/NAME, all
    or nothing (pybpf.fd.pin_all); netlink attachments are left in place instead."""
    for name, link in links.items():
        if not isinstance(link, Pinnable) and not hasattr(link, "leave_attached"):
            raise InputError(f"program {name!r}: its attachment ({link.description}) "
                             f"cannot be pinned; run without --pin")
    pin_all(obj.pin_targets(directory) + [
        (link, os.path.join(directory, "links", name)) for name, link in links.items()
        if isinstance(link, Pinnable)])
    for name, link in links.items():
        if not isinstance(link, Pinnable):
            report.left_attached(name, link.leave_attached())
    report.doc["pinned"] = directory


# ---- running -----------------------------------------------------------------------

class _StopSignals:
    """While active, SIGINT and SIGTERM only record that they came (in ``signum``):
    the waits below poll for it, so the process never dies half-attached and every
    attachment is undone on the way out."""

    def __init__(self):
        self.signum = None
        self._saved = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame):
        self.signum = signum


def _wait(args, stop, report, events):
    """Wait for the command, the duration or a signal, reading events meanwhile; the
    exit status."""
    started = time.monotonic()
    deadline = None if args.duration is None else started + args.duration
    try:
        if args.command and stop.signum is None:
            return _run_command(args, stop, report, deadline, events)
        _poll_until(lambda: stop.signum is not None, deadline, events)
        return 0
    finally:
        report.doc["seconds"] = round(time.monotonic() - started, 3)


def _poll_until(done, deadline, events=None):
    """True once done(), False if the deadline (a monotonic time, or None) came first.
    Between looks, events (if any) are read instead of sleeping."""
    while not done():
        if deadline is not None and time.monotonic() >= deadline:
            return False
        if events is None or not events.poll(_POLL):
            time.sleep(_POLL)
    return True


def _run_command(args, stop, report, deadline, events):
    try:
        child = subprocess.Popen(args.command, preexec_fn=_dies_with(os.getpid()))
    except OSError as e:
        print(f"pybpf run: cannot run {args.command[0]!r}: {e}", file=sys.stderr)
        report.doc["command"] = {"argv": args.command, "pid": None, "exit_status": None,
                                 "error": str(e)}
        return 1
    report.doc["command"] = {"argv": args.command, "pid": child.pid, "exit_status": None}
    print(f"pybpf run: started {args.command[0]} (pid {child.pid})", file=sys.stderr,
          flush=True)
    if not _poll_until(lambda: child.poll() is not None or stop.signum is not None,
                       deadline, events) or child.returncode is None:
        _end(child, stop.signum or signal.SIGTERM)
    status = child.returncode
    status = 128 - status if status < 0 else status
    report.doc["command"]["exit_status"] = status
    return status


def _dies_with(parent):
    """What the command's process runs before exec: SIGKILL it when run dies. Stopping
    by a signal run can catch, run passes SIGTERM on and waits; killed itself, it
    cannot, and the command would live on, orphaned, after the programs detached."""
    def preexec():
        procs.set_parent_death_signal(signal.SIGKILL)
        if os.getppid() != parent:  # run died before the call: no signal will come
            os.kill(os.getpid(), signal.SIGKILL)
    return preexec


def _end(child, signum):
    """Stop the command: signum (SIGTERM or the one we got), then SIGKILL if ignored.
    Ctrl-C at a terminal reached the command as well, so it gets a moment first."""
    steps = [(signum, _KILL_AFTER), (signal.SIGKILL, None)]
    if signum == signal.SIGINT:
        steps.insert(0, (None, 1.0))
    for sig, grace in steps:
        if sig is not None and child.poll() is None:
            child.send_signal(sig)
        if grace is None:
            child.wait()
        elif _poll_until(lambda: child.poll() is not None, time.monotonic() + grace):
            return


def _fail(args, stage, message, obj=None):
    """Exit status 1 after an error: with --json (or --json-lines) a JSON document on
    stdout, so a program reading it always gets one, else a line on stderr."""
    if getattr(args, "json", False) or getattr(args, "json_lines", False):
        doc = {"object": obj.spec.name if obj is not None else args.object,
               "error": message, "stage": stage}
        if obj is not None and obj.warnings:
            doc["warnings"] = list(obj.warnings)
        if args.json:
            emit_json(doc)
        else:
            print(json.dumps(doc))
    print(f"pybpf run: error: {message}", file=sys.stderr)
    return 1
