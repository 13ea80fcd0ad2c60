"""``run``'s events, typed report and load options, with tests/progs/run/events.bpf.c:
each getpid() of process targ_tgid (this test process) sends one record through a
ring buffer and one through a perf event array."""
import json
import os
import signal
import subprocess
import sys

import pytest

from pybpf.loader import BpfObject

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
SETUP = ["--no-autoload", "on_nanosleep", "--max-entries", "seen=16", "--set", "enabled=1",
         "--set", "tag=hello", "--set", 'settings={"limit": 7, "bytes": [1, 2]}']


@pytest.fixture(scope="module")
def events_obj(run_object):
    return run_object("events")


def _run_around_getpids(*argv, calls=3):
    """pybpf run ARGV in the background with targ_tgid = this process; getpid()
    `calls` times once it is attached, then SIGINT; (status, stdout, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "pybpf", "run", *argv, "--set",
                             f"targ_tgid={os.getpid()}"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    first = proc.stderr.readline()
    assert first.startswith("pybpf run: "), first + proc.stderr.read()
    for _ in range(calls):
        os.getpid()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out, first + err


def test_events_decoded_through_the_objects_btf(events_obj):
    status, out, err = _run_around_getpids(events_obj, "--json", *SETUP,
                                           "--event-type", "event")
    assert status == 0, err
    doc = json.loads(out)
    ring = [e for e in doc["events"] if e["map"] == "ring"]
    perf = [e for e in doc["events"] if e["map"] == "perf"]
    assert len(ring) == len(perf) == 3 and doc["event_counts"] == {"ring": 3, "perf": 3}
    first = ring[0]["value"]
    assert first == {"pid": os.getpid(), "kind": "KIND_RING", "comm": first["comm"],
                     "tag": "hello", "seq": first["seq"]}
    assert perf[0]["value"]["kind"] == "KIND_PERF" and "cpu" in perf[0]
    assert sorted(e["value"]["seq"] for e in ring) == [0, 1, 2]
    rodata = doc["maps"][".rodata"]
    assert rodata["settings"] == {"limit": 7, "bytes": [1, 2]} and rodata["enabled"] is True
    assert rodata["tag"] == "hello" and rodata["targ_tgid"] == os.getpid()
    assert doc["maps"]["seen"] == [{"key": os.getpid(),
                                    "value": {"limit": 7, "bytes": [1, 2]}}]
    assert doc["maps"][".bss"]["stext"] != 0  # the typeless ksym's address, from kallsyms
    reasons = {e["name"]: e["reason"] for e in doc["unreadable_maps"]}
    assert set(reasons) == {"ring", "perf", "cgroups"} and "cgroup fds" in reasons["cgroups"]
    assert [p["name"] for p in doc["programs"]] == ["on_getpid"]


def test_json_lines_per_map_types_and_untyped_records(events_obj):
    status, out, err = _run_around_getpids(
        events_obj, "--json-lines", "--only", "on_getpid", "--max-entries", "seen=16",
        "--set", "enabled=true", "--event-type", "ring=event", calls=2)
    assert status == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    *events, last = lines
    assert set(last) == {"report"} and "events" not in last["report"]
    assert len(events) == 4
    typed = [e for e in events if e["map"] == "ring"]
    raw = [e for e in events if e["map"] == "perf"]
    assert typed[0]["value"]["tag"] == "none"
    assert raw[0]["size"] >= 40 and "none" in raw[0]["text"]  # printable runs as text
    assert bytes.fromhex(raw[0]["hex"])[:4] == os.getpid().to_bytes(4, sys.byteorder)


def test_text_output_prints_events_and_reasons(events_obj):
    status, out, err = _run_around_getpids(events_obj, *SETUP, "--event-type", "event",
                                           calls=1)
    assert status == 0, err
    assert out.count('event ring: {"pid"') == 1 and out.count("event perf:") == 1
    assert "map cgroups (cgroup_array): not shown: cgroup fds" in out
    assert "events ring: 1 records" in out


@pytest.mark.parametrize("argv,stage,message", [
    (["/nonexistent.o"], "open", "No such file"),
    (["{obj}", "--set", "nope=1"], "options", "no global variable 'nope'"),
    (["{obj}", "--set", "enabled=maybe"], "options", "takes true or false"),
    (["{obj}", "--set", "tag=much too long"], "options", "holds 8"),
    (["{obj}", "--max-entries", "seen"], "options", "write NAME=VALUE"),
    (["{obj}", "--only", "missing"], "options", "no program 'missing'"),
    (["{obj}", "--event-type", "nosuch"], "options", "no struct, union or typedef 'nosuch'"),
    (["{obj}", "--event-type", "x.h:event"], "options", "No such file"),
    (["{obj}"], "load", "seen"),                      # unsized map: the kernel refuses it
    (["{obj}", "--max-entries", "seen=4"], "load", "on_nanosleep"),  # fentry: EPERM here
    (["{obj}", "--json-lines"], "arguments", "give one of them"),
])
def test_every_json_error_is_a_document(events_obj, argv, stage, message):
    argv = [a.format(obj=events_obj) for a in argv]
    out = subprocess.run([sys.executable, "-m", "pybpf", "run", *argv, "--json",
                          "--duration", "0"], capture_output=True, text=True, timeout=60,
                         env=ENV)
    assert out.returncode == 1
    doc = json.loads(out.stdout)
    assert doc["stage"] == stage and message in doc["error"], doc
    assert "Traceback" not in out.stderr


def test_load_takes_the_same_options(events_obj):
    out = subprocess.run([sys.executable, "-m", "pybpf", "load", events_obj, "--json",
                          *SETUP], capture_output=True, text=True, timeout=60, env=ENV)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert [p["name"] for p in doc["programs"]] == ["on_getpid"]
    assert {m["name"]: m["max_entries"] for m in doc["maps"]}["seen"] == 16


def test_long_kconfig_strings_are_truncated_with_a_warning(events_obj):
    with BpfObject.open(events_obj) as obj:
        obj.spec.maps["seen"].max_entries = 4
        obj.load(programs=["on_getpid"], kconfig={"CONFIG_PYBPF_TEST_STRING": '"toolong"'})
        assert obj.maps[".kconfig"][0][:4] == b"too\0"
        [warning] = obj.warnings
        assert "CONFIG_PYBPF_TEST_STRING" in warning and "truncated to 3 bytes" in warning
