"""The section table owns attach()'s dispatch: each row names the pybpf.attach module
that attaches its programs (or says why none does), and each hook module is named by
a row. So a new hook kind is one module and one row, nothing else. No kernel: what is
checked is which module and which options, and the refusals made before any
kernel object."""
import importlib
import inspect
import pathlib
import re

import pytest

from pybpf import attach as A
from pybpf import sections
from pybpf.kernel.constants import ProgType

PACKAGE = pathlib.Path(A.__file__).parent
# Modules of the package that are not hooks: what several hooks share.
SHARED = {"__init__", "common", "perflink", "netdev", "netlink"}


def test_every_hook_module_is_named_by_the_table_and_every_row_by_a_module():
    modules = {p.stem for p in PACKAGE.glob("*.py")} - SHARED
    assert set(sections.hooks()) == modules
    for name in modules:
        module = importlib.import_module(f"pybpf.attach.{name}")
        assert callable(module.attach_section), name
        params = list(inspect.signature(module.attach_section).parameters)
        assert params[:2] == ["program", "sd"] and tuple(params[2:]) == module.OPTIONS, name


@pytest.mark.parametrize("section, hook", [
    ("kprobe/do_sys_openat2", "kprobe"), ("kretprobe/x", "kprobe"), ("ksyscall/getpid", "kprobe"),
    ("uprobe/lib:f", "uprobe"), ("uretprobe.s/lib:f", "uprobe"), ("tp/syscalls/x", "tracepoint"),
    ("raw_tp.w/x", "raw_tracepoint"), ("fentry.s/f", "tracing"), ("lsm/file_open", "tracing"),
    ("tp_btf/sched_switch", "tracing"), ("lsm_cgroup/socket_bind", "cgroup"),
    ("sockops", "cgroup"), ("cgroup_skb/egress", "cgroup"), ("cgroup/connect4", "cgroup"),
    ("xdp.frags", "xdp"), ("classifier", "tc"), ("perf_event", "perf_event"),
    ("kprobe.multi/f*", "kprobe_multi"), ("kretprobe.multi/f", "kprobe_multi"),
    ("kprobe.session/f", "kprobe_multi"), ("uprobe.multi/lib:f*", "uprobe_multi"),
    ("uretprobe.multi.s/lib:f", "uprobe_multi"), ("tcx/ingress", "tcx"), ("tc/egress", "tcx"),
    ("netfilter", "netfilter"), ("cgroup/connect_unix", "cgroup"),
    ("cgroup/getsockname_unix", "cgroup")])
def test_rows_name_their_hook(section, hook):
    assert sections.parse(section).hook == hook


class FakeProgram:
    def __init__(self, ptype, name="p"):
        self.type, self.name, self.fd = ptype, name, -1


@pytest.mark.parametrize("section, message", [
    ("socket", "socket filters are not attached to a hook"),
    ("xdp/devmap", "run from a devmap/cpumap entry"),
    ("kprobe.multi/f-oo*", "characters libbpf's section parser does not take"),
    ("kprobe.session", "does not say where to attach (kprobe.session/PATTERN)"),
    ("uprobe.multi/nocolon", "is not PATH:PATTERN"),
    ("uretprobe.multi", "does not say where to attach (uretprobe.multi/PATH:PATTERN)"),
    ("uprobe.multi/lib:", "is not PATH:PATTERN"),
    ("uprobe.multi/pybpf-no-such-binary:f*", "cannot find 'pybpf-no-such-binary'"),
    ("tcx/ingress", "pass iface="),
    ("netfilter", "pass pf= (\"ipv4\" or \"ipv6\") and hooknum="),
    ("netkit/primary", "netkit programs attach to a netkit device"),
    ("sk_skb/verdict", "sk_skb programs attach to a sockmap"),
    ("struct_ops.s/f", "registered through their struct_ops map"),
    ("perf_event", "perf_event programs need a sampling event"),
    ("cgroup_skb/egress", "pass cgroup="),
    ("xdp", "pass iface="),
    ("kprobe", "does not say where to attach (kprobe/FUNCTION[+OFFSET])"),
    ("uprobe/nocolon", "is not PATH:FUNCTION[+OFFSET]"),
])
def test_refusals_before_any_kernel_object(section, message):
    prog = FakeProgram(sections.parse(section).prog_type)
    with pytest.raises(A.AttachError, match=re.escape(message)):
        A.attach(prog, section)


def test_options_go_only_to_the_hooks_that_take_them():
    assert A.options_of(sections.parse("xdp")) == ("iface", "xdp_flags")
    assert A.options_of(sections.parse("tc")) == ("iface",)
    assert A.options_of(sections.parse("uprobe/x:f")) == ("pid",)
    assert A.options_of(sections.parse("socket")) == ()
    with pytest.raises(A.AttachError, match=r"iface= does not apply to 'kprobe/f' programs "
                                            r"\(it is for tcx, tc and xdp programs\)"):
        A.attach(FakeProgram(ProgType.KPROBE), "kprobe/f", iface="lo")
    with pytest.raises(A.AttachError, match=r"pid= does not apply to 'xdp'"):
        A.attach(FakeProgram(ProgType.XDP), "xdp", pid=1)
    assert A.options_of(sections.parse("netfilter")) == ("pf", "hooknum", "priority", "flags")
    assert A.options_of(sections.parse("uprobe.multi/x:f*")) == ("pid",)
    assert A.options_of(sections.parse("tcx/egress")) == ("iface",)
    with pytest.raises(A.AttachError, match=r"hooknum= does not apply to 'tc' programs "
                                            r"\(it is for netfilter programs\)"):
        A.attach(FakeProgram(ProgType.SCHED_CLS), "tc", hooknum=3)


def test_a_section_def_made_without_a_hook_gets_its_rows():
    sd = sections.parse("socket")
    bare = sections.SectionDef(sd.section, sd.prefix, sd.prog_type, sd.expected_attach_type,
                               sd.target, sd.flags, sd.autoload)
    with pytest.raises(A.AttachError, match="socket filters"):
        A.attach(FakeProgram(ProgType.SOCKET_FILTER), bare)
