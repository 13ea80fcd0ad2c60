"""kprobe_multi links (pybpf.attach.kprobe_multi). They need a kernel with kprobes and
CONFIG_FPROBE: neither this host's 6.18 (no CONFIG_KPROBES) nor the VM tier's Debian
6.1 (no CONFIG_FPROBE) has it, so here the refusal is checked, and the attach test is
``vm``-marked and skips unless its kernel has them (Linux 5.18+ built with
CONFIG_FPROBE)."""
import os

import pytest
from test_attach import counter, counts  # noqa: F401 (a fixture)

from pybpf.attach import AttachError, HookNotSupportedError, attach, attach_kprobe_multi
from pybpf.kernel import features
from pybpf.kernel.constants import AttachType

HAS_KPROBE_MULTI = features.have("kprobe_multi")
needs_kprobe_multi = pytest.mark.skipif(
    not HAS_KPROBE_MULTI, reason="needs kprobe_multi links: Linux 5.18+ built with "
                                 "CONFIG_FPROBE (neither this "
                                 "kernel nor the VM tier's Debian 6.1 has it)")


@pytest.fixture
def prog(counts):
    with counter(counts, 0, tgid=os.getpid(), cookie_slot=1,
                 expected_attach_type=AttachType.TRACE_KPROBE_MULTI) as p:
        yield p


@pytest.mark.skipif(HAS_KPROBE_MULTI, reason="this kernel has kprobe_multi links")
def test_a_kernel_without_them_says_so(prog):
    with pytest.raises(HookNotSupportedError, match=r"(?s)kprobe_multi.*5\.18.*attach_kprobe"):
        attach_kprobe_multi(prog, "__x64_sys_getpid")
    with pytest.raises(HookNotSupportedError, match=r"kprobe session links .*6\.10"):
        attach(prog, "kprobe.session/__x64_sys_getpid")
    with pytest.raises(AttachError, match="takes no retprobe"):
        attach_kprobe_multi(prog, "f", retprobe=True, session=True)


@pytest.mark.vm
@needs_kprobe_multi
def test_one_link_on_every_matching_function(prog, counts):
    with attach_kprobe_multi(prog, "__x64_sys_getp*id",
                             cookies={"__x64_sys_getpid": 1, "__x64_sys_getppid": 100}) as link:
        assert set(link.functions) >= {"__x64_sys_getpid", "__x64_sys_getppid"}
        for _ in range(5):
            os.getpid()
            os.getppid()
    assert counts[0] == 10 and counts[1] == 505


@pytest.mark.vm
@needs_kprobe_multi
def test_kretprobe_multi_from_its_section_name(prog, counts):
    with attach(prog, "kretprobe.multi/__x64_sys_getpid"):
        for _ in range(4):
            os.getpid()
    assert counts[0] == 4
    with pytest.raises(AttachError, match="no traceable kernel function matches"):
        attach(prog, "kprobe.multi/pybpf_no_such_function*")
