"""Attaching programs to hooks (pybpf.attach) on the running kernel.

Programs come from tests/progs/attach/attach.bpf.c (clang), each counting its runs
in a slot of the ``counts`` array; uprobes fire in tests/progs/attach/target.c (gcc).
Tests needing kprobes are marked ``vm``: this host's kernel has none, so they run in
the VM tier (tools/vm-run, Debian's 6.1 kernel) and use hand-assembled programs, so
that tier needs neither clang nor gcc.

A module fixture checks that no pybpf kprobe_events/uprobe_events entry is left
behind by anything here.
"""
import errno
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from pybpf import asm
from pybpf.attach import (AttachError, CgroupAttachment, LinkSet, PerfEventLink,
                          ProbeBpfLink, attach, attach_cgroup, attach_kprobe,
                          attach_kretprobe, attach_perf_event, attach_tracepoint,
                          attach_tracing, attach_uprobe, attach_uretprobe,
                          cleanup_stale_probes, function_offset)
from pybpf.errors import BPFError
from pybpf.kernel import bpf as kbpf
from pybpf.kernel import kallsyms, system, tracefs
from pybpf.kernel.constants import AttachType, HelperId, LinkType, ProgType
from pybpf.links import BpfLink
from pybpf.loader import BpfObject
from pybpf.maps import Map
from pybpf.programs import Program
from pybpf.sections import parse
from toolbox import tool_path

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROGS = os.path.join(ROOT, "tests", "progs", "attach")

# Slots of `counts` (the SLOT_* defines of attach.bpf.c).
TRACEPOINT, RAW_TP, UPROBE, URETPROBE, KPROBE, KRETPROBE, PERF, SOCK_CREATE, COOKIE, \
    RETVAL, CGROUP_SKB = range(11)

HAS_KPROBES = system.pmu_type("kprobe") is not None or \
    system.config_enabled("CONFIG_KPROBE_EVENTS") is True
vm = pytest.mark.vm
needs_kprobes = pytest.mark.skipif(
    not HAS_KPROBES,
    reason="needs a kernel with kprobes (CONFIG_KPROBES); runs in the VM tier: tools/vm-run")
KPROBE_FUNC = "__x64_sys_getpid"  # what os.getpid() enters on x86_64


@pytest.fixture(scope="module", autouse=True)
def no_probe_entries_left():
    """No test here may leave a pybpf kprobe_events/uprobe_events entry behind."""
    cleanup_stale_probes()
    assert tracefs.pybpf_probe_events() == [], "pybpf probe entries existed before the tests"
    yield
    left = tracefs.pybpf_probe_events()
    for name in left:  # do not poison later runs, but fail this one
        kind = "kprobe" if any(n == name for *_, n, _ in tracefs.probe_events("kprobe")) \
            else "uprobe"
        tracefs.remove_probe_event(kind, name)
    assert left == [], f"tests left pybpf probe entries: {left}"


@pytest.fixture(scope="module")
def objects(tmp_path_factory, request):
    """objects(name) -> path: "attach"/"tracing" (.bpf.o from clang) or "target" (an
    executable from gcc), each built on first use, so tests needing neither (the VM
    tier) need no compiler."""
    out = tmp_path_factory.mktemp("attach")
    built = {}

    def build(name):
        if name not in built:
            if name == "target":
                cmd = [tool_path("gcc"), "-O2", "-g", "-o", str(out / "target"),
                       os.path.join(PROGS, "target.c")]
                path = out / "target"
            else:
                path = out / f"{name}.bpf.o"
                cmd = [request.getfixturevalue("clang"), "-O2", "-g", "-target", "bpf", "-c",
                       os.path.join(PROGS, f"{name}.bpf.c"), "-o", str(path),
                       "-I/usr/include/x86_64-linux-gnu"]
            subprocess.run(cmd, check=True)
            built[name] = str(path)
        return built[name]
    return build


@pytest.fixture
def obj(objects):
    """attach.bpf.o loaded, counting events of this process where programs filter."""
    with BpfObject.open(objects("attach")) as o:
        o.variables["target_tgid"] = os.getpid()
        o.load()
        yield o


@pytest.fixture
def target(objects):
    return objects("target")


def section(o, name):
    return o.spec.programs[name].section_def


def count(o, slot):
    return o.maps["counts"][slot]


def getpids(n):
    for _ in range(n):
        os.getpid()


