"""The kernel built with kernel-config/ (tools/build-kernel, docs/kernels.md): copyout()
is a probe-able function on the error-injection list, and a kprobe program there that
calls bpf_override_return(ctx, 0) skips the copy of a read(), which still returns its
count, for the one process it is keyed on; every other process gets its bytes.

The tests marked ``patched`` run only in that kernel; elsewhere they skip. The host test
at the end (not marked) builds the kernel, or takes it from the cache, and runs them in
it through tools/vm-run. Files are read from a tmpfs mounted for the test: tmpfs and
ext4 reads copy page-cache pages through _copy_to_iter() -> copyout().
"""
import hashlib
import os
import random
import subprocess
import sys
import time

import pytest

from pybpf.attach import attach_kprobe
from pybpf.kernel import system
from pybpf.loader import BpfObject
from toolbox import assert_vm_tests_pass, tail

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCE = os.path.join(ROOT, "tests", "progs", "patched", "copyout.bpf.c")
BUILD_KERNEL = os.path.join(ROOT, "tools", "build-kernel")
# Slots of `counts` (the SLOT_* defines of copyout.bpf.c).
CALLS, BYTES, OVERRIDDEN = range(3)
MARKER = 0xA5  # what the user buffer holds before a read whose copies are skipped
TMPFS_MAGIC = 0x01021994  # statfs f_type, <linux/magic.h>

HAS_HOOK = (system.kallsyms_types(["copyout"]) or {}).get("copyout", "") in ("t", "T")
patched = pytest.mark.patched
needs_hook = pytest.mark.skipif(
    not HAS_HOOK,
    reason="needs the kernel built from kernel-config/ by tools/build-kernel (copyout() "
           "probe-able and overridable); runs in it through tools/vm-run --marker patched")


@pytest.fixture(scope="module")
def copyout_object(tmp_path_factory, request):
    """copyout.bpf.o, built by clang from the host's filesystem."""
    path = tmp_path_factory.mktemp("patched") / "copyout.bpf.o"
    subprocess.run([request.getfixturevalue("clang"), "-O2", "-g", "-target", "bpf",
                    "-D__TARGET_ARCH_x86", "-I/usr/include/x86_64-linux-gnu", "-c", SOURCE,
                    "-o", str(path)], check=True)
    return str(path)


@pytest.fixture
def loaded(copyout_object):
    """loaded(program name) -> the BpfObject with only that program, keyed on this
    process."""
    objects = []

    def load(name):
        obj = BpfObject.open(copyout_object)
        objects.append(obj)
        obj.variables["target_tgid"] = os.getpid()
        return obj.load(programs=[name])
    yield load
    for obj in objects:
        obj.close()


@pytest.fixture
def tmpfs(tmp_path):
    """A fresh tmpfs mount (a page-cache filesystem) for the test's files."""
    path = tmp_path / "tmpfs"
    path.mkdir()
    system.mount("tmpfs", str(path), "tmpfs")
    assert system.fs_type(str(path)) == TMPFS_MAGIC
    yield path
    subprocess.run(["umount", str(path)], check=True)


def data_file(directory, size, seed=1):
    """A file of size pseudo-random bytes; returns (path, its bytes)."""
    data = random.Random(seed).randbytes(size)
    path = directory / f"data-{size}"
    path.write_bytes(data)
    return path, data


def read_into_marked(path, size):
    """One read(2) of the whole file into a buffer full of MARKER: (count, buffer)."""
    buf = bytearray([MARKER]) * size
    with open(path, "rb", buffering=0) as f:
        count = f.readinto(buf)
    return count, buf


def debugfs():
    mounted = system.mount_point("debugfs")
    if mounted is None:
        system.mount("debugfs", "/sys/kernel/debug", "debugfs")
        mounted = "/sys/kernel/debug"
    return mounted


@patched
@needs_hook
def test_kernel_has_what_the_copyout_backend_needs():
    assert system.kallsyms_types(["copyout"])["copyout"] == "t"  # static, not inlined
    with open(os.path.join(debugfs(), "error_injection", "list")) as f:
        assert "copyout\tERRNO" in f.read().splitlines()
    assert system.pmu_type("kprobe") is not None
    assert system.vmlinux_btf_size()
    tracefs = system.find_tracefs()
    assert tracefs is not None
    for name in ("sys_enter_read", "sys_exit_read"):
        assert system.tracepoint_exists(tracefs, "syscalls", name)
    for option in ("CONFIG_BPF_KPROBE_OVERRIDE", "CONFIG_FUNCTION_ERROR_INJECTION",
                   "CONFIG_DEBUG_INFO_BTF", "CONFIG_BPF_JIT"):
        assert system.config_enabled(option), option


