"""XDP and tc attachment, checked with real packets between two network namespaces.

The module builds two namespaces joined by a veth pair (va in A, vb in B), attaches
programs from tests/progs/run to the veths, sends UDP from A to B through sockets
opened inside the namespaces, and reads what the programs counted. The namespaces are
removed whatever happens, and the module checks that nothing is left behind.
"""
import contextlib
import ctypes
import errno
import json
import os
import socket
import subprocess
import sys
import time
import uuid

import pytest

pyroute2 = pytest.importorskip("pyroute2", reason="network tests need pyroute2 "
                                                  "(pip install pybpf[net])")
from pyroute2 import netns as pnetns  # noqa: E402

import pybpf  # noqa: E402
from pybpf import netattach  # noqa: E402
from pybpf.cli import main  # noqa: E402
from pybpf.errors import BPFError  # noqa: E402
from pybpf.kernel import attr  # noqa: E402
from pybpf.kernel import bpf as kbpf  # noqa: E402
from pybpf.kernel import features  # noqa: E402
from pybpf.kernel.constants import AttachType, Cmd, LinkType  # noqa: E402
from pybpf.kernel.syscall import bpf  # noqa: E402
from pybpf.attach import AttachError, TcxLink, attach  # noqa: E402
from pybpf.links import BpfLink  # noqa: E402
from pybpf.loader import BpfObject  # noqa: E402
from pybpf.programs import Program  # noqa: E402

PREFIX = f"pybpf-{uuid.uuid4().hex[:6]}"
ADDR_A, ADDR_B = "10.201.7.1", "10.201.7.2"
PASS_PORT, DROP_PORT = 40001, 40002


@pytest.fixture(scope="module")
def netpair():
    """Namespaces A and B joined by veth va (A, ADDR_A) -- vb (B, ADDR_B)."""
    a, b = f"{PREFIX}-a", f"{PREFIX}-b"
    try:
        for name in (a, b):
            pnetns.create(name)
        with pyroute2.IPRoute(netns=a) as ipr:
            ipr.link("add", ifname="va", kind="veth", peer={"ifname": "vb", "net_ns_fd": b})
        for name, ifname, addr in ((a, "va", ADDR_A), (b, "vb", ADDR_B)):
            with pyroute2.IPRoute(netns=name) as ipr:
                index = ipr.link_lookup(ifname=ifname)[0]
                ipr.addr("add", index=index, address=addr, prefixlen=24)
                ipr.link("set", index=index, state="up")
                ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        yield a, b
    finally:
        for name in (a, b):
            if name in pnetns.listnetns():
                pnetns.remove(name)
        left = [n for n in pnetns.listnetns() if n.startswith(PREFIX)]
        here = [name for _, name in socket.if_nameindex() if name in ("va", "vb")]
        assert not left and not here, f"left behind: namespaces {left}, interfaces {here}"


@contextlib.contextmanager
def inside(ns):
    """Run the block in network namespace ns (sockets made here stay in it)."""
    pnetns.pushns(ns)
    try:
        yield
    finally:
        pnetns.popns()


@contextlib.contextmanager
def udp_sockets(netpair, *ports):
    """A sender in A and receivers bound to ports on ADDR_B in B."""
    a, b = netpair
    with inside(a):
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    socks = [tx]
    try:
        with inside(b):
            for port in ports:
                rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(rx)
                rx.bind((ADDR_B, port))
                rx.settimeout(2)
        yield socks
    finally:
        for s in socks:
            s.close()


def received(rx, timeout=0.3):
    """How many datagrams rx gets before it has been quiet for timeout seconds."""
    n = 0
    rx.settimeout(timeout)
    try:
        while True:
            rx.recv(64)
            n += 1
    except socket.timeout:
        return n


def send(tx, port, count):
    for _ in range(count):
        tx.sendto(b"pybpf", (ADDR_B, port))


@pytest.fixture(scope="module")
def build(run_object):
    return run_object