def run_target(path, calls):
    out = subprocess.run([path, str(calls)], capture_output=True, text=True, check=True)
    return int(out.stdout)


# ---- tracepoints and raw tracepoints ------------------------------------------------------

def test_tracepoint_counts_getpid_through_a_perf_link(obj):
    with attach(obj.programs["tp_getpid"], section(obj, "tp_getpid")) as link:
        assert isinstance(link, BpfLink) and link.info().type == LinkType.PERF_EVENT
        getpids(50)
        assert count(obj, TRACEPOINT) == 50
    getpids(10)
    assert count(obj, TRACEPOINT) == 50  # closed: detached


def test_tracepoint_through_the_ioctl_fallback(obj):
    """PERF_EVENT_IOC_SET_BPF, what kernels before 5.15 get: the link owns the perf fd."""
    link = attach_tracepoint(obj.programs["tp_getpid"], "syscalls:sys_enter_getpid",
                             use_link=False)
    with link:
        assert isinstance(link, PerfEventLink)
        getpids(30)
        assert count(obj, TRACEPOINT) == 30
    getpids(10)
    assert count(obj, TRACEPOINT) == 30


def test_tracepoint_mounts_tracefs_when_needed(obj):
    """Nothing mounts tracefs at boot here; attaching must not depend on it."""
    with attach_tracepoint(obj.programs["tp_getpid"], "syscalls", "sys_enter_getpid"):
        getpids(5)
    assert system.find_tracefs() is not None
    assert count(obj, TRACEPOINT) == 5


def test_raw_tracepoint(obj):
    with attach(obj.programs["raw_sys_enter"], section(obj, "raw_sys_enter")) as link:
        assert link.info().type == LinkType.RAW_TRACEPOINT
        getpids(40)
        assert count(obj, RAW_TP) == 40


def test_pinned_link_outlives_its_python_object(obj, bpffs):
    """A pinned perf link keeps counting after close(); from_pin reopens it, and the
    program stays attached until the pin and the last fd are gone."""
    pin = os.path.join(bpffs, "tp_link")
    link = attach_tracepoint(obj.programs["tp_getpid"], "syscalls/sys_enter_getpid")
    link.pin(pin)
    link.close()
    getpids(20)
    assert count(obj, TRACEPOINT) == 20
    with BpfLink.from_pin(pin) as again:
        info = again.info()
        assert info.type == LinkType.PERF_EVENT
        assert info.prog_id == obj.programs["tp_getpid"].id
        # Perf links have no BPF_LINK_DETACH (EOPNOTSUPP through 6.18): they detach
        # when the pin and every fd are gone.
        BpfLink.unpin(pin)
        getpids(5)
        assert count(obj, TRACEPOINT) == 25  # our fd still holds it
    getpids(5)
    assert count(obj, TRACEPOINT) == 25


# ---- uprobes -----------------------------------------------------------------------------

def test_uprobe_and_uretprobe_on_a_function_of_a_binary(obj, target):
    calls = 12
    with attach_uprobe(obj.programs["on_uprobe"], target, "probed") as up, \
            attach_uretprobe(obj.programs["on_uretprobe"], target, "probed") as ret:
        assert up.info().type == ret.info().type == LinkType.PERF_EVENT
        total = run_target(target, calls)
    assert count(obj, UPROBE) == calls
    assert count(obj, URETPROBE) == calls
    assert count(obj, RETVAL) == total == calls * (calls + 1) // 2  # probed(i) = i + 1


def test_uprobe_from_its_section_name(obj, target):
    """libbpf's form, uprobe/PATH:FUNCTION[+OFFSET], as a SectionDef or a string."""
    with attach(obj.programs["on_uprobe"], parse(f"uprobe/{target}:probed+0")):
        run_target(target, 3)
    with attach(obj.programs["on_uretprobe"], f"uretprobe/{target}:probed"):
        run_target(target, 4)
    assert (count(obj, UPROBE), count(obj, URETPROBE)) == (3, 4)


