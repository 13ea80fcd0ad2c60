"""``python -m pybpf run``: attach an object's programs around a command, then report.

Runs the real command line in a subprocess (so exit statuses and signals are real),
with tests/progs/run/getpid_count.bpf.c counting getpid() calls per process at the
raw sys_enter tracepoint.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pybpf.cli import main
from pybpf.links import BpfLink, attach_raw_tracepoint, iter_links
from pybpf.maps import Map
from pybpf.programs import Program

from test_pins import pin_race, tree, unpin_tree  # noqa: F401 (pin_race: a fixture)
from test_tailcalls import build_counting_getpid

CALLS = "import os; [os.getpid() for _ in range(100)]"
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))


@pytest.fixture(scope="module")
def objs(clang, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_run")
    return {name: build_counting_getpid(clang, name, out)[0]
            for name in ("getpid_count", "chain", "xdp_count")}


def pybpf(*argv, timeout=60):
    return subprocess.run([sys.executable, "-m", "pybpf", *argv], capture_output=True,
                          text=True, timeout=timeout, env=ENV)


def start(*argv):
    """pybpf run in the background, returned once its programs are attached."""
    proc = subprocess.Popen([sys.executable, "-m", "pybpf", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    line = proc.stderr.readline()
    assert line.startswith("pybpf run: count_getpid"), line + proc.stderr.read()
    return proc


def links_of(prog_id):
    found = []
    for link_id in iter_links():
        try:
            with BpfLink.from_id(link_id) as link:
                if link.info().prog_id == prog_id:
                    found.append(link_id)
        except OSError:
            pass  # gone meanwhile
    return found


def test_run_counts_the_commands_getpid_calls(objs):
    out = pybpf("run", objs["getpid_count"], "--json", "--", sys.executable, "-c", CALLS)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["object"] == "getpid_count"
    [prog] = doc["programs"]
    assert prog["name"] == "count_getpid" and prog["section"] == "raw_tracepoint/sys_enter"
    assert "raw_tracepoint/sys_enter" in prog["attached"]
    pid = doc["command"]["pid"]
    assert doc["command"]["argv"][0] == sys.executable and doc["command"]["exit_status"] == 0
    per_process = {e["key"]: e["value"] for e in doc["maps"]["calls"]}
    assert per_process[pid] >= 100  # the interpreter itself calls getpid() a few times too
    assert doc["maps"][".bss"]["total"] >= per_process[pid]
    assert links_of(prog["id"]) == []  # detached on the way out


def test_run_text_output_and_the_commands_exit_status(objs):
    out = pybpf("run", objs["getpid_count"], "--", sys.executable, "-c",
                CALLS + "; raise SystemExit(7)")
    assert out.returncode == 7, out.stderr
    assert "exited with 7" in out.stdout
    assert "map calls:" in out.stdout and "map .bss:" in out.stdout
    assert "total =" in out.stdout
    assert "count_getpid (raw_tracepoint/sys_enter)" in out.stderr


def test_run_for_a_duration(objs):
    out = pybpf("run", objs["getpid_count"], "--duration", "0.3", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["command"] is None and doc["seconds"] >= 0.3


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_run_detaches_and_reports_on_signal(objs, signum):
    proc = start("run", objs["getpid_count"], "--json")
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    doc = json.loads(stdout)
    assert doc["maps"]["calls"] is not None
    assert links_of(doc["programs"][0]["id"]) == []


def test_sigterm_is_passed_on_to_the_command(objs):
    proc = start("run", objs["getpid_count"], "--json", "--", "sleep", "30")
    assert proc.stderr.readline().startswith("pybpf run: started sleep (pid ")
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    doc = json.loads(stdout)
    assert doc["command"]["exit_status"] == 128 + signal.SIGTERM
    assert doc["seconds"] < 20


def _alive(pid):
    """Whether pid runs (a zombie, exited but not yet reaped by its new parent, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_sigkill_of_run_takes_the_command_with_it(objs):
    """run cannot pass on a SIGKILL of its own; the kernel does (parent-death signal)."""
    proc = start("run", objs["getpid_count"], "--", "sleep", "60")
    line = proc.stderr.readline()
    assert line.startswith("pybpf run: started sleep (pid "), line
    child = int(line.split("(pid ")[1].rstrip(")\n"))
    try:
        proc.kill()
        proc.wait(timeout=30)  # not communicate(): an orphaned command keeps the pipes open
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the command outlived the killed run"
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)
        proc.stdout.close()
        proc.stderr.close()


def test_duration_stops_a_longer_command(objs):
    out = pybpf("run", objs["getpid_count"], "--duration", "0.3", "--json", "--", "sleep", "30")
    assert out.returncode == 128 + signal.SIGTERM
    assert json.loads(out.stdout)["seconds"] < 20


def test_tail_call_targets_are_filled_not_attached(objs):
    out = pybpf("run", objs["chain"], "--tail-call", "jumps[1]=b", "--tail-call", "jumps[2]=c",
                "--json", "--", sys.executable, "-c", CALLS)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    progs = {p["name"]: p for p in doc["programs"]}
    assert progs["a"]["attached"] and "raw_tracepoint/sys_enter" in progs["a"]["attached"]
    assert progs["b"]["attached"] is None and progs["b"]["skipped"] == "tail-call target in jumps"
    assert progs["c"]["skipped"] == "tail-call target in jumps"
    result = doc["maps"][".bss"]["result"]
    assert result >= 111 * 100 and result % 111 == 0
    assert {e["key"]: e["value"] for e in doc["maps"]["jumps"]} == {
        1: progs["b"]["id"], 2: progs["c"]["id"]}


