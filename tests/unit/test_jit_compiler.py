"""The jit on the host: the subset's checker, the code llvmlite's host JIT runs for it
(against Python itself and against the subset's meaning), and the BPF objects it
writes, read back by pybpf's own ELF/BTF parsers. No kernel: tests/kernel/test_jit.py
runs the same functions in it."""
import os
import re
import subprocess
import sys
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from toolbox import fresh_python

from pybpf import jit
from pybpf.errors import DependencyError
from pybpf.jit import meaning
from pybpf.jit.subset import INT64_MAX, INT64_MIN, JitError, parse_state
import jit_corpus as corpus

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
int64 = st.integers(INT64_MIN, INT64_MAX)
small = st.integers(-10 ** 6, 10 ** 6)
EDGES = [0, 1, -1, 2, -2, 3, -3, 7, -7, 63, 64, 65, INT64_MAX, INT64_MIN, 1 << 40]
_compiled = {}


def compiled(fn):
    if fn not in _compiled:
        if fn in corpus.STEPS:
            _compiled[fn] = jit.compile(fn, step_state=corpus.STEPS[fn])
        else:
            _compiled[fn] = jit.compile(fn)
    return _compiled[fn]


def python(fn, f, args):
    """Python's own result, or None where the function leaves Python's meaning on the
    way (a value beyond 64 bits, x // 0, a shift count beyond 63: the subset's
    meaning, meaning.Interpreter(exact=True), tells where)."""
    try:
        meaning.Interpreter(f.checked, exact=True).call(f.name, list(args))
    except meaning.Inexact:
        return None
    v = fn(*args)
    return 0 if v is None else int(v)


def arity(fn):
    return fn.__code__.co_argcount


# -- every construct, against Python ------------------------------------------------

def test_the_corpus_covers_every_construct_with_compiled_functions():
    for construct, fns in corpus.CONSTRUCTS.items():
        assert fns, construct
        for fn in fns:
            assert fn in corpus.FUNCTIONS or fn in corpus.STEPS, (construct, fn)


@pytest.mark.parametrize("fn", corpus.FUNCTIONS, ids=lambda f: f.__name__)
def test_compiled_functions_give_what_python_gives(fn):
    f = compiled(fn)
    n = arity(fn)
    samples = [tuple(a) for a in _product(EDGES, n)] + jit.default_samples(n, 300, seed=1)
    agreed = 0
    for args in samples:
        want = python(fn, f, args)
        got = f(*args)
        assert got == meaning.Interpreter(f.checked).call(f.name, list(args)), args
        if want is not None:
            assert got == want, (fn.__name__, args)
            agreed += 1
    assert agreed > len(samples) // 2      # most inputs stay within 64 bits


@pytest.mark.parametrize("fn", [corpus.add, corpus.mul, corpus.lshift, corpus.calls,
                                corpus.div_by_constants, corpus.locals_and_aug],
                         ids=lambda f: f.__name__)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_random_64_bit_inputs(fn, data):
    args = tuple(data.draw(int64) for _ in range(arity(fn)))
    f = compiled(fn)
    got = f(*args)
    assert got == meaning.Interpreter(f.checked).call(f.name, list(args))
    want = python(fn, f, args)
    if want is not None:
        assert got == want


def _product(values, n):
    if n == 0:
        return [()]
    return [(v,) + rest for v in values for rest in _product(values, n - 1)]


def test_the_documented_differences_from_python():
    """Where Python has no 64-bit answer the subset's is C's (docs/jit.md)."""
    assert compiled(corpus.add)(INT64_MAX, 1) == INT64_MIN
    assert compiled(corpus.mul)(1 << 62, 4) == 0
    assert compiled(corpus.floordiv)(17, 0) == 0
    assert compiled(corpus.mod)(17, 0) == 17
    assert compiled(corpus.floordiv)(INT64_MIN, -1) == INT64_MIN
    assert compiled(corpus.floordiv)(-7, 2) == -4          # Python's floor, not C's
    assert compiled(corpus.mod)(-7, 2) == 1
    assert compiled(corpus.mod)(7, -2) == -1
    assert compiled(corpus.rshift)(-8, 1) == -4            # arithmetic shift
    assert compiled(corpus.falls_off_the_end)(-5) == 0     # None is 0


def test_inputs_where_python_differs_are_recorded_not_hidden():
    f = compiled(corpus.add)
    f.check_on_host([(INT64_MAX, 1), (1, 2)])
    assert f.python_differs == [(INT64_MAX, 1)]


