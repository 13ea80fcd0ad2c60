"""netfilter: a program run as a netfilter hook (BPF_LINK_TYPE_NETFILTER, 6.4+) on
every IPv4 or IPv6 packet passing one of the hooks (prerouting, input, forward,
output, postrouting), among iptables/nftables hooks by priority; it returns NF_DROP
(0) or NF_ACCEPT (1). SEC("netfilter") attaches here, with pf=, hooknum= and
optionally priority= and flags= (the section names none of them, as in libbpf).

A netfilter hook belongs to a network namespace: the link goes into the namespace of
the calling thread, or of netns= (a name under /run/netns or a path), and the kernel
removes it when its last fd or pin goes. There is no pre-link way to attach these
programs, so a kernel without these links (or built without
CONFIG_NETFILTER_BPF_LINK) is a HookNotSupportedError.
"""
import errno

from .. import args
from ..kernel import bpf as kbpf
from ..kernel import features
from ..kernel.attr import NetfilterOpts
from ..kernel.constants import BPF_F_NETFILTER_IP_DEFRAG, AttachType, ProgType
from ..links import BpfLink
from .common import AttachError, HookNotSupportedError, check_type
from .netdev import entered

OPTIONS = ("pf", "hooknum", "priority", "flags")

# <linux/netfilter.h>: protocol families and the IPv4/IPv6 hooks.
NFPROTO_IPV4, NFPROTO_IPV6 = 2, 10
PROTOCOLS = {"ipv4": NFPROTO_IPV4, "ipv6": NFPROTO_IPV6}
HOOKS = {"prerouting": 0, "input": 1, "forward": 2, "output": 3, "postrouting": 4}
_HOOK_ALIASES = {"pre_routing": 0, "local_in": 1, "local_out": 3, "post_routing": 4}
NF_IP_PRI_FIRST, NF_IP_PRI_LAST = -(1 << 31), (1 << 31) - 1
NF_IP_PRI_CONNTRACK_DEFRAG = -400


def _choice(value, names, what, aliases=None):
    """A number given as itself or by name (case-insensitive)."""
    if isinstance(value, str):
        key = value.lower().removeprefix("nf_inet_").removeprefix("nfproto_")
        found = {**names, **(aliases or {})}.get(key)
        if found is None:
            raise AttachError(f"{what} {value!r}: use one of {', '.join(names)} (or the "
                              f"number)")
        return found
    number = args.integer(value, what)
    if number not in names.values():
        raise AttachError(f"{what} {number}: use one of "
                          f"{', '.join(f'{n} ({v})' for n, v in names.items())}")
    return number


class NetfilterLink(BpfLink):
    """A program attached at a netfilter hook of one network namespace."""

    def __init__(self, fd, program, description, *, pf, hooknum, priority, flags):
        super().__init__(fd, program, description)
        self.pf, self.hooknum, self.priority, self.flags = pf, hooknum, priority, flags


def attach_netfilter(program, pf, hooknum, priority=0, flags=0, *, netns=None):
    """Attach a NETFILTER program (loaded with expected_attach_type BPF_NETFILTER, as
    SEC("netfilter") is) at hook hooknum ("output", "input", ... or 0..4) of protocol
    family pf ("ipv4", "ipv6", or NFPROTO_*) in this thread's network namespace or
    netns. priority orders it among the other hooks there (lower runs first; neither
    extreme of the int range, which netfilter keeps for itself); flags may hold
    BPF_F_NETFILTER_IP_DEFRAG (packets reassembled first; then priority must be
    above NF_IP_PRI_CONNTRACK_DEFRAG, -400)."""
    check_type(program, (ProgType.NETFILTER,), "netfilter hooks", "netfilter")
    pf = _choice(pf, PROTOCOLS, "netfilter protocol family (pf)")
    hooknum = _choice(hooknum, HOOKS, "netfilter hook (hooknum)", _HOOK_ALIASES)
    priority = args.integer(priority, "priority")
    flags = args.integer(flags, "flags")
    if not NF_IP_PRI_FIRST < priority < NF_IP_PRI_LAST:
        raise AttachError(f"netfilter priority {priority}: netfilter keeps the first and "
                          f"last ({NF_IP_PRI_FIRST}, {NF_IP_PRI_LAST}) for itself")
    if flags & ~BPF_F_NETFILTER_IP_DEFRAG:
        raise AttachError(f"netfilter flags {flags:#x}: the only flag is "
                          f"BPF_F_NETFILTER_IP_DEFRAG ({BPF_F_NETFILTER_IP_DEFRAG})")
    if flags & BPF_F_NETFILTER_IP_DEFRAG and priority <= NF_IP_PRI_CONNTRACK_DEFRAG:
        raise AttachError(f"with BPF_F_NETFILTER_IP_DEFRAG the priority must be above "
                          f"{NF_IP_PRI_CONNTRACK_DEFRAG} (defragmentation), not {priority}")
    family = {v: k for k, v in PROTOCOLS.items()}[pf]
    hook = {v: k for k, v in HOOKS.items()}[hooknum]
    what = f"netfilter {family} {hook} priority {priority}" + (
        f" in netns {netns}" if netns else "")
    if not features.have("netfilter_link"):
        raise features.missing("netfilter_link", f"{what} needs netfilter links",
                               error=HookNotSupportedError)
    opts = NetfilterOpts(pf=pf, hooknum=hooknum, priority=priority, flags=flags)
    with entered(netns):
        fd = kbpf.link_create(program.fd, 0, AttachType.NETFILTER, extra=opts,
                              hints=_hints(what))
    return NetfilterLink(fd, program, what, pf=pf, hooknum=hooknum, priority=priority,
                         flags=flags)


def _hints(what):
    return {errno.EINVAL: f"the kernel refused {what}: load the program from "
                          f"SEC(\"netfilter\") (expected_attach_type BPF_NETFILTER)",
            errno.EOPNOTSUPP: "the kernel lacks IP defragmentation support for netfilter "
                              "links (nf_defrag_ipv4/ipv6)",
            errno.EBUSY: "a netfilter link at this hook has this priority already"}


def attach_section(program, sd, pf=None, hooknum=None, priority=None, flags=None):
    """netfilter: pf= and hooknum= say where (priority= and flags= optional)."""
    if pf is None or hooknum is None:
        raise AttachError(f"{sd.section!r} programs attach to a netfilter hook: pass pf= "
                          f"(\"ipv4\" or \"ipv6\") and hooknum= (\"prerouting\", \"input\", "
                          f"\"forward\", \"output\" or \"postrouting\"), and optionally "
                          f"priority= and flags=")
    return attach_netfilter(program, pf, hooknum, priority or 0, flags or 0)
