"""uprobe_multi links (pybpf.attach.uprobe_multi) on the running kernel: one link on
every function of a binary matching a glob, counted by an assembled program (the
counter of test_attach.py, loaded for BPF_TRACE_UPROBE_MULTI) in tests/progs/attach/
target.c (gcc: its hit_one, hit_two and miss_three) and in libc."""
import errno
import os
import subprocess

import pytest
from test_attach import PROGS, counter, counts  # noqa: F401 (a fixture)
from toolbox import tool_path

from pybpf.attach import AttachError, UprobeMultiLink, attach, attach_uprobe_multi
from pybpf.attach.uprobe_multi import matching_functions
from pybpf.errors import BPFError
from pybpf.kernel import features
from pybpf.kernel.constants import BPF_F_SLEEPABLE, AttachType, LinkType

pytestmark = pytest.mark.skipif(not features.have("uprobe_multi"),
                                reason="needs uprobe_multi links (Linux 6.6+)")
N = 7


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    path = tmp_path_factory.mktemp("multi") / "target"
    subprocess.run([tool_path("gcc"), "-O2", "-o", str(path), os.path.join(PROGS, "target.c")],
                   check=True)
    return str(path)


def multi_counter(counts, sleepable=False, **kw):
    return counter(counts, 0, cookie_slot=1, expected_attach_type=AttachType.TRACE_UPROBE_MULTI,
                   flags=BPF_F_SLEEPABLE if sleepable else 0, **kw)


def run(path, calls=N):
    subprocess.run([path, str(calls)], check=True, capture_output=True)


@pytest.mark.parametrize("sleepable", [False, True])
def test_one_link_on_every_matching_function(target, counts, sleepable):
    with multi_counter(counts, sleepable) as prog:
        with attach_uprobe_multi(prog, target, "hit_*",
                                 cookies={"hit_one": 1, "hit_two": 100}) as link:
            assert isinstance(link, UprobeMultiLink)
            assert sorted(link.functions) == ["hit_one", "hit_two"]
            assert link.info().type == LinkType.UPROBE_MULTI
            run(target)
        run(target)
    assert counts[0] == 2 * N and counts[1] == 101 * N


def test_uretprobe_multi_from_its_section_name(target, counts):
    with multi_counter(counts) as prog:
        with attach(prog, f"uretprobe.multi/{target}:?it_on?") as link:
            assert link.functions == ["hit_one"]
            run(target)
    assert counts[0] == N


def test_pid_narrows_to_one_process(target, counts):
    with multi_counter(counts) as prog:
        waiting = subprocess.Popen([target, str(N), "wait"], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True)
        try:
            assert waiting.stdout.readline() == "ready\n"
            with attach(prog, f"uprobe.multi/{target}:*three", pid=waiting.pid):
                run(target)              # another process: not counted
                waiting.communicate("go\n", timeout=10)
        finally:
            waiting.kill()
            waiting.wait()
    assert counts[0] == N


def test_libc_by_library_name_probes_aliases_once(counts):
    # glibc's getpid has an alias, __getpid, at the same address: probed once.
    with multi_counter(counts, tgid=os.getpid()) as prog:
        with attach_uprobe_multi(prog, "libc", "*getpid", pid=os.getpid()) as link:
            assert len(link.functions) == 1 and link.path.startswith("/")
            for _ in range(N):
                os.getpid()
    assert counts[0] == N


def test_link_closes_once(target, counts):
    with multi_counter(counts) as prog:
        (_, offset), = matching_functions(target, "hit_one")
        link = attach_uprobe_multi(prog, target, offsets=[offset])
        with link:
            run(target)
        link.close()
        assert link.closed
    assert counts[0] == N


def test_mistakes_name_the_fix(target, counts):
    with multi_counter(counts) as prog:
        with pytest.raises(AttachError, match=r"no function of .* matches 'nothing_\*'"):
            attach_uprobe_multi(prog, target, "nothing_*")
        with pytest.raises(AttachError, match=r"similar: hit_one"):
            attach_uprobe_multi(prog, target, "hit_on")
        with pytest.raises(AttachError, match=r"cannot find 'pybpf-no-such-lib'"):
            attach_uprobe_multi(prog, "pybpf-no-such-lib", "f*")
        with pytest.raises(AttachError, match=r"does not exist"):
            attach_uprobe_multi(prog, "/nonexistent/bin", "f*")
        with pytest.raises(AttachError, match=r"not both"):
            attach_uprobe_multi(prog, target, "hit_*", offsets=[1])
        with pytest.raises(AttachError, match=r"cookies for nope, which the pattern"):
            attach_uprobe_multi(prog, target, "hit_*", cookies={"nope": 1})
        with pytest.raises(AttachError, match=r"is empty"):
            attach_uprobe_multi(prog, target, "")
    with counter(counts, 0) as plain:  # not loaded for BPF_TRACE_UPROBE_MULTI
        with pytest.raises(BPFError, match=r"SEC\(\"uprobe.multi/...\"\)") as e:
            attach_uprobe_multi(plain, target, "hit_*")
        assert e.value.errno == errno.EINVAL
