"""tc: a program run on every packet an interface receives (ingress) or sends
(egress), in the kernel's traffic control layer. SEC("tc") and "classifier" attach
here (at ingress; attach_tc() takes either direction).

On kernels with tcx (6.6+) :func:`attach_tc` creates a tcx link (BPF_LINK_CREATE with
BPF_TCX_INGRESS or BPF_TCX_EGRESS), a :class:`TcxLink` that the kernel detaches when its
last fd closes, however the process ends. Older kernels (and callers asking for a
filter priority) get a ``bpf`` filter in direct-action mode on the interface's
``clsact`` qdisc (``tc filter add dev IF ingress bpf da fd N``), creating the qdisc if
the interface has none. Closing that link deletes the filter, and the qdisc too when
pybpf created it and nothing else is attached to it any more; but netlink ties none
of it to a file descriptor, so a process killed with SIGKILL leaves the filter, the
qdisc and the program attached (``TcLink._removal_hint()`` says how to remove them).
"""
import errno
import os

from .. import args
from ..errors import BPFError, InputError
from ..kernel import bpf as kbpf
from ..kernel.constants import AttachType, ProgType
from .common import check_type
from .netdev import (InterfaceLink, NetlinkLink, check_net_type, choose_via, entered,
                     need_iface, resolve_interface, where_of)
from .netlink import PRIVILEGE_HINT, call, iproute, unless

OPTIONS = ("iface",)

INGRESS, EGRESS = "ingress", "egress"
# tc handles: the clsact qdisc is ffff:, its ingress and egress hooks ffff:fff2/fff3.
_CLSACT_HANDLE = 0xFFFF0000
_TC_PARENTS = {INGRESS: 0xFFFFFFF2, EGRESS: 0xFFFFFFF3}
_TCX_TYPES = {INGRESS: AttachType.TCX_INGRESS, EGRESS: AttachType.TCX_EGRESS}
_TC_FILTER_HANDLE = 1
_ETH_P_ALL = 0x0003


def attach_tc(program, iface, direction=INGRESS, *, priority=None, netns=None,
              via="auto"):
    """Attach a tc (SCHED_CLS) program to iface's ingress or egress; returns a Link.

    via: "link", a :class:`TcxLink` (kernel 6.6+; programs on one hook run in the order
    they were attached); "netlink", a :class:`TcLink`, a direct-action bpf filter on
    the clsact qdisc, which survives a SIGKILL of this process (see the module's
    docstring); "auto", a tcx link where the kernel has them unless priority is given.
    priority (netlink only): the filter's priority (lower runs first); default the
    lowest one no filter on that hook uses, so existing filters keep their place but
    run after.
    """
    check_net_type(program, ProgType.SCHED_CLS, "attach_tc", "SCHED_CLS (SEC(\"tc\"))")
    if direction not in _TC_PARENTS:
        raise InputError(f"direction {direction!r}: use 'ingress' or 'egress'")
    if priority is not None and not 1 <= args.integer(priority, "priority") <= 0xFFFF:
        raise InputError(f"tc priority {priority} is not in 1..65535")
    if via == "link" and priority is not None:
        raise InputError("priority orders netlink filters; tcx links run in the order "
                         "they are attached (pass via='netlink' for a priority)")
    via = choose_via("netlink" if via == "auto" and priority is not None else via, "tcx")
    with entered(netns) as ns_key:
        ifindex, ifname = resolve_interface(iface, netns)
        where = where_of(ifname, ifindex, netns)
        if via == "link":
            fd = kbpf.link_create(program.fd, ifindex, _TCX_TYPES[direction],
                                  hints=_tcx_hints(where))
            return TcxLink(fd, program, f"tcx {direction} on {where}", ifindex=ifindex,
                           ifname=ifname, direction=direction)
        with iproute(f"attach tc program to {where}") as ipr:
            if _ensure_clsact(ipr, ifindex, ifname, where):
                _created_clsact.add((ns_key, ifindex))
            try:
                priority, fd = _add_filter(ipr, program, ifindex, direction, priority,
                                           f"{where} {direction}")
            except BaseException:
                _drop_unused_clsact(ipr, ns_key, ifindex)
                raise
    return TcLink(fd, program, f"tc {direction} on {where} priority {priority}",
                  ifindex=ifindex, ifname=ifname, netns=netns, direction=direction,
                  priority=priority)


class TcxLink(InterfaceLink):
    """A tc program attached through a tcx link (6.6+): detached by the kernel when its
    last fd (or pin) goes, also when the process holding it is killed."""

    def __init__(self, fd, program=None, description="", *, ifindex=0, ifname="",
                 direction=INGRESS):
        super().__init__(fd, program, description, ifindex=ifindex, ifname=ifname)
        self.direction = direction


