"""``python -m pybpf prog|map``: the objects this test creates must be listed, shown and
dumped with the right values, agree with bpftool, and errors must be one clear line."""
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

import pybpf
from pybpf.kernel import system
from pybpf import Map, Program, inventory
from pybpf.asm import exit, ld_map_fd, mov64
from pybpf.cli import main
from toolbox import setup_missing

REPO = os.path.dirname(os.path.dirname(os.path.abspath(pybpf.__file__)))
MISSING_ID = 0x7FFFFFF0  # ids count up from 1; nothing gets near this in a test run


@pytest.fixture
def hash_map():
    with Map.create("hash", key="I", value="Q", max_entries=8, name="cli_hash") as m:
        m[1] = 5
        m[2] = 0x1122334455667788
        yield m


@pytest.fixture
def prog(hash_map):
    insns = [ld_map_fd(1, hash_map.fd), mov64(0, 0), exit()]
    with Program.load("socket_filter", insns, name="cli_prog") as p:
        yield p


def run(capsys, *argv):
    """main(argv) in this process: (status, parsed JSON or text, stderr)."""
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, (json.loads(out) if "--json" in argv and status == 0 else out), err


def by_id(docs, obj_id):
    found = [d for d in docs if d["id"] == obj_id]
    assert len(found) == 1, f"id {obj_id} listed {len(found)} times"
    return found[0]


def le_hex(value, size):
    return [f"0x{b:02x}" for b in value.to_bytes(size, "little")]


# ---- prog -------------------------------------------------------------------------

def test_prog_list_json_has_our_program(capsys, prog, hash_map):
    status, progs, _ = run(capsys, "prog", "list", "--json")
    assert status == 0
    doc = by_id(progs, prog.id)
    info = prog.info()
    assert doc["type"] == "socket_filter"
    assert doc["name"] == "cli_prog"
    assert doc["tag"] == info.tag and len(doc["tag"]) == 16
    assert doc["map_ids"] == [hash_map.id]
    assert doc["uid"] == os.geteuid()
    assert doc["bytes_xlated"] == len(prog.xlated()) == 4 * 8  # ld_imm64 is two slots
    assert doc["verified_insns"] >= 3
    loaded_at = datetime.fromisoformat(doc["loaded_at"])
    assert abs(loaded_at - datetime.now(timezone.utc)) < timedelta(minutes=1)


def test_prog_list_text_row(capsys, prog):
    status, out, _ = run(capsys, "prog", "list")
    assert status == 0
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["ID", "TYPE", "NAME", "TAG"]
    ours = [r for r in rows if r.split()[:1] == [str(prog.id)]]
    assert len(ours) == 1 and ours[0].split()[1:4] == ["socket_filter", "cli_prog",
                                                       prog.info().tag]


def test_prog_list_matches_bpftool(capsys, prog, hash_map):
    bpftool = shutil.which("bpftool")
    if bpftool is None:
        setup_missing("bpftool is not installed: run the test set-up, bash tools/run-tests")
    with Program.load("socket_filter", [mov64(0, 1), exit()], name="cli_prog2") as other:
        ours = {prog.id, other.id}
        ref = json.loads(subprocess.run([bpftool, "-j", "prog", "list"], check=True,
                                        capture_output=True, text=True).stdout)
        status, progs, _ = run(capsys, "prog", "list", "--json")
    assert status == 0
    assert {p["id"] for p in progs} & ours == {p["id"] for p in ref} & ours == ours
    for pid in ours:
        mine, theirs = by_id(progs, pid), by_id(ref, pid)
        for key in ("type", "name", "tag", "bytes_xlated", "bytes_jited", "gpl_compatible"):
            assert mine[key] == theirs[key], key
        assert mine["map_ids"] == theirs.get("map_ids", [])


def test_prog_stats_counted_while_enabled(capsys, prog):
    with pybpf.enable_stats():
        prog.test_run(bytes(64), repeat=7)
        status, progs, _ = run(capsys, "prog", "list", "--json")
        text_status, text, _ = run(capsys, "prog", "list")
    assert status == text_status == 0
    assert by_id(progs, prog.id)["run_cnt"] >= 7
    assert "RUNS" in text.splitlines()[0]


def test_prog_show_by_id_and_insns(capsys, prog, hash_map):
    status, out, _ = run(capsys, "prog", "show", str(prog.id), "--insns")
    assert status == 0
    fields = dict(line.split(None, 1) for line in out.split("xlated instructions:")[0]
                  .splitlines())
    assert fields["id"] == str(prog.id) and fields["name"] == "cli_prog"
    insns = out.split("xlated instructions:\n")[1].splitlines()
    assert [line.split(":")[0].strip() for line in insns] == ["0", "2", "3"]
    assert insns[0].endswith(f"# map id {hash_map.id}")
    assert insns[1].endswith("r0 = 0") and insns[2].endswith("exit")

    status, doc, _ = run(capsys, "prog", "show", "id", str(prog.id), "--insns", "--json")
    assert status == 0 and doc["id"] == prog.id
    assert [i["bytes"] for i in doc["xlated"]][1:] == ["b700000000000000", "9500000000000000"]


def test_prog_show_pinned(capsys, prog, bpffs):
    path = os.path.join(bpffs, "p")
    prog.pin(path)
    try:
        for argv in (["pinned", path], [path]):
            status, doc, _ = run(capsys, "prog", "show", *argv, "--json")
            assert status == 0 and doc["id"] == prog.id
    finally:
        os.unlink(path)


# ---- map --------------------------------------------------------------------------

