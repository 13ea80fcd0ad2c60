"""What each command imports: a CLI call is a whole process, and what it imports is
most of its start-up (docs/performance.md, "Start-up"). Checked by the modules a
fresh interpreter holds afterwards, not by timing, so an import-time regression (a
package __init__ that imports everything again, a command module that loads the
pipeline to build its parser) fails here on any machine."""
import json

import pytest
from toolbox import fresh_python

_RUN = """
import contextlib, io, json, runpy, sys
sys.argv = ["pybpf"] + json.loads(sys.argv[1])
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
    try:
        runpy.run_module("pybpf", run_name="__main__")
    except SystemExit:
        pass
print(json.dumps(sorted(sys.modules)))
"""


def modules_after(args):
    r = fresh_python(["-c", _RUN, json.dumps(args)])
    assert r.returncode == 0, r.stderr
    return set(json.loads(r.stdout.splitlines()[-1]))


def _ours(modules):
    return {m for m in modules if m == "pybpf" or m.startswith("pybpf.")}


def test_help_imports_only_the_cli():
    assert _ours(modules_after(["--help"])) == {"pybpf", "pybpf.cli", "pybpf.errors",
                                                "pybpf.exports"}


# What no command's parser needs: the other commands' machinery, the extras.
EXTRAS = {"pybpf.jit", "pybpf.dask", "distributed", "llvmlite", "matplotlib"}
LOADER = {"pybpf.loader", "pybpf.objfile", "pybpf.linker"}
PIPELINE = {"pybpf.filterreduce.reader", "pybpf.filterreduce.pipeline",
            "pybpf.filterreduce.stage"}
HOOKS = {"pybpf.attach.kprobe", "pybpf.attach.uprobe", "pybpf.attach.usdt",
         "pybpf.attach.xdp", "pybpf.netattach"}
KERNEL = {"ctypes", "dataclasses", "pybpf.kernel.bpf", "pybpf.kernel.constants"}


def test_import_pybpf_imports_only_its_errors():
    r = fresh_python(["-c", "import sys, pybpf; print(sorted(m for m in sys.modules if "
                      "m.startswith('pybpf')))"])
    assert r.stdout.strip() == "['pybpf', 'pybpf.errors', 'pybpf.exports']", r.stderr
    r = fresh_python(["-c", "import pybpf; print(pybpf.Map.__name__, pybpf.ProgType.XDP.name, "
                      "pybpf.BPF_ANY)"])
    assert r.stdout.split() == ["Map", "XDP", "0"], r.stderr


@pytest.mark.parametrize("command, forbidden", [
    (["load", "--help"], PIPELINE | HOOKS | {"pybpf.probe", "pybpf.events"}),
    (["run", "--help"], PIPELINE | HOOKS | {"pybpf.probe"}),
    (["probe", "--help"], LOADER | PIPELINE | HOOKS),
    (["attach", "copyout", "--help"], KERNEL | LOADER | PIPELINE | HOOKS | {"pybpf.probe"}),
    (["gen-numbers", "--help"], KERNEL | LOADER | PIPELINE | HOOKS | {"pybpf.probe"}),
    (["prog", "list", "--help"], LOADER | PIPELINE | HOOKS | {"pybpf.probe"}),
    (["link", "list", "--help"], LOADER | PIPELINE | HOOKS | {"pybpf.probe"}),
    (["bench", "thesis", "--help"], KERNEL | LOADER | PIPELINE | HOOKS | {"pybpf.probe",
                                                                          "pybpf.evaluation"}),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_a_commands_help_imports_no_other_commands_machinery(command, forbidden):
    loaded = modules_after(command)
    assert not loaded & (forbidden | EXTRAS), sorted(loaded & (forbidden | EXTRAS))


def test_the_constants_build_only_the_enums_used():
    code = ("import pybpf.kernel.constants as C; C.MapType.HASH; "
            "print(sorted(k for k in C._ENUMS if k in vars(C)), C.BPF_MAP_TYPE_HASH is "
            "C.MapType.HASH)")
    r = fresh_python(["-c", code])
    assert r.stdout.strip() == "['MapType'] True", r.stderr
