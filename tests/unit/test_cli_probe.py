"""The probe's reasoning without a kernel: the pipeline verdict for kernels other than
this one (a kernel built with kernel-config/, Debian's stock 6.1, a kernel whose
debugfs is not mounted), the text output, and the system.py readers on fake files."""
import gzip

import pytest

from pybpf import probe
from pybpf.cli.probe import format_text
from pybpf.kernel import system
from pybpf.probe import Answer, Backend, HelperMatrix, ProbeResult, TypeSupport

ON = dict.fromkeys(("CONFIG_KPROBES", "CONFIG_KPROBE_EVENTS", "CONFIG_UPROBE_EVENTS",
                    "CONFIG_FTRACE_SYSCALLS", "CONFIG_FUNCTION_ERROR_INJECTION",
                    "CONFIG_BPF_KPROBE_OVERRIDE", "CONFIG_BPF_EVENTS"), True)
ALL_HELPERS = {"kprobe": {"bpf_strtol": True, "bpf_probe_read_user": True,
                          "bpf_override_return": True},
               "tracepoint": {"bpf_strtol": True, "bpf_probe_read_user": True}}
LOADS = {"kprobe": TypeSupport(True), "tracepoint": TypeSupport(True)}


def tracing(config=None, kprobes=True, tracefs="/sys/kernel/tracing", debugfs=True,
            **symbol_facts):
    """probe_tracing()'s dict for a kernel with everything, less what is passed."""
    facts = {"in_kallsyms": True, "kprobe_blacklisted": False, "ftrace_able": True,
             "error_injectable": True}
    if not debugfs:
        facts.update(kprobe_blacklisted=None, error_injectable=None)
    facts.update(symbol_facts)
    return {
        "tracefs": tracefs, "tracefs_mountable": True,
        "debugfs": "/sys/kernel/debug" if debugfs else None, "securityfs": None,
        "pmus": {"kprobe": 6 if kprobes else None, "uprobe": 7, "tracepoint": 2},
        "kprobes": Answer(kprobes, "kprobe PMU type 6" if kprobes else "CONFIG_KPROBES is off"),
        "read_tracepoints": Answer(True, "present"),
        "symbol": "copyout", "symbol_facts": facts, "config": dict(ON, **(config or {})),
    }


def helpers(**changes):
    out = {ptype: dict(answers) for ptype, answers in ALL_HELPERS.items()}
    for key, value in changes.items():
        ptype, name = key.split("__")
        out[ptype][name] = value
    return out


# ---- the verdict ------------------------------------------------------------------

def test_patched_kernel_gets_zero_copy_copyout():
    backend = probe.copyout_backend(LOADS, tracing(), helpers())
    assert backend.usable and backend.mode == "zero-copy"
    assert backend.missing == [] and backend.notes == []


def test_stock_debian_kernel_needs_kernel_config_and_copies():
    """Debian 6.1: kprobes work, copyout is inlined, no error injection."""
    t = tracing(config={"CONFIG_FUNCTION_ERROR_INJECTION": False,
                        "CONFIG_BPF_KPROBE_OVERRIDE": False},
                in_kallsyms=False, kprobe_blacklisted=None, error_injectable=None)
    backend = probe.copyout_backend(LOADS, t, helpers(kprobe__bpf_override_return=False))
    assert not backend.usable and backend.mode == "copy"
    assert len(backend.missing) == 1 and "kernel-config/" in backend.missing[0]
    assert backend.notes == ["CONFIG_FUNCTION_ERROR_INJECTION is off: bpf_override_return "
                             "unavailable, the pipeline will copy data and report results "
                             "through maps"]


def test_kernel_without_kprobes_says_which_option():
    t = tracing(config={"CONFIG_KPROBES": False}, kprobes=False)
    backend = probe.copyout_backend(LOADS, t, helpers())
    assert not backend.usable
    assert backend.missing[0].startswith("this kernel has CONFIG_KPROBES off: boot a kernel "
                                         "with kprobes enabled")


def test_kprobes_off_without_a_config_still_refuses():
    t = tracing(config={"CONFIG_KPROBES": None}, kprobes=False)
    backend = probe.copyout_backend(LOADS, t, helpers())
    assert not backend.usable and "cannot create kprobes" in backend.missing[0]


def test_blacklisted_copyout_is_refused():
    backend = probe.copyout_backend(LOADS, tracing(kprobe_blacklisted=True), helpers())
    assert not backend.usable and "kprobe blacklist" in backend.missing[0]


def test_copyout_not_on_the_error_injection_list_copies():
    backend = probe.copyout_backend(LOADS, tracing(error_injectable=False), helpers())
    assert backend.usable and backend.mode == "copy"
    assert "error-injection list" in backend.notes[0]


