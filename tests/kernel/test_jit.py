"""The jit through the kernel: compiled functions under BPF_PROG_TEST_RUN against the
host JIT and Python, whole programs with maps and helpers attached to real hooks,
jit filters and reduce steps in the pipeline on real files, and all of it with no
clang or llc on PATH."""
import json
import os
import subprocess
import sys
import textwrap
import threading

import pytest

import jit_corpus as corpus
from pybpf import jit
from pybpf.errors import VerifierError
from pybpf.filterreduce import FilterReduce, Reduce, reference, verdicts
from pybpf.jit import meaning

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.path.join(ROOT, "tests"))
_compiled = {}


def compiled(fn):
    if fn not in _compiled:
        _compiled[fn] = jit.compile(fn, step_state=corpus.STEPS.get(fn))
    return _compiled[fn]


# -- every construct in the kernel ---------------------------------------------------

@pytest.mark.parametrize("fn", corpus.FUNCTIONS, ids=lambda f: f.__name__)
def test_the_kernel_runs_each_function_as_the_host_and_python_do(fn):
    f = compiled(fn)
    samples = jit.default_samples(f.nparams, 60, seed=2)
    kernel = f.test_runs(samples)
    assert f.load_warnings == []       # the object's BTF was taken: line info works
    for args, got in zip(samples, kernel):
        assert got == f(*args), args
        try:
            want = meaning.Interpreter(f.checked, exact=True).call(f.name, list(args))
        except meaning.Inexact:
            continue
        python = fn(*args)
        assert got == want == (0 if python is None else int(python)), args


@pytest.mark.parametrize("fn", list(corpus.STEPS), ids=lambda f: f.__name__)
def test_the_kernel_runs_each_step_as_the_host_does(fn):
    f = compiled(fn)
    slots = sum(n or 1 for n in corpus.STEPS[fn].values())
    xs = [3, -5, 0, 17, 2, -1, 4, 1000, 7, -4]
    host, states, want = [0] * slots, [], []
    for x in xs:
        states.append(list(host))
        status = f.step_host(host, x)
        want.append((status, list(host)))
    assert f.test_runs([(x,) for x in xs], states=states) == want


# -- whole programs -------------------------------------------------------------------

calls = jit.Map("hash", max_entries=256)
latest = jit.Map("array", max_entries=4)
ME = os.getpid()


def _bucket(n):
    b = 0
    for i in range(8):
        if n >= 1 << i:
            b = i + 1
    return b


def count_getpid(ctx):
    t = jit.tgid()
    if t == ME:
        calls[t] += 1
        latest[_bucket(calls[t]) % 4] = jit.ktime_ns()


def test_a_tracepoint_program_counts_exactly_what_this_process_does():
    prog = jit.program(count_getpid, "tracepoint/syscalls/sys_enter_getpid")
    with prog.load() as loaded:
        assert loaded.object.warnings == []
        with loaded.attach():
            for _ in range(37):
                os.getpid()
        counts = dict(loaded.maps["calls"].items())
        stamps = dict(loaded.maps["latest"].items())
    assert counts == {ME: 37}
    assert sorted(stamps) == [0, 1, 2, 3] and all(v > 0 for k, v in stamps.items() if k)


pids = jit.Map("hash", max_entries=8)


def count_concurrent(ctx):
    if jit.tgid() in pids:
        calls[0] += 1
        calls[1] -= 2
        calls[2] |= 1 << (jit.pid() % 8)


CHILD = "import os, sys; sys.stdin.read(1); [os.getpid() for _ in range({})]"


def test_map_updates_are_atomic_across_cpus():
    """Two processes, on both CPUs at once, update one key: an update lost to a race
    would show (the same program with calls[0] = calls[0] + 1 loses about 1% here)."""
    prog = jit.program(count_concurrent, "tracepoint/syscalls/sys_enter_getpid")
    each, n = 500_000, 2
    with prog.load() as loaded, loaded.attach():
        kids = [subprocess.Popen([sys.executable, "-c", CHILD.format(each)],
                                 stdin=subprocess.PIPE) for _ in range(n)]
        for k in kids:
            loaded.maps["pids"][k.pid] = 1
        for k in kids:                 # start together
            k.stdin.write(b"x")
            k.stdin.close()
        assert [k.wait() for k in kids] == [0] * n
        m = loaded.maps["calls"]
        assert (m[0], m[1]) == (each * n, -2 * each * n)
        assert m[2] != 0


seen = jit.Map("hash", max_entries=8)
table = jit.Map("percpu_array", max_entries=4)


def _mix(a, b):
    return (a * 31 + b) % 1000


def raw(ctx):
    key = ctx[0] % 16             # a full map drops new keys, as the Python one does
    seen[key] += _mix(ctx[1], key)
    if key in seen and ctx[1] < 0:
        del seen[key]
    table[key] = seen[key] * 2
    seen[-1] = key not in seen
    return key


def test_a_program_under_test_run_does_what_the_python_function_does():
    """The same function, run as Python over jit.Map dicts and in the kernel."""
    prog = jit.program(raw, "raw_tracepoint/sys_enter")
    inputs = [(3, 5), (3, 7), (20, 1), (5, -1), (9, 2), (4, 4), (11, 3), (12, 1), (13, 6),
              (14, 7), (3, -9), (8, 8)]
    seen.clear()
    table.clear()
    with prog.load() as loaded:
        for args in inputs:
            assert loaded.test_run(*args) == raw(list(args))
        kernel_seen = dict(loaded.maps["seen"].items())
        kernel_table = {k: v for k, v in loaded.maps["table"].items()}
    assert kernel_seen == dict(seen)
    cpu0 = {k: vs[0] if isinstance(vs, (list, tuple)) else vs for k, vs in kernel_table.items()}
    assert {k: v for k, v in cpu0.items() if v} == {k: v for k, v in table.items() if v}


