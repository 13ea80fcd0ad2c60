"""``python -m pybpf attach copyout``, ``detach`` and ``gen-numbers`` as a user runs
them: real processes, real exit statuses, output checked against the reference."""
import json
import os
import pty
import select
import subprocess
import sys

import pytest

from pybpf.filterreduce import REDUCTIONS, reference

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, PYTHONPATH=ROOT)
NOBODY = 65534


def cli(*argv, **kwargs):
    return subprocess.run([sys.executable, "-m", "pybpf", *argv], capture_output=True,
                          text=True, env=ENV, stdin=subprocess.DEVNULL, **kwargs)


@pytest.fixture(scope="module")
def numbers(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "numbers.txt"
    run = cli("gen-numbers", str(path), "2M", "--negatives", "0.3", "--separators",
              "\\n ,", "--filter", "x >= 500000", "--filter-factor", "0.25", "--seed", "4")
    assert run.returncode == 0, run.stderr
    assert path.stat().st_size == 2 << 20
    return path


def test_json_has_the_documented_keys_and_the_right_values(numbers):
    run = cli("attach", "copyout", str(numbers), str(numbers), "--filter", "x >= 500000",
              "--json")
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    want = reference.read_file(numbers, "x >= 500000")
    assert len(doc) == 2
    for entry in doc:
        assert {"file", "backend", "parser", "bytes", "numbers_seen", "numbers_kept",
                *REDUCTIONS} <= set(entry)
        for key in ("bytes", "numbers_seen", "numbers_kept", "sum", "min", "max", "count"):
            assert entry[key] == getattr(want, key), key
        assert entry["avg"] == pytest.approx(want.avg)
    assert abs(want.numbers_kept / want.numbers_seen - 0.75) < 0.02   # filter factor 25%


def test_some_reductions_only_and_null_when_nothing_is_kept(numbers):
    run = cli("attach", "copyout", str(numbers), "--filter", "x > 10**9", "--reduce",
              "min,avg", "--json")
    assert run.returncode == 0, run.stderr
    (entry,) = json.loads(run.stdout)
    assert (entry["min"], entry["avg"], entry["numbers_kept"]) == (None, None, 0)
    assert "sum" not in entry and "max" not in entry


def test_text_output_names_the_backend_and_the_stats(numbers):
    run = cli("attach", "copyout", str(numbers), "--parser", "strtol", "--chunk", "10000")
    assert run.returncode == 0, run.stderr
    assert "backend" in run.stderr and "parser strtol" in run.stdout
    assert "numbers seen" in run.stdout and "MB/s" in run.stdout
    quiet = cli("attach", "copyout", str(numbers), "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_the_main_job_checks_itself_against_user_space():
    run = cli("attach", "copyout", "--sample-size", "3M")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "the results match" in run.stdout
    assert "sample (pipeline)" in run.stdout and "sample (user space" in run.stdout
    doc = json.loads(cli("attach", "copyout", "--sample-size", "1M", "--json").stdout)
    assert [d["backend"] for d in doc][1] == "python" and all(d["matches"] for d in doc)


def test_progress_goes_to_a_terminal_stderr_only(numbers, tmp_path):
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:
        data = numbers.read_bytes()
        for _ in range(60):                 # ~2 s through the strtol parser
            f.write(data)
    for quiet in (False, True):
        master, slave = pty.openpty()
        argv = [sys.executable, "-m", "pybpf", "attach", "copyout", str(big), "--parser",
                "strtol", "--chunk", "4096"] + (["--quiet"] if quiet else [])
        with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=slave, env=ENV,
                              stdin=subprocess.DEVNULL) as proc:
            os.close(slave)
            seen = b""
            while True:
                ready, _, _ = select.select([master], [], [], 60)
                try:
                    chunk = os.read(master, 4096) if ready else b""
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                if not chunk:
                    break
                seen += chunk
            out = proc.stdout.read()
        os.close(master)
        assert proc.returncode == 0
        assert b"MiB" not in out
        assert (b" of " in seen and b"MiB" in seen) != quiet, seen


@pytest.mark.parametrize("argv, words", [
    (["--filter", "x +"], "not a Python expression"),
    (["--filter", "abs(x) > 3"], "function calls"),
    (["--reduce", "sum,median"], "unknown reduction 'median'"),
    (["--backend", "copyout"], "kernel-config/"),
    (["--chunk", "0"], "a positive integer"),
    (["--chunk", "1000000"], "at most 180224 bytes on the syscall backend"),
    (["--override"], "--override"),
])
def test_bad_requests_are_refused_with_the_reason(numbers, argv, words):
    run = cli("attach", "copyout", str(numbers), *argv)
    assert run.returncode != 0
    assert words in run.stderr, run.stderr
    assert "Traceback" not in run.stderr


def test_files_the_pipeline_cannot_read(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, words in ((tmp_path / "missing.txt", "no such file"),
                        (tmp_path, "is a directory"), (fifo, "is a FIFO"),
                        ("/dev/zero", "is a device")):
        run = cli("attach", "copyout", str(path))
        assert run.returncode == 1 and words in run.stderr, (path, run.stderr)
        assert "Traceback" not in run.stderr


def test_an_empty_file_has_no_numbers(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    run = cli("attach", "copyout", str(empty), "--json")
    assert run.returncode == 0, run.stderr
    (entry,) = json.loads(run.stdout)
    assert (entry["bytes"], entry["numbers_seen"], entry["count"], entry["sum"],
            entry["min"]) == (0, 0, 0, 0, None)


def test_without_privileges(numbers):
    """The command line run by a process that gave up root (forked, not exec'd: the
    venv's interpreter lies under root's home, which nobody may enter)."""
    import gzip  # noqa: F401 - imported on use by the config reader
    import importlib
    import traceback
    from pybpf.cli import COMMANDS, main
    # nobody cannot read the interpreter's library: import what the command will
    for name in {module for module, _ in COMMANDS.values()}:
        importlib.import_module(f"pybpf.cli.{name}")
    for name in ("reader", "pipeline", "backends", "facts"):
        importlib.import_module(f"pybpf.filterreduce.{name}")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            sys.stderr = os.fdopen(w, "w")
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            status = main(["attach", "copyout", str(numbers)])
            sys.stderr.flush()
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
            status = 99
        os._exit(status)
    os.close(w)
    with os.fdopen(r) as f:
        stderr = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 1, stderr
    assert "run it as root, or with CAP_BPF and CAP_PERFMON" in stderr, stderr


def test_detach_refuses_what_is_not_a_pipeline(bpffs):
    run = cli("detach", bpffs)
    assert run.returncode == 1 and "holds no pybpf filter-reduce pipeline" in run.stderr


def test_pin_outside_bpffs_is_refused_and_leaves_nothing(numbers, tmp_path):
    target = tmp_path / "pins"
    run = cli("attach", "copyout", "--pin", str(target))
    assert run.returncode == 1 and "not on a bpf filesystem" in run.stderr, run.stderr
    assert not target.exists()
