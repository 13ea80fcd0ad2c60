"""Attaching XDP and tc programs to network interfaces.

XDP: on kernels with XDP links (5.9+) :func:`attach_xdp` creates a kernel BPF link
(BPF_LINK_CREATE with the interface's index), a :class:`XdpLink` that the kernel lists,
that can be pinned, and that nobody can silently replace. Older kernels attach through
netlink (the way ``ip link set dev IF xdp fd N`` does), and the returned link removes
the program again on close.

tc: on kernels with tcx (6.6+) :func:`attach_tc` creates a tcx link (BPF_LINK_CREATE
with BPF_TCX_INGRESS or BPF_TCX_EGRESS), a :class:`TcxLink` that the kernel detaches
when its last fd closes, however the process ends. Older kernels (and callers asking
for a filter priority) get a ``bpf`` filter in direct-action mode on the interface's
``clsact`` qdisc (``tc filter add dev IF ingress bpf da fd N``), creating the qdisc if
the interface has none. Closing that link deletes the filter, and the qdisc too when
pybpf created it and nothing else is attached to it any more; but netlink ties none
of it to a file descriptor, so a process killed with SIGKILL leaves the filter, the
qdisc and the program attached (``TcLink._removal_hint()`` says how to remove them).

Netlink is spoken through pyroute2, the optional ``net`` extra (``pip install
pybpf[net]``); it is imported only when needed, so XDP and tcx links work without it.

Both functions take ``netns=``: the name of a network namespace (``ip netns add
NAME``) or the path of one (``/proc/PID/ns/net``). The interface is looked up and the
program attached inside it; the calling thread returns to its own namespace at once.
"""
import contextlib
import errno
import os
import socket

from . import args
from .errors import BPFError, DependencyError, InputError
from .kernel import bpf as kbpf
from .kernel import features, namespaces, newer
from .kernel.namespaces import netns_path
from .kernel.constants import (XDP_FLAGS_DRV_MODE, XDP_FLAGS_HW_MODE, XDP_FLAGS_MASK,
                               XDP_FLAGS_MODES, XDP_FLAGS_REPLACE, XDP_FLAGS_SKB_MODE,
                               XDP_FLAGS_UPDATE_IF_NOEXIST, AttachType, ProgType)
from .links import BpfLink, Link

INGRESS, EGRESS = "ingress", "egress"
# tc handles: the clsact qdisc is ffff:, its ingress and egress hooks ffff:fff2/fff3.
_CLSACT_HANDLE = 0xFFFF0000
_CLSACT_PARENT = 0xFFFFFFF1
_TC_PARENTS = {INGRESS: 0xFFFFFFF2, EGRESS: 0xFFFFFFF3}
_TCX_TYPES = {INGRESS: newer.BPF_TCX_INGRESS, EGRESS: newer.BPF_TCX_EGRESS}
_TC_FILTER_HANDLE = 1
_TCA_BPF_FLAG_ACT_DIRECT = 1
_ETH_P_ALL = 0x0003

_PRIVILEGE_HINT = "attaching to a network interface needs CAP_NET_ADMIN (run as root)"


class InterfaceError(InputError):
    """The named network interface (or network namespace) does not exist."""


# ---- the public functions -----------------------------------------------------------

