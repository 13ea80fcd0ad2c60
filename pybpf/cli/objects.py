"""``python -m pybpf prog ...`` and ``map ...``: what is loaded on this system.

Like bpftool's commands of the same names, so people who know one can read the other;
unlike bpftool, pybpf needs no libbpf and its JSON keeps the same keys for every
object (zeros rather than absent keys), which makes it simpler to consume.

The data comes from :mod:`pybpf.inventory`; this module only parses and formats.
"""
import argparse
import sys

from ..errors import InputError
from .. import inventory
from . import command_parser, emit_json
from ..kernel.constants import MapType
from ..typenames import type_name

_REF_HELP = ("the object: an id (5, or 'id 5') or the path of its pin in bpffs "
             "(/sys/fs/bpf/x, or 'pinned /sys/fs/bpf/x'; a pin named like a number needs "
             "'pinned')")

_DUMP_EPILOG = """\
JSON output (--json) is a list with one object per element; bytes are "0x.." strings
in the order the kernel stores them:
  {"key": ["0x01", ...], "value": ["0x05", ...]}
  per-CPU maps:  {"key": [...], "values": [{"cpu": 0, "value": [...]}, ...]}
  queue/stack:   {"value": [...]}            (no key; only the next element, see below)
  prog/map arrays and hash of maps add "prog_id" or "map_id": the id stored there.
A queue or stack shows only the element a pop would return: the others cannot be read
without removing them. Ring buffers, perf event arrays, bloom filters and local
storage maps have no elements to list; dumping one is an error that says so."""


