"""XDP: a program run on every packet a network interface receives, before the
kernel's network stack. SEC("xdp") and "xdp.frags" attach here.

On kernels with XDP links (5.9+) :func:`attach_xdp` creates a kernel BPF link
(BPF_LINK_CREATE with the interface's index), a :class:`XdpLink` that the kernel lists,
that can be pinned, and that nobody can silently replace. Older kernels attach through
netlink (the way ``ip link set dev IF xdp fd N`` does), and the returned link removes
the program again on close; netlink ties nothing to an fd, so a process killed with
SIGKILL leaves that program attached (``ip link set dev IF xdp off``).
"""
import errno
import os

from .. import args
from ..errors import InputError
from ..kernel import bpf as kbpf
from ..kernel.constants import (XDP_FLAGS_MASK, XDP_FLAGS_MODES, XDP_FLAGS_REPLACE,
                                XDP_FLAGS_SKB_MODE, AttachType, ProgType)
from .common import check_type
from .netdev import (InterfaceLink, NetlinkLink, check_net_type, choose_via, entered,
                     need_iface, resolve_interface, where_of)
from .netlink import call, iproute

OPTIONS = ("iface", "xdp_flags")


def attach_xdp(program, iface, flags=0, *, netns=None, via="auto"):
    """Attach an XDP program to iface (a name or an index); returns a Link.

    flags: XDP_FLAGS_SKB_MODE (generic XDP, any driver), XDP_FLAGS_DRV_MODE (the
    driver's native XDP), XDP_FLAGS_HW_MODE (offload), or 0 to let the kernel take
    native mode where the driver has it; XDP_FLAGS_UPDATE_IF_NOEXIST only matters for
    netlink (a link never replaces another program). via: "link" (BPF link, kernel
    5.9+), "netlink", or "auto" (a link where the kernel has them).
    """
    check_net_type(program, ProgType.XDP, "attach_xdp", "XDP")
    flags = args.integer(flags, "flags", 0)
    if flags & ~XDP_FLAGS_MASK or flags & XDP_FLAGS_REPLACE:
        raise InputError(f"XDP flags {flags:#x}: use XDP_FLAGS_SKB_MODE, _DRV_MODE, "
                         f"_HW_MODE and _UPDATE_IF_NOEXIST (replacing a program is "
                         f"BpfLink.update())")
    if bin(flags & XDP_FLAGS_MODES).count("1") > 1:
        raise InputError(f"XDP flags {flags:#x} name more than one mode; pick one")
    via = choose_via(via, "bpf_link_xdp")
    with entered(netns):
        ifindex, ifname = resolve_interface(iface, netns)
        where = where_of(ifname, ifindex, netns)
        if via == "link":
            hints = _xdp_hints(ifname, flags)
            fd = kbpf.link_create(program.fd, ifindex, AttachType.XDP,
                                  flags=flags & XDP_FLAGS_MODES, hints=hints)
            return XdpLink(fd, program, f"xdp on {where}", ifindex=ifindex, ifname=ifname)
        return _attach_xdp_netlink(program, ifindex, ifname, flags, netns, where)


class XdpLink(InterfaceLink):
    """An XDP program attached through a kernel BPF link."""


class NetlinkXdpLink(NetlinkLink):
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


def _attach_xdp_netlink(program, ifindex, ifname, flags, netns, where):
    fd = os.dup(program.fd)
    try:
        prog_id = kbpf.obj_get_info(fd, "prog").id
        with iproute(f"attach XDP program to {where}") as ipr:
            _set_xdp(ipr, ifindex, fd, flags, f"attach XDP program to {where}",
                     _xdp_hints(ifname, flags))
        return NetlinkXdpLink(fd, program, f"xdp on {where} (netlink)", ifindex=ifindex,
                              ifname=ifname, netns=netns, flags=flags, prog_id=prog_id)
    except BaseException:
        kbpf.close(fd)
        raise


def _set_xdp(ipr, ifindex, fd, flags, what, hints=None):
    call(ipr.link, "set", index=ifindex,
         xdp={"attrs": [("IFLA_XDP_FD", fd), ("IFLA_XDP_FLAGS", flags)]},
         what=what, hints=hints)


def _xdp_prog_ids(ipr, ifindex):
    """Ids of the XDP programs attached to ifindex (one per mode)."""
    msgs = call(ipr.link, "get", index=ifindex, what="read interface XDP state")
    xdp = msgs[0].get_attr("IFLA_XDP") if msgs else None
    if not xdp:
        return set()
    return {value for name, value in xdp["attrs"] if name.endswith("PROG_ID")}


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


def attach_section(program, sd, iface=None, xdp_flags=0):
    """xdp, xdp.frags: on the interface iface=, in the mode xdp_flags= asks."""
    check_type(program, (ProgType.XDP,), "XDP hooks", "xdp")
    return attach_xdp(program, need_iface(sd, iface), xdp_flags)
