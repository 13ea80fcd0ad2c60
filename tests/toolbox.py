"""Driving the scripts in tools/ from tests: loading them as modules, running the VM
tier (tools/vm-run) to judge a guest's pytest run from its junit report, and ending a
test whose set-up is missing (setup_missing).

tools/ is not a package (its scripts run as ``python tools/x.py``), so tests import
them by path. pytest puts tests/ on sys.path for conftest.py; ``import toolbox`` works
from any test module below it.
"""
import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")
VM_RUN = os.path.join(TOOLS, "vm-run")


# Set by tests/kernel/test_minimal_image.py for the suite it runs inside the minimal
# image (tools/image-root), which has no compiler, bpftool or kernel source on purpose.
IN_MINIMAL_IMAGE = os.environ.get("PYBPF_MINIMAL_IMAGE") == "1"


def setup_missing(message):
    """End a test that lacks something the test set-up installs (message says what and
    how to get it). On the host that is a failure: the set-up installs it, so a skip
    would hide a broken set-up. In the minimal image it is missing by design, and the
    test skips, saying the host runs it."""
    if IN_MINIMAL_IMAGE:
        pytest.skip(f"not in the minimal image, by design; runs on the host: {message}")
    pytest.fail(message)


def tool_path(name, message=None):
    """Path of the program name on PATH, else setup_missing (message, or one saying
    that the test set-up installs it)."""
    path = shutil.which(name)
    if path is None:
        setup_missing(message or f"{name} is not installed: run the test set-up, "
                                 f"bash tools/run-tests")
    return path


def load_tool(name):
    """tools/<name>/ (a package), tools/<name>.py, or the script tools/<name> (no .py),
    as a fresh module."""
    module_name = f"pybpf_tool_{name.replace('-', '_')}"
    package = os.path.join(TOOLS, name, "__init__.py")
    if os.path.exists(package):
        spec = importlib.util.spec_from_file_location(
            module_name, package, submodule_search_locations=[os.path.dirname(package)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # its relative imports look it up there
        spec.loader.exec_module(module)
        return module
    path = os.path.join(TOOLS, f"{name}.py")
    if not os.path.exists(path):
        path = os.path.join(TOOLS, name)
    spec = importlib.util.spec_from_file_location(
        module_name, path, loader=importlib.machinery.SourceFileLoader(module_name, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tail(text, lines=60):
    return "\n".join(text.splitlines()[-lines:])


def junit_totals(path):
    """(tests, failures, errors, skipped) summed over the report's test suites."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    return tuple(sum(int(s.get(key, 0)) for s in suites)
                 for key in ("tests", "failures", "errors", "skipped"))


def assert_vm_tests_pass(results, limit, record_property, capsys, vm_args=()):
    """Run tools/vm-run (with options vm_args) for a test of the VM tier: results in
    the directory results, a wall-time limit of limit seconds. Fails when the tier
    cannot run (the test set-up installs it: a skip would hide a broken set-up), when
    vm-run exits non-zero, or unless the guest's junit report has more than 0 tests run
    and none failed. Records and prints the VM's wall time, pass or fail."""
    check = subprocess.run([sys.executable, VM_RUN, "--check", *vm_args],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check.returncode != 0:
        pytest.fail(f"the VM tier is not installed; run the test set-up: bash "
                    f"tools/run-tests (it runs tools/vm-setup)\n{check.stderr.strip()}")
    run = subprocess.run(
        [sys.executable, VM_RUN, "--results", str(results), "--timeout", str(limit),
         *vm_args, "--", "-v"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=limit + 60)
    with open(os.path.join(results, "timing.json")) as f:
        timing = json.load(f)
    record_property("vm_wall_time_s", timing["total_s"])
    with capsys.disabled():
        print(f"\nVM tier: {timing['release']}, wall time {timing['total_s']} s "
              f"(boot {timing['boot_s']} s), guest exit status {timing['exit_status']}")
    assert run.returncode == 0, f"tools/vm-run exited {run.returncode}:\n{tail(run.stdout)}"
    junit = os.path.join(results, "junit.xml")
    assert os.path.exists(junit), f"the guest wrote no junit report:\n{tail(run.stdout)}"
    tests, failures, errors, skipped = junit_totals(junit)
    assert (failures, errors) == (0, 0), tail(run.stdout)
    assert tests - skipped > 0, f"no test ran in the VM:\n{tail(run.stdout)}"


ROOT = os.path.dirname(TOOLS)


def fresh_python(args, pythonpath=(), **kwargs):
    """A new interpreter running args (e.g. ["-c", code]) with this tree first on its
    path: what a module imports, or says when it cannot, is only seen in a fresh one."""
    path = os.pathsep.join([*pythonpath, ROOT])
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONPATH=path), **kwargs)