# -- reduce steps -------------------------------------------------------------------

def _python_step(fn, shapes, xs):
    ns = types.SimpleNamespace(**{k: ([0] * n if n else 0) for k, n in shapes.items()})
    errors = 0
    for x in xs:
        try:
            fn(ns, x)
        except IndexError:
            errors += 1
    slots = []
    for k, n in shapes.items():
        slots.extend(getattr(ns, k) if n else [getattr(ns, k)])
    return slots, errors


@pytest.mark.parametrize("fn", list(corpus.STEPS), ids=lambda f: f.__name__)
def test_compiled_steps_update_the_state_as_python_does(fn):
    shapes = corpus.STEPS[fn]
    f = compiled(fn)
    xs = [3, -5, 0, 17, 2, -1, 4, 1000, 7, -4]
    state = [0] * sum(n or 1 for n in shapes.values())
    errors = sum(f.step_host(state, x) for x in xs)
    assert (state, errors) == _python_step(fn, shapes, xs)


def test_an_index_out_of_range_abandons_only_that_step():
    f = compiled(corpus.step_out_of_range)
    state = [0] * 4
    assert [f.step_host(state, x) for x in (1, 9, -1, -5, 3)] == [0, 1, 0, 1, 0]
    assert state == [0, 1, 0, 2]       # -1 is the last slot, as in Python


def test_parse_state_refuses_what_is_not_64_bit_fields():
    assert parse_state({"n": 0, "h": [0] * 3}) == ({"n": None, "h": 3},
                                                   {"n": [0], "h": [0, 0, 0]})
    for bad in ({}, {"n": 1.5}, {"n": []}, {"1x": 0}, {"n": 1 << 63}, [("n", 0)]):
        with pytest.raises(JitError):
            parse_state(bad)


# -- the host check can fail ----------------------------------------------------------

def test_a_miscompile_is_caught_by_the_host_check(monkeypatch):
    f = compiled(corpus.sub)
    real = meaning.Interpreter.call
    monkeypatch.setattr(meaning.Interpreter, "call",
                        lambda self, name, args, state=None: real(self, name, args) + 1)
    with pytest.raises(JitError, match="miscompile"):
        f.check_on_host([(5, 3)])


# -- refusals: each names the line and the construct ---------------------------------

REFUSED = [
    ("def f(x):\n    while x:\n        x -= 1\n    return x\n", 2, "while loops"),
    ("def f(x):\n    return x / 2\n", 2, "/ (use //)"),
    ("def f(x):\n    return x ** 2\n", 2, "**"),
    ("def f(x):\n    return 1.5\n", 2, "float constant"),
    ("def f(x):\n    return 'a'\n", 2, "str constant"),
    ("def f(x):\n    y = [x]\n    return 0\n", 2, "lists"),
    ("def f(x):\n    return (x, x)\n", 2, "tuples"),
    ("def f(x):\n    return {x: 1}\n", 2, "dicts"),
    ("def f(x):\n    return x.real\n", 2, "attributes"),
    ("def f(x):\n    return x[0]\n", 2, "indexing"),
    ("def f(x):\n    return [i for i in range(3)]\n", 2, "comprehensions"),
    ("def f(x):\n    return lambda: x\n", 2, "lambda"),
    ("def f(x):\n    try:\n        return x\n    except Exception:\n        return 0\n",
     2, "try"),
    ("def f(x):\n    with x:\n        return 1\n", 2, "with"),
    ("def f(x):\n    for i in x:\n        pass\n", 2, "anything but range"),
    ("def f(x):\n    for i in range(x):\n        pass\n", 2, "not a constant"),
    ("def f(x):\n    for i in range(1 << 20):\n        pass\n", 2, "iterations"),
    ("def f(x):\n    for i in range(0, 5, 0):\n        pass\n", 2, "step of 0"),
    ("def f(x):\n    for i in range(3):\n        pass\n    else:\n        pass\n", 2,
     "for ... else"),
    ("def f(x):\n    break\n", 2, "'break' outside loop"),
    ("def f(x):\n    print(x)\n", 2, "an expression statement"),
    ("def f(x):\n    return print(x)\n", 2, "calling 'print'"),
    ("def f(x):\n    return abs(x, 1)\n", 2, "abs() with 2 arguments"),
    ("def f(x):\n    return max(x, key=1)\n", 2, "this call"),
    ("def f(x):\n    a, b = x, x\n    return a\n", 2, "unpacking"),
    ("def f(x):\n    global g\n    return x\n", 2, "global"),
    ("def f(x):\n    del x\n", 2, "del of anything but a map's key"),
    ("def f(x):\n    assert x\n", 2, "assert"),
    ("def f(x):\n    raise ValueError\n", 2, "raise"),
    ("def f(x):\n    import os\n", 2, "import"),
    ("def f(x):\n    def g():\n        pass\n", 2, "nested functions"),
    ("def f(x):\n    return f'{x}'\n", 2, "f-strings"),
    ("def f(x):\n    return (y := x)\n", 2, ":="),
    ("def f(x):\n    yield x\n", 2, "yield"),
    ("def f(x):\n    return x in x\n", 2, "in/not in"),
    ("def f(x):\n    return x @ x\n", 2, "@"),
    ("def f(x):\n    return 18446744073709551616\n", 2, "beyond 64 bits"),
    ("def f(x):\n    return None\n", 2, "NoneType constant"),
    ("def f(*x):\n    return 0\n", 1, "plain positional parameters"),
    ("def f(x=1):\n    return 0\n", 1, "plain positional parameters"),
    ("def f(x):\n    return g(x)\ndef g(x):\n    return f(x)\n", None, "recursively"),
    ("def f(x):\n    return y\n", 2, "used before it is assigned"),
]