class TcLink(NetlinkLink):
    """A tc program attached as a direct-action bpf filter on the clsact qdisc."""

    def __init__(self, fd, program, description, *, ifindex, ifname, netns, direction,
                 priority):
        super().__init__(fd, program, description, ifindex=ifindex, ifname=ifname,
                         netns=netns)
        self.direction, self.priority = direction, priority

    def _remove(self, ipr, ns_key):
        with unless(errno.ENOENT):  # deleted by someone else (tc filter del, qdisc gone)
            call(ipr.tc, "del-filter", "bpf", self.ifindex, handle=_TC_FILTER_HANDLE,
                 parent=_TC_PARENTS[self.direction], prio=self.priority,
                 protocol=_ETH_P_ALL, what=f"detach {self.description}")
        _drop_unused_clsact(ipr, ns_key, self.ifindex)

    def _removal_hint(self):
        ns = f"-n {self.netns} " if self.netns else ""
        return (f"tc {ns}filter del dev {self.ifname} {self.direction} "
                f"prio {self.priority} handle {_TC_FILTER_HANDLE} bpf")


# clsact qdiscs pybpf added, as (network namespace (dev, inode), ifindex): deleted when
# the last filter pybpf put there goes, whichever of its links was the one that added it.
_created_clsact = set()


def _ensure_clsact(ipr, ifindex, ifname, where):
    """Make sure the interface has a clsact qdisc; True when this call added it."""
    for q in call(ipr.get_qdiscs, ifindex, what=f"list qdiscs of {where}"):
        if q["index"] != ifindex or q["handle"] != _CLSACT_HANDLE:
            continue
        kind = q.get_attr("TCA_KIND")
        if kind == "clsact":
            return False
        raise BPFError(f"attach tc program to {where}", errno.EEXIST,
                       f"{where} has a {kind!r} qdisc where tc programs need 'clsact'",
                       f"remove it first (tc qdisc del dev {ifname} {kind})")
    added = False
    with unless(errno.EEXIST):  # added meanwhile by someone else
        call(ipr.tc, "add", "clsact", ifindex, what=f"add clsact qdisc to {where}")
        added = True
    return added


def _add_filter(ipr, program, ifindex, direction, priority, where):
    """Add the direct-action bpf filter; (its priority, the link's program fd)."""
    parent = _TC_PARENTS[direction]
    used = _filter_priorities(ipr, ifindex, parent)
    if priority is None:
        priority = next(p for p in range(1, 0x10000) if p not in used)
    elif priority in used:
        raise BPFError(f"add tc filter to {where}", errno.EEXIST,
                       f"a tc filter already has priority {priority}",
                       "pass another priority")
    fd = os.dup(program.fd)
    try:
        call(ipr.tc, "add-filter", "bpf", ifindex, handle=_TC_FILTER_HANDLE, parent=parent,
             prio=priority, protocol=_ETH_P_ALL, fd=fd, name=_filter_name(program),
             classid=1, direct_action=True, what=f"add tc filter to {where}")
    except BaseException:
        kbpf.close(fd)
        raise
    return priority, fd


def _drop_unused_clsact(ipr, ns_key, ifindex):
    """Delete the clsact qdisc pybpf added to ifindex once no filter is left on it."""
    key = (ns_key, ifindex)
    if key not in _created_clsact or any(
            _filter_priorities(ipr, ifindex, p) for p in _TC_PARENTS.values()):
        return
    _created_clsact.discard(key)
    with unless(errno.ENOENT):
        call(ipr.tc, "del", "clsact", ifindex, what="remove clsact qdisc")


def _filter_priorities(ipr, ifindex, parent):
    msgs = call(ipr.get_filters, index=ifindex, parent=parent, what="list tc filters")
    return {m["info"] >> 16 for m in msgs if m["index"] == ifindex}


def _filter_name(program):
    """The filter's name as `tc filter show` prints it: the program's name."""
    return f"pybpf:{getattr(program, 'name', '') or 'prog'}"


def _tcx_hints(where):
    return {
        errno.EINVAL: f"the kernel refused a tcx link on {where}; pass via='netlink' for "
                      f"a tc filter",
        errno.EEXIST: f"this program is attached to that hook of {where} already",
        errno.EPERM: PRIVILEGE_HINT,
    }


def attach_section(program, sd, iface=None):
    """tc, classifier: at the ingress of the interface iface=."""
    check_type(program, (ProgType.SCHED_CLS,), "tc hooks", "tc")
    return attach_tc(program, need_iface(sd, iface), INGRESS)