def test_uprobe_pid_filter(obj, target):
    """With pid=, only that process's calls count; another running the same binary
    does not."""
    waiting = subprocess.Popen([target, "7", "wait"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert waiting.stdout.readline().strip() == "ready"
        with attach_uprobe(obj.programs["on_uprobe"], target, "probed", pid=waiting.pid):
            run_target(target, 5)  # another process
            assert count(obj, UPROBE) == 0
            waiting.communicate("go\n", timeout=30)
            assert waiting.returncode == 0
            assert count(obj, UPROBE) == 7
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()


def test_uprobe_by_file_offset_and_cookie(obj, target):
    offset = function_offset(target, "probed")
    with attach_uprobe(obj.programs["on_uprobe"], target, offset=offset, cookie=1000):
        run_target(target, 6)
    assert count(obj, UPROBE) == 6
    assert count(obj, COOKIE) == 6000  # bpf_get_attach_cookie() per hit


def test_uprobe_on_libc_by_library_name(obj):
    """"libc" is found among this process's mappings; os.getpid() calls its getpid."""
    with attach_uprobe(obj.programs["on_uprobe"], "libc", "getpid", pid=os.getpid()):
        getpids(50)
    assert 50 <= count(obj, UPROBE) <= 60  # the interpreter may call getpid itself


def test_legacy_uprobe_entry_lives_as_long_as_the_link(obj, target):
    for use_link, kind in ((None, ProbeBpfLink), (False, PerfEventLink)):
        link = attach_uprobe(obj.programs["on_uprobe"], target, "probed", legacy=True,
                             use_link=use_link)
        with link:
            assert isinstance(link, kind)
            name = link.probe.name
            assert name.startswith(f"pybpf_{os.getpid()}_")
            assert name in tracefs.pybpf_probe_events()
            run_target(target, 4)
        assert name not in tracefs.pybpf_probe_events()
    assert count(obj, UPROBE) == 8


def test_legacy_uretprobe(obj, target):
    with attach_uretprobe(obj.programs["on_uretprobe"], target, "probed", legacy=True):
        total = run_target(target, 5)
    assert count(obj, URETPROBE) == 5 and count(obj, RETVAL) == total


def test_failed_legacy_attach_removes_its_entry(obj, target):
    """The entry is made before the program is attached; an error then (here: the
    program was closed) must not leave it behind."""
    prog = obj.programs["on_uprobe"]
    prog.close()
    before = tracefs.pybpf_probe_events()
    with pytest.raises(ValueError, match="closed"):
        attach_uprobe(prog, target, "probed", legacy=True)
    assert tracefs.pybpf_probe_events() == before


CHILD = r"""
import sys, time
from pybpf.programs import Program
from pybpf import attach
prog = Program.load("kprobe", bytes.fromhex("b700000000000000" "9500000000000000"))
kind, how = sys.argv[1], sys.argv[2]
if kind == "kprobe":
    link = attach.attach_kprobe(prog, sys.argv[3], legacy=True)
else:
    link = attach.attach_uprobe(prog, sys.argv[3], "probed", legacy=True)
print(link.probe.name, flush=True)
if how == "wait":
    time.sleep(600)
# how == "exit": leave without closing anything
"""


def child(kind, how, target):
    return subprocess.Popen([sys.executable, "-c", CHILD, kind, how, target], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)


def probe_names(kind):
    return [name for *_, name, _ in tracefs.probe_events(kind)]


@pytest.mark.parametrize("kind", ["uprobe", pytest.param("kprobe", marks=[vm, needs_kprobes])])
def test_entries_of_a_killed_process_are_cleaned_up(kind, target_for):
    """SIGKILL leaves the entry behind; the next cleanup_stale_probes() removes it, and
    a process's first legacy attach runs that cleanup."""
    proc = child(kind, "wait", target_for(kind))
    name = proc.stdout.readline().strip()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert name.startswith(f"pybpf_{proc.pid}_") and name in probe_names(kind)
    assert name in cleanup_stale_probes()
    assert name not in probe_names(kind)


@pytest.mark.parametrize("kind", ["uprobe", pytest.param("kprobe", marks=[vm, needs_kprobes])])
def test_entries_are_removed_at_interpreter_exit(kind, target_for):
    proc = child(kind, "exit", target_for(kind))
    name = proc.stdout.readline().strip()
    proc.stdout.close()
    assert proc.wait() == 0
    assert name.startswith("pybpf_") and name not in probe_names(kind)


def test_forked_child_exit_leaves_the_parents_attachments(obj, target, cgroup):
    """A child forked while the parent holds attachments that outlive fds (a
    BPF_PROG_ATTACH cgroup attachment, a legacy probe) runs the exit clean-up, as
    sys.exit would, without detaching the parent's programs or removing its entry."""
    from pybpf.attach import common
    prog = obj.programs["on_sock_create"]
    with attach_cgroup(prog, cgroup, use_link=False), \
            attach_uprobe(obj.programs["on_uprobe"], target, "probed", legacy=True) as up:
        pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            try:
                common._at_exit()
            finally:
                os._exit(0)
        assert os.waitpid(pid, 0)[1] == 0
        assert attached_ids(cgroup, AttachType.CGROUP_INET_SOCK_CREATE) == [prog.id]
        assert up.probe.name in probe_names("uprobe")


def test_first_legacy_attach_cleans_up_stale_entries(obj, target):
    from pybpf.attach import perflink
    proc = child("uprobe", "wait", target)
    name = proc.stdout.readline().strip()
    proc.kill()
    proc.wait()
    proc.stdout.close()
    perflink._legacy_started.clear()  # as in a fresh process
    with attach_uprobe(obj.programs["on_uprobe"], target, "probed", legacy=True):
        assert name not in probe_names("uprobe")


@pytest.fixture
def target_for(objects):
    """The probe target a child process attaches to, per kind."""
    return lambda kind: objects("target") if kind == "uprobe" else KPROBE_FUNC


# ---- sampling events -------------------------------------------------------------------

def spin(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_perf_event_sampling_on_every_cpu(obj):
    with attach_perf_event(obj.programs["on_sample"], sample_period=1_000_000) as links:
        assert isinstance(links, LinkSet) or len(system.online_cpus()) == 1
        if isinstance(links, LinkSet):
            assert len(links.links) == len(system.online_cpus())
        spin(0.2)
    samples = count(obj, PERF)
    assert samples > 0
    spin(0.05)
    assert count(obj, PERF) == samples  # closed: every CPU's event detached


def test_perf_event_sampling_one_process_by_frequency(obj):
    with attach_perf_event(obj.programs["on_sample"], sample_freq=1000,
                           pid=os.getpid()) as link:
        assert isinstance(link, BpfLink)
        spin(0.2)
    assert count(obj, PERF) > 0


def test_perf_event_sampling_one_cpu_with_the_ioctl(obj):
    cpu = system.online_cpus()[0]
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})  # spin where the event samples
    try:
        with attach_perf_event(obj.programs["on_sample"], sample_period=1_000_000, cpu=cpu,
                               use_link=False) as link:
            assert isinstance(link, PerfEventLink)
            spin(0.2)
    finally:
        os.sched_setaffinity(0, allowed)
    assert count(obj, PERF) > 0


# ---- cgroups -------------------------------------------------------------------------

def run_in_cgroup(cgroup_path, code):
    """Run python code in a child process moved into the cgroup before it starts."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.readline()\n" + code],
                            stdin=subprocess.PIPE, text=True)
    try:
        with open(os.path.join(cgroup_path, "cgroup.procs"), "w") as f:
            f.write(str(proc.pid))
        proc.communicate("go\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0


SOCKETS = "import socket\nfor _ in range(5): socket.socket().close()"
UDP_SENDS = ("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
             "for _ in range(6): s.sendto(b'x', ('127.0.0.1', 9))\ns.close()")


def attached_ids(cgroup_path, attach_type):
    fd = os.open(cgroup_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return kbpf.prog_query(fd, attach_type)[1]
    finally:
        os.close(fd)


@pytest.mark.parametrize("use_link, kind", [(None, BpfLink), (False, CgroupAttachment)])
def test_cgroup_sock_create_counts_sockets_in_the_cgroup(obj, cgroup, use_link, kind):
    prog = obj.programs["on_sock_create"]
    with attach_cgroup(prog, cgroup, use_link=use_link) as link:
        assert isinstance(link, kind)
        assert attached_ids(cgroup, AttachType.CGROUP_INET_SOCK_CREATE) == [prog.id]
        socket.socket().close()  # this process is not in the cgroup
        run_in_cgroup(cgroup, SOCKETS)
        assert count(obj, SOCK_CREATE) == 5
    assert attached_ids(cgroup, AttachType.CGROUP_INET_SOCK_CREATE) == []


def test_cgroup_skb_egress_from_its_section(obj, cgroup):
    with attach(obj.programs["on_egress"], section(obj, "on_egress"), cgroup=cgroup) as link:
        assert link.info().type == LinkType.CGROUP
        run_in_cgroup(cgroup, UDP_SENDS)
    assert count(obj, CGROUP_SKB) == 6


def test_cgroup_attachment_detaches_even_if_the_program_was_closed_first(obj, cgroup):
    prog = obj.programs["on_sock_create"]
    prog_id = prog.id
    link = attach_cgroup(prog, cgroup, use_link=False)
    prog.close()
    assert attached_ids(cgroup, AttachType.CGROUP_INET_SOCK_CREATE) == [prog_id]
    link.close()
    assert attached_ids(cgroup, AttachType.CGROUP_INET_SOCK_CREATE) == []


# ---- tracing (fentry/fexit) -------------------------------------------------------------

def test_tracing_refusal_hint_names_the_causes():
    hint = system.tracing_refusal_hint()
    assert "refuses tracing (fentry/fexit" in hint
    for cause in ("lockdown", "CONFIG_DEBUG_INFO_BTF", "CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS"):
        assert cause in hint
    mode, _ = system.lockdown_status()
    if mode not in (None, "none"):
        assert f"kernel lockdown is {mode!r}" in hint  # what is true here is said


def test_tracing_program_attaches_or_the_refusal_is_explained(objects):
    """fentry: attach and count where the kernel allows tracing programs; where it
    refuses them (EPERM at load, as on the 6.18 development host), the error says so."""
    with BpfObject.open(objects("tracing")) as o:
        try:
            o.load()
        except BPFError as e:
            if e.errno != errno.EPERM:
                raise
            if "refuses tracing" not in str(e):
                pytest.xfail("the kernel refused tracing programs at load, and "
                             "Program.load does not yet attach system.tracing_refusal_hint()"
                             " to that EPERM (lead: pass it as the EPERM hint of "
                             "kernel/bpf.py prog_load for TRACING/LSM/EXT programs)")
            assert "CONFIG_DEBUG_INFO_BTF" in str(e)
            return
        with attach(o.programs["on_fentry"], section(o, "on_fentry")) as link:
            assert link.info().type == LinkType.TRACING
            open(os.devnull).close()
        assert o.variables["hits"] >= 1


def test_attach_tracing_refuses_other_program_types(obj):
    with pytest.raises(AttachError, match="has type tracepoint, but fentry"):
        attach_tracing(obj.programs["tp_getpid"])


# ---- mistakes get errors that name the fix ----------------------------------------------

def test_wrong_program_type_for_the_hook(obj, target):
    with pytest.raises(AttachError, match=r"'pass' has type xdp, but kprobes run kprobe "
                                          r"programs: load it from a SEC\(\"kprobe/FUNCTION"):
        attach_kprobe(obj.programs["pass"], KPROBE_FUNC)
    with pytest.raises(AttachError, match="has type kprobe, but tracepoints run"):
        attach_tracepoint(obj.programs["on_uprobe"], "syscalls/sys_enter_getpid")
    with pytest.raises(AttachError, match="has type tracepoint, but uprobes run kprobe"):
        attach_uprobe(obj.programs["tp_getpid"], target, "probed")
    with pytest.raises(AttachError, match="but sampling events run perf_event"):
        attach_perf_event(obj.programs["tp_getpid"], sample_freq=10)
    with pytest.raises(AttachError, match="but raw tracepoints run raw_tracepoint"):
        attach(obj.programs["tp_getpid"], "raw_tp/sys_enter")
    with pytest.raises(AttachError, match="but cgroup hooks run"):
        attach_cgroup(obj.programs["pass"], "/sys/fs/cgroup")


def test_missing_kernel_function(obj):
    with pytest.raises(AttachError, match=r"no kernel function 'pybpf_no_such_function' "
                                          r"in /proc/kallsyms"):
        attach_kprobe(obj.programs["on_kprobe"], "pybpf_no_such_function")
    with pytest.raises(AttachError, match=r"similar: .*__x64_sys_getpid"):
        attach_kprobe(obj.programs["on_kprobe"], "sys_getpid")


def test_kernel_data_symbol_is_not_a_function(obj):
    with open("/proc/kallsyms") as f:  # which data symbols show depends on the config
        name = next(line.split()[2] for line in f if line.split()[1] in "dDbBrR")
    with pytest.raises(AttachError, match=f"'{name}' is a kernel data symbol"):
        attach_kprobe(obj.programs["on_kprobe"], name)


@pytest.mark.skipif(HAS_KPROBES, reason="this kernel has kprobes: the message for kernels "
                                        "without them cannot show here")
def test_kernel_without_kprobes_says_so(obj):
    with pytest.raises(AttachError, match=r"this kernel has no kprobes \(built without "
                                          r"CONFIG_KPROBES"):
        attach(obj.programs["on_kprobe"], section(obj, "on_kprobe"))


def test_kprobe_argument_mistakes(obj):
    prog = obj.programs["on_kprobe"]
    with pytest.raises(AttachError, match="a kretprobe fires when .* returns: it takes no offset"):
        attach_kprobe(prog, KPROBE_FUNC, 4, retprobe=True)
    with pytest.raises(AttachError, match="give a kernel function name or address=, not both"):
        attach_kprobe(prog, KPROBE_FUNC, address=0xffffffff81000000)
    with pytest.raises(AttachError, match="maxactive applies to kretprobes only"):
        attach_kprobe(prog, KPROBE_FUNC, maxactive=8)
    with pytest.raises(AttachError, match="maxactive must be 1..4096"):
        attach_kretprobe(prog, KPROBE_FUNC, maxactive=0)


def test_missing_tracepoint(obj):
    prog = obj.programs["tp_getpid"]
    with pytest.raises(AttachError, match=r"no tracepoint syscalls/sys_enter_pybpf_nope in "
                                          r"this kernel .*similar: sys_enter_"):
        attach_tracepoint(prog, "syscalls/sys_enter_pybpf_nope")
    with pytest.raises(AttachError, match="no tracepoint category 'pybpf_nope'"):
        attach_tracepoint(prog, "pybpf_nope/thing")
    with pytest.raises(AttachError, match="a tracepoint is named CATEGORY/NAME"):
        attach_tracepoint(prog, "sys_enter_getpid")


def test_uprobe_mistakes(obj, target):
    prog = obj.programs["on_uprobe"]
    with pytest.raises(AttachError, match=r"has no function 'pybpf_nope' in .symtab or "
                                          r".dynsym"):
        attach_uprobe(prog, target, "pybpf_nope")
    with pytest.raises(AttachError, match=r"similar: probed"):
        attach_uprobe(prog, target, "probe")
    with pytest.raises(AttachError, match="does not exist"):
        attach_uprobe(prog, "/nonexistent/pybpf-binary", "main")
    with pytest.raises(AttachError, match="cannot find 'pybpf_nolib'"):
        attach_uprobe(prog, "pybpf_nolib", "f")
    with pytest.raises(AttachError, match="'environ' in .*libc.* is not a function"):
        attach_uprobe(prog, "libc", "environ")
    with pytest.raises(AttachError, match="indirect function \\(IFUNC\\)"):
        attach_uprobe(prog, "c", "strlen")
    with pytest.raises(AttachError, match="there is no process"):
        attach_uprobe(prog, target, "probed", pid=2 ** 22 + 1)
    with pytest.raises(AttachError, match="give a function name or a file offset"):
        attach_uprobe(prog, target)
    with pytest.raises(AttachError, match="is not an ELF file"):
        attach_uprobe(prog, os.path.join(PROGS, "target.c"), "main")
    with pytest.raises(AttachError, match="use_link=False cannot carry one"):
        attach_uprobe(prog, target, "probed", cookie=1, use_link=False)


def test_perf_event_mistakes(obj):
    prog = obj.programs["on_sample"]
    with pytest.raises(AttachError, match="exactly one of sample_period="):
        attach_perf_event(prog)
    with pytest.raises(AttachError, match="exactly one of sample_period="):
        attach_perf_event(prog, sample_period=1, sample_freq=1)
    with pytest.raises(AttachError, match="above kernel.perf_event_max_sample_rate"):
        attach_perf_event(prog, sample_freq=10 ** 9)
    with pytest.raises(BPFError, match="no perf event type=1 config=999"):
        attach_perf_event(prog, sample_period=1000, config=999, cpu=0)


def test_attach_refuses_what_it_cannot_attach(obj):
    with pytest.raises(AttachError, match=r"sock.setsockopt\(socket.SOL_SOCKET, SO_ATTACH_BPF"):
        attach(obj.programs["sock_filter"], section(obj, "sock_filter"))
    with pytest.raises(AttachError, match="call pybpf.attach.attach_perf_event"):
        attach(obj.programs["on_sample"], section(obj, "on_sample"))
    with pytest.raises(AttachError, match="does not say where to attach .*kprobe/FUNCTION"):
        attach(obj.programs["on_kprobe"], "kprobe")
    with pytest.raises(AttachError, match="does not say where to attach .*uprobe/PATH:FUNC"):
        attach(obj.programs["on_uprobe"], "uprobe")
    with pytest.raises(AttachError, match="is not PATH:FUNCTION"):
        attach(obj.programs["on_uprobe"], "uprobe/probed")
    with pytest.raises(AttachError, match="pid= does not apply to 'tracepoint/"):
        attach(obj.programs["tp_getpid"], section(obj, "tp_getpid"), pid=1)
    with pytest.raises(TypeError, match="SectionDef or a section name"):
        attach(obj.programs["tp_getpid"], 42)


def test_cgroup_mistakes(obj, cgroup):
    egress = obj.programs["on_egress"]
    with pytest.raises(AttachError, match="programs attach to a cgroup: pass cgroup="):
        attach(egress, section(obj, "on_egress"))
    with pytest.raises(AttachError, match="does not exist; create it with mkdir"):
        attach(egress, section(obj, "on_egress"), cgroup=cgroup + "-missing")
    with pytest.raises(AttachError, match="is not on a cgroup filesystem"):
        attach_cgroup(egress, "/tmp", AttachType.CGROUP_INET_EGRESS)
    v1 = system.mount_point("cgroup")
    if v1:
        with pytest.raises(AttachError, match="is a cgroup v1 hierarchy: BPF programs attach "
                                              "to cgroup v2"):
            attach_cgroup(egress, v1, AttachType.CGROUP_INET_EGRESS)
    with pytest.raises(AttachError, match="say which with attach_type="):
        attach_cgroup(egress, cgroup)
    with pytest.raises(AttachError, match="does not say ingress or egress"):
        attach(egress, "cgroup/skb", cgroup=cgroup)
    with pytest.raises(AttachError, match="cannot attach at cgroup_inet_egress; it attaches "
                                          "at cgroup_inet_sock_create"):
        attach_cgroup(obj.programs["on_sock_create"], cgroup, AttachType.CGROUP_INET_EGRESS)


def test_xdp_section_attaches_through_netattach(obj):
    """attach() hands xdp sections to pybpf.netattach (its own tests cover the rest)."""
    with attach(obj.programs["pass"], section(obj, "pass"), iface="lo") as link:
        assert link.program is obj.programs["pass"]
        if isinstance(link, BpfLink):  # a BPF link on 5.9+; netlink before
            info = link.info()
            assert info.type == LinkType.XDP
            assert info.details["ifindex"] == socket.if_nametoindex("lo")


def test_network_attach_mistakes(obj):
    with pytest.raises(AttachError, match=r"attach to a network interface: pass iface="):
        attach(obj.programs["pass"], section(obj, "pass"))
    with pytest.raises(AttachError, match="there is no network interface 'pybpf-nope0'"):
        attach(obj.programs["pass"], section(obj, "pass"), iface="pybpf-nope0")
    with pytest.raises(AttachError, match="has type socket_filter, but XDP hooks"):
        attach(obj.programs["sock_filter"], "xdp", iface="lo")


# ---- kprobes: the VM tier --------------------------------------------------------------

def counter(counts, slot, tgid=None, cookie_slot=None, **load):
    """A kprobe program adding 1 to counts[slot] (only in process tgid, if given) and
    its bpf_get_attach_cookie() to counts[cookie_slot]; assembled, so the VM tier
    needs no clang. load: more arguments of Program.load (expected_attach_type=...)."""
    def bump(slot, value, label):
        return [asm.st(4, asm.R10, -4, slot), asm.ld_map_fd(asm.R1, counts.fd),
                asm.mov64(asm.R2, asm.R10), asm.alu64("add", asm.R2, -4),
                asm.call(HelperId.map_lookup_elem), asm.jmp("eq", asm.R0, 0, label),
                asm.mov64(asm.R1, value), asm.atomic("add", 8, asm.R0, asm.R1), label]
    code = [asm.mov64(asm.R6, asm.R1)]
    if tgid is not None:
        code += [asm.call(HelperId.get_current_pid_tgid), asm.alu64("rsh", asm.R0, 32),
                 asm.jmp("ne", asm.R0, tgid, "out")]
    code += bump(slot, 1, "counted")
    if cookie_slot is not None:
        code += [asm.mov64(asm.R1, asm.R6), asm.call(HelperId.get_attach_cookie),
                 asm.mov64(asm.R7, asm.R0)] + bump(cookie_slot, asm.R7, "cookie")
    code += ["out", asm.mov64(asm.R0, 0), asm.exit()]
    return Program.load(ProgType.KPROBE, asm.assemble(code), name="count", **load)


@pytest.fixture
def counts():
    with Map.create("array", key="I", value="Q", max_entries=8) as m:
        yield m


@pytest.fixture
def kprobe_counter(counts):
    with counter(counts, 0, tgid=os.getpid(), cookie_slot=1) as prog:
        yield prog


@vm
@needs_kprobes
@pytest.mark.parametrize("legacy, use_link", [(None, None), (True, None), (True, False),
                                              (None, False)])
def test_kprobe_counts_getpid(kprobe_counter, counts, legacy, use_link):
    with attach_kprobe(kprobe_counter, KPROBE_FUNC, legacy=legacy, use_link=use_link) as link:
        expected = {(None, None): BpfLink, (True, None): ProbeBpfLink,
                    (True, False): PerfEventLink, (None, False): PerfEventLink}
        assert isinstance(link, expected[(legacy, use_link)])
        if legacy:
            assert link.probe.name in probe_names("kprobe")
        getpids(25)
    getpids(5)
    assert counts[0] == 25


@vm
@needs_kprobes
def test_kretprobe_and_cookie(kprobe_counter, counts):
    with attach_kretprobe(kprobe_counter, KPROBE_FUNC, cookie=3):
        getpids(10)
    assert counts[0] == 10 and counts[1] == 30


@vm
@needs_kprobes
def test_kretprobe_maxactive_goes_through_tracefs(kprobe_counter, counts):
    with attach_kretprobe(kprobe_counter, KPROBE_FUNC, maxactive=32) as link:
        line = [e for e in tracefs.probe_events("kprobe") if e[2] == link.probe.name]
        assert line and line[0][0] == "r32"
        getpids(10)
    assert counts[0] == 10
    with pytest.raises(AttachError, match="only through tracefs kprobe_events, but "
                                          "legacy=False forbids that"):
        attach_kretprobe(kprobe_counter, KPROBE_FUNC, maxactive=4, legacy=False)


@vm
@needs_kprobes
def test_kprobe_from_section_names(kprobe_counter, counts):
    with attach(kprobe_counter, f"kprobe/{KPROBE_FUNC}"):
        getpids(4)
    with attach(kprobe_counter, f"kretprobe/{KPROBE_FUNC}"):
        getpids(3)
    with attach(kprobe_counter, "ksyscall/getpid"):
        getpids(2)
    assert counts[0] == 9


@vm
@needs_kprobes
def test_kprobe_by_address(kprobe_counter, counts):
    with open("/proc/kallsyms") as f:
        address = next(int(line.split()[0], 16) for line in f
                       if line.split()[2:3] == [KPROBE_FUNC])
    with attach_kprobe(kprobe_counter, address=address):
        getpids(6)
    assert counts[0] == 6


@vm
@needs_kprobes
def test_kprobe_offset_inside_an_instruction_is_explained(kprobe_counter):
    with pytest.raises(BPFError, match="instruction boundary") as info:
        attach_kprobe(kprobe_counter, KPROBE_FUNC, 1)
    assert info.value.errno in (errno.EINVAL, errno.EILSEQ, errno.ENOENT)


@vm
@needs_kprobes
def test_blacklisted_function(kprobe_counter, monkeypatch):
    """With debugfs, pybpf names the blacklist; without it, the kernel's EINVAL
    gets a hint saying the same."""
    debugfs = system.mount_point("debugfs")
    if debugfs is None:
        system.mount("debugfs", "/sys/kernel/debug", "debugfs")
        debugfs = "/sys/kernel/debug"
    types = {}
    with open(os.path.join(debugfs, "kprobes", "blacklist")) as f:
        names = [line.split()[1] for line in f if len(line.split()) > 1]
    types = system.kallsyms_types(names)
    victim = next(n for n in names if types.get(n, "") in ("t", "T"))
    with pytest.raises(AttachError, match=f"'{victim}' is on the kernel's kprobe blacklist"):
        attach_kprobe(kprobe_counter, victim)
    monkeypatch.setattr(kallsyms, "kprobe_blacklisted", lambda name: None)
    with pytest.raises(BPFError, match="blacklist") as info:
        attach_kprobe(kprobe_counter, victim)
    assert info.value.errno == errno.EINVAL
