"""pybpf runs on CPython 3.9 (setup.cfg: python_requires >= 3.9).

The tests themselves run on whatever Python is installed, often a newer one, so a
3.10-only construct would pass every other test and break only for 3.9 users. vermin
reads the source and knows which version each syntax form, module, function and
keyword argument first appeared in.

vermin misses one common case: ``X | Y`` union types. Its ``union-types`` feature
cannot tell them from bitwise or and flags every ``C.BPF_JMP | C.BPF_CALL`` in the
assembler, so it stays off and ``test_no_union_annotations_evaluated`` checks the
place where ``X | Y`` actually breaks 3.9: annotations evaluated at definition time.
"""
import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKED = [ROOT / "pybpf", ROOT / "tools"]
TARGET = (3, 9)
SETUP_HINT = "install the test extra: `pip install -e '.[test]'` (bash tools/run-tests does)"

# vermin 1.9 has no __main__ module, so `python -m vermin` does not work; calling its
# entry point under this interpreter runs the vermin installed alongside pytest.
VERMIN = "import sys; from vermin import main; sys.argv[0] = 'vermin'; sys.exit(main())"


def _vermin(*args):
    proc = subprocess.run([sys.executable, "-c", VERMIN, *args],
                          capture_output=True, text=True, cwd=ROOT)
    if "No module named 'vermin'" in proc.stderr:
        pytest.fail(f"vermin is not installed: {SETUP_HINT}")
    return proc


def test_minimum_python_version():
    target = "%d.%d" % TARGET
    proc = _vermin(
        # vermin would also read setup.cfg as its config: keep every flag here.
        "--no-config-file",
        "--no-tips",
        # Without `from __future__ import annotations`, annotations are evaluated when
        # the def runs, so `list[int]` there needs 3.9: count them.
        "--eval-annotations",
        # With a target, --violations lists only what needs more, file and line.
        f"--target={target}-", "--violations",
        *map(str, CHECKED))
    m = re.search(r"^Minimum required versions:\s*(.*)$", proc.stdout, re.M)
    assert m, f"unexpected vermin output (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"
    versions = re.findall(r"\b3\.(\d+)\b", m.group(1))
    assert versions or "~3" in m.group(1), f"no Python 3 verdict in: {m.group(0)}"
    minimum = (3, int(versions[0])) if versions else (3, 0)
    assert minimum <= TARGET and proc.returncode == 0, (
        f"pybpf must run on Python {target}, but vermin says it needs "
        f"{minimum[0]}.{minimum[1]}:\n{proc.stdout}")


def _python_files():
    for top in CHECKED:
        for path in sorted(top.rglob("*")):
            if path.is_file() and (path.suffix == ".py" or
                                   path.read_bytes()[:64].startswith(b"#!/usr/bin/env python")):
                yield path


def _evaluated_annotations(tree):
    """Annotations Python evaluates when the code runs: parameters and returns of
    every def, and variable annotations outside functions (inside one they are not
    evaluated)."""
    def walk(node, in_function):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs,
                        args.vararg, args.kwarg]:
                if arg is not None and arg.annotation is not None:
                    yield arg.annotation
            if node.returns is not None:
                yield node.returns
            in_function = True
        elif isinstance(node, ast.AnnAssign) and not in_function:
            yield node.annotation
        for child in ast.iter_child_nodes(node):
            yield from walk(child, in_function)
    yield from walk(tree, False)


def _future_annotations(tree):
    return any(isinstance(node, ast.ImportFrom) and node.module == "__future__"
               and any(a.name == "annotations" for a in node.names) for node in tree.body)


def test_no_union_annotations_evaluated():
    """``int | None`` in an evaluated annotation raises TypeError on import under 3.9."""
    found = []
    for path in _python_files():
        tree = ast.parse(path.read_text(), str(path))
        if _future_annotations(tree):
            continue
        for annotation in _evaluated_annotations(tree):
            for node in ast.walk(annotation):
                if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: "
                                 f"{ast.unparse(annotation)}")
                    break
    assert not found, ("`X | Y` in annotations evaluated at run time needs Python 3.10; "
                       "use typing.Optional/Union or `from __future__ import annotations`:\n"
                       + "\n".join(found))
