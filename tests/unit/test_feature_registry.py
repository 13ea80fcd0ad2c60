"""The feature registry without a kernel: what every feature says about itself, that a
test runs once per process, the NotSupportedError it makes, and that the library
decides nothing by kernel version (pybpf.kernel.features is the one way to ask)."""
import ast
import pathlib
import pickle
import re

import pytest

import pybpf
from pybpf import attach
from pybpf.errors import BPFError
from pybpf.kernel import features

PACKAGE = pathlib.Path(pybpf.__file__).parent


def test_every_feature_names_itself_and_the_release_that_has_it():
    assert len(features.FEATURES) >= 10
    for name, f in features.FEATURES.items():
        assert f.name == name and re.fullmatch(r"[a-z0-9_]+", name)
        assert f.minimum is None or re.fullmatch(r"\d+\.\d+", f.minimum), name
        assert f.description and callable(f.test), name


@pytest.fixture
def fake(monkeypatch):
    """A registry holding only a feature of the test's making, whose test counts its
    runs (so nothing here asks the kernel)."""
    runs = []

    def test():
        runs.append(1)
        if len(runs) == 1 and fake.fail_first:
            raise BPFError("BPF_PROG_LOAD", 1, "", "no privilege")
        return fake.answer

    fake.answer, fake.fail_first, fake.runs = True, False, runs
    monkeypatch.setattr(features, "FEATURES", {"pybpf_test_feature": features.Feature(
        "pybpf_test_feature", "9.9", "a test's feature", test)})
    yield fake
    features._answers.pop("pybpf_test_feature", None)


def test_a_feature_is_tested_once_and_the_answer_kept(fake):
    assert features.have("pybpf_test_feature") is True
    fake.answer = False
    assert features.have("pybpf_test_feature") is True
    assert len(fake.runs) == 1


def test_a_test_the_kernel_refuses_is_not_kept(fake):
    fake.fail_first = True
    with pytest.raises(BPFError):
        features.have("pybpf_test_feature")
    assert features.have("pybpf_test_feature") is True and len(fake.runs) == 2
    report = features.report()["pybpf_test_feature"]
    assert report == {"available": True, "minimum": "9.9", "description": "a test's feature",
                      "detail": ""}


def test_the_error_for_a_missing_feature(fake):
    fake.answer = False
    with pytest.raises(pybpf.NotSupportedError) as e:
        features.require("pybpf_test_feature", "attaching x", "use y")
    err = e.value
    assert (err.feature, err.minimum, err.cmd, err.hint) == ("pybpf_test_feature", "9.9",
                                                             None, "use y")
    assert str(err) == "attaching x (Linux 9.9+)\n  hint: use y"
    assert isinstance(err, pybpf.BPFError) and isinstance(err, OSError)
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.feature == err.feature
    assert str(features.missing("pybpf_test_feature")) == \
        "this kernel has no a test's feature (Linux 9.9+)"


def test_a_missing_hook_is_also_an_attach_error():
    """attach refused missing hooks with AttachError before the registry: callers that
    catch that (or ValueError) still do."""
    err = features.missing("kprobe_events", "no kprobes here",
                           error=attach.HookNotSupportedError)
    assert isinstance(err, pybpf.NotSupportedError) and isinstance(err, attach.AttachError)
    assert isinstance(err, ValueError) and isinstance(err, OSError)
    assert str(err) == "no kprobes here" and err.feature == "kprobe_events"


def _compares_kernel_version(node):
    def is_version_call(n):
        return isinstance(n, ast.Call) and getattr(n.func, "attr", getattr(
            n.func, "id", None)) == "kernel_version"
    return isinstance(node, ast.Compare) and any(
        is_version_call(n) for n in [node.left, *node.comparators])


def test_nothing_is_decided_by_kernel_version():
    """``kernel_version() < (5, 9)`` is how features were guessed before the registry;
    what a kernel has is asked of the kernel (the registry), never read off a number."""
    found = [f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
             for path in sorted(PACKAGE.rglob("*.py"))
             for node in ast.walk(ast.parse(path.read_text()))
             if _compares_kernel_version(node)]
    assert not found, f"kernel version comparisons: {found}"