def test_unmounted_debugfs_is_a_caveat_not_a_refusal():
    backend = probe.copyout_backend(LOADS, tracing(debugfs=False), helpers())
    assert backend.usable and backend.mode == "zero-copy"
    assert any("blacklist was not checked" in n for n in backend.notes)
    assert any("error-injection list was not checked" in n for n in backend.notes)


def test_tracepoint_backend_needs_strtol_and_probe_read_user():
    backend = probe.tracepoint_backend(
        LOADS, tracing(), helpers(tracepoint__bpf_probe_read_user=False))
    assert not backend.usable
    assert backend.missing == ["tracepoint programs may not call bpf_probe_read_user (a "
                               "kernel before 5.5, or lockdown=confidentiality)"]


def test_tracepoint_backend_without_tracepoint_programs():
    types = dict(LOADS, tracepoint=TypeSupport(False, "EINVAL", "Invalid argument"))
    backend = probe.tracepoint_backend(types, tracing(), helpers())
    assert not backend.usable
    assert backend.missing == ["tracepoint programs do not load (Invalid argument)"]


def test_unknown_read_tracepoints_are_a_caveat():
    t = tracing(tracefs=None)
    t["read_tracepoints"] = Answer(None, "tracefs is not mounted and the kernel config is "
                                         "not readable")
    backend = probe.tracepoint_backend(LOADS, t, helpers())
    assert backend.usable and "could not check the read() tracepoints" in backend.notes[0]


@pytest.mark.parametrize("copyout, tracepoints, chosen", [
    (True, True, "copyout-kprobe"), (False, True, "syscall-tracepoints"),
    (True, False, "copyout-kprobe"), (False, False, "none"),
])
def test_choose_backend_prefers_copyout(copyout, tracepoints, chosen):
    backends = {"copyout-kprobe": Backend("copyout-kprobe", copyout, [], []),
                "syscall-tracepoints": Backend("syscall-tracepoints", tracepoints, [], [])}
    assert probe.choose_backend(backends) == chosen


def test_helper_names():
    assert probe.helper_name(probe.HelperId.strtol) == "bpf_strtol"
    assert probe.helper_name(105) == "bpf_strtol"
    assert probe.helper_name("strtol") == probe.helper_name("bpf_strtol") == "bpf_strtol"


def test_matrix_lookup_tells_unprobed_from_unavailable():
    matrix = HelperMatrix({"xdp": ["bpf_map_lookup_elem"]}, {"lsm": "why"},
                          ["bpf_map_lookup_elem", "bpf_strtol"], [], {})
    assert matrix.is_available("xdp", "bpf_map_lookup_elem") is True
    assert matrix.is_available("xdp", "strtol") is False
    assert matrix.is_available("lsm", "strtol") is None  # type not probed
    assert matrix.is_available("xdp", "bpf_trace_printk") is None  # helper not probed


# ---- text output ------------------------------------------------------------------

def fake_result(privileged=True):
    t = tracing(config={"CONFIG_KPROBES": False}, kprobes=False, tracefs=None,
                debugfs=False, in_kallsyms=False)
    pipeline = helpers()
    backends = {"copyout-kprobe": probe.copyout_backend(LOADS, t, pipeline),
                "syscall-tracepoints": probe.tracepoint_backend(LOADS, t, pipeline)}
    kernel = {"release": "6.18.0-test", "version": [6, 18, 0], "config": "/proc/config.gz",
              "btf": Answer(True, "/sys/kernel/btf/vmlinux, 5 bytes"),
              "jit": Answer(True, "net.core.bpf_jit_enable=1"),
              "unprivileged_bpf_disabled": 2, "privileged": privileged,
              "lockdown": {"mode": None, "source": None, "detail": "unknown (securityfs "
                           "not mounted, and neither the kernel config nor the command "
                           "line tells)"}}
    types = dict(LOADS, lirc_mode2=TypeSupport(False, "EINVAL", "Invalid argument"))
    return ProbeResult(kernel, t, types, {"hash": TypeSupport(True)}, None, pipeline,
                       backends, probe.choose_backend(backends),
                       {"program_types": 0.01, "map_types": 0.01, "helpers": 0.0,
                        "total": 0.1}, [])


def test_text_summary_comes_first_and_names_the_fixes():
    text = format_text(fake_result())
    lines = text.splitlines()
    assert lines[0] == "pybpf probe: Linux 6.18.0-test, probed in 0.10 s"
    assert lines[2:4] == ["Summary", "  filter-reduce backend: syscall-tracepoints"]
    flat = " ".join(text.split())
    assert "copyout-kprobe: unavailable - this kernel has CONFIG_KPROBES off" in flat
    assert "build the kernel with the patches in kernel-config/" in flat
    assert "program types: 2 of 3 load; map types: 1 of 1 can be created" in flat
    assert "lirc_mode2 EINVAL: Invalid argument" in flat
    assert "Helpers: not probed (--no-helpers)" in text
    assert all(len(line) <= 100 for line in lines)


