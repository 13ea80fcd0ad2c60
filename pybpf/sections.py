"""What an ELF section name says about the program in it.

clang-built objects name each program's section after its hook, following libbpf's
conventions (``SEC("kprobe/do_sys_open")``, ``SEC("xdp")``, ``SEC("tp/syscalls/...")``).
This module maps a section name to the program type, expected attach type and the
attach target written after the prefix. The table is data: one row per convention.

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

_ROWS = [
    # prefix, program type, expected attach type, flags
    ("socket", P.SOCKET_FILTER, None, 0),
    ("sk_reuseport/migrate", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT_OR_MIGRATE, 0),
    ("sk_reuseport", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT, 0),
    ("kprobe+", P.KPROBE, None, 0),
    ("kretprobe+", P.KPROBE, None, 0),
    ("uprobe+", P.KPROBE, None, 0),
    ("uprobe.s+", P.KPROBE, None, SLEEPABLE),
    ("uretprobe+", P.KPROBE, None, 0),
    ("uretprobe.s+", P.KPROBE, None, SLEEPABLE),
    ("kprobe.multi+", P.KPROBE, A.TRACE_KPROBE_MULTI, 0),
    ("kretprobe.multi+", P.KPROBE, A.TRACE_KPROBE_MULTI, 0),
    ("ksyscall+", P.KPROBE, None, 0),
    ("kretsyscall+", P.KPROBE, None, 0),
    ("usdt+", P.KPROBE, None, 0),
    ("tc", P.SCHED_CLS, None, 0),
    ("classifier", P.SCHED_CLS, None, 0),
    ("action", P.SCHED_ACT, None, 0),
    ("tracepoint+", P.TRACEPOINT, None, 0),
    ("tp+", P.TRACEPOINT, None, 0),
    ("raw_tracepoint+", P.RAW_TRACEPOINT, None, 0),
    ("raw_tp+", P.RAW_TRACEPOINT, None, 0),
    ("raw_tracepoint.w+", P.RAW_TRACEPOINT_WRITABLE, None, 0),
    ("raw_tp.w+", P.RAW_TRACEPOINT_WRITABLE, None, 0),
    ("tp_btf+", P.TRACING, A.TRACE_RAW_TP, ATTACH_BTF),
    ("fentry+", P.TRACING, A.TRACE_FENTRY, ATTACH_BTF),
    ("fmod_ret+", P.TRACING, A.MODIFY_RETURN, ATTACH_BTF),
    ("fexit+", P.TRACING, A.TRACE_FEXIT, ATTACH_BTF),
    ("fentry.s+", P.TRACING, A.TRACE_FENTRY, ATTACH_BTF | SLEEPABLE),
    ("fmod_ret.s+", P.TRACING, A.MODIFY_RETURN, ATTACH_BTF | SLEEPABLE),
    ("fexit.s+", P.TRACING, A.TRACE_FEXIT, ATTACH_BTF | SLEEPABLE),
    ("freplace+", P.EXT, None, ATTACH_BTF),
    ("lsm+", P.LSM, A.LSM_MAC, ATTACH_BTF),
    ("lsm.s+", P.LSM, A.LSM_MAC, ATTACH_BTF | SLEEPABLE),
    ("lsm_cgroup+", P.LSM, A.LSM_CGROUP, ATTACH_BTF),
    ("iter+", P.TRACING, A.TRACE_ITER, ATTACH_BTF),
    ("iter.s+", P.TRACING, A.TRACE_ITER, ATTACH_BTF | SLEEPABLE),
    ("syscall", P.SYSCALL, None, SLEEPABLE),
    ("xdp.frags/devmap", P.XDP, A.XDP_DEVMAP, XDP_FRAGS),
    ("xdp/devmap", P.XDP, A.XDP_DEVMAP, 0),
    ("xdp.frags/cpumap", P.XDP, A.XDP_CPUMAP, XDP_FRAGS),
    ("xdp/cpumap", P.XDP, A.XDP_CPUMAP, 0),
    ("xdp.frags", P.XDP, A.XDP, XDP_FRAGS),
    ("xdp", P.XDP, A.XDP, 0),
    ("perf_event", P.PERF_EVENT, None, 0),
    ("lwt_in", P.LWT_IN, None, 0),
    ("lwt_out", P.LWT_OUT, None, 0),
    ("lwt_xmit", P.LWT_XMIT, None, 0),
    ("lwt_seg6local", P.LWT_SEG6LOCAL, None, 0),
    ("sockops", P.SOCK_OPS, A.CGROUP_SOCK_OPS, 0),
    ("sk_skb/stream_parser", P.SK_SKB, A.SK_SKB_STREAM_PARSER, 0),
    ("sk_skb/stream_verdict", P.SK_SKB, A.SK_SKB_STREAM_VERDICT, 0),
    ("sk_skb", P.SK_SKB, None, 0),
    ("sk_msg", P.SK_MSG, A.SK_MSG_VERDICT, 0),
    ("lirc_mode2", P.LIRC_MODE2, A.LIRC_MODE2, 0),
    ("flow_dissector", P.FLOW_DISSECTOR, A.FLOW_DISSECTOR, 0),
    ("cgroup_skb/ingress", P.CGROUP_SKB, A.CGROUP_INET_INGRESS, 0),
    ("cgroup_skb/egress", P.CGROUP_SKB, A.CGROUP_INET_EGRESS, 0),
    ("cgroup/skb", P.CGROUP_SKB, None, 0),
    ("cgroup/sock_create", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE, 0),
    ("cgroup/sock_release", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_RELEASE, 0),
    ("cgroup/sock", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE, 0),
    ("cgroup/post_bind4", P.CGROUP_SOCK, A.CGROUP_INET4_POST_BIND, 0),
    ("cgroup/post_bind6", P.CGROUP_SOCK, A.CGROUP_INET6_POST_BIND, 0),
    ("cgroup/bind4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_BIND, 0),
    ("cgroup/bind6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_BIND, 0),
    ("cgroup/connect4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_CONNECT, 0),
    ("cgroup/connect6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_CONNECT, 0),
    ("cgroup/sendmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_SENDMSG, 0),
    ("cgroup/sendmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_SENDMSG, 0),
    ("cgroup/recvmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_RECVMSG, 0),
    ("cgroup/recvmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_RECVMSG, 0),
    ("cgroup/getpeername4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETPEERNAME, 0),
    ("cgroup/getpeername6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETPEERNAME, 0),
    ("cgroup/getsockname4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETSOCKNAME, 0),
    ("cgroup/getsockname6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETSOCKNAME, 0),
    ("cgroup/sysctl", P.CGROUP_SYSCTL, A.CGROUP_SYSCTL, 0),
    ("cgroup/getsockopt", P.CGROUP_SOCKOPT, A.CGROUP_GETSOCKOPT, 0),
    ("cgroup/setsockopt", P.CGROUP_SOCKOPT, A.CGROUP_SETSOCKOPT, 0),
    ("cgroup/dev", P.CGROUP_DEVICE, A.CGROUP_DEVICE, 0),
    ("struct_ops+", P.STRUCT_OPS, None, 0),
    ("sk_lookup", P.SK_LOOKUP, A.SK_LOOKUP, 0),
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

    @property
    def kind(self):
        """The hook family, e.g. "kretprobe" for "kretprobe/x", used by attach."""
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
    for prefix, ptype, eat, flags in _ROWS:
        if prefix.endswith("+"):
            base = prefix[:-1]
            if name == base or name.startswith(base + "/"):
                return SectionDef(section, base, ptype, eat, name[len(base) + 1:], flags,
                                  autoload)
        elif name == prefix:
            return SectionDef(section, prefix, ptype, eat, "", flags, autoload)
    raise UnknownSectionError(
        f"section {section!r} holds a program but its name follows no known convention "
        f"(e.g. kprobe/FUNC, tracepoint/CATEGORY/NAME, xdp, tc, socket); rename it with "
        f"SEC(\"...\") or load it with an explicit program type")


def known_prefixes():
    return [p for p, *_ in _ROWS]