def loaded(path, **variables):
    with BpfObject.open(path) as obj:
        for name, value in variables.items():
            obj.variables[name] = value
        yield obj.load()


@pytest.fixture
def xdp_obj(build):
    yield from loaded(build("xdp_count"), drop_port=DROP_PORT)


def counts(obj):
    return obj.maps["counts"][0], obj.maps["counts"][1]  # (UDP seen, dropped)


def warm_up(tx, rx):
    """One packet through first, so ARP is resolved before anything is counted."""
    send(tx, PASS_PORT, 1)
    assert received(rx, 2) == 1


# ---- XDP ---------------------------------------------------------------------------

@pytest.mark.parametrize("via", ["link", "netlink"])
def test_xdp_counts_and_drops_real_packets(netpair, xdp_obj, via):
    with udp_sockets(netpair, PASS_PORT, DROP_PORT) as (tx, rx_pass, rx_drop):
        warm_up(tx, rx_pass)
        link = netattach.attach_xdp(xdp_obj.programs["xdp_filter"], "vb", netns=netpair[1],
                                    via=via)
        with link:
            assert isinstance(link, BpfLink if via == "link" else netattach.NetlinkXdpLink)
            send(tx, PASS_PORT, 20)
            send(tx, DROP_PORT, 15)
            assert received(rx_pass) == 20
            assert received(rx_drop) == 0
            assert counts(xdp_obj) == (35, 15)
        # Detached: nothing counted, nothing dropped.
        send(tx, DROP_PORT, 5)
        assert received(rx_drop, 2) == 5
        assert counts(xdp_obj) == (35, 15)
        assert _xdp_prog_ids(netpair[1], "vb") == set()


def test_xdp_link_info_pin_and_detach_from_pin(netpair, xdp_obj, bpffs):
    path = os.path.join(bpffs, "xdp_link")
    prog = xdp_obj.programs["xdp_filter"]
    with netattach.attach_xdp(prog, "vb", netns=netpair[1]) as link:
        info = link.info()
        assert info.type == LinkType.XDP and info.prog_id == prog.id
        with inside(netpair[1]):
            assert info.details["ifindex"] == socket.if_nametoindex("vb")
        link.pin(path)
    # The pin keeps it attached after the link object is gone.
    with udp_sockets(netpair, DROP_PORT) as (tx, rx_drop):
        send(tx, DROP_PORT, 3)
        assert received(rx_drop) == 0
        with BpfLink.from_pin(path) as pinned:
            pinned.detach()
        BpfLink.unpin(path)
        send(tx, DROP_PORT, 3)
        assert received(rx_drop, 2) == 3
    assert counts(xdp_obj)[1] == 3


def test_xdp_link_refuses_a_second_program(netpair, xdp_obj):
    prog = xdp_obj.programs["xdp_filter"]
    with netattach.attach_xdp(prog, "vb", netns=netpair[1]):
        with pytest.raises(BPFError) as exc:
            netattach.attach_xdp(prog, "vb", netns=netpair[1])
    assert exc.value.errno == errno.EBUSY and "already has an XDP program" in str(exc.value)


def _xdp_prog_ids(ns, ifname):
    with pyroute2.IPRoute(netns=ns) as ipr:
        xdp = ipr.link("get", index=ipr.link_lookup(ifname=ifname)[0])[0].get_attr("IFLA_XDP")
    return {v for k, v in (xdp or {"attrs": []})["attrs"] if k.endswith("PROG_ID")}


# ---- tc ----------------------------------------------------------------------------

@pytest.fixture
def tc_obj(build):
    yield from loaded(build("tc_count"), port=PASS_PORT)


def _qdisc_kinds(ns, ifname):
    with pyroute2.IPRoute(netns=ns) as ipr:
        index = ipr.link_lookup(ifname=ifname)[0]
        return {q.get_attr("TCA_KIND") for q in ipr.get_qdiscs(index) if q["index"] == index}


