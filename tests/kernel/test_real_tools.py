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

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
import extract_bpf_objects  # noqa: E402

SBIN = "/usr/sbin"
HEADERS = os.path.join(os.path.dirname(__file__), "..", "data", "headers")
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

# Tools whose programs attach here, with what their user space does before load.
RUNNABLE = {
    "biolatency": [], "biopattern": [], "bitesize": [], "drsnoop": [],
    "execsnoop": ["--event-type", "event"], "exitsnoop": [], "hardirqs": [],
    "killsnoop": [], "mountsnoop": [], "runqlat": [], "runqslower": [],
    "sigsnoop": [], "softirqs": [], "statsnoop": [], "syscount": [], "tcplife": [],
    "tcpstates": [],
    "opensnoop": ["--event-type", os.path.join(HEADERS, "opensnoop.h") + ":event"],
    "cpudist": ["--max-entries", "start=10240", "--max-entries", "hists=10240"],
}
KPROBES = "needs kprobes (this kernel has none, and refuses fentry): runs in the VM tier"
SKIPPED = {
    **{t: KPROBES for t in (
        "bindsnoop", "biosnoop", "biostacks", "biotop", "btrfsdist", "btrfsslower",
        "cachestat", "ext4dist", "ext4slower", "filelife", "filetop", "fsdist", "fsslower",
        "klockstat", "mdflush", "nfsdist", "nfsslower", "numamove", "oomkill", "readahead",
        "slabratetop", "solisten", "tcpconnect", "tcpconnlat", "tcprtt", "tcpsynbl",
        "tcptop", "tcptracer", "vfsstat", "xfsdist", "xfsslower")},
    **{t: "its user space sizes the stack map's values (perf_max_stack_depth), which "
          "run has no option for" for t in ("capable", "offcputime", "wakeuptime")},
    **{t: "attaches to a function its user space names at run time (a dummy section)"
       for t in ("funclatency", "gethostlatency", "ksnoop")},
    "bashreadline": "its uretprobe attaches to bash's readline, found by its user space",
    "javagc": "attaches to a JVM's USDT probes, which need a running JVM",
    "cpufreq": "perf_event programs need the sampling events its user space opens",
    "llcstat": "perf_event programs need the hardware cache events its user space opens",
    "runqlen": "perf_event program; its user space opens the sampling events",
}


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    if not os.path.exists(os.path.join(SBIN, "opensnoop")):
        pytest.skip("Debian's libbpf-tools is not installed (apt-get install libbpf-tools)")
    out = tmp_path_factory.mktemp("libbpf_tools")
    found = {}
    for tool in sorted(set(RUNNABLE) | set(SKIPPED)):
        binary = os.path.join(SBIN, tool)
        if os.path.exists(binary):
            found[tool] = extract_bpf_objects.extract(binary, str(out))[0]
    return found


def test_every_binary_of_the_package_has_one_object(objects):
    assert set(objects) == set(RUNNABLE) | set(SKIPPED)
    with open(objects["opensnoop"], "rb") as f:
        assert f.read(20)[18] == extract_bpf_objects.EM_BPF


def test_find_objects_finds_several_and_skips_lookalikes():
    with open(os.path.join(SBIN, "opensnoop"), "rb") as f:
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
    out = subprocess.run(_pybpf_run(objects[tool], "--duration", "0.2", *RUNNABLE[tool],
                                    "--", "sh", "-c", "ls / > /dev/null; kill -0 $$"),
                         capture_output=True, text=True, timeout=60, env=ENV)
    assert out.returncode == 0, out.stdout + out.stderr
    doc = json.loads(out.stdout)
    assert all(p["attached"] for p in doc["programs"]) and doc["programs"]
    assert doc["maps"] or doc["events"]
    for entry in doc["unreadable_maps"]:
        assert entry["reason"]


@pytest.mark.parametrize("tool", sorted(SKIPPED))
def test_tools_that_cannot_run_here(objects, tool):
    pytest.skip(SKIPPED[tool])
