"""The VM tier, run from the host: tools/vm-run boots Debian's stock 6.1 kernel (this
host's kernel has CONFIG_KPROBES off) and runs the ``vm``-marked tests inside it.

It fails, never skips, when the tier is not installed: the test set-up (bash
tools/run-tests, which runs tools/vm-setup) installs it, so a missing piece is a broken
set-up that a skip would hide.
"""
import pytest

from toolbox import assert_vm_tests_pass

# vm-run's wall-time limit (boot included); a run takes ~1-3 min when the machine is idle.
VM_LIMIT = 900


@pytest.mark.timeout(VM_LIMIT + 120)
def test_vm_marked_tests_pass_in_the_vm(tmp_path, capsys, record_property):
    assert_vm_tests_pass(tmp_path / "vm", VM_LIMIT, record_property, capsys)
