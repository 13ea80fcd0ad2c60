"""What XDP and tc attachments share: interfaces looked up by name or index, network
namespaces entered for one call (``netns=``: a name from ``ip netns`` or a path such as
/proc/PID/ns/net; the calling thread returns to its own at once), the choice between a
kernel BPF link and netlink (``via=``), and the link classes of both kinds.
"""
import contextlib
import os
import socket

from ..errors import InputError
from ..kernel import features, namespaces
from ..kernel.constants import ProgType
from ..kernel.namespaces import netns_path
from ..links import BpfLink, Link
from .common import AttachError
from .netlink import iproute


class InterfaceError(InputError):
    """The named network interface (or network namespace) does not exist."""


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


class InterfaceLink(BpfLink):
    """A kernel BPF link on a network interface."""

    def __init__(self, fd, program=None, description="", *, ifindex=0, ifname=""):
        super().__init__(fd, program, description)
        self.ifindex, self.ifname = ifindex, ifname


class NetlinkLink(Link):
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
            with entered(self.netns, missing_ok=True) as ns_key:
                if ns_key is not None and interface_exists(self.ifindex):
                    with iproute(f"detach {self.description}") as ipr:
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


def choose_via(via, feature):
    """"link" or "netlink" for a via= argument: "auto" is a link where the kernel has
    the feature (pybpf.kernel.features), "link" on a kernel without one is a
    NotSupportedError."""
    if via == "auto":
        return "link" if features.have(feature) else "netlink"
    if via not in ("link", "netlink"):
        raise InputError(f"via={via!r}: use 'link', 'netlink' or 'auto'")
    if via == "link" and not features.have(feature):
        raise features.missing(feature, f"via='link' needs "
                               f"{features.FEATURES[feature].description}",
                               "pass via='netlink' (or via='auto', which picks netlink here)")
    return via


def check_net_type(program, want, func, label):
    ptype = getattr(program, "type", None)
    if ptype != want:
        tname = ptype.name if isinstance(ptype, ProgType) else ptype
        name = getattr(program, "name", "") or "the program"
        raise InputError(f"{func} needs a {label} program; {name!r} is {tname}"
                         + (" (use attach_xdp)" if ptype == ProgType.XDP else "")
                         + (" (use attach_tc)" if ptype == ProgType.SCHED_CLS else ""))


def where_of(ifname, ifindex, netns):
    return f"{ifname} (ifindex {ifindex}" + (f", netns {netns})" if netns else ")")


def interface_exists(ifindex):
    try:
        socket.if_indextoname(ifindex)
        return True
    except OSError:
        return False


@contextlib.contextmanager
def entered(netns, missing_ok=False):
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


def need_iface(sd, iface):
    """The iface= a section's programs need, checked to exist (attach() by section)."""
    if iface is None:
        raise AttachError(f"{sd.section!r} programs attach to a network interface: "
                          f"pass iface= (e.g. iface=\"eth0\")")
    if not isinstance(iface, int):
        try:
            socket.if_nametoindex(iface)
        except OSError:
            raise AttachError(f"there is no network interface {iface!r} (list them with "
                              f"`ip link`)") from None
    return iface
