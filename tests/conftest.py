"""Shared fixtures and the test tiers.

- tests/unit: no privileges, no kernel objects.
- tests/kernel: root and a working bpf(2) on the running kernel. They skip only when
  this kernel lacks what they test, with a reason that says which kernel has it.
"""
import gc
import os
import shutil
import uuid

import pytest

from pybpf.kernel import system


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


@pytest.fixture
def bpffs():
    """A fresh directory on a bpffs mount (mounted at /sys/fs/bpf if nothing is);
    the test must leave it empty: a leftover pin fails the test."""
    root = system.BPFFS_DEFAULT
    if not system.is_bpffs(root):
        system.mount("bpf", root, "bpf")
    path = os.path.join(root, f"pybpf-test-{uuid.uuid4().hex[:8]}")
    os.mkdir(path)
    yield path
    leftovers = os.listdir(path)
    for name in leftovers:
        os.unlink(os.path.join(path, name))
    os.rmdir(path)
    assert not leftovers, f"test left pins behind: {leftovers}"


@pytest.fixture(scope="session")
def clang():
    """Path of clang; the test set-up (tools/run-tests) installs it."""
    path = shutil.which("clang")
    if path is None:
        pytest.fail("clang is not installed: run the test set-up, bash tools/run-tests")
    return path