def reads_too_far(ctx):
    first = ctx[0]
    seen[first] = ctx[300]


def test_a_verifier_refusal_names_the_python_line():
    prog = jit.program(reads_too_far, "raw_tracepoint/sys_enter")
    with pytest.raises(VerifierError) as exc:
        prog.load()
    assert "seen[first] = ctx[300]" in exc.value.source_line
    assert f"test_jit.py:{reads_too_far.__code__.co_firstlineno + 2}" in exc.value.source_line
    assert "program 'reads_too_far'" in str(exc.value)


def test_a_program_is_an_object_the_cli_loads(tmp_path):
    prog = jit.program(count_getpid, "tracepoint/syscalls/sys_enter_getpid")
    path = tmp_path / "count.bpf.o"
    path.write_bytes(prog.bpf)
    out = subprocess.run([sys.executable, "-m", "pybpf", "load", str(path)],
                         capture_output=True, text=True, env=ENV)
    assert out.returncode == 0, out.stderr
    assert "count_getpid" in out.stdout


# -- in the pipeline, on files ------------------------------------------------------

def keep_checksum(x):
    s = 0
    y = abs(x)
    for i in range(4):
        s += (y >> (8 * i)) & 0xFF
    return s % 3 == 0 and x != 0


def squares_and_hist(s, x):
    s.n += 1
    s.sq += x * x
    s.hist[x % 8] += 1
    s.top[x % 11] += 1      # index errors for 8..10: counted, step abandoned


def _numbers_file(tmp_path, count=60000, seed=5):
    import random
    rng = random.Random(seed)
    path = tmp_path / "numbers.txt"
    path.write_bytes(b"\n".join(str(rng.randint(-50000, 50000)).encode()
                                for _ in range(count)) + b"\n")
    return path


def tiers(test):
    """Also in both VM tiers: the stock 6.1 (syscall backend) and the patched one
    (copyout), where the stages are kprobe programs."""
    return pytest.mark.vm(pytest.mark.patched(test))


@tiers
def test_a_jit_filter_reads_a_file_as_the_reference_does(tmp_path):
    path = _numbers_file(tmp_path)
    with FilterReduce(keep_checksum) as fr:
        got = fr.read(path)
    want = reference.read_file(path, fr.filter)
    assert got.same_numbers(want)
    assert 0 < got.numbers_kept < got.numbers_seen
    assert got.backend == ("copyout" if verdicts()["copyout"].usable else "syscall")


@tiers
def test_a_custom_reduce_reads_a_file_as_python_does(tmp_path):
    path = _numbers_file(tmp_path, seed=6)
    red = Reduce(state={"n": 0, "sq": 0, "hist": [0] * 8, "top": [0] * 8},
                 step=squares_and_hist, finish=lambda st: st["sq"] // max(st["n"], 1))
    with FilterReduce("x > -1000", red) as fr:
        got = fr.read(path)
    want = reference.read_file(path, "x > -1000", reducer=red)
    assert got.custom == want.custom
    assert got.custom["index_errors"] > 0 and sum(got.custom["hist"]) == got.custom["n"]


def test_the_cli_takes_a_filter_and_a_reduce_from_a_file(tmp_path):
    path = _numbers_file(tmp_path, count=5000, seed=7)
    module = tmp_path / "userfns.py"
    module.write_text(textwrap.dedent('''
        from pybpf.filterreduce import Reduce

        def keep(x):
            return x % 5 == 0

        def step(s, x):
            s.n += 1
            s.neg += x < 0

        counts = Reduce(state={"n": 0, "neg": 0}, step=step)
    '''))
    out = subprocess.run([sys.executable, "-m", "pybpf", "attach", "copyout", str(path),
                          "--filter-py", f"{module}:keep", "--reduce-py", f"{module}:counts",
                          "--json"], capture_output=True, text=True, env=ENV)
    assert out.returncode == 0, out.stderr
    (got,) = json.loads(out.stdout)
    numbers = [int(v) for v in path.read_text().split()]
    kept = [v for v in numbers if v % 5 == 0]
    assert got["numbers_kept"] == len(kept)
    assert got["custom"]["n"] == len(kept)
    assert got["custom"]["neg"] == sum(1 for v in kept if v < 0)


# -- no compiler on PATH ---------------------------------------------------------------

def test_the_jit_needs_no_clang_or_llc_from_source_to_kernel(tmp_path):
    code = textwrap.dedent('''
        import os, shutil
        from pybpf import jit
        from pybpf.filterreduce import FilterReduce
        assert shutil.which("clang") is None and shutil.which("llc") is None
        f = jit.compile("f", source="def f(x):\\n    return x * 3 + 1\\n")
        calls = jit.Map("hash", max_entries=4)

        def count(ctx):
            calls[jit.tgid()] += 1

        prog = jit.program(count, "tracepoint/syscalls/sys_enter_getpid")
        me = os.getpid()
        with prog.load() as p, p.attach():
            os.getpid()
            n = p.maps["calls"][me]
        with open(os.environ["DATA"], "wb") as out:
            out.write(b"1 2 3 4 5 6\\n")

        def odd(x):
            return x % 2 == 1

        with FilterReduce(odd) as fr:
            res = fr.read(os.environ["DATA"])
        print(f.test_run(4), n, res.sum)
    ''')
    script = tmp_path / "noclang.py"
    script.write_text(code)
    env = dict(ENV, PATH=str(tmp_path / "empty"), DATA=str(tmp_path / "d.txt"))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         env=env)
    assert out.stdout.split() == ["13", "1", "9"], out.stderr
