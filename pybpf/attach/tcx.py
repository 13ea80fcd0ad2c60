"""tcx: a tc program attached to an interface's ingress or egress as a tcx link
(BPF_LINK_CREATE with BPF_TCX_INGRESS/EGRESS, 6.6+). SEC("tcx/ingress"),
"tcx/egress" and their libbpf aliases "tc/ingress", "tc/egress" attach here, at the
interface iface=.

These sections name their direction and are loaded for it (expected_attach_type), so
unlike SEC("tc") (attach/tc.py, which falls back to a netlink filter on older
kernels) they attach only as a link: the kernel detaches it when its last fd or pin
goes. attach/tc.py's attach_tc(via="link") makes the link; this module maps the
section onto it.
"""
from ..kernel import features
from ..kernel.constants import AttachType, ProgType
from .common import HookNotSupportedError, check_type
from .netdev import need_iface
from .tc import EGRESS, INGRESS, TcxLink, attach_tc

OPTIONS = ("iface",)

__all__ = ["TcxLink", "attach_tcx", "attach_section"]

_DIRECTIONS = {AttachType.TCX_INGRESS: INGRESS, AttachType.TCX_EGRESS: EGRESS}


def attach_tcx(program, iface, direction=INGRESS, *, netns=None):
    """A :class:`~pybpf.attach.tc.TcxLink` running a SCHED_CLS program on iface's
    ingress or egress (after the programs attached there before)."""
    if not features.have("tcx"):
        raise features.missing("tcx", f"tcx {direction} on {iface} needs tcx links",
                               "load the program from SEC(\"tc\") to attach it as a "
                               "netlink filter instead", error=HookNotSupportedError)
    return attach_tc(program, iface, direction, netns=netns, via="link")


def attach_section(program, sd, iface=None):
    """tcx/ingress, tcx/egress, tc/ingress, tc/egress: on the interface iface=."""
    check_type(program, (ProgType.SCHED_CLS,), "tcx hooks", sd.section)
    return attach_tcx(program, need_iface(sd, iface), _DIRECTIONS[sd.expected_attach_type])
