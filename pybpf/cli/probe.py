"""``python -m pybpf probe``: what the running kernel supports, for people or programs.

The answers come from :func:`pybpf.probe.probe` and, for the filter-reduce pipeline,
from :func:`pybpf.filterreduce.backends.verdicts`; this module parses options and
formats them. The text starts with the verdict people come for (which filter-reduce
backend works here and what to change to get the copyout one), then the details by
group.
"""
import argparse
import textwrap

from .. import probe as _probe
from ..filterreduce import backends as _backends
from ..filterreduce import facts as _facts
from ..kernel import mounts
from . import command_parser, emit_json

_DESCRIPTION = """\
Probe the running kernel: which BPF program types load, which map types can be
created, which helpers each program type may call (like `bpftool feature probe
kernel`), and what the e2BPF filter-reduce pipeline needs: kprobes, the read()
syscall tracepoints, a probe-able copyout, bpf_override_return. Needs root."""

_EPILOG = """\
The verdict names the backend `attach copyout` will use, the best that works:
  copyout        kprobes on copyout and _copy_to_iter (a kernel built with
                 kernel-config/); can skip the copy when bpf_override_return works
  copy_to_iter   a kprobe on _copy_to_iter (kernels that allow kprobes on it)
  syscall        the read() family's syscall tracepoints (stock kernels)
  none           none works; the reasons say what to change
Nothing is mounted unless --mount is given; without tracefs, debugfs and securityfs
some answers come from the kernel config or are reported as unknown."""

_INDENT = "  "
_WIDTH = 100


