"""Tail calls through a program array that user space fills, checked with TEST_RUN and
on a live hook (the raw sys_enter tracepoint, triggered by this process's getpid()).

tests/progs/run/chain.bpf.c: a -> jumps[1] (b) -> jumps[2] (c); a adds 1, b 10, c 100
to the global ``result``, for getpid() calls of ``target_pid`` only.
"""
import os
import platform
import struct
import subprocess

import pytest

from pybpf.cli.run import fill_prog_array
from pybpf.links import attach_raw_tracepoint
from pybpf.loader import BpfObject

PROGS = os.path.join(os.path.dirname(__file__), "..", "progs", "run")
# getpid's number per architecture (the raw tracepoint sees numbers, not names).
GETPID = {"x86_64": 39, "aarch64": 172, "riscv64": 172, "s390x": 20, "ppc64le": 20}


def build_counting_getpid(clang, name, out):
    """Compile tests/progs/run/NAME.bpf.c with this machine's getpid number; returns
    (object path, number). Also used by test_cli_run."""
    nr = GETPID.get(platform.machine())
    if nr is None:
        pytest.skip(f"the test does not know getpid's syscall number on {platform.machine()}")
    obj = str(out / f"{name}.o")
    subprocess.run([clang, "-O2", "-g", "-target", "bpf", f"-DGETPID_NR={nr}", "-c",
                    os.path.join(PROGS, f"{name}.bpf.c"), "-o", obj,
                    f"-I/usr/include/{platform.machine()}-linux-gnu"], check=True)
    return obj, nr


@pytest.fixture(scope="module")
def chain(clang, tmp_path_factory):
    return build_counting_getpid(clang, "chain", tmp_path_factory.mktemp("tailcalls"))


@pytest.fixture
def loaded(chain):
    with BpfObject.open(chain[0]) as obj:
        obj.load()
        obj.variables["target_pid"] = os.getpid()
        yield obj


def run_a(obj, nr):
    """TEST_RUN of a with a sys_enter context: (struct pt_regs *, syscall number)."""
    return obj.programs["a"].test_run(ctx=struct.pack("=QQ", 0, nr)).retval


def test_prog_array_filled_with_program_objects(loaded, chain):
    loaded.maps["jumps"][1] = loaded.programs["b"]
    loaded.maps["jumps"][2] = loaded.programs["c"]
    assert loaded.maps["jumps"][1] == loaded.programs["b"].id
    assert run_a(loaded, chain[1]) == 3  # c's return value: the chain went all the way
    assert loaded.variables["result"] == 111


def test_prog_array_filled_by_name(loaded, chain):
    fill_prog_array(loaded, "jumps", {1: "b"})
    assert run_a(loaded, chain[1]) == 2  # jumps[2] is empty: b's tail call falls through
    assert loaded.variables["result"] == 11
    fill_prog_array(loaded, "jumps", {2: "c"})
    assert run_a(loaded, chain[1]) == 3
    assert loaded.variables["result"] == 11 + 111
    assert run_a(loaded, chain[1] + 1) == 0  # not getpid: a stops before any tail call
    assert loaded.variables["result"] == 122


def test_fill_prog_array_errors(loaded):
    with pytest.raises(KeyError, match=r"no loaded program 'nope'.*\ba\b"):
        fill_prog_array(loaded, "jumps", {1: "nope"})
    with pytest.raises(KeyError, match="no map 'nope'"):
        fill_prog_array(loaded, "nope", {1: "b"})
    with pytest.raises(ValueError, match="not a program array"):
        fill_prog_array(loaded, ".bss", {0: "b"})


def test_chain_runs_on_an_attached_hook(loaded):
    fill_prog_array(loaded, "jumps", {1: "b", 2: "c"})
    calls = 50
    with attach_raw_tracepoint(loaded.programs["a"], "sys_enter"):
        for _ in range(calls):
            os.getpid()
    result = loaded.variables["result"]
    # Every call went a -> b -> c (so multiples of 111); others of this process's
    # threads may have called getpid() too, never fewer.
    assert result % 111 == 0 and result >= 111 * calls
    after = loaded.variables["result"]
    os.getpid()
    assert loaded.variables["result"] == after  # detached
