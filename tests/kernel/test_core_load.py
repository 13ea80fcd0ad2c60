"""CO-RE relocation against the running kernel: programs that read real kernel
structures through local definitions laid out unlike the kernel's
(tests/progs/core/core_kernel.bpf.c) are relocated against /sys/kernel/btf/vmlinux,
loaded, and run with BPF_PROG_TEST_RUN; what they read must be what the kernel holds
(this process's pid and parent, its comm, a packet's length and protocol). A field no
kernel has loads when guarded by bpf_core_field_exists(), and is refused by the
verifier, at the poisoned instruction, when not.
"""
import os
import socket
import struct
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from pybpf.btf import Btf
from pybpf.btf.core import POISON_HELPER, CoreCache, poisoned_insn, relocate_section
from pybpf.btf.ext import BtfExt
from pybpf.elf import STT_FUNC, ElfFile
from pybpf.errors import VerifierError
from pybpf.kernel.constants import ProgType
from pybpf.programs import Program

SOURCE = Path(__file__).resolve().parents[1] / "progs" / "core" / "core_kernel.bpf.c"
VMLINUX = "/sys/kernel/btf/vmlinux"


@pytest.fixture(scope="module")
def programs(tmp_path_factory, clang):
    """{function name: (relocated bytes, its RelocationResults, its first slot)}."""
    if not os.path.exists(VMLINUX):
        pytest.skip(f"{VMLINUX} is missing: CO-RE needs a kernel built with "
                    f"CONFIG_DEBUG_INFO_BTF (5.4+ kernels can have it)")
    obj = tmp_path_factory.mktemp("core") / "core_kernel.o"
    multiarch = sysconfig.get_config_var("MULTIARCH")
    cmd = [clang, "-O2", "-g", "-Wall", "-Werror", "-target", "bpf",
           *([f"-I/usr/include/{multiarch}"] if multiarch else []), "-c", str(SOURCE),
           "-o", str(obj)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    elf = ElfFile.from_path(obj)
    btf = Btf.from_bytes(elf.section(".BTF").data)
    ext = BtfExt.from_bytes(elf.section(".BTF.ext").data, btf)
    cache = CoreCache(Btf.vmlinux())  # shared by every section, as a loader would
    out = {}
    for section, relos in ext.core_relos.items():
        code, results = relocate_section(elf.section(section).data, relos, btf, cache,
                                         section=section)
        for sym in elf.symbols():
            if sym.type == STT_FUNC and sym.section_name == section:
                first, end = sym.value // 8, (sym.value + sym.size) // 8
                out[sym.name] = (code[sym.value:sym.value + sym.size],
                                 [r for r in results if first <= r.slot < end], first)
    return out


def run_raw_tp(code):
    """Run a raw tracepoint program in this task's context; its return value."""
    with Program.load(ProgType.RAW_TRACEPOINT, code, "GPL") as prog:
        return prog.test_run(ctx=bytes(8), ctx_out_size=0, repeat=0).retval


def test_reads_this_process_task_struct(programs):
    code, results, _ = programs["task_tgid"]
    assert [r.what for r in results] == ["field 'task_struct.tgid'"]
    assert results[0].old != results[0].new  # the local layout is not the kernel's
    assert run_raw_tp(code) == os.getpid()


def test_follows_pointers_between_kernel_structures(programs):
    code, results, _ = programs["parent_tgid"]
    assert {r.what for r in results} == {"field 'task_struct.real_parent'",
                                         "field 'task_struct.tgid'"}
    assert run_raw_tp(code) == os.getppid()


def test_reads_an_array_field(programs):
    code, results, _ = programs["comm_head"]
    assert {r.kind.name for r in results} == {"FIELD_BYTE_SIZE", "FIELD_BYTE_OFFSET"}
    # the test runs on the calling thread, the main thread here
    with open(f"/proc/self/task/{os.getpid()}/comm", "rb") as f:
        comm = f.read().rstrip(b"\n").ljust(4, b"\0")[:4]
    assert run_raw_tp(code) == int.from_bytes(comm, sys.byteorder)


def test_missing_field_guarded_by_exists_loads(programs):
    code, results, _ = programs["guarded"]
    exists = [r for r in results if r.kind.name == "FIELD_EXISTS"]
    assert [r.new for r in exists] == [0]
    assert any(r.poisoned for r in results)  # the read is poisoned, but unreachable
    assert run_raw_tp(code) == 7


def test_missing_field_unguarded_is_refused_at_the_poisoned_instruction(programs):
    code, results, first = programs["unguarded"]
    (poisoned,) = [r for r in results if r.poisoned]
    assert poisoned.message == (
        f"CO-RE relocation #{poisoned.index} in section 'raw_tracepoint/sys_enter' failed: "
        f"field 'task_struct___missing.pybpf_no_such_field' (access 0:0) not found in "
        f"kernel BTF: struct task_struct has no member 'pybpf_no_such_field'")
    with pytest.raises(VerifierError) as e:
        Program.load(ProgType.RAW_TRACEPOINT, code, "GPL").close()
    assert f"unknown#{POISON_HELPER}" in e.value.log
    # the verifier's instruction index, mapped back to the section, names the relocation
    assert poisoned_insn(e.value.log) + first == poisoned.slot


@pytest.mark.parametrize("length", [60, 1000])
def test_context_fields_of_a_tc_program(programs, length):
    packet = bytes(12) + struct.pack("!H", 0x0800) + bytes(length - 14)
    code, results, _ = programs["skb_len"]
    assert results[0].what == "field '__sk_buff___local.len'" and results[0].new == 0
    with Program.load(ProgType.SCHED_CLS, code, "GPL") as prog:
        assert prog.test_run(packet).retval == length
    code, results, _ = programs["skb_protocol"]
    with Program.load(ProgType.SCHED_CLS, code, "GPL") as prog:
        assert prog.test_run(packet).retval == socket.htons(0x0800)