def test_map_list_and_show(capsys, hash_map):
    status, maps, _ = run(capsys, "map", "list", "--json")
    assert status == 0
    expected = {"id": hash_map.id, "type": "hash", "name": "cli_hash", "flags": 0,
                "bytes_key": 4, "bytes_value": 8, "max_entries": 8, "frozen": False}
    doc = by_id(maps, hash_map.id)
    assert {k: doc[k] for k in expected} == expected and doc["bytes_memlock"] > 0
    status, shown, _ = run(capsys, "map", "show", str(hash_map.id), "--json")
    assert status == 0 and shown == doc


def test_map_dump_text(capsys, hash_map):
    status, out, _ = run(capsys, "map", "dump", "id", str(hash_map.id))
    assert status == 0
    lines = out.splitlines()
    assert sorted(lines[:2]) == ["key: 01 00 00 00  value: 05 00 00 00 00 00 00 00",
                                 "key: 02 00 00 00  value: 88 77 66 55 44 33 22 11"]
    assert lines[2:] == ["Found 2 elements"]


def test_map_dump_json_in_subprocess(hash_map):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [REPO, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-m", "pybpf", "map", "dump", str(hash_map.id),
                           "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    entries = sorted(json.loads(proc.stdout), key=lambda e: e["key"])
    assert entries == [{"key": le_hex(1, 4), "value": le_hex(5, 8)},
                       {"key": le_hex(2, 4), "value": le_hex(0x1122334455667788, 8)}]


def test_map_dump_per_cpu(capsys):
    ncpus = system.possible_cpus()
    with Map.create("percpu_array", value="I", max_entries=2) as m:
        m[1] = list(range(10, 10 + ncpus))
        status, entries, _ = run(capsys, "map", "dump", str(m.id), "--json")
    assert status == 0
    assert entries[1] == {"key": le_hex(1, 4), "values": [
        {"cpu": cpu, "value": le_hex(10 + cpu, 4)} for cpu in range(ncpus)]}
    assert all(v["value"] == le_hex(0, 4) for v in entries[0]["values"])


def test_map_dump_prog_array_names_the_program(capsys, prog):
    with Map.create("prog_array", max_entries=2) as pa:
        pa[1] = prog
        status, entries, _ = run(capsys, "map", "dump", str(pa.id), "--json")
        _, text, _ = run(capsys, "map", "dump", str(pa.id))
    assert status == 0
    assert entries == [{"key": le_hex(1, 4), "value": le_hex(prog.id, 4), "prog_id": prog.id}]
    assert f"(prog id {prog.id})" in text


def test_map_dump_pinned_queue_peeks(capsys, bpffs):
    path = os.path.join(bpffs, "q")
    with Map.create("queue", value="I", max_entries=4) as q:
        q.push(7)
        q.push(8)
        q.pin(path)
        try:
            status, entries, err = run(capsys, "map", "dump", path, "--json")
        finally:
            os.unlink(path)
        assert q.pop() == 7 and q.pop() == 8  # dumping removed nothing
    assert status == 0 and entries == [{"value": le_hex(7, 4)}]
    assert "only its next element" in err


@pytest.mark.parametrize("create", [
    lambda: Map.create("ringbuf", max_entries=4096),
    lambda: Map.create("perf_event_array", max_entries=2),
], ids=["ringbuf", "perf_event_array"])
def test_map_dump_unreadable_types_say_why(capsys, create):
    with create() as m:
        status, out, err = run(capsys, "map", "dump", str(m.id))
    assert status == 1 and out == ""
    assert err.count("\n") == 1 and f"cannot dump map {m.id}" in err
    assert "Traceback" not in err


# ---- errors and races ---------------------------------------------------------------

@pytest.mark.parametrize("argv,message", [
    (["prog", "show", str(MISSING_ID)], f"no program with id {MISSING_ID} is loaded"),
    (["map", "dump", "id", str(MISSING_ID)], f"no map with id {MISSING_ID} is loaded"),
    (["map", "show", "id", "x"], "an id is a number, got 'x'"),
    (["map", "show", "bogus", "5"], "expected ID, PATH, 'id ID' or 'pinned PATH'"),
])
def test_unknown_ids_are_one_line_errors(capsys, argv, message):
    status, out, err = run(capsys, *argv)
    assert status == 1 and out == ""
    assert err.count("\n") == 1 and message in err


def test_pin_errors(capsys, bpffs, hash_map, tmp_path):
    missing = os.path.join(bpffs, "missing")
    status, _, err = run(capsys, "map", "show", missing)
    assert status == 1 and f"nothing is pinned at {missing}" in err

    status, _, err = run(capsys, "map", "show", "pinned", str(tmp_path))
    assert status == 1 and "is not on a bpf filesystem" in err

    path = os.path.join(bpffs, "m")
    hash_map.pin(path)
    try:
        status, _, err = run(capsys, "prog", "show", path)
    finally:
        os.unlink(path)
    assert status == 1 and err.count("\n") == 1
    assert f"{path} is a pinned map, not a program" in err


def test_list_skips_objects_that_vanish(capsys, monkeypatch, hash_map):
    """An id can be freed between GET_NEXT_ID and GET_FD_BY_ID: list must skip it."""
    real_ids = inventory.ids

    def ids_with_a_ghost(kind):
        yield MISSING_ID
        yield from real_ids(kind)
    monkeypatch.setattr(inventory, "ids", ids_with_a_ghost)
    status, maps, _ = run(capsys, "map", "list", "--json")
    assert status == 0
    assert MISSING_ID not in {m["id"] for m in maps} and by_id(maps, hash_map.id)
