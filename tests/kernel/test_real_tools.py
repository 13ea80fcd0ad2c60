"""Objects other people wrote and ship: the BPF programs inside Debian's libbpf-tools.

tools/extract_bpf_objects.py takes each tool's object out of its binary. Then:

- Debian's own ``opensnoop -p PID`` and ``execsnoop``, and ``python -m pybpf run`` of
  their objects with the ``--set`` values their user space sets, watch the same
  workload (a process that opens five named files and execs three named commands);
  both must see the same files and commands.
- ``run --json`` of every tool whose programs attach on this kernel exits 0 with
  decoded events or maps, given the options the tool's user space would apply
  (variants the kernel runs, sizes of unsized maps). Tools that need kprobes run in
  the VM tier.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from pybpf.kernel import system

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
import extract_bpf_objects  # noqa: E402
import libbpf_tools  # noqa: E402

SBIN = libbpf_tools.SBIN
HEADERS = libbpf_tools.HEADERS
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
WORKLOAD = """
import os, subprocess, sys
where = sys.argv[1]
sys.stdin.readline()                 # go: the tracer is attached
for i in range(5):
    open(os.path.join(where, f"pybpf-file-{i}"), "w").close()
for i in range(3):
    subprocess.run([os.path.join(where, f"pybpfcmd{i}")], check=True)
"""
FILES = {f"pybpf-file-{i}" for i in range(5)}
COMMANDS = {f"pybpfcmd{i}" for i in range(3)}

# What each tool's user space does before load (variants, map sizes, event types) and
# which tools can run where: tools/libbpf_tools.py, shared with tools/conformance.
RUNNABLE = libbpf_tools.RUNNABLE
SKIPPED = {**{t: libbpf_tools.KPROBES for t in libbpf_tools.NEED_KPROBES},
           **libbpf_tools.NOT_RUNNABLE}


@pytest.fixture(scope="module")
def opensnoop():
    path = os.path.join(SBIN, "opensnoop")
    if not os.path.exists(path):
        pytest.skip("Debian's libbpf-tools is not installed (apt-get install libbpf-tools)")
    return path


@pytest.fixture(scope="module")
def objects(tmp_path_factory, opensnoop):
    return libbpf_tools.extract_all(str(tmp_path_factory.mktemp("libbpf_tools")))


def _tool_args(objects, tool):
    """The run options tool's user space amounts to, on the running kernel."""
    return libbpf_tools.run_args(tool, libbpf_tools.sections_of(objects[tool]),
                                 libbpf_tools.this_kernel())


def test_every_binary_of_the_package_has_one_object(objects):
    assert set(objects) == set(RUNNABLE) | set(SKIPPED)
    with open(objects["opensnoop"], "rb") as f:
        assert f.read(20)[18] == extract_bpf_objects.EM_BPF


def test_find_objects_finds_several_and_skips_lookalikes(opensnoop):
    with open(opensnoop, "rb") as f:
        [obj] = extract_bpf_objects.find_objects(f.read())
    fake_elf = b"\x7fELF" + bytes(60)  # a header that is no EM_BPF object
    blob = b"junk" + obj + fake_elf + b"\x7fEL" + obj + b"tail"
    assert extract_bpf_objects.find_objects(blob) == [obj, obj]


@pytest.fixture
def workload(tmp_path):
    for name in COMMANDS:
        shutil.copy("/bin/true", tmp_path / name)
    return tmp_path


def _trace(workload, tracer, ready_on_stderr):
    """Start the workload (held), then the tracer (tracer(pid) -> argv); once the
    tracer says it is attached, let the workload go; stop the tracer with SIGINT
    when it is done. The tracer's stdout.

    Debian's tools print their header before they open their perf buffer (records
    sent meanwhile are dropped) and exit on SIGINT without reading what is left in
    it, so they get half a second after the header and a second before SIGINT;
    pybpf run opens its readers before attaching and reads them once more after
    detaching."""
    work = subprocess.Popen([sys.executable, "-c", WORKLOAD, str(workload)],
                            stdin=subprocess.PIPE, text=True)
    try:
        proc = subprocess.Popen(tracer(work.pid), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=ENV)
        first = (proc.stderr if ready_on_stderr else proc.stdout).readline()
        assert first, proc.stderr.read()
        if not ready_on_stderr:
            time.sleep(0.5)
        work.stdin.write("go\n")
        work.stdin.close()
        assert work.wait(timeout=30) == 0
        if not ready_on_stderr:
            time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode in (0, 130), err
        return first + out if not ready_on_stderr else out
    finally:
        work.kill()
        work.wait()


def _debian(tool, *options):
    stdbuf = shutil.which("stdbuf")
    if stdbuf is None:
        pytest.skip("stdbuf (coreutils) is needed to see the tool's header when it is ready")
    return [stdbuf, "-oL", os.path.join(SBIN, tool), *options]


