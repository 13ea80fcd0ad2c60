"""Errors users meet: the privilege hint, exceptions that cross process boundaries, and
bad input refused with a message before any syscall could misread it.
"""
import base64
import errno
import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap

import pytest

import pybpf
import pybpf.kernel.bpf as kbpf
import pybpf.kernel.syscall as ksyscall
from pybpf import BPFError, ClosedError, Map, MapFullError, Program, VerifierError, asm

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOBODY = 65534


def _run_python(code, argv_prefix=()):
    """Run code in a fresh interpreter that imports this checkout; return its stdout."""
    out = subprocess.run([*argv_prefix, sys.executable, "-c", textwrap.dedent(code)],
                         capture_output=True, text=True, timeout=30,
                         env=dict(os.environ, PYTHONPATH=REPO), cwd="/")
    assert out.returncode == 0, out.stderr
    return out.stdout


# ---- privileges ------------------------------------------------------------------

# Sets ``result``; run in a setpriv'd interpreter or exec'd in a forked, setuid child.
_CREATE_QUEUE = """
import pybpf
try:
    # QUEUE maps need CAP_BPF whatever kernel.unprivileged_bpf_disabled says.
    pybpf.Map.create("queue", value="I", max_entries=1).close()
    result = {"created": True}
except pybpf.BPFError as e:
    result = {"type": type(e).__name__, "errno": e.errno, "cmd": e.cmd, "hint": e.hint,
              "text": str(e)}
"""


def _create_with_setpriv():
    if shutil.which("setpriv") is None:
        pytest.skip("util-linux setpriv is not installed (the setuid variant still runs)")
    prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
              "--inh-caps=-all"]
    code = _CREATE_QUEUE + "\nimport json; print(json.dumps(result))\n"
    return json.loads(_run_python(code, prefix))


def _create_in_setuid_child():
    """fork, drop to nobody with setuid (which clears every capability), try."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        try:
            os.close(rfd)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            ns = {}
            exec(_CREATE_QUEUE, ns)
            os.write(wfd, json.dumps(ns["result"]).encode())
        except BaseException as e:
            os.write(wfd, json.dumps({"child_error": repr(e)}).encode())
        finally:
            os._exit(0)
    os.close(wfd)
    with os.fdopen(rfd) as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)


@pytest.mark.parametrize("drop", [_create_with_setpriv, _create_in_setuid_child],
                         ids=["setpriv", "setuid"])
def test_eperm_without_privileges_names_the_fix(drop):
    result = drop()
    assert "child_error" not in result, result
    assert result.get("created") is not True, "an unprivileged process created a queue map"
    assert result["type"] == "BPFError"
    assert result["errno"] == errno.EPERM
    assert result["cmd"] == "BPF_MAP_CREATE"
    assert "CAP_BPF" in result["hint"] and "root" in result["hint"]
    with open("/proc/sys/kernel/unprivileged_bpf_disabled") as f:
        disabled = int(f.read())
    if disabled:
        assert f"kernel.unprivileged_bpf_disabled={disabled}" in result["hint"]
    assert result["hint"] in result["text"]


def _setpriv(*caps):
    """setpriv arguments for uid nobody holding exactly caps ("bpf", "perfmon", ...)."""
    if shutil.which("setpriv") is None:
        pytest.skip("util-linux setpriv is not installed")
    wanted = ",".join(["-all"] + [f"+{c}" for c in caps])
    known = subprocess.run(["setpriv", f"--inh-caps={wanted}", "true"], capture_output=True,
                           text=True)
    if "unknown capability" in known.stderr:
        # Debian 11's (the minimal image's); Debian 12's knows CAP_BPF and CAP_PERFMON.
        pytest.skip(f"this setpriv's util-linux predates the capability: {known.stderr.strip()}")
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            f"--inh-caps={wanted}", f"--ambient-caps={wanted}"]


_LOAD = """
import json, sys
from pybpf import BPFError, Program, asm
try:
    Program.load(sys.argv[1], [asm.mov64(asm.R0, 0), asm.exit()]).close()
    print(json.dumps({"loaded": True}))
except BPFError as e:
    print(json.dumps({"errno": e.errno, "hint": e.hint}))