def _tcx_prog_ids(ns, ifname, direction):
    with inside(ns):
        ifindex = socket.if_nametoindex(ifname)
        attach_type = {"ingress": AttachType.TCX_INGRESS, "egress": AttachType.TCX_EGRESS}
        return kbpf.prog_query(ifindex, attach_type[direction])[1]


def _has_tcx():
    try:
        return features.have("tcx")
    except BPFError:  # no bpf(2) here: conftest skips every test of this module
        return False


needs_tcx = pytest.mark.skipif(not _has_tcx(), reason="tcx links need Linux 6.6+")


@pytest.mark.parametrize("via", [pytest.param("link", marks=needs_tcx), "netlink"])
def test_tc_ingress_and_egress_count_then_detach(netpair, tc_obj, via):
    a, b = netpair
    with udp_sockets(netpair, PASS_PORT) as (tx, rx):
        warm_up(tx, rx)
        ingress = netattach.attach_tc(tc_obj.programs["count_ingress"], "vb", "ingress",
                                      netns=b, via=via)
        # egress on va: A's packets to B leave through it
        egress = netattach.attach_tc(tc_obj.programs["count_egress"], "va", "egress", netns=a,
                                     via=via)
        with ingress, egress:
            if via == "netlink":
                assert "clsact" in _qdisc_kinds(b, "vb")
                assert ingress.priority == 1 and isinstance(ingress, netattach.TcLink)
            else:
                assert isinstance(ingress, netattach.TcxLink)
                assert ingress.info().details == {"ifindex": ingress.ifindex,
                                                  "attach_type": "tcx_ingress"}
                assert _tcx_prog_ids(b, "vb", "ingress") == [ingress.program.id]
                assert _tcx_prog_ids(a, "va", "egress") == [egress.program.id]
            send(tx, PASS_PORT, 12)
            assert received(rx) == 12
            assert tc_obj.variables["ingress_packets"] == 12
            assert tc_obj.variables["egress_packets"] == 12
        send(tx, PASS_PORT, 4)
        assert received(rx) == 4
    assert tc_obj.variables["ingress_packets"] == 12
    assert tc_obj.variables["egress_packets"] == 12
    # pybpf added the clsact qdiscs, and took them away with its last filter.
    assert "clsact" not in _qdisc_kinds(b, "vb") and "clsact" not in _qdisc_kinds(a, "va")
    if via == "link":
        assert _tcx_prog_ids(b, "vb", "ingress") == _tcx_prog_ids(a, "va", "egress") == []


@needs_tcx
def test_tcx_sections_attach_as_tcx_links_on_their_hook(netpair, build):
    """SEC("tcx/ingress") and SEC("tc/egress") (libbpf's alias) name their direction:
    attach() makes a tcx link there on iface=, in the namespace it is called in."""
    a, b = netpair
    with BpfObject.open(build("tcx_count")) as obj:
        obj.variables["port"] = PASS_PORT
        obj.load()
        links = []
        for name, ns, iface in (("tcx_ingress", b, "vb"), ("tc_egress", a, "va")):
            with inside(ns):
                links.append(attach(obj.programs[name], obj.spec.programs[name].section_def,
                                    iface=iface))
        ingress, egress = links
        with ingress, egress, udp_sockets(netpair, PASS_PORT) as (tx, rx):
            assert isinstance(ingress, TcxLink) and (ingress.direction, egress.direction) \
                == ("ingress", "egress")
            assert egress.info().details["attach_type"] == "tcx_egress"
            assert _tcx_prog_ids(b, "vb", "ingress") == [ingress.program.id]
            send(tx, PASS_PORT, 6)
            assert received(rx) == 6
        assert _tcx_prog_ids(b, "vb", "ingress") == _tcx_prog_ids(a, "va", "egress") == []
        # ARP may precede the first datagram: only UDP to the port is counted
        assert obj.variables["ingress_packets"] == obj.variables["egress_packets"] == 6
        with pytest.raises(AttachError, match="pass iface="):
            attach(obj.programs["tcx_ingress"], "tcx/ingress")



