"""freplace programs, loaded against a function of another loaded program that the
user names (BpfObject.load(replace=...)), and attached through pybpf.attach."""
import errno

import pytest

import pybpf
from pybpf.attach import attach
from pybpf.loader import BpfObject



@pytest.fixture(scope="module")
def objects(bpf_object):
    return lambda name: bpf_object(f"freplace/{name}")


def test_without_a_target_the_error_says_how_to_give_one(objects):
    with BpfObject.open(objects("replace")) as o:
        with pytest.raises(pybpf.Error, match=r"give that program with "
                                              r"load\(replace=\{'new_decide': program\}\)"):
            o.load()


def test_a_target_must_be_a_loaded_program_and_name_a_function(objects):
    with BpfObject.open(objects("replace")) as o:
        with pytest.raises(pybpf.InputError, match="takes a loaded Program"):
            o.load(replace={"new_decide": 3})
        with pytest.raises(pybpf.InputError, match="has no freplace program 'entry'"):
            o.load(replace={"entry": 3})


@pytest.mark.vm
def test_the_replacement_runs_while_attached(objects):
    with BpfObject.open(objects("target")) as target:
        target.load()
        entry = target.programs["entry"]
        with pytest.raises(pybpf.MissingError, match="no function 'nope'"):
            entry.function_btf_id("nope")
        assert entry.test_run(b"\0" * 64).retval == 1
        with BpfObject.open(objects("replace")) as repl:
            try:
                repl.load(replace={"new_decide": entry})
            except pybpf.BPFError as e:
                if e.errno != errno.EPERM:
                    raise
                pytest.skip("this kernel refuses freplace programs (EPERM, as the 6.18 "
                            "host does under lockdown); Debian's 6.1 in the VM tier runs it")
            spec = repl.spec.programs["new_decide"]
            with attach(repl.programs["new_decide"], spec.section_def):
                assert entry.test_run(b"\0" * 64).retval == 42
            assert entry.test_run(b"\0" * 64).retval == 1
