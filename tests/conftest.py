"""Shared fixtures and the test tiers.

- tests/unit: no privileges, no kernel objects.
- tests/kernel: root and a working bpf(2) on the running kernel. They skip only when
  this kernel lacks what they test, with a reason that says which kernel has it.
"""
import gc
import os
import shutil
import subprocess
import uuid

import pytest

from pybpf.kernel import system
from toolbox import setup_missing


def _bpf_unavailable():
    """None when bpf(2) works here, else why not."""
    if os.geteuid() != 0:
        return "kernel tests need root (run them with sudo or as root)"
    from pybpf.errors import BPFError
    from pybpf.maps import Map
    try:
        Map.create("array", value=4, max_entries=1).close()
    except BPFError as e:
        return f"bpf(2) does not work here: {e}"
    return None


def pytest_collection_modifyitems(config, items):
    reason = None
    checked = False
    for item in items:
        if "tests/kernel/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.kernel)
            if not checked:
                reason, checked = _bpf_unavailable(), True
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


def open_fds():
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def no_leaked_fds(request):
    """Every test must close every fd it opened (kernel objects included)."""
    if "kernel" not in request.keywords:
        yield
        return
    gc.collect()
    before = open_fds()
    yield
    gc.collect()
    leaked = {fd for fd in open_fds() - before if os.path.exists(f"/proc/self/fd/{fd}")}
    described = {fd: os.readlink(f"/proc/self/fd/{fd}") for fd in leaked
                 if os.path.exists(f"/proc/self/fd/{fd}")}
    assert not described, f"test leaked file descriptors: {described}"


# Test pin directories carry this process's pid: other test runs on the machine make
# their own, which are not this run's to judge.
_PIN_PREFIX = f"pybpf-test-{os.getpid()}-"


@pytest.fixture
def bpffs():
    """A fresh directory on a bpffs mount (mounted at /sys/fs/bpf if nothing is);
    the test must leave it empty: a leftover pin fails the test."""
    root = system.BPFFS_DEFAULT
    if not system.is_bpffs(root):
        system.mount("bpf", root, "bpf")
    path = os.path.join(root, f"{_PIN_PREFIX}{uuid.uuid4().hex[:8]}")
    os.mkdir(path)
    yield path
    leftovers = os.listdir(path)
    for name in leftovers:
        os.unlink(os.path.join(path, name))
    os.rmdir(path)
    assert not leftovers, f"test left pins behind: {leftovers}"


@pytest.fixture
def cgroup():
    """A fresh cgroup v2 directory (cgroup2 mounted for the test if it is not); the
    test must leave it empty (rmdir fails otherwise)."""
    mount = system.mount_point("cgroup2")
    mounted_here = None
    if mount is None:
        mounted_here = f"/tmp/pybpf-cgroup2-{uuid.uuid4().hex[:8]}"
        system.mount("none", mounted_here, "cgroup2")
        mount = mounted_here
    path = os.path.join(mount, f"pybpf-test-{uuid.uuid4().hex[:8]}")
    os.mkdir(path)
    yield path
    os.rmdir(path)
    if mounted_here:
        subprocess.run(["umount", mounted_here], check=True)
        os.rmdir(mounted_here)


@pytest.fixture(scope="session")
def clang():
    """Path of clang; the test set-up (tools/run-tests) installs it."""
    path = shutil.which("clang")
    if path is None:
        setup_missing("clang is not installed: run the test set-up, bash tools/run-tests")
    return path


@pytest.fixture(scope="session")
def run_object(clang, tmp_path_factory):
    """run_object(NAME): tests/progs/run/NAME.bpf.c compiled with clang, once a session."""
    out = tmp_path_factory.mktemp("run_objects")
    source = os.path.join(os.path.dirname(__file__), "progs", "run")

    def compile_(name):
        obj = out / f"{name}.o"
        if not obj.exists():
            subprocess.run([clang, "-O2", "-g", "-target", "bpf", "-c",
                            os.path.join(source, f"{name}.bpf.c"), "-o", str(obj),
                            f"-I/usr/include/{os.uname().machine}-linux-gnu"], check=True)
        return str(obj)
    return compile_


@pytest.fixture(scope="session")
def bpf_object(clang, tmp_path_factory):
    """bpf_object("DIR/NAME", compiler=None, flags=()): tests/progs/DIR/NAME.bpf.c
    compiled once a session, by clang or the compiler named (e.g. "clang-19")."""
    out = tmp_path_factory.mktemp("bpf_objects")
    progs = os.path.join(os.path.dirname(__file__), "progs")

    def compile_(name, compiler=None, flags=()):
        cc = clang if compiler is None else shutil.which(compiler)
        if cc is None:
            setup_missing(f"{compiler} is not installed: run the test set-up, "
                          f"bash tools/run-tests")
        obj = out / f"{name.replace('/', '-')}-{os.path.basename(cc)}.o"
        if not obj.exists():
            subprocess.run([cc, "-O2", "-g", "-target", "bpf", *flags, "-c",
                            os.path.join(progs, f"{name}.bpf.c"), "-o", str(obj),
                            f"-I/usr/include/{os.uname().machine}-linux-gnu"], check=True)
        return str(obj)
    return compile_


def _own_links():
    """Ids of the BPF links this process holds (other processes on the machine may
    create links of their own while the suite runs; those are not ours to judge)."""
    ids = set()
    for fd in os.listdir("/proc/self/fdinfo"):
        try:
            with open(f"/proc/self/fdinfo/{fd}") as f:
                for line in f:
                    if line.startswith("link_id:"):
                        ids.add(int(line.split()[1]))
        except OSError:
            continue
    return ids


def _system_state():
    """What a test run may create and must remove: BPF links it holds, pybpf tracefs
    probe events, its test pin directories, network namespaces."""
    from pybpf.kernel.system import find_tracefs
    state = {"links": _own_links(), "probes": set(), "pins": set(), "netns": set()}
    tracefs = find_tracefs()
    for name in ("kprobe_events", "uprobe_events"):
        try:
            with open(os.path.join(tracefs or "/nonexistent", name)) as f:
                state["probes"] |= {line.split()[0] for line in f if "pybpf" in line}
        except OSError:
            pass
    if os.path.isdir("/sys/fs/bpf"):
        state["pins"] = {n for n in os.listdir("/sys/fs/bpf") if n.startswith(_PIN_PREFIX)}
    if os.path.isdir("/run/netns"):
        state["netns"] = set(os.listdir("/run/netns"))
    return state


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind():
    """After the whole suite: no new links, probe events, pins or namespaces."""
    if os.geteuid() != 0:
        yield
        return
    before = _system_state()
    yield
    gc.collect()
    after = _system_state()
    left = {k: sorted(after[k] - before[k]) for k in after if after[k] - before[k]}
    assert not left, f"the test run left kernel state behind: {left}"