@needs_tcx
def test_a_tcx_query_writes_only_inside_the_query_attr(netpair, tc_obj):
    """bpf_mprog_query() writes query.revision (offset 56) whatever attr size it is
    told: the structure must reach that far, or the kernel writes past it."""
    with netattach.attach_tc(tc_obj.programs["count_ingress"], "vb", netns=netpair[1]) as link:
        size = ctypes.sizeof(attr.ProgQueryAttr)
        buf = (ctypes.c_uint8 * (size + 64))(*([0xAA] * (size + 64)))
        query = attr.ProgQueryAttr.from_buffer(buf)
        ctypes.memset(buf, 0, size)
        query.target_fd, query.attach_type = link.ifindex, AttachType.TCX_INGRESS
        with inside(netpair[1]):
            bpf(Cmd.PROG_QUERY, query)
        assert query.prog_cnt == 1 and query.revision > 0
        assert bytes(buf[size:]) == b"\xaa" * 64


@needs_tcx
def test_tcx_is_the_default_where_the_kernel_has_it_and_refuses_a_priority(netpair, tc_obj):
    prog = tc_obj.programs["count_ingress"]
    with netattach.attach_tc(prog, "vb", netns=netpair[1]) as link:
        assert isinstance(link, netattach.TcxLink) and link.description.startswith("tcx")
        assert "clsact" not in _qdisc_kinds(netpair[1], "vb")
    with netattach.attach_tc(prog, "vb", netns=netpair[1], priority=3) as link:
        assert isinstance(link, netattach.TcLink) and link.priority == 3
    with pytest.raises(pybpf.InputError, match="priority orders netlink filters"):
        netattach.attach_tc(prog, "vb", netns=netpair[1], priority=3, via="link")


def test_tc_on_both_hooks_of_one_device_keeps_qdisc_until_last(netpair, tc_obj):
    b = netpair[1]
    first = netattach.attach_tc(tc_obj.programs["count_ingress"], "vb", "ingress", netns=b,
                                via="netlink")
    with netattach.attach_tc(tc_obj.programs["count_egress"], "vb", "egress", netns=b,
                             via="netlink"):
        first.close()
        assert "clsact" in _qdisc_kinds(b, "vb")  # the egress filter still uses it
    assert "clsact" not in _qdisc_kinds(b, "vb")


def test_tc_leaves_a_clsact_it_did_not_create_and_takes_free_priority(netpair, tc_obj):
    b = netpair[1]
    with pyroute2.IPRoute(netns=b) as ipr:
        index = ipr.link_lookup(ifname="vb")[0]
        ipr.tc("add", "clsact", index)
    try:
        prog = tc_obj.programs["count_ingress"]
        with netattach.attach_tc(prog, "vb", netns=b, via="netlink") as first:
            with netattach.attach_tc(prog, "vb", netns=b, via="netlink") as second:
                assert (first.priority, second.priority) == (1, 2)
            with pytest.raises(BPFError, match="priority 1") as exc:
                netattach.attach_tc(prog, "vb", netns=b, priority=1)
            assert exc.value.errno == errno.EEXIST
        assert "clsact" in _qdisc_kinds(b, "vb")
    finally:
        with pyroute2.IPRoute(netns=b) as ipr:
            ipr.tc("del", "clsact", index)


# ---- errors ------------------------------------------------------------------------

def test_nonexistent_interface_lists_existing_ones(xdp_obj, tc_obj, netpair):
    with pytest.raises(netattach.InterfaceError, match=r"no network interface 'nope0'.*lo"):
        netattach.attach_xdp(xdp_obj.programs["xdp_filter"], "nope0")
    with pytest.raises(netattach.InterfaceError, match=r"namespace.*interfaces: lo, vb"):
        netattach.attach_tc(tc_obj.programs["count_ingress"], "va", netns=netpair[1])
    with pytest.raises(netattach.InterfaceError, match="no network namespace"):
        netattach.attach_xdp(xdp_obj.programs["xdp_filter"], "lo", netns="pybpf-no-such-ns")


