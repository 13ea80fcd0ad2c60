"""The VM tier, run from the host: tools/vm-run boots Debian's stock 6.1 kernel (this
host's kernel has CONFIG_KPROBES off) and runs the ``vm``-marked tests inside it.

It fails, never skips, when the tier is not installed: the test set-up (bash
tools/run-tests, which runs tools/vm-setup) installs it, so a missing piece is a broken
set-up that a skip would hide.
"""
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VM_RUN = os.path.join(REPO, "tools", "vm-run")
# vm-run's wall-time limit (boot included); a run takes ~1-3 min when the machine is idle.
VM_LIMIT = 900


def _junit_totals(path):
    """(tests, failures, errors, skipped) summed over the report's test suites."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    return tuple(sum(int(s.get(key, 0)) for s in suites)
                 for key in ("tests", "failures", "errors", "skipped"))


def _tail(text, lines=60):
    return "\n".join(text.splitlines()[-lines:])


@pytest.mark.timeout(VM_LIMIT + 120)
def test_vm_marked_tests_pass_in_the_vm(tmp_path, capsys, record_property):
    check = subprocess.run([sys.executable, VM_RUN, "--check"], capture_output=True,
                           text=True, stdin=subprocess.DEVNULL)
    if check.returncode != 0:
        pytest.fail(f"the VM tier is not installed; run the test set-up: bash "
                    f"tools/run-tests (it runs tools/vm-setup)\n{check.stderr.strip()}")

    results = tmp_path / "vm"
    run = subprocess.run(
        [sys.executable, VM_RUN, "--results", str(results), "--timeout", str(VM_LIMIT),
         "--", "-v"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=VM_LIMIT + 60)
    timing = json.loads((results / "timing.json").read_text())
    record_property("vm_wall_time_s", timing["total_s"])
    with capsys.disabled():
        print(f"\nVM tier: {timing['release']}, wall time {timing['total_s']} s "
              f"(boot {timing['boot_s']} s), guest exit status {timing['exit_status']}")

    assert run.returncode == 0, f"tools/vm-run exited {run.returncode}:\n{_tail(run.stdout)}"
    junit = results / "junit.xml"
    assert junit.exists(), f"the guest wrote no junit report:\n{_tail(run.stdout)}"
    tests, failures, errors, skipped = _junit_totals(junit)
    assert (failures, errors) == (0, 0), _tail(run.stdout)
    assert tests - skipped > 0, f"no vm test ran in the VM:\n{_tail(run.stdout)}"