@patched
@needs_hook
def test_a_tmpfs_read_goes_through_copyout(loaded, tmpfs):
    size = 1 << 20
    path, data = data_file(tmpfs, size)
    obj = loaded("count_copyout")
    with attach_kprobe(obj.programs["count_copyout"], "copyout"):
        count, buf = read_into_marked(path, size)
    counts = obj.maps["counts"]
    assert count == size and buf == data
    # One call per page-cache page (or less, when pages are contiguous folios).
    assert counts[BYTES] == size and 0 < counts[CALLS] <= size // system.page_size()
    assert counts[OVERRIDDEN] == 0


@patched
@needs_hook
@pytest.mark.parametrize("size", [4096, 4 << 20, 128 << 20],
                         ids=["4KiB", "4MiB", "128MiB"])
def test_override_skips_every_copy_of_one_read(loaded, tmpfs, size):
    """read() returns its full count and the buffer keeps the marker: every copyout()
    call was overridden, none copied. 128 MiB is beyond the 80 MB where the thesis found
    the override unreliable."""
    path, _ = data_file(tmpfs, size)
    obj = loaded("skip_copyout")
    with attach_kprobe(obj.programs["skip_copyout"], "copyout"):
        count, buf = read_into_marked(path, size)
    counts = obj.maps["counts"]
    assert count == size
    assert counts[BYTES] == size and counts[OVERRIDDEN] == counts[CALLS] > 0
    assert buf.count(MARKER) == size, "some copies were not skipped"


@patched
@needs_hook
def test_an_unregistered_reader_gets_the_bytes_meanwhile(loaded, tmpfs):
    """While this process's copies are skipped, another process reading the same file
    at the same time gets every byte."""
    size, rounds = 4 << 20, 6
    path, data = data_file(tmpfs, size)
    digest = hashlib.sha256(data).hexdigest()
    obj = loaded("skip_copyout")
    with attach_kprobe(obj.programs["skip_copyout"], "copyout"):
        reader = subprocess.Popen(["sh", "-c", f"for i in $(seq {rounds}); do "
                                               f"sha256sum {path}; done"],
                                  stdout=subprocess.PIPE, text=True)
        marked = [read_into_marked(path, size) for _ in range(rounds)]
        # Its output is read after detaching: this process's pipe reads go through
        # copyout() too, and would be skipped.
        assert reader.wait(timeout=300) == 0
    out = reader.stdout.read()
    reader.stdout.close()
    assert [line.split()[0] for line in out.splitlines()] == [digest] * rounds
    assert all(count == size and buf.count(MARKER) == size for count, buf in marked)
    # Only this process's calls were counted and skipped.
    counts = obj.maps["counts"]
    assert counts[BYTES] == size * rounds and counts[OVERRIDDEN] == counts[CALLS]


# The host side: build (or take from the cache) the patched 6.1 kernel and run the
# tests above in it. A build from scratch takes ~15 min on 2 cores; cached, < 1 s.
BUILD_LIMIT = 45 * 60
VM_LIMIT = 900


@pytest.mark.timeout(BUILD_LIMIT + VM_LIMIT + 180)
def test_patched_tests_pass_in_the_patched_kernel(tmp_path, capsys, record_property):
    log = tmp_path / "build-kernel.log"
    started = time.monotonic()
    with open(log, "w") as stderr:
        build = subprocess.run([sys.executable, BUILD_KERNEL, "--source", "6.1"],
                               stdout=subprocess.PIPE, stderr=stderr, text=True,
                               stdin=subprocess.DEVNULL, timeout=BUILD_LIMIT)
    assert build.returncode == 0, \
        f"tools/build-kernel failed (log: {log}):\n{tail(log.read_text())}"
    image = build.stdout.strip().splitlines()[-1]
    seconds = round(time.monotonic() - started, 1)
    record_property("kernel_build_s", seconds)
    with capsys.disabled():
        print(f"\npatched kernel: {image} (tools/build-kernel took {seconds} s)")
    assert_vm_tests_pass(tmp_path / "vm", VM_LIMIT, record_property, capsys,
                         vm_args=["--kernel", image, "--marker", "patched"])
