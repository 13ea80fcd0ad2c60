"""The minimal-image tier: pybpf's wheel in a Debian 11 minbase root (tools/image-root)
with python3 (3.9) and nothing else, entered with chroot as a container would be. What a
user of a minimal image runs must work there: the probe, a shipped program, the
filter-reduce command (checked against the reference on the host), the main job; and the
unit and kernel tests run under 3.9 for real, the floor vermin checks only statically.

It fails, never skips, when debootstrap is missing: the test set-up (bash
tools/run-tests) installs it, so a missing piece is a broken set-up a skip would hide.
Like every kernel test it skips when not run as root (tests/conftest.py).
The root is cached under ~/.cache/pybpf/images/ (about a minute the first time); each run
gets a fresh overlay of it, so the cached root stays as debootstrap left it.
"""
import collections
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from pybpf.filterreduce import reference
from toolbox import junit_totals, load_tool, tail

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
image_root = load_tool("image-root")
# The inner suite's wall-time limit; it takes ~4.5 min on 2 cores (docs/images.md).
INNER_LIMIT = 1800


def our_mounts():
    """Host mounts a session of tools/image-root could have left (it makes them in a
    private namespace, so none should ever show here)."""
    with open("/proc/mounts") as f:
        return [line for line in f if "pybpf-image-" in line or image_root.CACHE in line]


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """(the cached root, the wheel built from this tree) for the module's runs."""
    try:
        root = image_root.ensure_root()
    except image_root.ImageError as e:
        pytest.fail(f"{e}\nrun the test set-up: bash tools/run-tests")
    dist = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(dist), REPO], check=True, stdin=subprocess.DEVNULL)
    (wheel,) = dist.glob("pybpf-*.whl")
    return root, str(wheel)


def in_image(image, *argv, binds=(), env=None, cwd="/root", timeout=300):
    """Run argv in a fresh overlay of the image; the CompletedProcess (text). Checks
    that the session left no mount behind, whatever the command did."""
    root, wheel = image
    proc = image_root.run(argv, root=root, wheel=wheel, binds=binds, env=env, cwd=cwd,
                          timeout=timeout, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, text=True)
    assert our_mounts() == []
    return proc


def skip_reasons(junit):
    """Counter of a junit report's skip reasons, each cut before its second ':' (so
    "...runs on the host: clang is not installed", without the set-up hint after it)."""
    found = collections.Counter()
    for case in ET.parse(junit).getroot().iter("testcase"):
        skip = case.find("skipped")
        if skip is not None:
            found[":".join(skip.get("message", "").split(":")[:2])[:110]] += 1
    return found


def ok(proc):
    assert proc.returncode == 0, \
        f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_the_image_is_minimal_and_imports_the_unpacked_wheel(image):
    root, _ = image
    assert image_root.forbidden_tools(root) == []
    out = ok(in_image(image, "sh", "-c", "for t in cc gcc clang pip pip3 bpftool; do "
                      "command -v $t; done; python3 -c 'import sys, pybpf; "
                      "print(sys.version_info[:2], pybpf.__file__)'"))
    assert out.strip() == "(3, 9) /usr/local/lib/python3.9/dist-packages/pybpf/__init__.py"
    # The wheel went into the session's overlay, not into the cached root.
    assert not os.path.exists(os.path.join(root, "usr/local/lib/python3.9/dist-packages/pybpf"))


def test_probe_in_the_image(image):
    assert "filter-reduce backend:" in ok(in_image(image, "python3", "-m", "pybpf", "probe"))
    doc = json.loads(ok(in_image(image, "python3", "-m", "pybpf", "probe", "--json")))
    assert doc["kernel"]["release"] == os.uname().release
    assert doc["pipeline"]["backends"][doc["pipeline"]["backend"]]["usable"] is True
    assert doc["program_types"]["tracepoint"]["available"] is True


def test_a_shipped_program_loads_and_runs_in_the_image(image):
    loaded = json.loads(ok(in_image(image, "sh", "-c", "python3 -m pybpf load "
                                    "$(python3 -m pybpf.shipped readcount) --json")))
    assert [(p["name"], p["type"]) for p in loaded["programs"]] == [("count_read", "tracepoint")]
    # cmp reads both files and prints nothing (its output would go into the JSON); two
    # files, as cmp of a file with itself reads nothing.
    size = 50000
    ran = json.loads(ok(in_image(image, "sh", "-c", f"head -c {size} /dev/zero > /tmp/f && "
                                 "cp /tmp/f /tmp/g && python3 -m pybpf run "
                                 "$(python3 -m pybpf.shipped readcount) --json -- "
                                 "cmp /tmp/f /tmp/g")))
    assert ran["command"]["exit_status"] == 0
    # bpf_get_current_pid_tgid() gives the pid as the host sees it: the chroot shares
    # the host's pid namespace, so it is the pid run reports.
    (cmp,) = [e["value"] for e in ran["maps"]["totals"] if e["key"] == ran["command"]["pid"]]
    assert cmp["bytes"] >= 2 * size and cmp["calls"] >= 2


