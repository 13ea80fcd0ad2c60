"""USDT probes (pybpf.attach.usdt) on the running kernel.

tests/progs/attach/usdt_target.c (gcc, <sys/sdt.h>) fires pybpf:tick at two sites and
pybpf:bytes at one; tests/progs/attach/usdt.bpf.c (clang, libbpf's <bpf/usdt.bpf.h>)
sums the arguments it reads with bpf_usdt_arg() into `sums`. The sums are exact, so
every argument kind the target's notes use (registers of 1 to 8 bytes, signed and
unsigned, constants) is checked through the specs pybpf writes.
"""
import os
import subprocess

import pytest

from pybpf.attach import AttachError, UsdtLink, attach, attach_usdt
from pybpf.attach import usdt as usdt_module
from pybpf.kernel import tracefs
from pybpf.links import BpfLink
from pybpf.loader import BpfObject
from pybpf.sections import parse

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROGS = os.path.join(ROOT, "tests", "progs", "attach")

# Slots of `sums` (usdt.bpf.c's enum).
TICK_X, TICK_Y, TICK_HITS, TICK_ARGC, TICK_COOKIE, BYTES_C, BYTES_S, BYTES_K, \
    BYTES_HITS, SLEEPABLE_HITS = range(10)


@pytest.fixture(scope="module")
def built(tmp_path_factory, clang):
    """{"target": the executable with semaphores, "plain": one without, "obj": usdt.bpf.o
    naming the target in its sections}."""
    out = tmp_path_factory.mktemp("usdt")
    paths = {"target": str(out / "usdt_target"), "plain": str(out / "usdt_plain"),
             "obj": str(out / "usdt.bpf.o")}
    source = os.path.join(PROGS, "usdt_target.c")
    for cmd in (["gcc", "-O2", "-g", "-DWITH_SEMAPHORE", "-o", paths["target"], source],
                ["gcc", "-O2", "-g", "-o", paths["plain"], source],
                [clang, "-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_x86",
                 f'-DUSDT_TARGET="{paths["target"]}"', "-c",
                 os.path.join(PROGS, "usdt.bpf.c"), "-o", paths["obj"],
                 f"-I/usr/include/{os.uname().machine}-linux-gnu"]):
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            pytest.fail(f"{' '.join(cmd)} failed (the test set-up, bash tools/run-tests, "
                        f"installs gcc, clang, libbpf-dev and systemtap-sdt-dev):\n"
                        f"{done.stderr}")
    return paths


@pytest.fixture(autouse=True)
def specs_released():
    """Every link closed, and every failed attach, gives its spec ids back."""
    yield
    assert usdt_module._spec_ids == {}


@pytest.fixture
def obj(built):
    with BpfObject.open(built["obj"]) as o:
        o.load()
        yield o


def sums(o):
    return [o.maps["sums"][i] for i in range(SLEEPABLE_HITS + 1)]


def run(path, n):
    """Run the target with n loop iterations; the semaphore it printed (None without)."""
    out = subprocess.run([path, str(n)], capture_output=True, text=True, check=True).stdout
    value = out.split()[1]
    return None if value == "none" else int(value)


