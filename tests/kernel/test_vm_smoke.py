"""The VM tier's own checks: inside tools/vm-run the kernel is the one it booted, the kprobe
PMU is there, and a kprobe program attached by hand through perf_event_open(2) runs.

This is deliberately independent of pybpf.attach (whose kprobe tests are the real
coverage): if these fail, the VM tier itself is broken, not the attach code.
On the host (CONFIG_KPROBES off) they skip.
"""
import ctypes
import fcntl
import os

import pytest

from pybpf import HelperId, Map, Program, ProgType, asm
from pybpf.asm import R0, R1, R2
from pybpf.kernel import syscall, system
from pybpf.kernel.constants import (PERF_EVENT_IOC_ENABLE, PERF_EVENT_IOC_SET_BPF,
                                    PERF_FLAG_FD_CLOEXEC)
from pybpf.kernel.perf import PerfEventAttr

NO_KPROBES = ("needs a kernel with kprobes (CONFIG_KPROBES); "
              "runs in the VM tier: tools/vm-run")

pytestmark = [pytest.mark.vm,
              pytest.mark.skipif(system.pmu_type("kprobe") is None, reason=NO_KPROBES)]

# The getpid(2) entry point on x86_64 kernels since 4.17 (syscall wrappers take pt_regs).
GETPID_SYMBOL = "__x64_sys_getpid"
CALLS = 100


def test_kernel_is_the_one_vm_run_booted():
    booted = os.environ.get("PYBPF_VM_KERNEL_RELEASE")
    if not booted:
        pytest.skip("checks the kernel that tools/vm-run booted; runs only inside it")
    assert os.uname().release == booted


def test_kprobe_pmu_is_registered():
    assert os.path.isdir("/sys/bus/event_source/devices/kprobe")
    assert system.pmu_type("kprobe") > 0


def _getpid_counter(counter, pid):
    """A kprobe program that adds 1 to counter[0] each time process ``pid`` enters."""
    return Program.load(ProgType.KPROBE, asm.assemble([
        asm.call(HelperId.get_current_pid_tgid),
        asm.alu64("rsh", R0, 32),  # the upper half is the process id (tgid)
        asm.jmp("ne", R0, pid, "out"),
        asm.ld_map_value(R1, counter.fd, 0),
        asm.mov64(R2, 1),
        asm.atomic("add", 8, R1, R2),
        "out",
        asm.mov64(R0, 0), asm.exit(),
    ]), name="vm_smoke")


def _open_kprobe(symbol):
    """A kprobe perf event on ``symbol`` (the kprobe PMU reads the name through config1)."""
    name = ctypes.create_string_buffer(symbol.encode())
    attr = PerfEventAttr(type=system.pmu_type("kprobe"),
                         config1=ctypes.addressof(name), config2=0)
    return syscall.perf_event_open(attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC)


def test_kprobe_program_counts_calls():
    with Map.create("array", value="Q", max_entries=1) as counter, \
            _getpid_counter(counter, os.getpid()) as prog:
        event = _open_kprobe(GETPID_SYMBOL)
        try:
            fcntl.ioctl(event, PERF_EVENT_IOC_SET_BPF, prog.fd)
            fcntl.ioctl(event, PERF_EVENT_IOC_ENABLE, 0)
            for _ in range(CALLS):
                os.getpid()  # glibc >= 2.25 does not cache it: each call is a syscall
        finally:
            os.close(event)
        # >=: the interpreter may call getpid() itself in between.
        assert counter[0] >= CALLS