def test_filter_reduce_in_the_image_agrees_with_the_host(image, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    flt = "x >= 500000 or x % 7 == 0"
    out = ok(in_image(image, "sh", "-c",
                      "python3 -m pybpf gen-numbers /data/n.txt 4M --negatives 0.2 --seed 3 "
                      f"&& python3 -m pybpf attach copyout /data/n.txt --filter '{flt}' --json",
                      binds=[(str(data), "/data", False)]))
    (got,) = json.loads(out)
    want = reference.read_file(data / "n.txt", flt)
    assert want.numbers_kept > 0
    for key in ("bytes", "numbers_seen", "numbers_kept", "sum", "min", "max", "count"):
        assert got[key] == getattr(want, key), key


def test_the_main_job_runs_in_the_image(image):
    out = ok(in_image(image, "python3", "-m", "pybpf", "attach", "copyout"))
    assert "the results match" in out   # the pipeline's against the Python reader's


def test_a_failed_or_timed_out_session_leaves_no_mount_and_no_process(image):
    assert in_image(image, "sh", "-c", "exit 7").returncode == 7
    start = time.monotonic()
    proc = in_image(image, "sh", "-c", "sleep 600 & sleep 600",
                    timeout=2)
    assert proc.returncode == image_root.EXIT_TIMEOUT and time.monotonic() - start < 30
    assert subprocess.run(["pgrep", "-f", "^sleep 600$"], capture_output=True).returncode == 1
    bad = in_image(image, "true", binds=[("image:/nonexistent", "/x", True)])
    assert bad.returncode == 1 and "entering the image failed" in bad.stderr


def test_ctrl_c_ends_the_command_and_unmounts(image):
    """SIGINT to the whole process group, as a terminal's Ctrl-C sends it (image: the
    cached root the tool's default run uses is built)."""
    proc = subprocess.Popen([sys.executable, image_root.__file__, "run", "--",
                             "sh", "-c", "sleep 600 & echo started; sleep 600"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        assert proc.stdout.readline() == "started\n"
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=30) == 128 + signal.SIGINT, proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert subprocess.run(["pgrep", "-f", "^sleep 600$"], capture_output=True).returncode == 1
    assert our_mounts() == []


@pytest.mark.timeout(INNER_LIMIT + 300)
def test_unit_and_kernel_tests_pass_under_python39_in_the_image(image, tmp_path, capsys,
                                                                record_property):
    """The suite runs inside the image with its python3: pybpf from the unpacked wheel
    (bound over the tree's pybpf/ too, for the tests that run it from there), the tree
    read-only at /src, the test extra from a directory outside the image bound on
    Debian's empty /usr/lib/python3/dist-packages for this run only (so a test that
    sets its own PYTHONPATH still finds it). Tests needing a tool the image lacks by
    design (clang, gcc, bpftool, kernel sources) skip there, saying so
    (toolbox.setup_missing). Left out: the vm and patched tiers, and the host's
    drivers of the tiers (this module, test_vm_tier.py, test_patched_kernel.py,
    test_arm64_tier.py), which boot or build what the image cannot."""
    deps = image_root.deps_dir()
    site = image_root.site_packages(image[0])
    results = tmp_path / "results"
    results.mkdir()
    drivers = ["test_minimal_image.py", "test_vm_tier.py", "test_patched_kernel.py",
               "test_arm64_tier.py"]
    start = time.monotonic()
    suite = ["python3", "-m", "pytest", "-c", "/src/setup.cfg", "--rootdir", "/src",
             "-p", "no:cacheprovider", "-m", "not vm and not patched", "-q",
             "--junitxml=/results/junit.xml",
             *[f"--ignore=/src/tests/kernel/{d}" for d in drivers],
             "/src/tests/unit", "/src/tests/kernel"]
    # First, from the same directory and with the same path, which pybpf imports.
    proc = in_image(
        image, "sh", "-c", 'python3 -c "import pybpf; print(pybpf.__file__)" && exec "$@"',
        "sh", *suite,
        binds=[(REPO, "/src", True), (f"image:{site}/pybpf", "/src/pybpf", True),
               (deps, "/usr/lib/python3/dist-packages", True),
               (str(results), "/results", False)],
        env={"PYTHONDONTWRITEBYTECODE": "1", "PYBPF_MINIMAL_IMAGE": "1"},
        timeout=INNER_LIMIT)
    seconds = round(time.monotonic() - start, 1)
    record_property("image_tests_wall_time_s", seconds)
    assert (results / "junit.xml").exists(), \
        f"the suite in the image wrote no junit report:\n{tail(proc.stdout + proc.stderr)}"
    tests, failures, errors, skipped = junit_totals(results / "junit.xml")
    with capsys.disabled():
        print(f"\nminimal image (Python 3.9): {tests - skipped - failures - errors} passed, "
              f"{skipped} skipped, {failures} failed, {errors} errors in {seconds} s; "
              f"skipped for:")
        for reason, count in skip_reasons(results / "junit.xml").most_common():
            print(f"  {count:4}  {reason}")
    assert proc.returncode == 0, tail(proc.stdout + proc.stderr)
    assert proc.stdout.splitlines()[0] == f"{site}/pybpf/__init__.py"
    assert (failures, errors) == (0, 0)
    assert tests - skipped > 1000, f"only {tests - skipped} tests ran in the image"
