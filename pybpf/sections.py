"""What an ELF section name says about the program in it: the one section table.

clang-built objects name each program's section after its hook, following libbpf's
conventions (``SEC("kprobe/do_sys_open")``, ``SEC("xdp")``, ``SEC("tp/syscalls/...")``).
This module maps a section name to the program type, expected attach type, load
flags, the attach target written after the prefix, and how :func:`pybpf.attach.attach`
attaches it: the hook module of pybpf.attach whose ``attach_section()`` does (as
libbpf's section_defs[] name their prog_attach_fn), or why attach() does not. The
table is data, one row per convention, so a new hook kind is one row here and one
module in pybpf/attach/. tests/unit/test_sections.py holds it to libbpf's.

Matching rules (the ones libbpf 1.x applies, so an object means the same to both):
a row whose prefix ends in ``+`` matches the bare prefix or the prefix followed by
``/`` and a target; other rows match the whole name only. A leading ``?`` marks a
program that is not loaded by default.
"""
import dataclasses

from .errors import InputError
from .kernel.constants import AttachType as A
from .kernel.constants import ProgType as P

# Flags of a row.
SLEEPABLE = 1      # BPF_F_SLEEPABLE at load
ATTACH_BTF = 2     # the target names a kernel BTF type (fentry, lsm, tp_btf, iter)
XDP_FRAGS = 4      # BPF_F_XDP_HAS_FRAGS at load


@dataclasses.dataclass(frozen=True)
class Elsewhere:
    """The hook of a row that attach() does not attach: why, and what does."""
    reason: str


_SOCKET = Elsewhere("socket filters are not attached to a hook: attach with "
                    "sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF (50), program.fd)")
_SK_REUSEPORT = Elsewhere("sk_reuseport programs attach to a socket: sock.setsockopt("
                          "SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF (52), program.fd)")
_SK_SKB = Elsewhere("sk_skb programs attach to a sockmap/sockhash (BPF_PROG_ATTACH with "
                    "the map's fd), not to a hook")
_SK_MSG = Elsewhere("sk_msg programs attach to a sockmap/sockhash (BPF_PROG_ATTACH with "
                    "the map's fd), not to a hook")
_ITER = Elsewhere("iterators are not attached to a hook: create a link for them and "
                  "read it")
_SYSCALL = Elsewhere("syscall programs are run with program.test_run(), not attached")
_STRUCT_OPS = Elsewhere("struct_ops programs are registered through their struct_ops map")
_ACTION = Elsewhere("tc actions are installed with `tc action`, not attached by pybpf")
_LIRC = Elsewhere("lirc_mode2 programs attach to a /dev/lircN device (BPF_PROG_ATTACH)")
_FLOW_DISSECTOR = Elsewhere("flow dissectors attach to a network namespace "
                            "(BPF_PROG_ATTACH with the netns fd)")
_SK_LOOKUP = Elsewhere("sk_lookup programs attach to a network namespace "
                       "(BPF_LINK_CREATE with the netns fd)")
_LWT = Elsewhere("lightweight tunnel programs are installed on a route "
                 "(`ip route add ... encap bpf in|out|xmit obj FILE section NAME`)")
_NETKIT = Elsewhere("netkit programs attach to a netkit device (BPF_LINK_CREATE with "
                    "BPF_NETKIT_PRIMARY/PEER on its ifindex), which attach() does not "
                    "create links for: its kernels here lack CONFIG_NETKIT to test them "
                    "on; link it with pybpf.kernel.bpf.link_create(program.fd, ifindex, "
                    "AttachType.NETKIT_PRIMARY)")
_XDP_MAP = Elsewhere("xdp/devmap and xdp/cpumap programs run from a devmap/cpumap entry: "
                     "store the program fd in the map value, do not attach it")