def attach_xdp(program, iface, flags=0, *, netns=None, via="auto"):
    """Attach an XDP program to iface (a name or an index); returns a Link.

    flags: XDP_FLAGS_SKB_MODE (generic XDP, any driver), XDP_FLAGS_DRV_MODE (the
    driver's native XDP), XDP_FLAGS_HW_MODE (offload), or 0 to let the kernel take
    native mode where the driver has it; XDP_FLAGS_UPDATE_IF_NOEXIST only matters for
    netlink (a link never replaces another program). via: "link" (BPF link, kernel
    5.9+), "netlink", or "auto" (a link where the kernel has them).
    """
    _check_type(program, ProgType.XDP, "attach_xdp", "XDP")
    flags = args.integer(flags, "flags", 0)
    if flags & ~XDP_FLAGS_MASK or flags & XDP_FLAGS_REPLACE:
        raise InputError(f"XDP flags {flags:#x}: use XDP_FLAGS_SKB_MODE, _DRV_MODE, "
                         f"_HW_MODE and _UPDATE_IF_NOEXIST (replacing a program is "
                         f"BpfLink.update())")
    if bin(flags & XDP_FLAGS_MODES).count("1") > 1:
        raise InputError(f"XDP flags {flags:#x} name more than one mode; pick one")
    via = _via(via, "bpf_link_xdp")
    with _entered(netns):
        ifindex, ifname = resolve_interface(iface, netns)
        where = _where(ifname, ifindex, netns)
        if via == "link":
            hints = _xdp_hints(ifname, flags)
            fd = kbpf.link_create(program.fd, ifindex, AttachType.XDP,
                                  flags=flags & XDP_FLAGS_MODES, hints=hints)
            return XdpLink(fd, program, f"xdp on {where}", ifindex=ifindex, ifname=ifname)
        return _attach_xdp_netlink(program, ifindex, ifname, flags, netns, where)


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
    _check_type(program, ProgType.SCHED_CLS, "attach_tc", "SCHED_CLS (SEC(\"tc\"))")
    if direction not in _TC_PARENTS:
        raise InputError(f"direction {direction!r}: use 'ingress' or 'egress'")
    if priority is not None and not 1 <= args.integer(priority, "priority") <= 0xFFFF:
        raise InputError(f"tc priority {priority} is not in 1..65535")
    if via == "link" and priority is not None:
        raise InputError("priority orders netlink filters; tcx links run in the order "
                         "they are attached (pass via='netlink' for a priority)")
    via = _via("netlink" if via == "auto" and priority is not None else via, "tcx")
    with _entered(netns) as ns_key:
        ifindex, ifname = resolve_interface(iface, netns)
        where = _where(ifname, ifindex, netns)
        if via == "link":
            fd = kbpf.link_create(program.fd, ifindex, _TCX_TYPES[direction],
                                  hints=_tcx_hints(where))
            return TcxLink(fd, program, f"tcx {direction} on {where}", ifindex=ifindex,
                           ifname=ifname, direction=direction)
        with _iproute(f"attach tc program to {where}") as ipr:
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


def resolve_interface(iface, netns=None):
    """(ifindex, name) of iface (a name or an index) in the current network namespace;
    InterfaceError naming the interfaces that do exist when it does not."""
    if isinstance(iface, bool) or not isinstance(iface, (int, str)):
        raise InputError(f"an interface is a name or an index, not {iface!r}")
    try:
        if isinstance(iface, int) or iface.isdigit():
            index = int(iface)
            return index, socket.if_indextoname(index)
        return socket.if_nametoindex(iface), iface
    except (OSError, OverflowError):
        names = ", ".join(name for _, name in socket.if_nameindex())
        where = f"network namespace {netns!r}" if netns else "this network namespace"
        raise InterfaceError(f"there is no network interface {iface!r} in {where} "
                             f"(interfaces: {names or 'none'})") from None


# ---- links ----------------------------------------------------------------------------

class _InterfaceLink(BpfLink):
    """A kernel BPF link on a network interface."""

    def __init__(self, fd, program=None, description="", *, ifindex=0, ifname=""):
        super().__init__(fd, program, description)
        self.ifindex, self.ifname = ifindex, ifname


class XdpLink(_InterfaceLink):
    """An XDP program attached through a kernel BPF link."""


class TcxLink(_InterfaceLink):
    """A tc program attached through a tcx link (6.6+): detached by the kernel when its
    last fd (or pin) goes, also when the process holding it is killed."""

    def __init__(self, fd, program=None, description="", *, ifindex=0, ifname="",
                 direction=INGRESS):
        super().__init__(fd, program, description, ifindex=ifindex, ifname=ifname)
        self.direction = direction


class _NetlinkLink(Link):
    """An attachment made through netlink. The link holds its own fd of the program
    (so the program outlives a caller that closes theirs) and undoes the attachment on
    close; the interface and namespace are looked up again then."""

    def __init__(self, fd, program, description, *, ifindex, ifname, netns):
        super().__init__(fd, program, description)
        self.ifindex, self.ifname, self.netns = ifindex, ifname, netns

    def close(self):
        """Detach (unless the interface or namespace is gone, which detached it
        already), then release the program."""
        if self.closed:
            return
        try:
            with _entered(self.netns, missing_ok=True) as ns_key:
                if ns_key is not None and _interface_exists(self.ifindex):
                    with _iproute(f"detach {self.description}") as ipr:
                        self._remove(ipr, ns_key)
        finally:
            super().close()

    def leave_attached(self):
        """Close this handle but keep the program attached (what pinning does for a
        kernel link); returns how to remove it later."""
        super().close()
        return self._removal_hint()

    def _remove(self, ipr, ns_key):
        raise NotImplementedError

    def _removal_hint(self):
        raise NotImplementedError


