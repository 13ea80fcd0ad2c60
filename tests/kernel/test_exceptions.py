"""BPF exceptions (bpf_throw, 6.7+): a program's exception callback, named by a decl
tag and called by nothing, is linked into that program alone, and runs when the
program throws."""

import pytest

from pybpf.btf import Btf
from pybpf.loader import BpfObject



@pytest.fixture(scope="module")
def throw_object(bpf_object):
    return bpf_object("exceptions/throw", flags=("-mcpu=v3",))


def test_the_callback_is_placed_only_in_the_program_that_names_it(throw_object):
    with BpfObject.open(throw_object) as o:
        layout = {name: [p.function.name for p in spec.layout]
                  for name, spec in o.spec.programs.items()}
    assert layout == {"throws": ["throws", "check", "on_throw"], "plain": ["plain"]}


def test_a_throw_runs_the_callback_and_returns_what_it_returns(throw_object):
    if not Btf.vmlinux().find("bpf_throw", "func"):
        pytest.skip("bpf_throw is a kfunc from 6.7 (this host's 6.18 has it)")
    with BpfObject.open(throw_object) as o:
        o.load()
        throws = o.programs["throws"]
        assert throws.test_run(b"\0" * 20).retval == 20        # no throw: len
        assert throws.test_run(b"\0" * 60).retval == 107       # thrown 7, callback + 100
        assert o.programs["plain"].test_run(b"\0" * 60).retval == 1
