"""The backends' verdicts for kernels other than this one, from their facts: a kernel
built with kernel-config/, Debian's stock 6.1, the 6.18 build machine (no kprobes),
kernels whose debugfs is not mounted or that lack a helper."""
import pytest

from pybpf.errors import PipelineError
from pybpf.filterreduce import backends
from pybpf.filterreduce.facts import Facts, Symbol
from pybpf.kernel.constants import HelperId, ProgType

K, T = ProgType.KPROBE, ProgType.RAW_TRACEPOINT
ALL_HELPERS = {(int(p), int(h)): True for p in (K, T)
               for h in (HelperId.loop, HelperId.strtoul, HelperId.probe_read_user,
                         HelperId.probe_read_kernel, HelperId.override_return)}
ON = dict.fromkeys(("CONFIG_KPROBES", "CONFIG_FTRACE_SYSCALLS",
                    "CONFIG_FUNCTION_ERROR_INJECTION", "CONFIG_BPF_KPROBE_OVERRIDE"), True)


def facts(config=None, helpers=None, symbols=None, **kwargs):
    """A kernel with everything (the patched one), less what is passed."""
    syms = {"_copy_to_iter": Symbol(), "copyout": Symbol(error_injectable=True)}
    syms.update(symbols or {})
    return Facts(release="6.1.0-test", symbols=syms, config=dict(ON, **(config or {})),
                 helpers={**ALL_HELPERS, **(helpers or {})}, **kwargs)


STOCK_61 = facts(config={"CONFIG_FUNCTION_ERROR_INJECTION": False,
                         "CONFIG_BPF_KPROBE_OVERRIDE": False,
                         "CONFIG_KPROBE_EVENTS_ON_NOTRACE": False},
                 helpers={(int(K), int(HelperId.override_return)): False},
                 symbols={"_copy_to_iter": Symbol(ftrace_able=False),
                          "copyout": Symbol(in_kallsyms=False, error_injectable=None)})
BUILD_MACHINE = facts(kprobes=False, config={"CONFIG_KPROBES": False})


def test_patched_kernel_has_every_backend_and_the_override():
    v = backends.verdicts(facts())
    assert all(x.usable for x in v.values())
    assert v["copyout"].can_override
    assert v["copyout"].notes == ("override available: copyout is on the error-injection "
                                  "list",)
    assert backends.choose(facts=facts())[0].name == "copyout"
    assert backends.choose(override=True, facts=facts())[0].name == "copyout"


def test_stock_debian_61_has_only_the_syscall_backend():
    v = backends.verdicts(STOCK_61)
    assert not v["copyout"].usable and not v["copy_to_iter"].usable and v["syscall"].usable
    notrace = [m for m in v["copy_to_iter"].missing if "notrace" in m]
    assert len(notrace) == 1 and "CONFIG_KPROBE_EVENTS_ON_NOTRACE is off" in notrace[0]
    assert any("copyout is not a probe-able function" in m and "kernel-config/" in m
               for m in v["copyout"].missing)
    assert "CONFIG_FUNCTION_ERROR_INJECTION is off" in v["copyout"].notes[0]
    # Two of its programs hook copyout: the reason is given once.
    assert len(set(v["copyout"].missing)) == len(v["copyout"].missing)
    chosen, why = backends.choose(facts=STOCK_61)
    assert chosen.name == "syscall" and "not copyout" in why and "not copy_to_iter" in why


def test_notrace_functions_are_fine_with_kprobe_events_on_notrace():
    f = facts(config={"CONFIG_KPROBE_EVENTS_ON_NOTRACE": True},
              symbols={"_copy_to_iter": Symbol(ftrace_able=False)})
    assert backends.verdicts(f)["copy_to_iter"].usable


def test_build_machine_without_kprobes_says_which_option():
    v = backends.verdicts(BUILD_MACHINE)
    for name in ("copyout", "copy_to_iter"):
        assert v[name].missing == ("this kernel has no kprobes (CONFIG_KPROBES is off): "
                                   "boot one with CONFIG_KPROBES=y and "
                                   "CONFIG_KPROBE_EVENTS=y",)
    assert backends.choose(facts=BUILD_MACHINE)[0].name == "syscall"


def test_blacklisted_function_is_refused():
    f = facts(symbols={"copyout": Symbol(blacklisted=True)})
    assert "kprobe blacklist" in backends.verdicts(f)["copyout"].missing[0]


@pytest.mark.parametrize("change, words", [
    ({"config": {"CONFIG_BPF_KPROBE_OVERRIDE": False}}, "CONFIG_BPF_KPROBE_OVERRIDE is off"),
    ({"symbols": {"copyout": Symbol(error_injectable=False)}}, "not on the error-injection"),
    ({"helpers": {(int(K), int(HelperId.override_return)): False}}, "may not call"),
])
def test_without_the_override_copyout_still_works_but_copies(change, words):
    v = backends.verdicts(facts(**change))["copyout"]
    assert v.usable and not v.can_override and words in v.notes[0]
    with pytest.raises(PipelineError, match="--override needs the copyout backend"):
        backends.choose("copyout", override=True, facts=facts(**change))


def test_an_unreadable_error_injection_list_assumes_the_override():
    f = facts(symbols={"copyout": Symbol(error_injectable=None, blacklisted=None)})
    v = backends.verdicts(f)["copyout"]
    assert v.usable and v.can_override and "could not be read" in v.notes[0]


def test_a_missing_helper_is_named_with_the_kernel_that_has_it():
    f = facts(helpers={(int(T), int(HelperId.loop)): False})
    v = backends.verdicts(f)["syscall"]
    assert v.missing == ("raw_tracepoint programs may not call bpf_loop here (the parser's "
                         "loop, kernel 5.17+)",)


def test_syscall_backend_without_tracepoints():
    v = backends.verdicts(facts(syscall_tracepoints=False))["syscall"]
    assert "CONFIG_FTRACE_SYSCALLS=y" in v.missing[0]
    assert v.missing and not v.usable


def test_named_backend_that_does_not_work_says_why_and_what_to_do():
    with pytest.raises(PipelineError, match="copyout backend does not work.*kernel-config/"):
        backends.choose("copyout", facts=BUILD_MACHINE)
    with pytest.raises(PipelineError, match="unknown backend 'fast'"):
        backends.choose("fast", facts=facts())


def test_no_backend_at_all():
    f = facts(kprobes=False, syscall_tracepoints=False)
    with pytest.raises(PipelineError, match="no filter-reduce backend works"):
        backends.choose(facts=f)


def test_unprivileged():
    with pytest.raises(PipelineError, match="run it as root, or with CAP_BPF"):
        backends.choose(facts=facts(privileged=False))
