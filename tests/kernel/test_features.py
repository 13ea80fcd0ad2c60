"""The feature registry on the running kernel: every test answers, and the library
does what the answers say (a BPF link where the kernel has that kind, the older
mechanism where it does not). Marked ``vm`` so Debian's 6.1 (no tcx) runs it too,
besides this host's kernel."""
import pytest

from pybpf import asm
from pybpf.attach import attach_cgroup, attach_tracepoint
from pybpf.kernel import features, memlock, namespaces
from pybpf.kernel.constants import AttachType, ProgType
from pybpf.links import BpfLink
from pybpf.netattach import TcxLink, XdpLink, attach_tc, attach_xdp
from pybpf.programs import Program

pytestmark = pytest.mark.vm


def program(ptype, ret=0, **options):
    return Program.load(ptype, [asm.mov64(asm.R0, ret), asm.exit()], **options)


def test_every_feature_answers_and_keeps_its_answer():
    for name in features.FEATURES:
        assert features.have(name) in (True, False), name
        assert features._answers[name] is features.have(name)


def test_the_report_has_every_answer():
    report = features.report(mount=True)
    assert {name: found["available"] for name, found in report.items()} == \
        {name: features.have(name) for name in features.FEATURES}


def test_memlock_is_lifted_only_where_the_kernel_charges_it():
    assert memlock.memlock_accounting_is_rlimit() is not features.have("memcg_accounting")


def test_perf_links_where_the_kernel_has_them():
    with program(ProgType.TRACEPOINT) as prog:
        with attach_tracepoint(prog, "syscalls/sys_enter_getpid") as link:
            assert isinstance(link, BpfLink) is features.have("bpf_perf_link")


def test_cgroup_links_where_the_kernel_has_them(cgroup):
    with program(ProgType.CGROUP_SKB, 1,
                 expected_attach_type=AttachType.CGROUP_INET_EGRESS) as prog:
        with attach_cgroup(prog, cgroup, AttachType.CGROUP_INET_EGRESS) as link:
            assert isinstance(link, BpfLink) is features.have("bpf_link")


def _kind_of_link(attach_fn):
    """The class of the link attach_fn("lo") makes on the loopback device of a network
    namespace of its own (this machine's interfaces are never touched); closed again."""
    def attach_and_close():
        with attach_fn("lo") as link:
            return type(link)
    return namespaces.in_private_netns(attach_and_close)


def test_xdp_links_where_the_kernel_has_them():
    with program(ProgType.XDP, 2) as prog:  # XDP_PASS
        kind = _kind_of_link(lambda ifname: attach_xdp(prog, ifname))
    assert (kind is XdpLink) is features.have("bpf_link_xdp")


def test_tcx_links_where_the_kernel_has_them():
    with program(ProgType.SCHED_CLS) as prog:
        kind = _kind_of_link(lambda ifname: attach_tc(prog, ifname))
    assert (kind is TcxLink) is features.have("tcx")
