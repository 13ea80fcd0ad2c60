"""The probe's reasoning without a kernel: the text output (with the pipeline's verdict
for a kernel without kprobes; the verdicts themselves are tested in
test_filterreduce_backends.py), and the system.py readers on fake files."""
import gzip

import pytest

from pybpf import probe
from pybpf.cli.probe import Report, format_text
from pybpf.filterreduce import backends
from pybpf.filterreduce.facts import Facts, Symbol
from pybpf.kernel import kconfig, security, system
from pybpf.probe import Answer, HelperMatrix, ProbeResult, TypeSupport

ON = dict.fromkeys(("CONFIG_KPROBES", "CONFIG_KPROBE_EVENTS", "CONFIG_UPROBE_EVENTS",
                    "CONFIG_FTRACE_SYSCALLS", "CONFIG_FUNCTION_ERROR_INJECTION",
                    "CONFIG_BPF_KPROBE_OVERRIDE", "CONFIG_BPF_EVENTS"), True)
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


# ---- helpers ----------------------------------------------------------------------

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
    no_kprobes = Facts(release="6.18.0-test", kprobes=False, config={"CONFIG_KPROBES": False},
                       symbols={"copyout": Symbol(in_kallsyms=False)})
    kernel = {"release": "6.18.0-test", "version": [6, 18, 0], "config": "/proc/config.gz",
              "btf": Answer(True, "/sys/kernel/btf/vmlinux, 5 bytes"),
              "jit": Answer(True, "net.core.bpf_jit_enable=1"),
              "unprivileged_bpf_disabled": 2, "privileged": privileged,
              "lockdown": {"mode": None, "source": None, "detail": "unknown (securityfs "
                           "not mounted, and neither the kernel config nor the command "
                           "line tells)"}}
    types = dict(LOADS, lirc_mode2=TypeSupport(False, "EINVAL", "Invalid argument"))
    result = ProbeResult(kernel, t, types, {"hash": TypeSupport(True)}, None,
                         {"program_types": 0.01, "map_types": 0.01, "helpers": 0.0,
                          "total": 0.1}, [])
    return Report(result, backends.verdicts(no_kprobes))


def test_text_summary_comes_first_and_names_the_fixes():
    text = format_text(fake_result())
    lines = text.splitlines()
    assert lines[0] == "pybpf probe: Linux 6.18.0-test, probed in 0.10 s"
    assert lines[2:4] == ["Summary", "  filter-reduce backend: syscall"]
    flat = " ".join(text.split())
    assert "copyout: unavailable - this kernel has no kprobes (CONFIG_KPROBES is off)" in flat
    assert "syscall: usable" in flat
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
    report = fake_result(privileged=False)
    report.result.helpers = HelperMatrix({}, {"kprobe": "the type does not load"},
                                         ["bpf_strtol"], [], {})
    text = format_text(report)
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
        monkeypatch.setattr(kconfig, "KERNEL_CONFIG_PATHS", (str(path),))
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
    monkeypatch.setattr(kconfig, "KERNEL_CONFIG_PATHS", (str(tmp_path / "none"),))
    system.kernel_config.cache_clear()
    try:
        assert system.kernel_config() == (None, None)
        assert system.config_enabled("CONFIG_BPF") is None
    finally:
        system.kernel_config.cache_clear()


def test_lockdown_from_config_when_securityfs_is_unreadable(config_file, monkeypatch):
    config_file("CONFIG_SECURITY_LOCKDOWN_LSM=y\nCONFIG_LOCK_DOWN_KERNEL_FORCE_INTEGRITY=y\n",
                False)
    monkeypatch.setattr(security.os, "access", lambda path, mode: False)
    monkeypatch.setattr(security, "lockdown_mode", lambda: "confidentiality")  # lockdown=
    assert system.lockdown_status() == ("confidentiality",
                                        "lockdown= on the kernel command line")
    monkeypatch.setattr(security, "lockdown_mode", lambda: None)
    assert system.lockdown_status() == ("integrity", "CONFIG_LOCK_DOWN_KERNEL_FORCE_INTEGRITY")