_ROWS = [
    # prefix, program type, expected attach type, flags, hook (a pybpf.attach module)
    ("socket", P.SOCKET_FILTER, None, 0, _SOCKET),
    ("sk_reuseport/migrate", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT_OR_MIGRATE, 0,
     _SK_REUSEPORT),
    ("sk_reuseport", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT, 0, _SK_REUSEPORT),
    ("kprobe+", P.KPROBE, None, 0, "kprobe"),
    ("kretprobe+", P.KPROBE, None, 0, "kprobe"),
    ("uprobe+", P.KPROBE, None, 0, "uprobe"),
    ("uprobe.s+", P.KPROBE, None, SLEEPABLE, "uprobe"),
    ("uretprobe+", P.KPROBE, None, 0, "uprobe"),
    ("uretprobe.s+", P.KPROBE, None, SLEEPABLE, "uprobe"),
    ("kprobe.multi+", P.KPROBE, A.TRACE_KPROBE_MULTI, 0, "kprobe_multi"),
    ("kretprobe.multi+", P.KPROBE, A.TRACE_KPROBE_MULTI, 0, "kprobe_multi"),
    ("kprobe.session+", P.KPROBE, A.TRACE_KPROBE_SESSION, 0, "kprobe_multi"),
    ("uprobe.multi+", P.KPROBE, A.TRACE_UPROBE_MULTI, 0, "uprobe_multi"),
    ("uretprobe.multi+", P.KPROBE, A.TRACE_UPROBE_MULTI, 0, "uprobe_multi"),
    ("uprobe.multi.s+", P.KPROBE, A.TRACE_UPROBE_MULTI, SLEEPABLE, "uprobe_multi"),
    ("uretprobe.multi.s+", P.KPROBE, A.TRACE_UPROBE_MULTI, SLEEPABLE, "uprobe_multi"),
    ("ksyscall+", P.KPROBE, None, 0, "kprobe"),
    ("kretsyscall+", P.KPROBE, None, 0, "kprobe"),
    ("usdt+", P.KPROBE, None, 0, "usdt"),
    ("usdt.s+", P.KPROBE, None, SLEEPABLE, "usdt"),
    ("tc/ingress", P.SCHED_CLS, A.TCX_INGRESS, 0, "tcx"),  # libbpf: an alias for tcx
    ("tc/egress", P.SCHED_CLS, A.TCX_EGRESS, 0, "tcx"),
    ("tcx/ingress", P.SCHED_CLS, A.TCX_INGRESS, 0, "tcx"),
    ("tcx/egress", P.SCHED_CLS, A.TCX_EGRESS, 0, "tcx"),
    ("tc", P.SCHED_CLS, None, 0, "tc"),
    ("classifier", P.SCHED_CLS, None, 0, "tc"),
    ("action", P.SCHED_ACT, None, 0, _ACTION),
    ("netkit/primary", P.SCHED_CLS, A.NETKIT_PRIMARY, 0, _NETKIT),
    ("netkit/peer", P.SCHED_CLS, A.NETKIT_PEER, 0, _NETKIT),
    ("tracepoint+", P.TRACEPOINT, None, 0, "tracepoint"),
    ("tp+", P.TRACEPOINT, None, 0, "tracepoint"),
    ("raw_tracepoint+", P.RAW_TRACEPOINT, None, 0, "raw_tracepoint"),
    ("raw_tp+", P.RAW_TRACEPOINT, None, 0, "raw_tracepoint"),
    ("raw_tracepoint.w+", P.RAW_TRACEPOINT_WRITABLE, None, 0, "raw_tracepoint"),
    ("raw_tp.w+", P.RAW_TRACEPOINT_WRITABLE, None, 0, "raw_tracepoint"),
    ("tp_btf+", P.TRACING, A.TRACE_RAW_TP, ATTACH_BTF, "tracing"),
    ("fentry+", P.TRACING, A.TRACE_FENTRY, ATTACH_BTF, "tracing"),
    ("fmod_ret+", P.TRACING, A.MODIFY_RETURN, ATTACH_BTF, "tracing"),
    ("fexit+", P.TRACING, A.TRACE_FEXIT, ATTACH_BTF, "tracing"),
    ("fentry.s+", P.TRACING, A.TRACE_FENTRY, ATTACH_BTF | SLEEPABLE, "tracing"),
    ("fmod_ret.s+", P.TRACING, A.MODIFY_RETURN, ATTACH_BTF | SLEEPABLE, "tracing"),
    ("fexit.s+", P.TRACING, A.TRACE_FEXIT, ATTACH_BTF | SLEEPABLE, "tracing"),
    ("freplace+", P.EXT, None, ATTACH_BTF, "tracing"),
    ("lsm+", P.LSM, A.LSM_MAC, ATTACH_BTF, "tracing"),
    ("lsm.s+", P.LSM, A.LSM_MAC, ATTACH_BTF | SLEEPABLE, "tracing"),
    ("lsm_cgroup+", P.LSM, A.LSM_CGROUP, ATTACH_BTF, "cgroup"),
    ("iter+", P.TRACING, A.TRACE_ITER, ATTACH_BTF, _ITER),
    ("iter.s+", P.TRACING, A.TRACE_ITER, ATTACH_BTF | SLEEPABLE, _ITER),
    ("syscall", P.SYSCALL, None, SLEEPABLE, _SYSCALL),
    ("xdp.frags/devmap", P.XDP, A.XDP_DEVMAP, XDP_FRAGS, _XDP_MAP),
    ("xdp/devmap", P.XDP, A.XDP_DEVMAP, 0, _XDP_MAP),
    ("xdp.frags/cpumap", P.XDP, A.XDP_CPUMAP, XDP_FRAGS, _XDP_MAP),
    ("xdp/cpumap", P.XDP, A.XDP_CPUMAP, 0, _XDP_MAP),
    ("xdp.frags", P.XDP, A.XDP, XDP_FRAGS, "xdp"),
    ("xdp", P.XDP, A.XDP, 0, "xdp"),
    ("perf_event", P.PERF_EVENT, None, 0, "perf_event"),
    ("lwt_in", P.LWT_IN, None, 0, _LWT),
    ("lwt_out", P.LWT_OUT, None, 0, _LWT),
    ("lwt_xmit", P.LWT_XMIT, None, 0, _LWT),
    ("lwt_seg6local", P.LWT_SEG6LOCAL, None, 0, _LWT),
    ("sockops", P.SOCK_OPS, A.CGROUP_SOCK_OPS, 0, "cgroup"),
    ("sk_skb/stream_parser", P.SK_SKB, A.SK_SKB_STREAM_PARSER, 0, _SK_SKB),
    ("sk_skb/stream_verdict", P.SK_SKB, A.SK_SKB_STREAM_VERDICT, 0, _SK_SKB),
    ("sk_skb/verdict", P.SK_SKB, A.SK_SKB_VERDICT, 0, _SK_SKB),
    ("sk_skb", P.SK_SKB, None, 0, _SK_SKB),
    ("sk_msg", P.SK_MSG, A.SK_MSG_VERDICT, 0, _SK_MSG),
    ("lirc_mode2", P.LIRC_MODE2, A.LIRC_MODE2, 0, _LIRC),
    ("flow_dissector", P.FLOW_DISSECTOR, A.FLOW_DISSECTOR, 0, _FLOW_DISSECTOR),
    ("cgroup_skb/ingress", P.CGROUP_SKB, A.CGROUP_INET_INGRESS, 0, "cgroup"),
    ("cgroup_skb/egress", P.CGROUP_SKB, A.CGROUP_INET_EGRESS, 0, "cgroup"),
    ("cgroup/skb", P.CGROUP_SKB, None, 0, "cgroup"),
    ("cgroup/sock_create", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE, 0, "cgroup"),
    ("cgroup/sock_release", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_RELEASE, 0, "cgroup"),
    ("cgroup/sock", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE, 0, "cgroup"),
    ("cgroup/post_bind4", P.CGROUP_SOCK, A.CGROUP_INET4_POST_BIND, 0, "cgroup"),
    ("cgroup/post_bind6", P.CGROUP_SOCK, A.CGROUP_INET6_POST_BIND, 0, "cgroup"),
    ("cgroup/bind4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_BIND, 0, "cgroup"),
    ("cgroup/bind6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_BIND, 0, "cgroup"),
    ("cgroup/connect4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_CONNECT, 0, "cgroup"),
    ("cgroup/connect6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_CONNECT, 0, "cgroup"),
    ("cgroup/connect_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_CONNECT, 0, "cgroup"),
    ("cgroup/sendmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_SENDMSG, 0, "cgroup"),
    ("cgroup/sendmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_SENDMSG, 0, "cgroup"),
    ("cgroup/sendmsg_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_SENDMSG, 0, "cgroup"),
    ("cgroup/recvmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_RECVMSG, 0, "cgroup"),
    ("cgroup/recvmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_RECVMSG, 0, "cgroup"),
    ("cgroup/recvmsg_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_RECVMSG, 0, "cgroup"),
    ("cgroup/getpeername4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETPEERNAME, 0, "cgroup"),
    ("cgroup/getpeername6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETPEERNAME, 0, "cgroup"),
    ("cgroup/getpeername_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_GETPEERNAME, 0, "cgroup"),
    ("cgroup/getsockname4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETSOCKNAME, 0, "cgroup"),
    ("cgroup/getsockname6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETSOCKNAME, 0, "cgroup"),
    ("cgroup/getsockname_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_GETSOCKNAME, 0, "cgroup"),
    ("cgroup/sysctl", P.CGROUP_SYSCTL, A.CGROUP_SYSCTL, 0, "cgroup"),
    ("cgroup/getsockopt", P.CGROUP_SOCKOPT, A.CGROUP_GETSOCKOPT, 0, "cgroup"),
    ("cgroup/setsockopt", P.CGROUP_SOCKOPT, A.CGROUP_SETSOCKOPT, 0, "cgroup"),
    ("cgroup/dev", P.CGROUP_DEVICE, A.CGROUP_DEVICE, 0, "cgroup"),
    ("struct_ops+", P.STRUCT_OPS, None, 0, _STRUCT_OPS),
    ("struct_ops.s+", P.STRUCT_OPS, None, SLEEPABLE, _STRUCT_OPS),
    ("netfilter", P.NETFILTER, A.NETFILTER, 0, "netfilter"),
    ("sk_lookup", P.SK_LOOKUP, A.SK_LOOKUP, 0, _SK_LOOKUP),
]

# Where an ATTACH_BTF target is found in kernel BTF: (BTF kind, name prefix).
BTF_TARGETS = {
    A.TRACE_RAW_TP: ("typedef", "btf_trace_"),
    A.TRACE_ITER: ("func", "bpf_iter_"),
    A.LSM_MAC: ("func", "bpf_lsm_"),
    A.LSM_CGROUP: ("func", "bpf_lsm_"),
}


@dataclasses.dataclass(frozen=True)
class SectionDef:
    """How to load the programs of one section."""
    section: str            # the ELF section name, as written
    prefix: str             # the convention it matched ("kprobe", "xdp", ...)
    prog_type: P
    expected_attach_type: object  # AttachType or None
    target: str             # what follows "prefix/" (function, tracepoint, ...), or ""
    flags: int
    autoload: bool          # False for "?"-prefixed sections
    hook: object = None     # the pybpf.attach module that attaches it, or an Elsewhere

    @property
    def kind(self):
        """The convention without its variant suffix: "kretprobe" for "kretprobe/x",
        "xdp" for "xdp.frags". (Which hook attaches it is ``hook``.)"""
        return self.prefix.split(".")[0]

    def btf_target(self):
        """(kind, name) to look up in kernel BTF for ATTACH_BTF programs, else None."""
        if not self.flags & ATTACH_BTF or self.prog_type == P.EXT:
            return None
        kind, prefix = BTF_TARGETS.get(self.expected_attach_type, ("func", ""))
        return kind, prefix + self.target


class UnknownSectionError(InputError):
    """A section holds code but its name follows no known convention."""


def parse(section):
    """SectionDef for a program section name; UnknownSectionError if none matches."""
    autoload = not section.startswith("?")
    name = section[1:] if not autoload else section
    for prefix, ptype, eat, flags, hook in _ROWS:
        if prefix.endswith("+"):
            base = prefix[:-1]
            if name == base or name.startswith(base + "/"):
                return SectionDef(section, base, ptype, eat, name[len(base) + 1:], flags,
                                  autoload, hook)
        elif name == prefix:
            return SectionDef(section, prefix, ptype, eat, "", flags, autoload, hook)
    raise UnknownSectionError(
        f"section {section!r} holds a program but its name follows no known convention "
        f"(e.g. kprobe/FUNC, tracepoint/CATEGORY/NAME, xdp, tc, socket); rename it with "
        f"SEC(\"...\") or load it with an explicit program type")


def known_prefixes():
    return [p for p, *_ in _ROWS]


def hooks():
    """The hook modules the table names, in table order."""
    return list(dict.fromkeys(row[4] for row in _ROWS if isinstance(row[4], str)))