def test_pin_keeps_programs_attached_after_the_command(objs, bpffs):
    out = pybpf("run", objs["getpid_count"], "--pin", bpffs, "--duration", "0", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["pinned"] == bpffs
    link_path = os.path.join(bpffs, "links", "count_getpid")
    try:
        with BpfLink.from_pin(link_path) as link, \
                Program.from_pin(os.path.join(bpffs, "count_getpid")) as prog:
            assert link.info().prog_id == prog.id
        with Map.from_pin(os.path.join(bpffs, "maps", "calls"), key="I", value="Q") as calls:
            before = calls.get(os.getpid(), 0)
            os.getpid()
            assert calls[os.getpid()] > before  # still counting, with pybpf run gone
        again = pybpf("run", objs["getpid_count"], "--pin", bpffs, "--duration", "0")
        assert again.returncode == 1 and "already pinned" in again.stderr
    finally:
        unpin_tree(bpffs)


def test_a_run_losing_a_pin_race_removes_only_its_own_pins(objs, bpffs, pin_race, capsys):
    """Another process pins our link's path between our check and our pin (forced
    here, so it happens every time): we fail, and take back our pins but not theirs."""
    theirs = os.path.join(bpffs, "links", "count_getpid")
    rival = pin_race(theirs)
    try:
        assert main(["run", objs["getpid_count"], "--pin", bpffs, "--duration", "0"]) == 1
        assert "EEXIST" in capsys.readouterr().err
        assert tree(bpffs) == ["links", "links/count_getpid"]
        with Map.from_pin(theirs) as m:
            assert m.id == rival.id
    finally:
        unpin_tree(bpffs)


RACE_ROUNDS = int(os.environ.get("PYBPF_PIN_RACE_ROUNDS", "6"))


def test_two_runs_racing_to_pin_one_directory_never_both_claim_it(objs, bpffs):
    """Whoever says "pinned" keeps every pin it made: a loser's rollback removes only its
    own pins (it used to remove the winner's by path: exit 0, nothing pinned)."""
    names = ["count_getpid", "links/count_getpid", "maps/calls", "maps/bss"]
    for _ in range(RACE_ROUNDS):
        procs = [subprocess.Popen([sys.executable, "-m", "pybpf", "run", objs["getpid_count"],
                                   "--pin", bpffs, "--duration", "0", "--json"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=ENV) for _ in range(2)]
        results = [(p.wait(timeout=60), p.stdout.read(), p.stderr.read()) for p in procs]
        for p in procs:
            p.stdout.close()
            p.stderr.close()
        try:
            winners = [json.loads(out)["programs"][0]["id"] for rc, out, _ in results if rc == 0]
            assert len(winners) <= 1, results
            for prog_id in winners:
                for name in names:
                    assert os.path.lexists(os.path.join(bpffs, name)), (name, results)
                with Program.from_pin(os.path.join(bpffs, "count_getpid")) as prog:
                    assert prog.id == prog_id
            assert all(rc in (0, 1) for rc, _, _ in results), results
        finally:
            unpin_tree(bpffs)


@pytest.mark.parametrize("argv,message", [
    (["/nonexistent/x.o"], "/nonexistent/x.o"),
    (["{xdp_count}"], "program 'xdp_filter' (section 'xdp') attaches to a network "
                      "interface: pass --iface IF"),
    (["{getpid_count}", "--program", "nope"], "no program 'nope'"),
    (["{chain}", "--tail-call", "jumps=b"], "write MAP[INDEX]=PROGRAM"),
    (["{chain}", "--tail-call", "jumps[1]=zz"], "no loaded program 'zz'"),
    (["{getpid_count}", "--", "/nonexistent/cmd"], "cannot run '/nonexistent/cmd'"),
])
def test_run_errors(objs, argv, message):
    out = pybpf("run", *[a.format(**objs) for a in argv])
    assert out.returncode == 1
    assert message in out.stderr, out.stderr


@pytest.mark.parametrize("duration", ["nan", "inf", "-1", "x"])
def test_run_refuses_a_duration_that_never_ends(objs, duration):
    out = pybpf("run", objs["getpid_count"], "--duration", duration, timeout=30)
    assert out.returncode == 2 and "--duration" in out.stderr, out.stderr


def test_link_detach_of_a_path_outside_bpffs_says_so(capsys, tmp_path):
    assert main(["link", "detach", str(tmp_path)]) == 1
    assert "not on a bpf filesystem" in capsys.readouterr().err


def test_link_detach_of_a_link_the_kernel_cannot_detach(objs, capsys):
    with Program.load("raw_tracepoint", bytes.fromhex("b700000000000000" "9500000000000000"),
                      name="noop") as prog:
        with attach_raw_tracepoint(prog, "sys_enter") as link:
            assert main(["link", "detach", str(link.id)]) == 1
            assert "cannot be detached" in capsys.readouterr().err
            assert main(["link", "list", "--json"]) == 0
            listed = {e["id"]: e for e in json.loads(capsys.readouterr().out)}
            assert listed[link.id]["prog_name"] == "noop"
            assert listed[link.id]["type"] == "raw_tracepoint"
