"""Links: a program attached to a hook, for exactly as long as the link object lives.

Every way of attaching returns a :class:`Link` (a subclass per kind of hook). Closing
the link detaches the program, unless the link was pinned in bpffs, in which case it
stays attached until the pin is removed (and can be reopened with
:meth:`Link.from_pin` and detached later, from another process).

Kernel BPF links (BPF_LINK_CREATE, BPF_RAW_TRACEPOINT_OPEN) are :class:`BpfLink`s: the
kernel knows them, lists them (``python -m pybpf link list``) and pins them. Hooks the
kernel exposes through other objects (a perf event fd on kernels without
BPF_LINK_TYPE_PERF_EVENT, a tracefs probe entry, netlink attachment) subclass
:class:`Link` and release what they hold in ``close()``.
"""
import dataclasses
import struct

from .errors import BPFError, NotSupportedError
from .fd import FdObject, Pinnable, open_pinned
from .kernel import bpf as kbpf
from .kernel import features
from .kernel.constants import AttachType, Cmd, LinkType
from .typenames import type_name


@dataclasses.dataclass(frozen=True)
class LinkInfo:
    """What BPF_OBJ_GET_INFO_BY_FD reports about a kernel link."""
    type: object  # LinkType, or the number for types newer than pybpf's constants
    id: int
    prog_id: int
    details: dict  # per link type: attach_type, ifindex, cgroup_id, tp_name, ...

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["type"] = type_name(self.type, LinkType)
        return d


class Link(FdObject):
    """A program attached somewhere. ``close()`` (or leaving ``with``) detaches it."""

    def __init__(self, fd, program=None, description=""):
        super().__init__(fd)
        self.program = program
        self.description = description

    def detach(self):
        """Detach now; the same as close() for links the kernel does not pin."""
        self.close()

    def _describe(self):
        what = f" {self.description}" if self.description else ""
        return f"{type(self).__name__}{what}"

    def __repr__(self):
        return f"<{self._describe()} {'closed' if self.closed else f'fd={self._fd}'}>"


class BpfLink(Link, Pinnable):
    """A kernel BPF link (it has an id, shows in ``link list``, can be pinned)."""

    def detach(self):
        """Detach the program now, even if a pin or another process holds the link;
        then close this fd. Some link types (perf events, raw tracepoints; every type
        before 5.9) cannot be detached early: for them a NotSupportedError says to
        unpin and close instead."""
        if not self.closed:
            try:
                kbpf.link_detach(self.fd)
            except BPFError as e:
                if not features.refused_as_unknown(e):
                    raise
                raise NotSupportedError(
                    "BPF_LINK_DETACH of this link type", None,
                    f"{self._describe()} cannot be detached while it is held",
                    "it detaches when its pin is removed and every fd to it is closed: "
                    "unpin it, then close()", e.cmd, e.errno) from None
        self.close()

    def update(self, program, old_program=None):
        """Swap in another program atomically (optionally only if old_program is the
        one attached)."""
        kbpf.link_update(self.fd, program.fd, old_program.fd if old_program else 0)
        self.program = program

    def info(self):
        return link_info(self.fd)

    @classmethod
    def from_pin(cls, path):
        """Reopen a pinned link (e.g. to detach it from another process)."""
        return cls(open_pinned(path, "link"), description=f"pinned at {path}")

    @classmethod
    def from_id(cls, link_id):
        return cls(kbpf.fd_by_id(Cmd.LINK_GET_FD_BY_ID, link_id), description=f"id {link_id}")


def link_info(fd):
    i = kbpf.obj_get_info(fd, "link")
    try:
        ltype = LinkType(i.type)
    except ValueError:
        ltype = i.type
    return LinkInfo(ltype, i.id, i.prog_id, _details(ltype, i.extra))


def _details(ltype, words):
    """Decode the per-type union of bpf_link_info (u64 words, little or big endian
    as the machine is) into named fields."""
    raw = struct.pack("=4Q", *words)
    u32 = struct.unpack("=8I", raw)
    if ltype in (LinkType.CGROUP,):
        return {"cgroup_id": words[0], "attach_type": _attach_name(u32[2])}
    if ltype == LinkType.TRACING:
        return {"attach_type": _attach_name(u32[0]), "target_obj_id": u32[1],
                "target_btf_id": u32[2]}
    if ltype == LinkType.NETNS:
        return {"netns_ino": u32[0], "attach_type": _attach_name(u32[1])}
    if ltype == LinkType.XDP:
        return {"ifindex": u32[0]}
    if ltype == LinkType.TCX:
        return {"ifindex": u32[0], "attach_type": _attach_name(u32[1])}
    if ltype == LinkType.NETFILTER:
        return {"pf": u32[0], "hooknum": u32[1],
                "priority": struct.unpack("=i", raw[8:12])[0], "flags": u32[3]}
    return {}


def _attach_name(value):
    return type_name(value, AttachType)


def attach_raw_tracepoint(program, name):
    """pybpf.attach.attach_raw_tracepoint, still importable from here, where it was
    first (imported when called: pybpf.attach builds on this module)."""
    from .attach.raw_tracepoint import attach_raw_tracepoint as attach_raw
    return attach_raw(program, name)


def iter_links():
    """Ids of every BPF link in the system."""
    link_id = kbpf.next_id(Cmd.LINK_GET_NEXT_ID, 0)
    while link_id is not None:
        yield link_id
        link_id = kbpf.next_id(Cmd.LINK_GET_NEXT_ID, link_id)
