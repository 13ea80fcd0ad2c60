"""kprobe_multi links (pybpf.attach.kprobe_multi). They need a kernel with kprobes and
CONFIG_FPROBE: neither this host's 6.18 (no CONFIG_KPROBES) nor the VM tier's Debian
6.1 (no CONFIG_FPROBE) has it, so there the refusal is checked; the attach tests run
in the patched tier, whose 6.1 kernel-config/ builds with CONFIG_FPROBE."""
import os

import pytest
from test_attach import counter, counts  # noqa: F401 (a fixture)

from pybpf.attach import AttachError, HookNotSupportedError, attach, attach_kprobe_multi
from pybpf.kernel import features
from pybpf.kernel.constants import AttachType

HAS_KPROBE_MULTI = features.have("kprobe_multi")
needs_kprobe_multi = pytest.mark.skipif(
    not HAS_KPROBE_MULTI, reason="needs kprobe_multi links: Linux 5.18+ built with "
                                 "CONFIG_FPROBE; runs in the patched VM tier (the 6.1 "
                                 "built from kernel-config/)")


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


@pytest.mark.patched
@needs_kprobe_multi
def test_one_link_on_every_matching_function(prog, counts):
    # getresuid/getresgid: syscalls glibc never caches, which ftrace can trace on 6.1
    # (its SYSCALL_DEFINE0 wrappers such as __x64_sys_getpid are not traceable there).
    with attach_kprobe_multi(prog, "__x64_sys_getres?id",
                             cookies={"__x64_sys_getresuid": 1,
                                      "__x64_sys_getresgid": 100}) as link:
        assert set(link.functions) == {"__x64_sys_getresuid", "__x64_sys_getresgid"}
        for _ in range(5):
            os.getresuid()
            os.getresgid()
    assert counts[0] == 10 and counts[1] == 505


@pytest.mark.patched
@needs_kprobe_multi
def test_kretprobe_multi_from_its_section_name(prog, counts):
    with attach(prog, "kretprobe.multi/__x64_sys_getresuid"):
        for _ in range(4):
            os.getresuid()
    assert counts[0] == 4
    with pytest.raises(AttachError, match="no traceable kernel function matches"):
        attach(prog, "kprobe.multi/pybpf_no_such_function*")