def _pybpf_run(obj, *options):
    return [sys.executable, "-m", "pybpf", "run", obj, "--json", *options]


def test_opensnoop_sees_what_debians_opensnoop_sees(objects, workload):
    debian = _trace(workload, lambda pid: _debian("opensnoop", "-p", str(pid)), False)
    seen_by_debian = {os.path.basename(line.split()[-1]) for line in debian.splitlines()[1:]
                      if line.split()}
    header = os.path.join(HEADERS, "opensnoop.h")
    doc = json.loads(_trace(workload, lambda pid: _pybpf_run(
        objects["opensnoop"], "--set", f"targ_tgid={pid}",
        "--event-type", f"{header}:event"), True))
    seen_by_pybpf = {os.path.basename(e["value"]["fname"]) for e in doc["events"]}
    assert FILES <= seen_by_debian
    assert FILES <= seen_by_pybpf
    assert seen_by_pybpf & FILES == seen_by_debian & FILES
    mine = [e["value"] for e in doc["events"] if e["value"]["fname"].endswith("file-0")]
    assert mine[0]["comm"].startswith("python")
    assert mine[0]["ret"] >= 0   # the fd it got
    assert doc["maps"][".rodata"]["targ_tgid"] > 0


def test_execsnoop_sees_what_debians_execsnoop_sees(objects, workload):
    debian = _trace(workload, lambda pid: _debian("execsnoop"), False)
    seen_by_debian = {line.split()[0] for line in debian.splitlines()[1:] if line.split()}
    doc = json.loads(_trace(workload, lambda pid: _pybpf_run(
        objects["execsnoop"], "--set", "max_args=20", "--set", "ignore_failed=true",
        "--event-type", "event"), True))
    seen_by_pybpf = {e["value"]["comm"] for e in doc["events"]}
    assert COMMANDS <= seen_by_debian
    assert COMMANDS <= seen_by_pybpf
    args = {e["value"]["args"] for e in doc["events"] if e["value"]["comm"] in COMMANDS}
    assert {os.path.basename(a) for a in args} == COMMANDS  # argv[0], up to its NUL
    assert {"name": "cgroup_map", "type": "cgroup_array",
            "reason": "cgroup fds, which the kernel does not read back"} \
        in doc["unreadable_maps"]


@pytest.mark.parametrize("tool", sorted(RUNNABLE))
def test_run_json_of_each_tool_that_attaches_here(objects, tool):
    _run_json(objects, tool, "ls / > /dev/null; kill -0 $$")


def _run_json(objects, tool, workload, duration=0.2):
    """run --json of tool's object over the shell command workload, with its user
    space's options: exits 0, every program attached, maps or events decoded.
    duration bounds the run (it ends earlier when the workload does)."""
    out = subprocess.run(_pybpf_run(objects[tool], "--duration", str(duration),
                                    *_tool_args(objects, tool), "--", "sh", "-c", workload),
                         capture_output=True, text=True, timeout=60 + duration, env=ENV)
    assert out.returncode == 0, out.stdout + out.stderr
    doc = json.loads(out.stdout)
    assert all(p["attached"] for p in doc["programs"]) and doc["programs"]
    assert doc["maps"] or doc["events"]
    for entry in doc["unreadable_maps"]:
        assert entry["reason"]
    return doc


@pytest.mark.parametrize("tool", sorted(SKIPPED))
def test_tools_that_cannot_run_here(objects, tool):
    pytest.skip(SKIPPED[tool])


# A handful of the tools that need kprobes, run in the VM tier (Debian's 6.1, which has
# them): tool -> a workload that gives it something to record. Chosen for the ways they
# attach and report: vfsstat picks fentry or kprobe variants (6.1 runs fentry, so it
# takes those) and counts in .bss, slabratetop kprobes an allocator with a hash of
# caches, filelife sends perf events of a file created and deleted. Three, to keep the
# emulated VM's time near a minute (most of it extracting the objects).
IN_VM = {
    "vfsstat": "cat /etc/passwd > /dev/null; ls / > /dev/null",
    "slabratetop": "ls -R /etc > /dev/null 2>&1",
    "filelife": "f=$(mktemp); echo x > $f; sleep 0.1; rm $f",
}


@pytest.mark.vm
@pytest.mark.skipif(system.pmu_type("kprobe") is None, reason=libbpf_tools.KPROBES)
@pytest.mark.parametrize("tool", sorted(IN_VM))
def test_run_json_of_tools_that_need_kprobes(objects, tool):
    doc = _run_json(objects, tool, IN_VM[tool], duration=20)  # the VM is emulated: slow
    recorded = doc["events"] or [m for m in doc["maps"].values() if m]
    assert recorded, doc