@pytest.mark.parametrize("source,line,what", REFUSED, ids=[r[2] for r in REFUSED])
def test_each_unsupported_construct_is_refused_with_its_line(source, line, what):
    with pytest.raises(JitError) as exc:
        jit.compile("f", source=source)
    message = str(exc.value)
    assert what in message
    if line is not None:
        assert message.startswith(f"<string>:{line}")


def test_a_refusal_in_a_file_names_the_file_and_its_line(tmp_path):
    path = tmp_path / "userfilter.py"
    path.write_text("X = 3\n\n\ndef keep(x):\n    y = x % X\n    return y ** 2 > 1\n")
    out = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]);"
                          "import userfilter; from pybpf import jit; jit.compile(userfilter.keep)",
                          str(tmp_path)], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode != 0
    assert f"{path}:6 (in keep): ** (BPF has no power; multiply)" in out.stderr


def test_a_function_without_source_is_refused_with_the_way_out():
    namespace = {}
    exec("def f(x):\n    return x\n", namespace)  # noqa: S102
    with pytest.raises(JitError, match="pass the source as a string"):
        jit.compile(namespace["f"])


def test_a_step_that_returns_a_value_is_refused():
    with pytest.raises(JitError, match="returns nothing"):
        jit.compile("s", source="def s(st, x):\n    return x\n", step_state={"n": None})


def test_state_fields_are_checked():
    for body, what in [("st.m += 1", "state field 'm'"), ("st.h += 1", "without an index"),
                       ("st.n[0] += 1", "with an index"), ("st = 1", "assigning to 'st'")]:
        with pytest.raises(JitError, match=what):
            jit.compile("s", source=f"def s(st, x):\n    {body}\n",
                        step_state={"n": None, "h": 4})


# -- the objects ----------------------------------------------------------------------

def test_the_bpf_object_carries_btf_line_info_from_the_python_source():
    from pybpf.loader import BpfObject
    f = compiled(corpus.branches)
    with BpfObject.open(f.bpf) as obj:
        spec = obj.spec
        lines = [li for records in spec.btf_ext.line_info.values() for li in records]
        assert spec.btf.find("branches", "func")
    assert any(li.file_name.endswith("jit_corpus.py") and "y = x % 10" in li.line_text
               for li in lines)


def test_instructions_are_self_contained():
    insns = compiled(corpus.calls).instructions()     # callees inlined: no calls
    assert len(insns) > 20
    assert not [i for i in insns if i.code == 0x85]   # BPF_JMP | BPF_CALL
    assert insns[-1].code == 0x95                     # exit


# -- programs: checked and written without a kernel ----------------------------------

PROGRAM = '''
from pybpf import jit
calls = jit.Map("hash", max_entries=64)
slots = jit.Map("percpu_array", max_entries=8, flags=0)

def double(v):
    return v * 2

def prog(ctx):
    k = jit.tgid()
    calls[k] += double(ctx[0])
    slots[ctx[1] % 8] = jit.ktime_ns()
    if 3 in calls:
        del calls[3]
'''


