"""``python -m pybpf load OBJ.o``: load every program and map of an object and report.

Exit status 0 when everything loaded. Otherwise 1, with the verifier's reason and the
C source line it stopped at (from the object's line info) on stderr.
"""
import sys

from ..errors import Error, VerifierError
from ..kernel.constants import MapType
from ..loader import BpfObject
from ..typenames import type_name
from . import command_parser, emit_json, loadopts


def register(sub):
    p = command_parser(sub, "load", description=__doc__)
    p.add_argument("object", help="ELF object built with clang -target bpf")
    p.add_argument("--pin", metavar="DIR",
                   help="pin programs at DIR/NAME and maps at DIR/maps/NAME (bpffs) so "
                        "they stay loaded after this command exits")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--log-level", type=int, default=0, metavar="N",
                   help="verifier log level for every load (1: instructions, 2: states)")
    p.add_argument("--btf", metavar="FILE",
                   help="kernel BTF to use for CO-RE instead of /sys/kernel/btf/vmlinux")
    loadopts.add_arguments(p)
    p.set_defaults(func=run)


def run(args):
    try:
        obj = BpfObject.open(args.object)
    except (Error, OSError) as e:
        if args.json:
            emit_json({"object": args.object, "error": str(e).splitlines()[0],
                       "program": None, "source_line": None})
        print(f"pybpf load: {args.object}: {e}", file=sys.stderr)
        return 1
    with obj:
        try:
            programs = loadopts.apply(obj, args)
            obj.load(kernel_btf=args.btf, log_level=args.log_level, programs=programs)
            if args.pin:
                obj.pin(args.pin)
        except Error as e:
            _report_failure(args, obj, e)
            return 1
        doc = describe(obj)
        if args.json:
            emit_json(doc)
        else:
            _print_text(doc, args)
        if args.log_level:
            for name, prog in obj.programs.items():
                print(f"--- verifier log of {name} ---\n{prog.verifier_log}")
    return 0


def describe(obj):
    """What was loaded, as plain data (the --json document)."""
    progs = []
    for name, prog in obj.programs.items():
        st = obj.stats[name]
        sd = obj.spec.programs[name].section_def
        progs.append({"name": name, "section": sd.section, "type": sd.prog_type.name.lower(),
                      "id": prog.id, "insns": st.insns, "verified_insns": st.verified_insns,
                      "load_ms": round(st.load_seconds * 1000, 3)})
    maps = []
    for name, m in obj.maps.items():
        maps.append({"name": name, "type": type_name(m.type, MapType), "id": m.id,
                     "key_size": m.key_size, "value_size": m.value_size,
                     "max_entries": m.max_entries, "flags": m.flags})
    return {"object": obj.spec.name, "license": obj.spec.license, "programs": progs,
            "maps": maps, "warnings": obj.warnings}


def _print_text(doc, args):
    print(f"{args.object}: loaded {len(doc['programs'])} programs, {len(doc['maps'])} maps"
          + (f", pinned under {args.pin}" if args.pin else ""))
    if doc["programs"]:
        print(f"  {'PROGRAM':20} {'TYPE':16} {'ID':>6} {'INSNS':>6} {'VERIFIED':>9} "
              f"{'LOAD MS':>8}")
        for p in doc["programs"]:
            print(f"  {p['name']:20} {p['type']:16} {p['id']:>6} {p['insns']:>6} "
                  f"{p['verified_insns']:>9} {p['load_ms']:>8.2f}")
    if doc["maps"]:
        print(f"  {'MAP':20} {'TYPE':16} {'ID':>6} {'KEY':>6} {'VALUE':>9} {'ENTRIES':>8}")
        for m in doc["maps"]:
            print(f"  {m['name']:20} {m['type']:16} {m['id']:>6} {m['key_size']:>6} "
                  f"{m['value_size']:>9} {m['max_entries']:>8}")
    for w in doc["warnings"]:
        print(f"  warning: {w}")


def _report_failure(args, obj, err):
    if args.json:
        doc = {"object": obj.spec.name, "error": str(err).splitlines()[0],
               "program": getattr(err, "program", None),
               "source_line": getattr(err, "source_line", None)}
        if isinstance(err, VerifierError):
            doc["verifier_log"] = err.log
        emit_json(doc)
        return
    print(f"pybpf load: {args.object}: {err}", file=sys.stderr)
