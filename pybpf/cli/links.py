"""``python -m pybpf link list`` and ``link detach ID|PIN``: the kernel's BPF links.

A link is a program attached to a hook (an XDP interface, a tracepoint, a cgroup). Like
bpftool's ``link`` commands: ``list`` shows every link with its program; ``detach``
detaches one now, even while a pin or another process still holds it (the link object
then remains, attached to nothing, until its last fd and pin are gone).
"""
import errno
import sys

from ..errors import BPFError, InputError, NotSupportedError
from ..links import BpfLink, iter_links
from ..programs import Program
from . import command_parser, emit_json
from .objects import _table, parse_ref


def register(subparsers):
    link = command_parser(
        subparsers, "link",
        description="List and detach the BPF links of this system (needs root).")
    actions = link.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    p = actions.add_parser("list", help="every BPF link and the program it attaches",
                           description="Every kernel BPF link, one row each.")
    p.add_argument("-j", "--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=link_list)
    p = actions.add_parser("detach", help="detach a link's program now",
                           description=__doc__)
    p.add_argument("ref", metavar="ID|PATH",
                   help="the link's id (from `link list`) or the path of its pin in bpffs")
    p.set_defaults(func=link_detach)


def describe_links():
    """One dict per link (LinkInfo.to_dict() plus the program's name), in id order.
    Links that go away during the walk are skipped."""
    docs = []
    for link_id in iter_links():
        try:
            with BpfLink.from_id(link_id) as link:
                doc = link.info().to_dict()
        except BPFError as e:
            if e.errno == errno.ENOENT:
                continue
            raise
        doc["prog_name"] = _prog_name(doc["prog_id"])
        docs.append(doc)
    return docs


def _prog_name(prog_id):
    if not prog_id:
        return ""
    try:
        with Program.from_id(prog_id) as prog:
            return prog.name
    except BPFError:
        return ""


def link_list(args):
    docs = describe_links()
    if args.json:
        emit_json(docs)
        return 0
    columns = [("ID", "id"), ("TYPE", "type"), ("PROG ID", "prog_id"),
               ("PROG NAME", "prog_name"),
               ("DETAILS", lambda d: " ".join(f"{k}={v}" for k, v in d["details"].items()))]
    _table(columns, docs, f"{len(docs)} link{'s' if len(docs) != 1 else ''}")
    return 0


def link_detach(args):
    ref = parse_ref([args.ref])
    link = _open(ref)
    with link:
        info = link.info()
        try:
            link.detach()
        except NotSupportedError:
            kind = info.to_dict()["type"]
            print(f"pybpf link detach: {kind} links cannot be detached by the kernel; "
                  f"close every fd of link {info.id} and remove its pins instead",
                  file=sys.stderr)
            return 1
    print(f"detached link {info.id} (program {info.prog_id})"
          + (f"; the pin {ref} remains: remove it to free the link"
             if isinstance(ref, str) else ""))
    return 0


def _open(ref):
    if isinstance(ref, str):
        return BpfLink.from_pin(ref)
    try:
        return BpfLink.from_id(ref)
    except BPFError as e:
        if e.errno == errno.ENOENT:
            raise InputError(f"there is no BPF link with id {ref} "
                             f"(python -m pybpf link list shows them)") from None
        raise