def test_wrong_program_type_is_refused(xdp_obj, tc_obj):
    with pytest.raises(ValueError, match=r"attach_tc needs a SCHED_CLS.*XDP \(use attach_xdp\)"):
        netattach.attach_tc(xdp_obj.programs["xdp_filter"], "lo")
    with pytest.raises(ValueError, match=r"attach_xdp needs a XDP.*SCHED_CLS"):
        netattach.attach_xdp(tc_obj.programs["count_ingress"], "lo")
    with pytest.raises(ValueError, match="direction"):
        netattach.attach_tc(tc_obj.programs["count_ingress"], "lo", "sideways")
    with pytest.raises(ValueError, match="more than one mode"):
        netattach.attach_xdp(xdp_obj.programs["xdp_filter"], "lo",
                             netattach.XDP_FLAGS_SKB_MODE | netattach.XDP_FLAGS_DRV_MODE)


UNPRIVILEGED = r"""
import os, sys
import pyroute2  # before giving up root: it lives where nobody may not read
import pybpf
from pybpf import netattach
from pybpf.loader import BpfObject
obj = BpfObject.open(sys.argv[1]).load()
prog = obj.programs[sys.argv[2]]
os.setgroups([]); os.setgid(65534); os.setuid(65534)  # drops every capability
try:
    link = getattr(netattach, sys.argv[3])(prog, "lo", **eval(sys.argv[4]))
    print("attached", link)
    link.close()
except pybpf.BPFError as e:
    print(type(e).__name__, e.errno, str(e).replace("\n", " "))
"""


# A BPF link needs no capability once the program is loaded: the program fd is the
# permission (kernel 6.18 lets uid nobody attach an XDP or a tcx link). Netlink, which
# tc filters and older kernels' XDP go through, wants CAP_NET_ADMIN.
@pytest.mark.parametrize("obj,prog,func,kwargs", [
    ("xdp_count", "xdp_filter", "attach_xdp", {"via": "netlink"}),
    ("tc_count", "count_ingress", "attach_tc", {"via": "netlink"})])