def register(subparsers):
    p = command_parser(
        subparsers, "probe", description=_DESCRIPTION, epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-j", "--json", action="store_true", help="print one JSON document")
    p.add_argument("--no-helpers", dest="helpers", action="store_false",
                   help="skip the helper matrix (thousands of loads; the pipeline's own "
                   "helpers are still probed)")
    p.add_argument("--full", action="store_true",
                   help="also probe " + ", ".join(_probe.helper_name(h)
                                                  for h in _probe.NOISY_HELPERS)
                   + " (verifying a call to them writes to the kernel log)")
    p.add_argument("--mount", action="store_true",
                   help="first mount tracefs, debugfs and securityfs where they belong if "
                   "they are not mounted (they stay mounted)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="list helper names per program type, not only their number")
    p.set_defaults(func=run)


class Report:
    """The probe's findings with the pipeline's verdict over them."""

    def __init__(self, result, verdicts):
        self.result, self.verdicts = result, verdicts
        usable = [name for name, v in verdicts.items() if v.usable]
        self.backend = usable[0] if usable else "none"

    def to_dict(self):
        """The JSON document of ``python -m pybpf probe --json``."""
        doc = self.result.to_dict()
        doc["pipeline"] = {"backend": self.backend,
                           "backends": {n: v.to_dict() for n, v in self.verdicts.items()}}
        return doc


def run(args):
    result = _probe.probe(helpers=args.helpers, full=args.full, mount=args.mount,
                          more_symbols=_facts.SYMBOLS)
    facts = _facts.gather(mount=args.mount, kallsyms=result.tracing["kallsyms"])
    report = Report(result, _backends.verdicts(facts))
    if args.json:
        emit_json(report.to_dict())
    else:
        print(format_text(report, verbose=args.verbose))
    return 0


# ---- text ---------------------------------------------------------------------------

def _yes_no(ok):
    return {True: "yes", False: "no", None: "unknown"}[ok]


def _answer(answer):
    return f"{_yes_no(answer.ok)}: {answer.detail}" if answer.detail else _yes_no(answer.ok)


def _rows(pairs):
    """Aligned "name  value" lines; a value longer than the line wraps under itself."""
    width = max((len(name) for name, _ in pairs), default=0) + 2
    lines = []
    for name, value in pairs:
        wrapped = _wrap(str(value), "", "", _WIDTH - width - len(_INDENT)) or [""]
        lines.append(f"{_INDENT}{name:<{width}}{wrapped[0]}")
        lines.extend(f"{_INDENT}{'':<{width}}{more}" for more in wrapped[1:])
    return lines


def _wrap(text, first, rest, width=_WIDTH):
    return textwrap.wrap(text, width, initial_indent=first, subsequent_indent=rest,
                         break_on_hyphens=False)


def _bullets(items, indent=_INDENT * 2):
    return [line for item in items for line in _wrap(item, indent + "- ", indent + "  ")]


def _words(words, indent=_INDENT):
    return _wrap(" ".join(words), indent, indent) or [indent + "(none)"]


def format_text(report, verbose=False):
    result = report.result
    sections = [_summary(report), _kernel(result), _features(result), _tracing(result),
                _types("Program types", "load", result.program_types),
                _types("Map types", "can be created", result.map_types),
                _helpers(result.helpers, verbose)]
    return "\n\n".join("\n".join(lines) for lines in sections if lines)


def _summary(report):
    result = report.result
    k, s = result.kernel, result.seconds
    timing = f"probed in {s['total']:.2f} s"
    if result.helpers:
        timing += f" (helper matrix {s['helpers']:.2f} s, {result.helpers.loads} loads)"
    lines = [f"pybpf probe: Linux {k['release']}, {timing}"]
    if not k["privileged"]:
        lines.append("warning: not running with CAP_BPF or CAP_SYS_ADMIN: the kernel "
                     "refuses most loads, so most answers below are \"no\"; run as root")
    if result.mounted:
        lines.append(f"mounted for this probe: {', '.join(result.mounted)}")
    lines += ["", "Summary", f"{_INDENT}filter-reduce backend: {report.backend}"]
    for v in report.verdicts.values():
        state = "usable" if v.usable else "unavailable"
        if v.usable and v.backend == "copyout":
            state += " (can skip the copy)" if v.can_override else " (copies)"
        lines.append(f"{_INDENT}{v.backend}: {state}")
        lines += _bullets(list(v.missing) + list(v.notes))
    loads = sum(t.available for t in result.program_types.values())
    creates = sum(t.available for t in result.map_types.values())
    lines.append(f"{_INDENT}program types: {loads} of {len(result.program_types)} load; "
                 f"map types: {creates} of {len(result.map_types)} can be created")
    return lines


def _kernel(result):
    k = result.kernel
    unpriv = k["unprivileged_bpf_disabled"]
    return ["Kernel"] + _rows([
        ("release", f"{k['release']} (config: {k['config'] or 'not found'})"),
        ("BTF", _answer(k["btf"])),
        ("JIT", _answer(k["jit"])),
        ("unprivileged bpf", "unknown" if unpriv is None else
         f"{'allowed' if unpriv == 0 else 'disabled'} "
         f"(kernel.unprivileged_bpf_disabled={unpriv})"),
        ("privileged", "yes (CAP_BPF or CAP_SYS_ADMIN)" if k["privileged"] else "no"),
        ("lockdown", k["lockdown"]["detail"]),
    ])


def _features(result):
    """The feature tests pybpf decides by, one row each (none: not probed)."""
    if not result.features:
        return []
    rows = []
    for name, f in result.features.items():
        since = f" (Linux {f['minimum']}+)" if f["minimum"] else ""
        rows.append((name, f"{_yes_no(f['available'])}: {f['description']}{since}"
                     + (f"; {f['detail']}" if f["detail"] else "")))
    return ["Kernel features"] + _rows(rows)


def _mounted(path, fstype, target=None):
    if path:
        return f"mounted at {path}"
    hint = f" (mount -t {fstype} {fstype} {target}, or --mount)" if target else ""
    return "not mounted" + hint


def _tracing(result):
    t = result.tracing
    facts = t["symbol_facts"]
    symbol = ", ".join(f"{label}: {_yes_no(facts[key])}" for label, key in (
        ("in /proc/kallsyms", "in_kallsyms"), ("kprobe blacklist", "kprobe_blacklisted"),
        ("ftrace-able", "ftrace_able"), ("error-injectable", "error_injectable")))
    pmus = ", ".join(f"{name}: {'type %d' % n if n is not None else 'none'}"
                     for name, n in t["pmus"].items())
    tracefs = _mounted(t["tracefs"], "tracefs", mounts.TRACEFS_PATHS[0])
    if not t["tracefs"] and not t["tracefs_mountable"]:
        tracefs = "not available in this kernel"
    return ["Tracing"] + _rows([
        ("tracefs", tracefs),
        ("debugfs", _mounted(t["debugfs"], "debugfs", mounts.DEBUGFS_PATH)),
        ("securityfs", _mounted(t["securityfs"], "securityfs", mounts.SECURITYFS_PATH)),
        ("PMUs", pmus),
        ("kprobes", _answer(t["kprobes"])),
        ("read() tracepoints", _answer(t["read_tracepoints"])),
        (t["symbol"], symbol),
    ])


def _types(title, verb, types):
    good = [name for name, t in types.items() if t.available]
    lines = [f"{title} ({len(good)} of {len(types)} {verb})"] + _words(good)
    refused = [(name, f"{t.error}: {t.detail}" if t.detail else t.error)
               for name, t in types.items()
               if not t.available]
    noted = [(name, t.detail) for name, t in types.items() if t.available and t.detail]
    if refused:
        lines += ["", f"{_INDENT}not available:"] + _rows(
            [(_INDENT + name, why) for name, why in refused])
    if noted:
        lines += ["", f"{_INDENT}notes:"] + _rows([(_INDENT + n, why) for n, why in noted])
    return lines


def _helpers(matrix, verbose):
    if matrix is None:
        return ["Helpers: not probed (--no-helpers)"]
    total = len(matrix.probed)
    lines = [f"Helpers (available per program type, of {total} probed; "
             f"{'names' if verbose else '-v lists them'})"]
    if not matrix.available:
        lines.append(f"{_INDENT}none: no program type loaded, so no helper could be probed")
    elif verbose:
        for ptype, names in matrix.available.items():
            lines.append(f"{_INDENT}{ptype} ({len(names)}):")
            lines += _words(names, _INDENT * 2)
    else:
        lines += _rows([(ptype, len(names)) for ptype, names in matrix.available.items()])
    notes = []
    if matrix.not_probed:
        notes.append("not probed for: " + "; ".join(
            f"{ptype} ({why})" for ptype, why in matrix.not_probed.items()))
    if matrix.newer:
        notes.append("newer than pybpf's constants, named by the kernel: " +
                     ", ".join(f"{name} (#{i})" for i, name in matrix.newer.items()))
    if matrix.skipped:
        notes.append("skipped (verifying a call writes to the kernel log; --full probes "
                     f"them): {', '.join(matrix.skipped)}")
    return lines + _bullets(notes, _INDENT)
