"""The API's answer to arguments of the wrong kind: a pybpf.Error naming the argument.

Each case used to escape as something else (a TypeError from a comparison deep inside,
an AttributeError, a ValueError from int(), a UnicodeEncodeError) or, worse, to be
accepted: a float variable stored truncated, ``Map.from_fd`` of a program's fd read as
a map with gigabyte keys, a kconfig= of the wrong kind ignored.
"""
import os

import pytest

import pybpf
from pybpf import Map, Program, asm, events, netattach
from pybpf import attach as A
from pybpf.loader import BpfObject

from test_loader import build  # noqa: F401 (the fixture)

OK = [asm.mov64(asm.R0, 0), asm.exit()]


@pytest.fixture
def things(build):  # noqa: F811
    """A hash map, a ring buffer, a socket filter, an XDP program, an opened object."""
    with Map.create("hash", key="I", value="I", max_entries=4) as m, \
            Map.create("ringbuf", max_entries=4096) as rb, \
            Program.load("socket_filter", OK) as prog, \
            Program.load("xdp", [asm.mov64(asm.R0, 2), asm.exit()]) as xdp, \
            BpfObject.open(build("globals")) as obj:
        yield {"m": m, "rb": rb, "prog": prog, "xdp": xdp, "obj": obj,
               "globals": build("globals")}


CASES = {
    "max_entries str": lambda t: Map.create("hash", key="I", value="I", max_entries="10"),
    "max_entries float": lambda t: Map.create("hash", key="I", value="I", max_entries=1.5),
    "flags str": lambda t: Map.create("hash", key="I", value="I", max_entries=1, flags="x"),
    "key_size str": lambda t: Map.create("hash", key_size="4", value="I", max_entries=1),
    "inner_map int": lambda t: Map.create("array_of_maps", key="I", max_entries=1,
                                          inner_map=5),
    "btf int": lambda t: Map.create("hash", key="I", value="I", max_entries=1, btf=5),
    "name int": lambda t: Map.create("hash", key="I", value="I", max_entries=1, name=5),
    "update_batch int": lambda t: t["m"].update_batch(5),
    "update_batch lone key": lambda t: t["m"].update_batch([(1,)]),
    "update_batch flags str": lambda t: t["m"].update_batch({1: 2}, flags="x"),
    "delete_batch int": lambda t: t["m"].delete_batch(5),
    "update flags str": lambda t: t["m"].update(1, 2, flags="x"),
    "from_fd str": lambda t: Map.from_fd("x"),
    "from_fd closed": lambda t: Map.from_fd(1 << 20),
    "from_pin int": lambda t: Map.from_pin(5),
    "unpin None": lambda t: pybpf.unpin(None),
    "pin int": lambda t: t["m"].pin(5),
    "insns int": lambda t: Program.load("xdp", 5),
    "insns of ints": lambda t: Program.load("xdp", [5]),
    "license int": lambda t: Program.load("xdp", OK, license=5),
    "license surrogate": lambda t: Program.load("socket_filter", OK, license="G\udcffPL"),
    "log_level str": lambda t: Program.load("xdp", OK, log_level="x"),
    "program btf int": lambda t: Program.load("xdp", OK, btf=5, func_info=(b"", 8)),
    "func_info int": lambda t: Program.load("xdp", OK, func_info=5),
    "fd_array str": lambda t: Program.load("xdp", OK, fd_array=["x"]),
    "test_run ctx str": lambda t: t["prog"].test_run(bytes(64), ctx="x"),
    "test_run data int": lambda t: t["prog"].test_run(5),
    "load programs int": lambda t: BpfObject.open(t["globals"]).load(programs=5),
    "load programs str": lambda t: BpfObject.open(t["globals"]).load(programs="measure"),
    "load kconfig int": lambda t: BpfObject.open(t["globals"]).load(kconfig=5),
    "load kernel_btf int": lambda t: BpfObject.open(t["globals"]).load(kernel_btf=5),
    "load pin_maps int": lambda t: BpfObject.open(t["globals"]).load(pin_maps=5),
    "load log_level str": lambda t: BpfObject.open(t["globals"]).load(log_level="x"),
    "variable str": lambda t: t["obj"].variables.__setitem__("counter", "5"),
    "variable float": lambda t: t["obj"].variables.__setitem__("counter", 1.5),
    "tracepoint int": lambda t: A.attach_tracepoint(t["prog"], 5),
    "iface None": lambda t: netattach.attach_xdp(t["xdp"], None),
    "iface float": lambda t: netattach.attach_xdp(t["xdp"], 5.5),
    "xdp flags str": lambda t: netattach.attach_xdp(t["xdp"], "lo", "x"),
    "tc priority str": lambda t: netattach.attach_tc(t["xdp"], "lo", priority="x"),
    "ringbuf callback int": lambda t: events.RingBuffer(t["rb"], callback=5),
    "ringbuf of int": lambda t: events.RingBuffer(5),
    "call str": lambda t: asm.call("x"),
    "decode str": lambda t: asm.decode("xx"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_arguments_raise_pybpf_errors(things, case):
    with pytest.raises(pybpf.Error) as exc:
        made = CASES[case](things)
        if hasattr(made, "close"):
            made.close()
    assert str(exc.value)


@pytest.mark.parametrize("owner, other", [(Map, "prog"), (Program, "m")])
def test_from_fd_of_another_kind_is_refused_and_the_fd_left_alone(things, owner, other):
    """A program's info read as a map's had 833221721-byte keys."""
    fd = os.dup(things[other].fd)
    try:
        with pytest.raises(pybpf.InputError, match=f"fd {fd} is a BPF"):
            owner.from_fd(fd)
        os.fstat(fd)  # still open
    finally:
        os.close(fd)


def test_a_root_without_bpffs_is_told_how_to_mount_it():
    """In a mount namespace without /sys/fs/bpf mounted (a minimal root, a container),
    every way of pinning names bpffs and the mount command; the rest still works."""
    import subprocess
    import sys
    from pybpf import shipped
    obj = shipped.path("readcount")
    py = f"{sys.executable} -m pybpf"
    script = (f"umount /sys/fs/bpf 2>/dev/null; ! grep -q ' /sys/fs/bpf ' /proc/mounts || "
              f"exit 3; {py} load {obj} --pin /sys/fs/bpf/x; echo rc=$?; "
              f"{py} run {obj} --pin /sys/fs/bpf/y --duration 0; echo rc=$?; "
              f"{py} attach copyout --pin /sys/fs/bpf/fr --quiet; echo rc=$?; "
              f"{py} load {obj} >/dev/null; echo rc=$?")
    r = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True,
                       text=True, timeout=120, cwd="/")
    assert r.stdout.split() == ["rc=1", "rc=1", "rc=1", "rc=0"], (r.stdout, r.stderr)
    lines = [line for line in r.stderr.splitlines() if "error" in line or "pin" in line]
    assert len(lines) == 3, r.stderr
    for line in lines:
        assert "not on a bpf filesystem" in line and "mount -t bpf bpf /sys/fs/bpf" in line
