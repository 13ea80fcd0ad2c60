"""One exception family: everything pybpf raises on purpose is a ``pybpf.Error``.

A caller catches "anything pybpf refused" with one ``except pybpf.Error``, while the
builtin bases stay (``ValueError`` for bad input, ``OSError`` for failed system calls,
``KeyError``/``IndexError`` for absence), so existing ``except`` clauses keep working.
The checks: every exception class pybpf defines joins the family, and no module
raises a bare builtin exception, which would escape ``except pybpf.Error``.
"""
import ast
import builtins
import importlib
import inspect
import pathlib
import pickle
import pkgutil

import pytest

import pybpf
from pybpf import errors

PACKAGE = pathlib.Path(pybpf.__file__).parent


def _modules():
    for info in pkgutil.walk_packages([str(PACKAGE)], "pybpf."):
        if info.name == "pybpf.__main__":
            continue  # running it would start the command line
        yield importlib.import_module(info.name)


def test_every_exception_class_pybpf_defines_is_a_pybpf_error():
    outside = []
    for module in _modules():
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, BaseException)
                    and obj.__module__ == module.__name__ and not name.startswith("_Poison")
                    and not issubclass(obj, pybpf.Error)):
                outside.append(f"{module.__name__}.{name}")
    assert not outside, f"exception classes outside pybpf.Error: {outside}"


_BUILTIN_EXCEPTIONS = {name for name, obj in vars(builtins).items()
                       if inspect.isclass(obj) and issubclass(obj, BaseException)}
# Raised to end iteration or to stop the interpreter: not errors a caller catches.
_PROTOCOL = {"StopIteration", "KeyboardInterrupt", "SystemExit", "NotImplementedError"}


def test_no_module_makes_a_bare_builtin_exception():
    """``raise ValueError(...)`` (or returning one to raise later) would escape ``except
    pybpf.Error``; make the family's InputError (a ValueError) and friends instead."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        # A module's __getattr__ (PEP 562: names imported on first use) must raise
        # AttributeError for a name it does not have, or hasattr() breaks.
        protocol = {id(n) for f in ast.walk(tree)
                    if isinstance(f, ast.FunctionDef) and f.name == "__getattr__"
                    for n in ast.walk(f)}
        for node in ast.walk(tree):
            if id(node) in protocol and isinstance(node, (ast.Raise, ast.Call)):
                exc = node.exc if isinstance(node, ast.Raise) else node
                if isinstance(exc, ast.Call) and getattr(exc.func, "id", None) == \
                        "AttributeError":
                    continue
            if isinstance(node, ast.Raise) and node.exc is not None:
                exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            elif isinstance(node, ast.Call):
                exc = node.func
            else:
                continue
            if path.name == "__init__.py" and path.parent == PACKAGE and \
                    getattr(exc, "id", None) == "ImportError":
                continue    # the interpreter check, which runs before pybpf.errors exists
            if isinstance(exc, ast.Name) and exc.id in _BUILTIN_EXCEPTIONS - _PROTOCOL:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {exc.id}")
    assert not found, "bare builtin exceptions made:\n" + "\n".join(found)


@pytest.mark.parametrize("cls, builtin", [
    (errors.InputError, ValueError), (errors.ClosedError, ValueError),
    (errors.UnsupportedError, TypeError), (errors.MissingError, KeyError),
    (errors.EmptyError, IndexError), (errors.DependencyError, ImportError),
    (errors.BPFError, OSError), (errors.VerifierError, OSError),
    (errors.MapFullError, OSError)])
def test_the_builtin_bases_stay(cls, builtin):
    assert issubclass(cls, builtin) and issubclass(cls, pybpf.Error)


def test_missing_error_reads_as_a_sentence_and_keeps_a_key():
    assert str(errors.MissingError("no program 'x' in obj")) == "no program 'x' in obj"
    assert str(errors.MissingError(5)) == "5"
    assert errors.MissingError(b"k").args == (b"k",)


def test_errors_survive_pickling():
    for exc in (errors.InputError("bad"), errors.MissingError("gone"),
                errors.BPFError("BPF_MAP_CREATE", 22, "detail", "hint")):
        again = pickle.loads(pickle.dumps(exc))
        assert type(again) is type(exc) and str(again) == str(exc)