def test_text_shows_unknowns_as_unknown():
    flat = " ".join(format_text(fake_result()).split())
    assert "lockdown unknown (securityfs not mounted" in flat
    assert "kprobe blacklist: unknown" in flat
    assert "tracefs not mounted (mount -t tracefs tracefs /sys/kernel/tracing, or --mount)" \
        in flat


def test_text_warns_when_unprivileged():
    assert "warning: not running with CAP_BPF" in format_text(fake_result(privileged=False))


def test_text_of_a_probe_where_nothing_loads():
    """Unprivileged, every program type is refused, so no helper was probed."""
    result = fake_result(privileged=False)
    result.helpers = HelperMatrix({}, {"kprobe": "the type does not load"}, ["bpf_strtol"],
                                  [], {})
    text = format_text(result)
    assert "no program type loaded, so no helper could be probed" in " ".join(text.split())


# ---- system.py readers on fake files ------------------------------------------------

def test_file_lists_symbol_by_column(tmp_path):
    blacklist = tmp_path / "blacklist"
    blacklist.write_text("0xffffffff81000000-0xffffffff81000010\tcopyout\n"
                         "0xffffffff81000020-0xffffffff81000030\tother\n")
    assert system.file_lists_symbol(str(blacklist), "copyout", 1) is True
    assert system.file_lists_symbol(str(blacklist), "copyou", 1) is False
    assert system.file_lists_symbol(str(blacklist), "copyout", 0) is False
    assert system.file_lists_symbol(str(tmp_path / "absent"), "copyout", 0) is None


def test_tracepoint_exists(tmp_path):
    (tmp_path / "events/syscalls/sys_enter_read").mkdir(parents=True)
    (tmp_path / "events/syscalls/sys_enter_read/id").write_text("612\n")
    assert system.tracepoint_exists(str(tmp_path), "syscalls", "sys_enter_read")
    assert not system.tracepoint_exists(str(tmp_path), "syscalls", "sys_exit_read")


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    """Point kernel_config() at a file of the test's making (and forget the cache)."""
    def use(text, compressed):
        path = tmp_path / ("config.gz" if compressed else "config")
        opener = gzip.open if compressed else open
        with opener(path, "wt") as f:
            f.write(text)
        monkeypatch.setattr(system, "KERNEL_CONFIG_PATHS", (str(path),))
        system.kernel_config.cache_clear()
        return str(path)
    yield use
    system.kernel_config.cache_clear()


@pytest.mark.parametrize("compressed", [True, False])
def test_kernel_config_values(config_file, compressed):
    path = config_file("CONFIG_BPF=y\n# CONFIG_KPROBES is not set\nCONFIG_HZ=250\n"
                       "CONFIG_LSM=\"lockdown,bpf\"\nCONFIG_NET_CLS_BPF=m\n", compressed)
    options, where = system.kernel_config()
    assert where == path
    assert options == {"CONFIG_BPF": "y", "CONFIG_KPROBES": "n", "CONFIG_HZ": "250",
                       "CONFIG_LSM": '"lockdown,bpf"', "CONFIG_NET_CLS_BPF": "m"}
    assert system.config_enabled("CONFIG_BPF") is True
    assert system.config_enabled("CONFIG_NET_CLS_BPF") is True
    assert system.config_enabled("CONFIG_KPROBES") is False
    assert system.config_enabled("CONFIG_NOT_IN_THIS_KERNEL") is False


def test_no_kernel_config_is_unknown(tmp_path, monkeypatch):
    monkeypatch.setattr(system, "KERNEL_CONFIG_PATHS", (str(tmp_path / "none"),))
    system.kernel_config.cache_clear()
    try:
        assert system.kernel_config() == (None, None)
        assert system.config_enabled("CONFIG_BPF") is None
    finally:
        system.kernel_config.cache_clear()


def test_lockdown_from_config_when_securityfs_is_unreadable(config_file, monkeypatch):
    config_file("CONFIG_SECURITY_LOCKDOWN_LSM=y\nCONFIG_LOCK_DOWN_KERNEL_FORCE_INTEGRITY=y\n",
                False)
    monkeypatch.setattr(system.os, "access", lambda path, mode: False)
    monkeypatch.setattr(system, "lockdown_mode", lambda: "confidentiality")  # lockdown=
    assert system.lockdown_status() == ("confidentiality",
                                        "lockdown= on the kernel command line")
    monkeypatch.setattr(system, "lockdown_mode", lambda: None)
    assert system.lockdown_status() == ("integrity", "CONFIG_LOCK_DOWN_KERNEL_FORCE_INTEGRITY")
