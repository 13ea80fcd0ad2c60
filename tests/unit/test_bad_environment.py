"""What pybpf says on a machine it cannot run on: an interpreter older than its 3.9
floor, an architecture it has no syscall numbers for. (A root without bpffs mounted:
tests/kernel/test_bad_input.py.)"""
import ast
import os

import pytest
from toolbox import ROOT, fresh_python

from pybpf.errors import BPFError
from pybpf.kernel import syscall

INIT = os.path.join(ROOT, "pybpf", "__init__.py")


def test_an_old_python_is_told_the_floor_and_the_fix():
    r = fresh_python(["-c", "import sys; sys.version_info = (3, 8, 10, 'final', 0)\n"
                            "import pybpf"])
    assert r.returncode == 1
    assert "ImportError: pybpf needs Python 3.9 or newer; this is Python 3.8 (" in r.stderr
    assert "Install a newer python3" in r.stderr


def test_the_check_itself_parses_in_old_pythons():
    """The check must run before any 3.9 syntax is met: pybpf/__init__.py uses none of
    what 3.6-3.8 lack, and imports nothing of pybpf before the check."""
    tree = ast.parse(open(INIT).read())
    check = next(i for i, n in enumerate(tree.body) if isinstance(n, ast.If))
    assert all(isinstance(n, (ast.Expr, ast.Import)) for n in tree.body[:check])
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.JoinedStr, ast.NamedExpr))]


def test_an_unknown_architecture_names_itself_the_known_ones_and_the_fix():
    with pytest.raises(BPFError) as e:
        syscall.syscall_numbers("sparc64")
    msg = str(e.value)
    assert "for the 'sparc64' architecture (known: aarch64," in msg
    assert "to SYSCALL_NUMBERS in pybpf/kernel/syscall.py" in msg


def test_the_cli_on_an_unknown_architecture_says_so_without_a_traceback(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(
        "import os\n_real = os.uname\n"
        "def uname():\n    u = _real()\n"
        "    return os.uname_result((u.sysname, u.nodename, u.release, u.version, "
        "'sparc64'))\n"
        "os.uname = uname\n")
    r = fresh_python(["-m", "pybpf", "probe"], pythonpath=[str(tmp_path)])
    assert r.returncode == 1
    assert r.stderr.startswith("pybpf probe: error: ") and "Traceback" not in r.stderr
    assert "'sparc64' architecture" in r.stderr