def test_missing_privileges_are_explained(build, obj, prog, func, kwargs):
    out = subprocess.run([sys.executable, "-c", UNPRIVILEGED, build(obj), prog, func,
                          repr(kwargs)], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert out.stdout.startswith("BPFError 1 "), out.stdout + out.stderr
    assert "needs CAP_NET_ADMIN" in out.stdout, out.stdout


def test_missing_pyroute2_names_the_extra(tc_obj, xdp_obj, netpair, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyroute2", None)  # import now fails
    with pytest.raises(ImportError, match=r"pip install pybpf\[net\]"):
        netattach.attach_tc(tc_obj.programs["count_ingress"], "lo", via="netlink")
    # XDP links need no netlink, so no pyroute2.
    with netattach.attach_xdp(xdp_obj.programs["xdp_filter"], "vb", netns=netpair[1]) as link:
        assert link.info().type == LinkType.XDP


# ---- the link command --------------------------------------------------------------

def test_cli_link_list_and_detach(netpair, xdp_obj, bpffs, capsys):
    path = os.path.join(bpffs, "l")
    prog = xdp_obj.programs["xdp_filter"]
    with netattach.attach_xdp(prog, "vb", netns=netpair[1]) as link:
        link.pin(path)
        link_id = link.id
    assert main(["link", "list", "--json"]) == 0
    listed = {entry["id"]: entry for entry in json.loads(capsys.readouterr().out)}
    assert listed[link_id]["type"] == "xdp" and listed[link_id]["prog_id"] == prog.id
    assert main(["link", "list"]) == 0
    text = capsys.readouterr().out
    assert f"{link_id}" in text and "xdp" in text
    assert main(["link", "detach", path]) == 0
    capsys.readouterr()
    assert main(["link", "list", "--json"]) == 0
    after = {e["id"]: e for e in json.loads(capsys.readouterr().out)}
    assert after[link_id]["details"]["ifindex"] == 0  # detached; the pin still holds it
    BpfLink.unpin(path)
    assert main(["link", "detach", "999999999"]) == 1
    assert "999999999" in capsys.readouterr().err


# ---- the run command on an interface -------------------------------------------------

IN_NETNS = "import sys; from pyroute2 import netns; netns.setns(sys.argv[1]); " \
           "from pybpf.cli import main; sys.exit(main(sys.argv[2:]))"
SEND_FROM = "import socket, sys, time; from pyroute2 import netns; netns.setns(sys.argv[1]); " \
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); " \
            "[s.sendto(b'x', (sys.argv[2], int(sys.argv[3]))) for _ in range(10)]; " \
            "time.sleep(0.5)"


def test_cli_run_attaches_xdp_to_iface(netpair, build):
    """`pybpf run` in namespace B, with XDP on vb, while a command sends from A."""
    a, b = netpair
    out = subprocess.run(
        [sys.executable, "-c", IN_NETNS, b, "run", build("xdp_count"), "--iface", "vb",
         "--xdp-mode", "generic", "--json", "--",
         sys.executable, "-c", SEND_FROM, a, ADDR_B, str(PASS_PORT)],
        capture_output=True, text=True, timeout=60,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["programs"][0]["attached"].startswith("xdp on vb")
    assert {e["key"]: e["value"] for e in doc["maps"]["counts"]} == {0: 10, 1: 0}
    assert doc["maps"][".rodata"] == {"drop_port": 0}
    assert _xdp_prog_ids(b, "vb") == set()  # detached when the command ended


def test_failed_tc_attach_removes_the_qdisc_it_added(netpair, build):
    b = netpair[1]
    with BpfObject.open(build("tc_count")) as obj:
        prog = obj.load().programs["count_ingress"]
        prog.close()
        with pytest.raises(ValueError, match="closed"):
            netattach.attach_tc(prog, "vb", netns=b, via="netlink")
    assert "clsact" not in _qdisc_kinds(b, "vb")


# ---- processes killed with their programs attached -----------------------------------

def _prog_ids_held_by(pid):
    """Ids of the BPF programs process pid holds fds of (fdinfo prog_id lines)."""
    ids = set()
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        with open(f"/proc/{pid}/fdinfo/{fd}") as f:
            ids |= {int(line.split()[1]) for line in f if line.startswith("prog_id:")}
    return ids


def _gone(prog_ids, within=10.0):
    """Whether every program of prog_ids is unloaded within the time (the kernel frees
    them after an RCU grace period, not at once)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        left = set()
        for prog_id in prog_ids:
            try:
                Program.from_id(prog_id).close()
                left.add(prog_id)
            except pybpf.BPFError:
                pass
        if not left:
            return True
        time.sleep(0.1)
    return False


@needs_tcx
def test_sigkill_of_run_with_tc_programs_leaves_nothing_attached(netpair, build):
    """SIGKILL leaves no chance to clean up: with tcx links the kernel detaches the
    programs when the process's fds go (netlink filters stayed, with the qdisc and the
    programs)."""
    b = netpair[1]
    run = subprocess.Popen([sys.executable, "-c", IN_NETNS, b, "run", build("tc_count"),
                            "--iface", "vb"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True,
                           env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    try:
        attached = [run.stderr.readline() for _ in range(2)]
        assert all("(tc): tc" in line for line in attached), attached
        held = _prog_ids_held_by(run.pid)
        assert len(held) == 2, held
        run.kill()
        run.wait(timeout=30)
        assert _tcx_prog_ids(b, "vb", "ingress") == []
        assert "clsact" not in _qdisc_kinds(b, "vb")
        assert _gone(held), f"programs {sorted(held)} are still loaded"
    finally:
        run.kill()
        run.wait(timeout=30)
        run.stderr.close()
        if "clsact" in _qdisc_kinds(b, "vb"):  # what the netlink way leaves behind
            with pyroute2.IPRoute(netns=b) as ipr:
                ipr.tc("del", "clsact", ipr.link_lookup(ifname="vb")[0])
