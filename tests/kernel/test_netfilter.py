"""netfilter links (pybpf.attach.netfilter) on the running kernel: assembled NETFILTER
programs at IPv4 output of a network namespace made for the module, counting or
dropping UDP sent through its loopback. The namespace is removed whatever happens."""
import contextlib
import errno
import socket
import uuid

import pytest

pyroute2 = pytest.importorskip("pyroute2", reason="network tests need pyroute2 "
                                                  "(pip install pybpf[net])")
from pyroute2 import netns as pnetns  # noqa: E402

from pybpf import asm  # noqa: E402
from pybpf.attach import AttachError, NetfilterLink, attach, attach_netfilter  # noqa: E402
from pybpf.kernel import features  # noqa: E402
from pybpf.kernel.constants import AttachType, HelperId, LinkType, ProgType  # noqa: E402
from pybpf.maps import Map  # noqa: E402
from pybpf.programs import Program  # noqa: E402

pytestmark = pytest.mark.skipif(not features.have("netfilter_link"),
                                reason="needs netfilter links (Linux 6.4+ with "
                                       "CONFIG_NETFILTER_BPF_LINK)")
PORT = 40011


@pytest.fixture(scope="module")
def ns():
    name = f"pybpf-nf-{uuid.uuid4().hex[:6]}"
    try:
        pnetns.create(name)
        with pyroute2.IPRoute(netns=name) as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        yield name
    finally:
        if name in pnetns.listnetns():
            pnetns.remove(name)
        assert name not in pnetns.listnetns()


@contextlib.contextmanager
def inside(name):
    pnetns.pushns(name)
    try:
        yield
    finally:
        pnetns.popns()


@pytest.fixture
def counts():
    with Map.create("array", key="I", value="Q", max_entries=1) as m:
        yield m


def nf_program(counts, verdict):
    """counts[0] += 1 for every packet, then verdict (1 NF_ACCEPT, 0 NF_DROP)."""
    code = [asm.st(4, asm.R10, -4, 0), asm.ld_map_fd(asm.R1, counts.fd),
            asm.mov64(asm.R2, asm.R10), asm.alu64("add", asm.R2, -4),
            asm.call(HelperId.map_lookup_elem), asm.jmp("eq", asm.R0, 0, "out"),
            asm.mov64(asm.R1, 1), asm.atomic("add", 8, asm.R0, asm.R1),
            "out", asm.mov64(asm.R0, verdict), asm.exit()]
    return Program.load(ProgType.NETFILTER, asm.assemble(code), name="nf_count",
                        expected_attach_type=AttachType.NETFILTER)


def send_udp(name, n):
    """n datagrams to PORT on 127.0.0.1 in namespace name; how many were received."""
    with inside(name):
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rx, tx:
        rx.bind(("127.0.0.1", PORT))
        rx.settimeout(0.3)
        for _ in range(n):
            tx.sendto(b"pybpf", ("127.0.0.1", PORT))
        got = 0
        try:
            while True:
                rx.recv(16)
                got += 1
        except socket.timeout:
            return got


def test_counts_output_packets_of_its_namespace(ns, counts):
    with nf_program(counts, 1) as prog:
        with attach_netfilter(prog, "ipv4", "output", priority=10, netns=ns) as link:
            assert isinstance(link, NetfilterLink) and link.hooknum == 3
            info = link.info()
            assert info.type == LinkType.NETFILTER
            assert info.details == {"pf": 2, "hooknum": 3, "priority": 10, "flags": 0}
            assert send_udp(ns, 5) == 5
        assert counts[0] == 5
        assert send_udp(ns, 3) == 3
    assert counts[0] == 5


def test_drop_from_the_section_with_options(ns, counts):
    with nf_program(counts, 0) as prog:
        with inside(ns):
            link = attach(prog, "netfilter", pf="ipv4", hooknum="local_out", priority=-5)
        with link:
            with pytest.raises(OSError) as e:
                send_udp(ns, 1)
            assert e.value.errno == errno.EPERM
        assert send_udp(ns, 2) == 2
    assert counts[0] == 1


def test_mistakes_name_the_fix(counts):
    with nf_program(counts, 1) as prog:
        with pytest.raises(AttachError, match=r"pf\) 'ipx': use one of ipv4, ipv6"):
            attach_netfilter(prog, "ipx", "output")
        with pytest.raises(AttachError, match=r"hooknum\) 7: use one of prerouting \(0\)"):
            attach_netfilter(prog, "ipv4", 7)
        with pytest.raises(AttachError, match="keeps the first and last"):
            attach_netfilter(prog, "ipv4", "input", priority=-(1 << 31))
        with pytest.raises(AttachError, match="must be above -400"):
            attach_netfilter(prog, "ipv6", "input", priority=-400, flags=1)
        with pytest.raises(AttachError, match="pass pf="):
            attach(prog, "netfilter", hooknum="output")
    with Program.load(ProgType.SOCKET_FILTER, [asm.mov64(0, 0), asm.exit()]) as other:
        with pytest.raises(AttachError, match="has type socket_filter, but netfilter hooks"):
            attach_netfilter(other, "ipv4", "output")