class NetlinkXdpLink(_NetlinkLink):
    """An XDP program attached through netlink (kernels without XDP links)."""

    def __init__(self, fd, program, description, *, ifindex, ifname, netns, flags, prog_id):
        super().__init__(fd, program, description, ifindex=ifindex, ifname=ifname,
                         netns=netns)
        self.mode_flags = flags & XDP_FLAGS_MODES
        self.prog_id = prog_id  # to tell ours from a program attached over it since

    def _remove(self, ipr, ns_key):
        if self.prog_id not in _xdp_prog_ids(ipr, self.ifindex):
            return  # replaced by someone else since: theirs now, leave it
        _set_xdp(ipr, self.ifindex, -1, self.mode_flags, f"detach {self.description}")

    def _removal_hint(self):
        mode = "xdpgeneric" if self.mode_flags & XDP_FLAGS_SKB_MODE else "xdp"
        ns = f"-n {self.netns} " if self.netns else ""
        return f"ip {ns}link set dev {self.ifname} {mode} off"


class TcLink(_NetlinkLink):
    """A tc program attached as a direct-action bpf filter on the clsact qdisc."""

    def __init__(self, fd, program, description, *, ifindex, ifname, netns, direction,
                 priority):
        super().__init__(fd, program, description, ifindex=ifindex, ifname=ifname,
                         netns=netns)
        self.direction, self.priority = direction, priority

    def _remove(self, ipr, ns_key):
        with _unless(errno.ENOENT):  # deleted by someone else (tc filter del, qdisc gone)
            _call(ipr.tc, "del-filter", "bpf", self.ifindex, handle=_TC_FILTER_HANDLE,
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


# ---- netlink details ---------------------------------------------------------------

def _attach_xdp_netlink(program, ifindex, ifname, flags, netns, where):
    fd = os.dup(program.fd)
    try:
        prog_id = kbpf.obj_get_info(fd, "prog").id
        with _iproute(f"attach XDP program to {where}") as ipr:
            _set_xdp(ipr, ifindex, fd, flags, f"attach XDP program to {where}",
                     _xdp_hints(ifname, flags))
        return NetlinkXdpLink(fd, program, f"xdp on {where} (netlink)", ifindex=ifindex,
                              ifname=ifname, netns=netns, flags=flags, prog_id=prog_id)
    except BaseException:
        kbpf.close(fd)
        raise


def _set_xdp(ipr, ifindex, fd, flags, what, hints=None):
    _call(ipr.link, "set", index=ifindex,
          xdp={"attrs": [("IFLA_XDP_FD", fd), ("IFLA_XDP_FLAGS", flags)]},
          what=what, hints=hints)


def _xdp_prog_ids(ipr, ifindex):
    """Ids of the XDP programs attached to ifindex (one per mode)."""
    msgs = _call(ipr.link, "get", index=ifindex, what="read interface XDP state")
    xdp = msgs[0].get_attr("IFLA_XDP") if msgs else None
    if not xdp:
        return set()
    return {value for name, value in xdp["attrs"] if name.endswith("PROG_ID")}


def _ensure_clsact(ipr, ifindex, ifname, where):
    """Make sure the interface has a clsact qdisc; True when this call added it."""
    for q in _call(ipr.get_qdiscs, ifindex, what=f"list qdiscs of {where}"):
        if q["index"] != ifindex or q["handle"] != _CLSACT_HANDLE:
            continue
        kind = q.get_attr("TCA_KIND")
        if kind == "clsact":
            return False
        raise BPFError(f"attach tc program to {where}", errno.EEXIST,
                       f"{where} has a {kind!r} qdisc where tc programs need 'clsact'",
                       f"remove it first (tc qdisc del dev {ifname} {kind})")
    added = False
    with _unless(errno.EEXIST):  # added meanwhile by someone else
        _call(ipr.tc, "add", "clsact", ifindex, what=f"add clsact qdisc to {where}")
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
        _call(ipr.tc, "add-filter", "bpf", ifindex, handle=_TC_FILTER_HANDLE, parent=parent,
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
    with _unless(errno.ENOENT):
        _call(ipr.tc, "del", "clsact", ifindex, what="remove clsact qdisc")


def _filter_priorities(ipr, ifindex, parent):
    msgs = _call(ipr.get_filters, index=ifindex, parent=parent, what="list tc filters")
    return {m["info"] >> 16 for m in msgs if m["index"] == ifindex}


def _filter_name(program):
    """The filter's name as `tc filter show` prints it: the program's name."""
    return f"pybpf:{getattr(program, 'name', '') or 'prog'}"


def _pyroute2():
    try:
        import pyroute2
        from pyroute2.netlink.exceptions import NetlinkError
    except ImportError as e:
        why = "which is not installed" if e.name == "pyroute2" else f"which failed: {e}"
        raise DependencyError(f"attaching tc programs (and XDP programs on kernels before "
                              f"5.9) speaks netlink through pyroute2, {why}; pip install "
                              f"pybpf[net]") from None
    return pyroute2, NetlinkError


@contextlib.contextmanager
def _iproute(what):
    """An IPRoute socket in the calling thread's network namespace."""
    pyroute2, _ = _pyroute2()
    with _netlink_errors(what):
        ipr = pyroute2.IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


def _call(method, *args, what, hints=None, **kwargs):
    """method(*args, **kwargs), netlink errors as BPFError naming what failed."""
    with _netlink_errors(what, hints):
        result = method(*args, **kwargs)
        return list(result) if result is not None else []


@contextlib.contextmanager
def _netlink_errors(what, hints=None):
    _, NetlinkError = _pyroute2()
    try:
        yield
    except NetlinkError as e:
        code = e.code or errno.EIO
        hint = (hints or {}).get(code)
        if hint is None and code in (errno.EPERM, errno.EACCES):
            hint = _PRIVILEGE_HINT
        detail = (getattr(e, "args", ("", ""))[1:2] or [""])[0]
        if detail == os.strerror(code):
            detail = ""
        raise BPFError(what, code, detail or "", hint) from None


@contextlib.contextmanager
def _unless(err):
    """Let a BPFError with errno err pass silently: the state it reports (a filter
    already gone, a qdisc already there) is the one wanted."""
    try:
        yield
    except BPFError as e:
        if e.errno != err:
            raise


def _via(via, feature):
    """"link" or "netlink" for a via= argument: "auto" is a link where the kernel has
    the feature (pybpf.kernel.features), "link" on a kernel without one is a
    NotSupportedError."""
    if via == "auto":
        return "link" if features.have(feature) else "netlink"
    if via not in ("link", "netlink"):
        raise InputError(f"via={via!r}: use 'link', 'netlink' or 'auto'")
    if via == "link" and not features.have(feature):
        raise features.missing(feature, f"via='link' needs {features.FEATURES[feature].description}",
                               "pass via='netlink' (or via='auto', which picks netlink here)")
    return via


def _tcx_hints(where):
    return {
        errno.EINVAL: f"the kernel refused a tcx link on {where}; pass via='netlink' for "
                      f"a tc filter",
        errno.EEXIST: f"this program is attached to that hook of {where} already",
        errno.EPERM: _PRIVILEGE_HINT,
    }


def _xdp_hints(name, flags):
    return {
        errno.EBUSY: f"{name} already has an XDP program attached; detach it first "
                     f"(python -m pybpf link list / ip link set dev {name} xdp off)",
        errno.EEXIST: f"{name} already has an XDP program attached in another mode",
        errno.EOPNOTSUPP: f"{name}'s driver has no native XDP; pass "
                          f"flags=XDP_FLAGS_SKB_MODE for generic XDP",
        errno.EINVAL: (f"XDP flags {flags:#x} are invalid for {name}, or the program "
                       f"was loaded for devmap/cpumap rather than an interface"),
    }


# ---- interfaces and namespaces --------------------------------------------------------

def _check_type(program, want, func, label):
    ptype = getattr(program, "type", None)
    if ptype != want:
        tname = ptype.name if isinstance(ptype, ProgType) else ptype
        name = getattr(program, "name", "") or "the program"
        raise InputError(f"{func} needs a {label} program; {name!r} is {tname}"
                         + (" (use attach_xdp)" if ptype == ProgType.XDP else "")
                         + (" (use attach_tc)" if ptype == ProgType.SCHED_CLS else ""))


def _where(ifname, ifindex, netns):
    return f"{ifname} (ifindex {ifindex}" + (f", netns {netns})" if netns else ")")


def _interface_exists(ifindex):
    try:
        socket.if_indextoname(ifindex)
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _entered(netns, missing_ok=False):
    """Run the block with the calling thread in network namespace netns (None: stay).

    Yields the namespace's identity (device, inode), or None when missing_ok and the
    namespace no longer exists (then nothing in it needs undoing).
    """
    if netns is None:
        yield namespaces.current_key()
        return
    path = netns_path(netns)
    try:
        target = namespaces.open_netns(netns)
    except FileNotFoundError:
        if missing_ok:
            yield None
            return
        raise InterfaceError(f"there is no network namespace {netns!r} ({path} does not "
                             f"exist; `ip netns list` shows the named ones)") from None
    home = namespaces.open_current()
    try:
        namespaces.setns(target, f"enter network namespace {netns!r}")
        try:
            yield namespaces.current_key()
        finally:
            namespaces.setns(home, "return to the original network namespace")
    finally:
        os.close(home)
        os.close(target)


__all__ = ["attach_xdp", "attach_tc", "resolve_interface", "XdpLink", "NetlinkXdpLink",
           "TcxLink", "TcLink", "InterfaceError", "INGRESS", "EGRESS", "XDP_FLAGS_SKB_MODE",
           "XDP_FLAGS_DRV_MODE", "XDP_FLAGS_HW_MODE", "XDP_FLAGS_UPDATE_IF_NOEXIST"]