def test_a_program_object_has_btf_defined_maps():
    p = jit.program("prog", "raw_tracepoint/sys_enter", source=PROGRAM)
    from pybpf.loader import BpfObject
    with BpfObject.open(p.bpf) as obj:
        maps = obj.spec.maps
        assert (maps["calls"].type.name, maps["calls"].key_size, maps["calls"].value_size,
                maps["calls"].max_entries) == ("HASH", 8, 8, 64)
        assert (maps["slots"].type.name, maps["slots"].key_size,
                maps["slots"].max_entries) == ("PERCPU_ARRAY", 4, 8)
        assert obj.spec.programs["prog"].section_def.prog_type.name == "RAW_TRACEPOINT"
        assert obj.spec.license == "GPL"


PROGRAM_REFUSED = [
    ("m = jit.Map()\ndef f(x):\n    return m[x]\n", "filter", "the map 'm'"),
    ("def f(x):\n    return jit.tgid()\n", "filter", "the helper tgid()"),
    ("def p(ctx):\n    return ctx[ctx[0]]\n", "program", "a constant 0..511"),
    ("def p(ctx):\n    ctx[0] = 1\n", "program", "writing to the context"),
    ("def p(ctx):\n    return ctx\n", "program", "other than as ctx[i]"),
    ("m = jit.Map()\ndef p(ctx):\n    return m\n", "program", "other than as m[k]"),
    ("m = jit.Map()\ndef p(ctx):\n    m = 1\n", "program", "assigning to 'm'"),
    ("def p(ctx):\n    return jit.tgid(1)\n", "program", "takes none"),
    ("def p(ctx, y):\n    return 0\n", "program", "one parameter"),
]


@pytest.mark.parametrize("source,kind,what", PROGRAM_REFUSED,
                         ids=[r[2] for r in PROGRAM_REFUSED])
def test_what_programs_alone_may_do_is_checked(source, kind, what):
    source = "from pybpf import jit\n" + source
    with pytest.raises(JitError, match=re.escape(what)):
        if kind == "filter":
            jit.compile("f", source=source)
        else:
            jit.program("p", "raw_tracepoint/sys_enter", source=source)


def test_a_program_for_an_unknown_section_is_refused():
    with pytest.raises(JitError, match="nosuchhook"):
        jit.program("p", "nosuchhook/x", source="def p(ctx):\n    return 0\n")


def test_map_declarations_are_checked():
    for args, what in [(("queue",), "is one of"), (("hash", 0), "max_entries"),
                       (("hash", 8, -1), "flags"), (("nosuch",), "unknown map type")]:
        with pytest.raises(JitError, match=what):
            jit.Map(*args)


def test_a_map_in_python_has_the_kernel_maps_rules():
    a = jit.Map("array", max_entries=4)
    a[5] += 1
    a[-1 & 0xFFFFFFFF] = 1
    a[2] = 1 << 63             # wraps, as the kernel's 64-bit value does
    assert dict(a) == {2: INT64_MIN} and 3 in a and 9 not in a and a[1] == 0
    h = jit.Map("hash", max_entries=2)
    h[1] = h[2] = h[3] = 7     # a full hash map takes no new key
    del h[1]
    assert dict(h) == {2: 7}


# -- the dependency -------------------------------------------------------------------

def test_the_core_never_imports_llvmlite():
    out = fresh_python(["-c", "import sys, pybpf, pybpf.filterreduce, pybpf.cli, pybpf.loader; "
                        "print('llvmlite' in sys.modules)"])
    assert out.stdout.strip() == "False", out.stderr


def test_without_llvmlite_the_jit_says_what_to_install():
    code = ("import sys; sys.modules['llvmlite'] = None\n"
            "from pybpf.errors import DependencyError\n"
            "try:\n    import pybpf.jit\nexcept DependencyError as e:\n    print(e)\n")
    out = fresh_python(["-c", code])
    assert "pip install 'pybpf[jit]'" in out.stdout, out.stderr
    assert issubclass(DependencyError, ImportError)


def test_compiling_needs_no_clang_or_llc(tmp_path):
    """The whole compile, from source to object, with nothing but Python on PATH."""
    code = ("from pybpf import jit; import shutil\n"
            "assert shutil.which('clang') is None and shutil.which('llc') is None\n"
            "f = jit.compile('f', source='def f(x):\\n    return x * 3 + 1\\n')\n"
            "print(f(4), len(f.bpf) > 0)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=ROOT, PATH=str(tmp_path)))
    assert out.stdout.split() == ["13", "True"], out.stderr
