"""Attaching XDP and tc programs to network interfaces: :mod:`pybpf.attach.xdp` and
:mod:`pybpf.attach.tc` (their docstrings say how each hook is reached), with what both
share in :mod:`pybpf.attach.netdev`. This module keeps the names it has always had.

Both functions take ``netns=``: the name of a network namespace (``ip netns add
NAME``) or the path of one (``/proc/PID/ns/net``). The interface is looked up and the
program attached inside it; the calling thread returns to its own namespace at once.
Netlink is spoken through pyroute2, the optional ``net`` extra (``pip install
pybpf[net]``); it is imported only when needed, so XDP and tcx links work without it.
"""
from .attach.netdev import InterfaceError, resolve_interface
from .attach.tc import EGRESS, INGRESS, TcLink, TcxLink, attach_tc
from .attach.xdp import NetlinkXdpLink, XdpLink, attach_xdp
from .kernel.constants import (XDP_FLAGS_DRV_MODE, XDP_FLAGS_HW_MODE, XDP_FLAGS_MASK,
                               XDP_FLAGS_MODES, XDP_FLAGS_REPLACE, XDP_FLAGS_SKB_MODE,
                               XDP_FLAGS_UPDATE_IF_NOEXIST)
from .kernel.namespaces import netns_path

__all__ = ["attach_xdp", "attach_tc", "resolve_interface", "XdpLink", "NetlinkXdpLink",
           "TcxLink", "TcLink", "InterfaceError", "INGRESS", "EGRESS", "XDP_FLAGS_SKB_MODE",
           "XDP_FLAGS_DRV_MODE", "XDP_FLAGS_HW_MODE", "XDP_FLAGS_UPDATE_IF_NOEXIST",
           "XDP_FLAGS_MASK", "XDP_FLAGS_MODES", "XDP_FLAGS_REPLACE",
           "netns_path"]