def expected_tick(n, hits=1):
    """pybpf:tick's sums after one run of n iterations: (i, -3i) for each i, then (n, -7)."""
    return {TICK_X: hits * (n * (n - 1) // 2 + n), TICK_Y: hits * (-3 * n * (n - 1) // 2 - 7),
            TICK_HITS: hits * (n + 1), TICK_ARGC: hits * 2 * (n + 1)}


def expected_bytes(n):
    """pybpf:bytes: (-i as a signed char, 60000 + i as an unsigned short, 42)."""
    return {BYTES_C: -(n * (n - 1) // 2), BYTES_S: 60000 * n + n * (n - 1) // 2,
            BYTES_K: 42 * n, BYTES_HITS: n}


def check(o, want):
    got = sums(o)
    assert {k: got[k] for k in want} == want
    assert all(v == 0 for k, v in enumerate(got) if k not in want), got


def test_arguments_from_the_section_name(obj, built):
    """SEC("usdt/PATH:pybpf:tick") through attach(): each site's spec, by BPF cookie."""
    with attach(obj.programs["on_tick"], obj.spec.programs["on_tick"].section_def) as tick, \
            attach(obj.programs["on_bytes"], obj.spec.programs["on_bytes"].section_def):
        assert isinstance(tick, UsdtLink) and len(tick.links) == 2  # two sites
        assert all(isinstance(link, BpfLink) for link in tick.links)
        # the semaphore, raised by each uprobe on its sites while attached
        assert run(built["target"], 50) == 2
    check(obj, {**expected_tick(50), **expected_bytes(50)})
    assert run(built["target"], 50) == 0  # detached: no uprobe, no semaphore
    check(obj, {**expected_tick(50), **expected_bytes(50)})


def test_usdt_cookie_and_the_sleepable_form(obj, built):
    prog = obj.programs["on_tick_sleepable"]
    assert obj.spec.programs["on_tick_sleepable"].section_def.prefix == "usdt.s"
    with attach_usdt(obj.programs["on_tick"], built["target"], "pybpf", "tick",
                     cookie=1000), attach(prog, parse(f"usdt.s/{built['target']}:pybpf:tick")):
        run(built["target"], 10)
    check(obj, {**expected_tick(10), TICK_COOKIE: 1000 * 11, SLEEPABLE_HITS: 11})


def test_without_bpf_cookies_by_address(built):
    """Kernels before 5.15: the ioctl, and __bpf_usdt_ip_to_spec_id keyed by each site's
    address in the process (a PIE: pid= needed), emptied again on close."""
    with BpfObject.open(built["obj"]) as o:
        o.load(kconfig={"LINUX_HAS_BPF_COOKIE": 0})
        prog = o.programs["on_tick"]
        with pytest.raises(AttachError, match="needs pid="):
            attach_usdt(prog, built["target"], "pybpf", "tick", use_link=False)
        proc = subprocess.Popen([built["target"], "20", "wait"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline() == "ready\n"
            with attach_usdt(prog, built["target"], "pybpf", "tick", pid=proc.pid,
                             use_link=False), \
                    attach_usdt(o.programs["on_bytes"], built["target"], "pybpf", "bytes",
                                pid=proc.pid, use_link=False):
                assert len(o.maps["__bpf_usdt_ip_to_spec_id"].keys()) == 3
                out = proc.communicate("go\n", timeout=30)[0]
        finally:
            proc.kill()
            proc.wait()
        assert out.split() == ["semaphore", "2"]  # one count per uprobe: two sites
        check(o, {**expected_tick(20), **expected_bytes(20)})
        assert o.maps["__bpf_usdt_ip_to_spec_id"].keys() == []


def test_pid_filter(obj, built):
    """Only the process named counts; the other's semaphore stays 0."""
    procs = [subprocess.Popen([built["target"], "30", "wait"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for p in procs:
            assert p.stdout.readline() == "ready\n"
        with attach_usdt(obj.programs["on_tick"], built["target"], "pybpf", "tick",
                         pid=procs[0].pid):
            outs = [p.communicate("go\n", timeout=30)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert [o.split() for o in outs] == [["semaphore", "2"], ["semaphore", "0"]]
    check(obj, expected_tick(30))


def test_legacy_uprobes_go_with_the_link(obj, built):
    """tracefs uprobe_events entries, with the semaphore as (REF_CTR_OFFSET)."""
    link = attach_usdt(obj.programs["on_tick"], built["target"], "pybpf", "tick", legacy=True)
    with link:
        lines = [line for line in tracefs.probe_events("uprobe") if "pybpf" in " ".join(
            map(str, line))]
        assert len(lines) >= 2
        assert run(built["target"], 5) == 2
    link.close()  # a second close does nothing
    assert tracefs.pybpf_probe_events() == []
    check(obj, expected_tick(5))


def test_a_binary_without_semaphores(obj, built):
    with attach_usdt(obj.programs["on_any"], built["plain"], "pybpf", "tick"):
        assert run(built["plain"], 7) is None
    check(obj, {TICK_X: 7 * 6 // 2 + 7, TICK_HITS: 8})


def test_mistakes(obj, built):
    prog = obj.programs["on_tick"]
    with pytest.raises(AttachError, match="no USDT probe pybpf:nope; it has pybpf:bytes, "
                                          "pybpf:tick"):
        attach_usdt(prog, built["target"], "pybpf", "nope")
    with pytest.raises(AttachError, match="has no USDT probes"):
        attach_usdt(prog, "/bin/true", "pybpf", "tick")
    with pytest.raises(AttachError, match="not PATH:PROVIDER:NAME"):
        attach(prog, parse(f"usdt/{built['target']}:tick"))
    with pytest.raises(AttachError, match="does not say where"):
        attach(obj.programs["on_any"], obj.spec.programs["on_any"].section_def)
    with pytest.raises(AttachError, match="provider must be"):
        attach_usdt(prog, built["target"], "", "tick")
    with pytest.raises(AttachError, match="cookie must be"):
        attach_usdt(prog, built["target"], "pybpf", "tick", cookie=-1)
    check(obj, {})