def register(subparsers):
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-j", "--json", action="store_true", help="print one JSON document")

    prog = command_parser(
        subparsers, "prog",
        description="List and inspect the BPF programs loaded on this system (needs root).")
    actions = prog.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    p = actions.add_parser("list", parents=[common], help="every loaded program",
                           description="Every loaded program, one row each. run_cnt and "
                           "run_time_ns count only while statistics are on "
                           "(sysctl kernel.bpf_stats_enabled=1, or pybpf.enable_stats()).")
    p.set_defaults(func=prog_list)
    p = actions.add_parser("show", parents=[common], help="one program's details",
                           description="One program's details, and with --insns its "
                           "instructions as the kernel holds them after verification.")
    _add_ref(p)
    p.add_argument("--insns", action="store_true",
                   help="disassemble the verified (xlated) instructions; map loads show "
                   "the map id, helper calls the kernel's rewritten call offset")
    p.set_defaults(func=prog_show)

    mp = command_parser(
        subparsers, "map",
        description="List, inspect and dump the BPF maps loaded on this system (needs root).")
    actions = mp.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    p = actions.add_parser("list", parents=[common], help="every loaded map")
    p.set_defaults(func=map_list)
    p = actions.add_parser("show", parents=[common], help="one map's details")
    _add_ref(p)
    p.set_defaults(func=map_show)
    p = actions.add_parser("dump", parents=[common], help="every element, as hex bytes",
                           description="Every key and value of a map as hex bytes.",
                           epilog=_DUMP_EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_ref(p)
    p.set_defaults(func=map_dump)


def _add_ref(parser):
    parser.add_argument("ref", metavar="[id|pinned] ID|PATH", help=_REF_HELP)
    parser.add_argument("ref_value", nargs="?", help=argparse.SUPPRESS)


def _ref(args):
    return parse_ref([args.ref] + ([args.ref_value] if args.ref_value is not None else []))


def parse_ref(words):
    """An int id or a path from 'ID', 'PATH', 'id ID' or 'pinned PATH'."""
    if len(words) == 2 and words[0] in ("id", "pinned"):
        keyword, value = words
    elif len(words) == 1:
        keyword, value = ("id" if words[0].isdigit() else "pinned"), words[0]
    else:
        raise InputError(f"expected ID, PATH, 'id ID' or 'pinned PATH', got {' '.join(words)!r}")
    if keyword == "pinned":
        return value
    try:
        return int(value, 0)
    except ValueError:
        raise InputError(f"an id is a number, got {value!r}") from None


# ---- prog -----------------------------------------------------------------------

def prog_list(args):
    return _list(args, "prog", "program", _prog_columns)


def _prog_columns(progs):
    columns = [("ID", "id"), ("TYPE", "type"), ("NAME", "name"), ("TAG", "tag"),
               ("LOADED AT", "loaded_at"), ("UID", "uid"), ("XLATED", "bytes_xlated"),
               ("JITED", "bytes_jited"), ("VERIFIED", "verified_insns"), ("MAPS", "map_ids")]
    if inventory.stats_enabled() or any(p["run_cnt"] or p["run_time_ns"] for p in progs):
        columns += [("RUNS", "run_cnt"), ("RUN TIME NS", "run_time_ns")]
    return columns


def _list(args, kind, noun, columns):
    docs = inventory.describe_all(kind)
    if args.json:
        emit_json(docs)
    else:
        _table(columns(docs), docs, f"{len(docs)} {noun}{'s' if len(docs) != 1 else ''}")
    return 0


def prog_show(args):
    with inventory.open_object("prog", _ref(args)) as prog:
        doc = inventory.describe_program(prog)
        insns = inventory.xlated_insns(prog) if args.insns else None
    if args.json:
        if insns is not None:
            doc["xlated"] = [{"slot": i.slot, "text": i.text, "bytes": i.insn.encode().hex()}
                             for i in insns]
        emit_json(doc)
        return 0
    fields = dict(doc)
    del fields["load_time_ns"]  # loaded_at says it for people
    for key in ("bytes_xlated", "bytes_jited", "bytes_memlock"):
        fields[key] = f"{doc[key]} B"
    if not (doc["run_cnt"] or doc["run_time_ns"]) and not inventory.stats_enabled():
        fields["run_cnt"] = "0 (statistics are off: sysctl kernel.bpf_stats_enabled=1)"
    _block(fields)
    if insns is not None:
        print("xlated instructions:")
        width = len(str(insns[-1].slot)) if insns else 1
        for i in insns:
            print(f"  {i.slot:>{width}}: {i.text}")
    return 0


# ---- map ------------------------------------------------------------------------

def map_list(args):
    return _list(args, "map", "map", _map_columns)


def _map_columns(maps):
    return [("ID", "id"), ("TYPE", "type"), ("NAME", "name"),
            ("FLAGS", lambda m: f"{m['flags']:#x}"), ("KEY", "bytes_key"),
            ("VALUE", "bytes_value"), ("MAX ENTRIES", "max_entries"),
            ("MEMLOCK", "bytes_memlock"), ("FROZEN", "frozen")]


def map_show(args):
    with inventory.open_object("map", _ref(args)) as m:
        doc = inventory.describe_map(m)
    if args.json:
        emit_json(doc)
        return 0
    fields = dict(doc, flags=f"{doc['flags']:#x}")
    for key in ("bytes_key", "bytes_value", "bytes_memlock"):
        fields[key] = f"{doc[key]} B"
    _block(fields)
    return 0


def map_dump(args):
    with inventory.open_object("map", _ref(args)) as m:
        entries = inventory.dump_map(m)
        peek_only = m.type in inventory.PEEK_ONLY
    if peek_only:
        print(f"note: a {type_name(m.type, MapType)} map shows only its next element (peek); "
              f"the others cannot be read without removing them", file=sys.stderr)
    if args.json:
        emit_json([_entry_json(e) for e in entries])
        return 0
    for e in entries:
        print(_entry_text(e))
    print(f"Found {len(entries)} element{'s' if len(entries) != 1 else ''}")
    return 0


def _hex_list(data):
    return [f"0x{b:02x}" for b in data]


def _entry_json(e):
    doc = {} if e.key is None else {"key": _hex_list(e.key)}
    if isinstance(e.value, tuple):
        doc["values"] = [{"cpu": cpu, "value": _hex_list(v)} for cpu, v in enumerate(e.value)]
    else:
        doc["value"] = _hex_list(e.value)
    if e.ref:
        doc[f"{e.ref[0]}_id"] = e.ref[1]
    return doc


_LINE = 80  # an element longer than this is printed over several lines


def _entry_text(e):
    key = "" if e.key is None else e.key.hex(" ")
    if isinstance(e.value, tuple):
        lines = [f"key: {key}"] if e.key is not None else []
        width = len(str(len(e.value) - 1))
        lines += [f"value (CPU {cpu:0{max(width, 2)}}): {v.hex(' ')}"
                  for cpu, v in enumerate(e.value)]
        return "\n".join(lines)
    value = e.value.hex(" ")
    note = f"  ({e.ref[0]} id {e.ref[1]})" if e.ref else ""
    one_line = (f"key: {key}  " if e.key is not None else "") + f"value: {value}{note}"
    if len(one_line) <= _LINE:
        return one_line
    parts = [] if e.key is None else ["key:", _wrap_hex(e.key)]
    return "\n".join(parts + ["value:" + note, _wrap_hex(e.value)])


def _wrap_hex(data, per_line=16):
    return "\n".join(data[i:i + per_line].hex(" ") for i in range(0, len(data), per_line))


# ---- text layout ----------------------------------------------------------------

def _cell(value):
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    if value == "":
        return "-"
    return str(value)


def _table(columns, rows, summary):
    """Aligned columns (numbers right-aligned), then a summary line. A column is
    (title, key of the row dicts or a function of the row)."""
    values = [[key(row) if callable(key) else row[key] for _, key in columns] for row in rows]
    cells = [[_cell(v) for v in row] for row in values]
    numeric = [bool(rows) and all(type(row[i]) is int for row in values)
               for i in range(len(columns))]
    widths = [max([len(title)] + [len(r[i]) for r in cells]) for i, (title, _) in enumerate(columns)]

    def line(texts):
        out = [t.rjust(w) if num else t.ljust(w) for t, w, num in zip(texts, widths, numeric)]
        return "  ".join(out).rstrip()
    print(line([title for title, _ in columns]))
    for r in cells:
        print(line(r))
    print(summary)


def _block(fields):
    """``name  value`` lines with the values aligned."""
    width = max(len(k) for k in fields)
    for key, value in fields.items():
        print(f"{key:<{width}}  {_cell(value)}")
