"""The arm64 VM tier, run from the host: tools/vm-arm64 boots Debian's arm64 kernel
under emulation once for this module and runs tests/kernel/arm64_driver.py in it; each
test here judges one part of what the guest observed (docs/vm.md).

It fails, never skips, when the tier is not set up: the test set-up (bash
tools/run-tests, which runs tools/vm-setup-arm64) sets it up, so a missing piece is a
broken set-up that a skip would hide.
"""
import json
import os
import subprocess
import sys

import pytest

from pybpf import shipped
from pybpf.filterreduce import reference
from toolbox import tail

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VM_ARM64 = os.path.join(ROOT, "tools", "vm-arm64")
ARGSUM = os.path.join(ROOT, "tests", "progs", "arch", "argsum.bpf.c")
sys.path.insert(0, os.path.join(ROOT, "tools"))
import build_programs  # noqa: E402

# vm-arm64's wall-time limit (boot included); a run takes ~2-4 min on an idle machine.
VM_LIMIT = 900
BACKENDS = ("syscall", "copy_to_iter")
# The first test boots the VM (the module's fixture): the limit covers it, whichever runs.
pytestmark = pytest.mark.timeout(VM_LIMIT + 120)


@pytest.fixture(scope="module")
def guest(tmp_path_factory, clang):
    """The guest's report (arm64.json), its results directory and the VM's timing."""
    results = tmp_path_factory.mktemp("arm64")
    check = subprocess.run([sys.executable, VM_ARM64, "--check"], capture_output=True,
                           text=True, stdin=subprocess.DEVNULL)
    if check.returncode != 0:
        pytest.fail(f"the arm64 VM tier is not set up; run the test set-up: bash "
                    f"tools/run-tests (it runs tools/vm-setup-arm64)\n{check.stderr}")
    argsum = results / "argsum.bpf.o"
    subprocess.run([clang, *build_programs.TARGETS["aarch64"].flags(), "-c", ARGSUM,
                    "-o", str(argsum)], check=True)
    command = f"python3 tests/kernel/arm64_driver.py {results} {argsum}"
    run = subprocess.run([sys.executable, VM_ARM64, "--results", str(results),
                          "--timeout", str(VM_LIMIT), "--command", command],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=VM_LIMIT + 60)
    with open(results / "timing.json") as f:
        timing = json.load(f)
    assert run.returncode == 0, f"tools/vm-arm64 exited {run.returncode}:\n{tail(run.stdout)}"
    with open(results / "arm64.json") as f:
        report = json.load(f)
    return {"report": report, "results": results, "timing": timing}


def test_the_guest_is_arm64_and_its_wall_time_is_reported(guest, capsys, record_property):
    timing, report = guest["timing"], guest["report"]
    record_property("arm64_wall_time_s", timing["total_s"])
    with capsys.disabled():
        print(f"\narm64 VM tier: {timing['release']}, wall time {timing['total_s']} s "
              f"(boot {timing['boot_s']} s)")
    assert report["machine"] == "aarch64"
    assert report["release"] == timing["release"] and report["release"].endswith("-arm64")


def test_probe_works_and_sees_kprobes(guest):
    probe = guest["report"]["probe"]
    assert probe["returncode"] == 0, probe["stderr"]
    doc = probe["json"]
    assert doc["kernel"]["release"] == guest["report"]["release"]
    assert doc["kernel"]["btf"]["ok"] and doc["kernel"]["jit"]["ok"]
    assert doc["tracing"]["kprobes"]["ok"], doc["tracing"]["kprobes"]
    assert doc["pipeline"]["backends"]["syscall"]["usable"]


def test_every_shipped_object_loads(guest):
    """readcount whole; filterreduce one backend's programs at a time (arm64_driver.py
    says why)."""
    loads = guest["report"]["load"]
    backends = ("syscall", "copy_to_iter", "copyout")
    assert sorted(loads) == sorted(["readcount"] + [f"filterreduce/{b}" for b in backends])
    assert sorted(shipped.names("aarch64")) == ["filterreduce", "readcount"]
    for name, run in loads.items():
        assert run["returncode"] == 0, (name, run["stdout"], run["stderr"])
        loaded = run["json"]["programs"]
        assert all(p["id"] for p in loaded)
        assert sorted(p["name"] for p in loaded) == sorted(run.get("programs", ["count_read"]))


@pytest.mark.parametrize("kind", ["kprobe", "uprobe"])
def test_probe_counts_calls_and_reads_an_argument_from_pt_regs(guest, kind):
    probes = guest["report"]["probes"]
    assert "error" not in probes, probes.get("error")
    got = probes[kind]
    assert (got["calls"], got["sum"]) == (got["want_calls"], got["want_sum"])
    assert got["calls"] > 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_filter_reduce_equals_the_reference(guest, backend):
    report = guest["report"]
    assert report["gen_numbers"]["returncode"] == 0, report["gen_numbers"]["stderr"]
    run = report["attach"][backend]
    kernel = report["probes"].get("kprobe_copy_to_iter", {})
    if backend == "copy_to_iter" and run["returncode"] != 0 and \
            "notrace" in run["stderr"] and kernel.get("attached") is False:
        # pybpf refused the backend, and the kernel itself refused the kprobe.
        pytest.skip(f"Debian's arm64 kernel {report['release']} refuses a kprobe on "
                    f"_copy_to_iter (notrace: lib/ is built without ftrace and "
                    f"CONFIG_KPROBE_EVENTS_ON_NOTRACE is off; {kernel['error']}); the "
                    f"copy_to_iter backend runs on the patched kernel of docs/kernels.md "
                    f"(tools/vm-run --marker patched)")
    assert run["returncode"] == 0, run["stderr"]
    (doc,) = run["json"]
    assert doc["backend"] == backend
    # The reference is the host's own computation, on the file the guest read.
    want = reference.read_file(guest["results"] / "numbers.txt", report["filter"])
    assert want.numbers_kept > 0
    for key in ("bytes", "numbers_seen", "numbers_kept", "sum", "min", "max", "count"):
        assert doc[key] == getattr(want, key), key
