"""Pinning an object is all or nothing, and takes back only what it did.

``BpfObject.pin`` and ``load --pin`` used to leave the pins made before a failure, a
directory outside bpffs (or several, for a path with ``..``) when the pin was refused,
and rollback removed paths by name, including a pin another process had made there
meanwhile.
"""
import os
import subprocess
import sys

import pytest

import pybpf
from pybpf import Map, Program
from pybpf.kernel import bpf as kbpf
from pybpf.loader import BpfObject

from test_loader import build  # noqa: F401 (the fixture)

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))


def pybpf_load(*argv):
    return subprocess.run([sys.executable, "-m", "pybpf", "load", *argv],
                          capture_output=True, text=True, timeout=60, env=ENV)


def tree(root):
    """Every path below root, relative to it."""
    return sorted(os.path.relpath(os.path.join(d, n), root)
                  for d, dirs, files in os.walk(root) for n in dirs + files)


def unpin_tree(root):
    for d, dirs, files in os.walk(root, topdown=False):
        for name in files:
            pybpf.unpin(os.path.join(d, name))
        for name in dirs:
            os.rmdir(os.path.join(d, name))


def test_load_pin_where_one_pin_exists_pins_nothing(build, bpffs):  # noqa: F811
    os.mkdir(os.path.join(bpffs, "maps"))
    theirs = os.path.join(bpffs, "maps", "old_counts")
    with Map.create("array", value=4, max_entries=1) as m:
        m.pin(theirs)
        their_id = m.id
    try:
        out = pybpf_load(build("legacy"), "--pin", bpffs)
        assert out.returncode == 1 and "already pinned" in out.stderr, out.stderr
        assert tree(bpffs) == ["maps", "maps/old_counts"]
        with Map.from_pin(theirs) as m:
            assert m.id == their_id
    finally:
        unpin_tree(bpffs)


def test_load_pin_outside_bpffs_creates_no_directory(build, tmp_path):  # noqa: F811
    out = pybpf_load(build("legacy"), "--pin", str(tmp_path / "pins"))
    assert out.returncode == 1 and "not on a bpf filesystem" in out.stderr, out.stderr
    assert os.listdir(tmp_path) == []


def test_a_dotdot_path_out_of_bpffs_creates_nothing_anywhere(build, bpffs, tmp_path):  # noqa: F811
    up = [".."] * (bpffs.count("/") + 1)  # from bpffs/new to /
    escape = os.path.join(bpffs, "new", *up, str(tmp_path).lstrip("/"), "x")
    out = pybpf_load(build("legacy"), "--pin", escape)
    assert out.returncode == 1 and "not on a bpf filesystem" in out.stderr, out.stderr
    assert os.listdir(bpffs) == [] and os.listdir(tmp_path) == []


def test_a_dotdot_path_inside_bpffs_creates_only_what_it_names(build, bpffs):  # noqa: F811
    out = pybpf_load(build("legacy"), "--pin", os.path.join(bpffs, "a", "..", "b"))
    try:
        assert out.returncode == 0, out.stderr
        assert tree(bpffs) == ["b", "b/count", "b/maps", "b/maps/old_counts"]
    finally:
        unpin_tree(bpffs)


def test_pin_after_close_or_before_load_is_refused(build, bpffs):  # noqa: F811
    obj = BpfObject.open(build("legacy"))
    with pytest.raises(pybpf.InputError, match="load"):
        obj.pin(bpffs)
    obj.load()
    obj.close()
    assert "closed" in repr(obj)
    with pytest.raises(pybpf.ClosedError):
        obj.pin(bpffs)
    assert os.listdir(bpffs) == []


@pytest.fixture
def pin_race(monkeypatch):
    """pin_race(path): right after this process's next pin, a map of "another process"
    is pinned at path (its directory made if need be), as if two raced for one
    directory and the other got there between our check and our pin. Returns that
    map."""
    rivals = []

    def race(path):
        rival = Map.create("array", value=4, max_entries=1)
        rivals.append(rival)
        real_pin = kbpf.obj_pin

        def pin_then_rival(fd, where):
            real_pin(fd, where)
            if not os.path.lexists(path):
                os.makedirs(os.path.dirname(path), exist_ok=True)
                real_pin(rival.fd, path)
        monkeypatch.setattr(kbpf, "obj_pin", pin_then_rival)
        return rival
    yield race
    for rival in rivals:
        rival.close()


def test_rollback_removes_only_what_this_call_pinned(build, bpffs, pin_race):  # noqa: F811
    theirs = os.path.join(bpffs, "maps", "old_counts")
    rival = pin_race(theirs)
    try:
        with BpfObject.open(build("legacy")) as obj:
            obj.load()
            with pytest.raises(pybpf.BPFError, match="EEXIST"):
                obj.pin(bpffs)
        assert tree(bpffs) == ["maps", "maps/old_counts"]
        with Map.from_pin(theirs) as m:
            assert m.id == rival.id
    finally:
        unpin_tree(bpffs)