"""


@pytest.mark.parametrize("ptype, missing", [("tracepoint", "CAP_PERFMON"),
                                             ("kprobe", "CAP_PERFMON"),
                                             ("xdp", "CAP_NET_ADMIN"),
                                             ("sched_cls", "CAP_NET_ADMIN")])
def test_eperm_with_cap_bpf_alone_names_the_missing_capability(ptype, missing):
    out = subprocess.run([*_setpriv("bpf"), sys.executable, "-c", _LOAD, ptype],
                         capture_output=True, text=True, timeout=30, cwd="/",
                         env=dict(os.environ, PYTHONPATH=REPO))
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result.get("errno") == errno.EPERM, result
    assert missing in (result["hint"] or ""), result


def test_probe_without_privileges_names_the_capability():
    """Every load is refused: the helper table is empty (it used to be "max() arg is
    an empty sequence"), and the text says what is missing."""
    out = subprocess.run([*_setpriv(), sys.executable, "-m", "pybpf", "probe"],
                         capture_output=True, text=True, timeout=300, cwd="/",
                         env=dict(os.environ, PYTHONPATH=REPO))
    assert out.returncode == 0, out.stderr
    assert "not running with CAP_BPF or CAP_SYS_ADMIN" in out.stdout
    assert "no program type loaded" in out.stdout


# ---- exceptions across processes -------------------------------------------------

def _roundtrip(err):
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is type(err)
    assert (again.cmd, again.errno, again.hint) == (err.cmd, err.errno, err.hint)
    assert str(again) == str(err)
    return again


def test_bpf_errors_pickle():
    _roundtrip(BPFError("BPF_MAP_CREATE", errno.EPERM, "detail", "a hint"))
    _roundtrip(BPFError("BPF_OBJ_GET", errno.ENOENT))
    full = _roundtrip(MapFullError("BPF_MAP_UPDATE_ELEM", errno.E2BIG, "no room", "grow it"))
    assert isinstance(full, BPFError) and isinstance(full, OSError)
    closed = pickle.loads(pickle.dumps(ClosedError("HashMap is closed")))
    assert isinstance(closed, ValueError) and str(closed) == "HashMap is closed"


def test_verifier_error_pickles():
    with pytest.raises(VerifierError) as exc:
        Program.load("xdp", [asm.mov64(asm.R0, asm.R2), asm.exit()])
    again = _roundtrip(exc.value)
    assert again.log == exc.value.log


def test_kernel_errors_raised_in_a_child_arrive_intact():
    """What multiprocessing does with an exception: pickle it in the child."""
    code = """
        import base64, pickle, sys, pybpf
        errors = []
        try:
            pybpf.Map.from_pin("/sys/fs/bpf/pybpf-no-such-pin")
        except pybpf.BPFError as e:
            errors.append(e)
        with pybpf.Map.create("hash", key="I", value="I", max_entries=1) as m:
            m[1] = 1
            try:
                m[2] = 2
            except pybpf.MapFullError as e:
                errors.append(e)
        sys.stdout.write(base64.b64encode(pickle.dumps(errors)).decode())
    """
    missing, full = pickle.loads(base64.b64decode(_run_python(code)))
    assert type(missing) is BPFError and missing.errno == errno.ENOENT
    assert missing.cmd == "BPF_OBJ_GET" and "nothing is pinned" in missing.hint
    assert type(full) is MapFullError and full.errno == errno.E2BIG
    assert "max_entries=1" in full.hint


def test_error_hierarchy():
    assert issubclass(BPFError, OSError)
    assert issubclass(VerifierError, BPFError) and issubclass(MapFullError, BPFError)
    assert issubclass(ClosedError, ValueError)
    e = BPFError("BPF_PROG_LOAD", errno.EINVAL, hint="fix it")
    assert e.errno == errno.EINVAL and e.cmd == "BPF_PROG_LOAD"
    assert str(e).startswith("BPF_PROG_LOAD: EINVAL") and "hint: fix it" in str(e)


# ---- input refused before any syscall -------------------------------------------

@pytest.fixture
def no_syscalls(monkeypatch):
    """Fail the test if anything reaches bpf(2): input errors must be caught first."""
    def forbidden(*args):
        pytest.fail(f"bpf(2) was called with {args}; the input should have been refused "
                    f"before any syscall")
    monkeypatch.setattr(kbpf, "raw_call", forbidden)  # ElemOps' hot path
    monkeypatch.setattr(ksyscall, "bpf_call", forbidden)  # everything else


def test_no_syscalls_fixture_catches_a_syscall(no_syscalls):
    """The guard itself works: a real map operation does reach it."""
    with pytest.raises(pytest.fail.Exception, match="bpf\\(2\\) was called"):
        kbpf.map_freeze(0)


@pytest.fixture
def hash_u32_u64():
    with Map.create("hash", key="I", value="Q", max_entries=4) as m:
        yield m


BAD_ELEMENT_OPS = {
    "short key": lambda m: m[b"\x01\x02"],
    "short value": lambda m: m.__setitem__(1, b"\x00" * 7),
    "long key": lambda m: m.__setitem__(b"12345", 1),
    "str key": lambda m: m.get("text"),
    "negative key": lambda m: m.__contains__(-1),
    "key overflow": lambda m: m.update(2**32, 1),
    "empty key": lambda m: m.__delitem__(b""),
    "batch value": lambda m: m.update_batch({1: 1, 2: b"short"}),
    "batch key": lambda m: m.delete_batch([1, b"xx"]),
}


@pytest.mark.parametrize("what", sorted(BAD_ELEMENT_OPS))
def test_wrong_key_and_value_refused_before_syscall(hash_u32_u64, no_syscalls, what):
    with pytest.raises(ValueError):
        BAD_ELEMENT_OPS[what](hash_u32_u64)


def test_bad_map_arguments_refused_before_syscall(no_syscalls):
    with pytest.raises(ValueError) as exc:
        Map.create("hashmap", key="I", value="I", max_entries=1)
    for known in ("hash", "lru_percpu_hash", "ringbuf", "array_of_maps"):
        assert known in str(exc.value)
    with pytest.raises(ValueError, match="unknown map type 9999"):
        Map.create(9999, key="I", value="I", max_entries=1)
    with pytest.raises(ValueError, match="which the kernel refuses"):
        Map.create("hash", key="I", value="I", max_entries=1, name="my-map")
    with pytest.raises(ValueError, match="max_entries"):
        Map.create("hash", key="I", value="I", max_entries=0)
    with pytest.raises(ValueError, match="u32"):
        Map.create("array", key="Q", value="I", max_entries=1)
    with pytest.raises(ValueError, match="not both"):
        Map.create("hash", key="I", key_size=4, value="I", max_entries=1)
    with pytest.raises(ValueError, match="bad struct format"):
        Map.create("hash", key="Z", value="I", max_entries=1)


def test_bad_program_arguments_refused_before_syscall(no_syscalls):
    ok = [asm.mov64(asm.R0, 2), asm.exit()]
    with pytest.raises(ValueError) as exc:
        Program.load("xdp_program", ok)
    for known in ("xdp", "socket_filter", "sched_cls", "tracepoint"):
        assert known in str(exc.value)
    with pytest.raises(ValueError, match="which the kernel refuses"):
        Program.load("xdp", ok, name="my prog")
    with pytest.raises(ValueError, match="non-empty"):
        Program.load("xdp", b"")
    with pytest.raises(ValueError, match="multiple of 8"):
        Program.load("xdp", b"\x95" + bytes(8))
    with pytest.raises(ValueError, match="attach type"):
        Program.load("xdp", ok, expected_attach_type="nowhere")


# ctypes would store these modulo the field's width: the kernel would see 4, 0, ...
@pytest.mark.parametrize("kwargs, message", [
    ({"max_entries": 2**32 + 4}, r"MapCreateAttr\.max_entries=4294967300 is out of range"),
    ({"flags": 2**40}, r"MapCreateAttr\.map_flags=1099511627776 is out of range"),
    ({"value": None, "value_size": 2**32 + 8}, r"MapCreateAttr\.value_size=\d+ is out of"),
    ({"key": None, "key_size": 2**33}, r"MapCreateAttr\.key_size=\d+ is out of range"),
    ({"flags": -1}, r"flags must be at least 0, got -1"),
    ({"numa_node": -1}, r"numa_node must be at least 0, got -1"),
])
def test_integers_too_large_for_the_kernels_fields_are_refused(no_syscalls, kwargs, message):
    args = {"key": "I", "value": "I", "max_entries": 4}
    args.update(kwargs)
    with pytest.raises(pybpf.InputError, match=message):
        Map.create("hash", **args)


def test_element_flags_and_log_sizes_are_range_checked(hash_u32_u64, no_syscalls):
    with pytest.raises(pybpf.InputError, match=r"MapElemAttr\.flags"):
        hash_u32_u64.update(1, 2, flags=2**64 + 1)
    with pytest.raises(pybpf.InputError, match=r"ProgLoadAttr\.log_size"):
        Program.load("xdp", [asm.mov64(asm.R0, 2), asm.exit()], log_level=1, log_size=2**33)


def test_test_run_output_sizes_are_checked_before_buffers_are_made():
    with Program.load("socket_filter", [asm.mov64(asm.R0, 0), asm.exit()]) as prog:
        for size in (-1, 2**32):
            with pytest.raises(pybpf.InputError, match="data_size_out"):
                prog.test_run(b"\0" * 64, data_out_size=size)


def test_unpin_outside_bpffs_refused(tmp_path):
    path = tmp_path / "not-a-pin"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="not on a bpf filesystem"):
        pybpf.unpin(str(path))
    assert path.exists()
