"""``pybpf.probe`` and ``python -m pybpf probe``: the answers must agree with bpftool's,
with kernel facts known from the kernel source, and with the kernel config; the JSON
must keep its schema; and on a kernel without kprobes the verdict must say so."""
import json
import os
import shutil
import subprocess
import sys

import pytest

import pybpf
from pybpf import probe
from pybpf.cli import main
from pybpf.filterreduce import backends, facts
from pybpf.kernel import features, system
from pybpf.kernel.constants import HelperId, ProgType
from toolbox import setup_missing

REPO = os.path.dirname(os.path.dirname(os.path.abspath(pybpf.__file__)))
BPFTOOL = shutil.which("bpftool") or "/usr/sbin/bpftool"


@pytest.fixture(scope="module")
def result():
    """One full probe (helper matrix included, about a second) for the whole module."""
    return probe.probe()


@pytest.fixture(scope="module")
def bpftool():
    """``bpftool -j feature probe kernel``: the reference the probe is compared with."""
    if not os.access(BPFTOOL, os.X_OK):
        setup_missing("bpftool is not installed: run the test set-up, bash tools/run-tests")
    out = subprocess.run([BPFTOOL, "-j", "feature", "probe", "kernel"], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def bpftool_types(section, suffix):
    """{type name: bool} from bpftool's "have_<name><suffix>" keys."""
    return {key[len("have_"):-len(suffix)]: value for key, value in section.items()}


# ---- agreement with bpftool --------------------------------------------------------

@pytest.mark.parametrize("section, suffix", [("program_types", "_prog_type"),
                                             ("map_types", "_map_type")])
def test_types_agree_with_bpftool(result, bpftool, section, suffix):
    ours = getattr(result, section)
    theirs = bpftool_types(bpftool[section], suffix)
    common = sorted(set(theirs) & set(ours))
    # bpftool 7.1 (Debian 12) and pybpf's constants both come from the 6.1 UAPI header:
    # 31 program and 31 map types. A newer bpftool may know more; those are not compared.
    assert len(common) >= 31
    disagree = {name: (ours[name], theirs[name]) for name in common
                if ours[name].available != theirs[name]}
    assert not disagree


def test_helpers_agree_with_bpftool_but_for_the_new_verifier_wording(result, bpftool):
    """Where bpftool and pybpf disagree, bpftool must be the one that missed the
    verifier's refusal, and only because of how it is worded.

    bpftool 7.1 (libbpf 1.1) counts a helper as unavailable only when the verifier log
    says "invalid func" or "unknown func". Newer verifiers (this 6.18 kernel) word the
    refusal "program of this type cannot use helper bpf_x#N", which bpftool 7.1 does
    not recognise, so on them it lists every helper for every program type that loads.
    pybpf knows both wordings. So: every helper pybpf calls available, bpftool must
    too; every helper only bpftool lists must be refused with the new wording.
    """
    bpftool_lists = {key[:-len("_available_helpers")]: set(names)
                     for key, names in bpftool["helpers"].items()}
    known_to_bpftool = set().union(*bpftool_lists.values())
    common = [name for name in result.helpers.probed if name in known_to_bpftool]
    assert len(common) >= 200
    ids = {probe.helper_name(h): h for h in HelperId if h}
    pybpf_only, unexplained, compared = [], [], 0
    for ptype, ours in result.helpers.available.items():
        if ptype not in bpftool_lists:  # a type newer than this bpftool
            continue
        theirs = bpftool_lists[ptype]
        compared += 1
        for name in common:
            if name in ours and name not in theirs:
                pybpf_only.append((ptype, name))
            elif name in theirs and name not in ours:
                log = _refusal_log(ProgType[ptype.upper()], ids[name])
                if "program of this type cannot use helper" not in log:
                    unexplained.append((ptype, name, log))
    assert compared >= 20
    assert not pybpf_only
    assert not unexplained


def _refusal_log(ptype, helper_id):
    e = features.probe_load(ptype, features.calling(int(helper_id)),
                            features.LOAD_OPTIONS.get(ptype))
    return e.log if e is not None else "(loaded)"


def test_types_whose_helpers_bpftool_does_not_probe_either(result, bpftool):
    """Program types that do not load, or need a BTF attach target, have no helper list
    in either tool."""
    for ptype, why in result.helpers.not_probed.items():
        assert bpftool["helpers"].get(f"{ptype}_available_helpers", []) == [], (ptype, why)


# ---- answers the kernel source fixes -----------------------------------------------

@pytest.mark.parametrize("ptype, helper, expected", [
    ("xdp", HelperId.xdp_adjust_head, True),
    ("kprobe", HelperId.xdp_adjust_head, False),
    ("sched_cls", HelperId.skb_store_bytes, True),
    ("socket_filter", HelperId.skb_store_bytes, False),
    ("tracepoint", HelperId.get_current_pid_tgid, True),
    ("kprobe", HelperId.strtol, True),       # in the base set since 5.2
    ("tracepoint", HelperId.strtol, True),
    ("tracepoint", HelperId.probe_read_user, True),  # 5.5
])
def test_helper_answers_match_the_kernel_source(result, ptype, helper, expected):
    assert result.helpers.is_available(ptype, helper) is expected


def test_map_lookup_is_available_to_every_probed_type(result):
    for ptype in result.helpers.available:
        assert result.helpers.is_available(ptype, HelperId.map_lookup_elem), ptype


def test_override_return_follows_the_kernel_config(result):
    """The kprobe proto of bpf_override_return exists only with CONFIG_BPF_KPROBE_OVERRIDE."""
    config = system.config_enabled("CONFIG_BPF_KPROBE_OVERRIDE")
    if config is None:
        pytest.skip("no readable kernel config (/proc/config.gz or /boot/config-*)")
    assert result.helpers.is_available("kprobe", HelperId.override_return) is config


def test_pipeline_helper_facts_match_the_matrix(result):
    """The pipeline's own helper probes (filterreduce.facts) agree with the matrix."""
    found = facts.gather(mount=False)
    for ptype, helper in facts.HELPERS:
        assert found.helper(ptype, helper) is \
            result.helpers.is_available(ptype.name.lower(), helper), (ptype, helper)


def test_helpers_newer_than_the_constants_are_named_by_the_kernel(result):
    assert all(i > max(HelperId) for i in result.helpers.newer)
    assert all(name.startswith("bpf_") for name in result.helpers.newer.values())
    # The constants name every helper of 6.18, so ask the search to start lower:
    # bpf_cgrp_storage_get is helper 210 since 6.2.
    if system.kernel_version() >= (6, 2):
        found = probe._newer_helpers(200)
        assert found.get(210) == "bpf_cgrp_storage_get" and min(found) >= 200, found


def test_noisy_helpers_are_skipped_unless_full(result):
    skipped = {probe.helper_name(h) for h in probe.NOISY_HELPERS}
    assert set(result.helpers.skipped) == skipped
    assert not skipped & set(result.helpers.probed)


# ---- kernel facts ------------------------------------------------------------------

def test_kernel_facts(result):
    k = result.kernel
    assert k["release"] == os.uname().release
    assert k["btf"].ok is os.path.exists("/sys/kernel/btf/vmlinux")
    assert k["privileged"] is True  # kernel tests run as root
    with open("/proc/sys/kernel/unprivileged_bpf_disabled") as f:
        assert k["unprivileged_bpf_disabled"] == int(f.read())


def test_lockdown_is_reported_with_its_source(result):
    lockdown, modes = result.kernel["lockdown"], system.LOCKDOWN_MODES
    if os.access("/sys/kernel/security/lockdown", os.R_OK):
        assert lockdown["source"] == "securityfs"
    else:
        assert lockdown["source"] != "securityfs"
        assert "securityfs not mounted" in lockdown["detail"] or \
            lockdown["source"] == "CONFIG_SECURITY_LOCKDOWN_LSM is off"
    # the mode the kernel was built to boot in is a floor: lockdown can only be raised
    forced = [m for m in modes
              if system.config_enabled(f"CONFIG_LOCK_DOWN_KERNEL_FORCE_{m.upper()}")]
    if forced:
        assert modes.index(lockdown["mode"]) >= modes.index(forced[0])


def test_pmus_match_sysfs(result):
    for name, number in result.tracing["pmus"].items():
        path = f"/sys/bus/event_source/devices/{name}/type"
        assert (number is not None) == os.path.exists(path), name


def test_copyout_in_kallsyms_matches_proc(result):
    with open("/proc/kallsyms") as f:
        listed = any(line.split()[2] == probe.COPYOUT for line in f)
    assert result.tracing["symbol_facts"]["in_kallsyms"] is listed


# ---- the verdict ------------------------------------------------------------------

def test_verdict_without_kprobes_names_the_syscall_backend():
    """On a kernel built without kprobes (the 6.18 build machine) neither kprobe backend
    can be used, the reason says so, and the syscall tracepoints are chosen."""
    if system.config_enabled("CONFIG_KPROBES") is not False:
        pytest.skip("this kernel has CONFIG_KPROBES on (or no readable config); the test "
                    "is for kernels without kprobes, such as the 6.18 build machine")
    verdicts = backends.verdicts(facts.gather(mount=False))
    for name in ("copyout", "copy_to_iter"):
        assert not verdicts[name].usable
        assert any("CONFIG_KPROBES is off" in reason for reason in verdicts[name].missing)
    assert verdicts["syscall"].usable
    assert backends.choose(facts=facts.gather(mount=False))[0].name == "syscall"


_FACTS = facts.gather(mount=False)


@pytest.mark.vm
@pytest.mark.skipif(_FACTS.kprobes is not True or
                    _FACTS.symbol("copyout").in_kallsyms is not False,
                    reason="needs kprobes and an inlined copyout (a stock kernel with "
                           "kprobes); runs in the VM tier: Debian's stock 6.1")
def test_missing_copyout_symbol_points_at_kernel_config():
    copyout = backends.verdicts(_FACTS)["copyout"]
    assert not copyout.usable
    assert any("copyout is not a probe-able function" in reason and
               "kernel-config/" in reason for reason in copyout.missing)


def test_without_error_injection_the_pipeline_copies():
    if system.config_enabled("CONFIG_FUNCTION_ERROR_INJECTION") is not False:
        pytest.skip("CONFIG_FUNCTION_ERROR_INJECTION is on (or no readable config) here")
    copyout = backends.verdicts(facts.gather(mount=False))["copyout"]
    assert not copyout.can_override
    assert any("CONFIG_FUNCTION_ERROR_INJECTION is off" in n for n in copyout.notes)


# ---- side effects ------------------------------------------------------------------

def test_probe_mounts_nothing_and_leaks_nothing():
    with open("/proc/self/mounts") as f:
        before = f.read()
    result = probe.probe(helpers=False)
    with open("/proc/self/mounts") as f:
        assert f.read() == before
    assert result.mounted == []
    assert result.helpers is None
    facts.gather(mount=False)                 # what the probe command asks too
    with open("/proc/self/mounts") as f:
        assert f.read() == before


def test_mount_option_mounts_what_it_reads():
    """--mount in a private mount namespace (unshare), so this machine's mounts stay as
    they are: afterwards tracefs, debugfs and securityfs answer from their files."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare (util-linux) is not installed; it isolates the mounts")
    with open("/proc/self/mounts") as f:
        before = f.read()
    out = subprocess.run([unshare, "--mount", "--propagation", "private", sys.executable,
                          "-m", "pybpf", "probe", "--json", "--no-helpers", "--mount"],
                         cwd=REPO, check=True, capture_output=True, text=True).stdout
    doc = json.loads(out)
    with open("/proc/self/mounts") as f:
        assert f.read() == before
    assert set(doc["mounted"]) <= {"/sys/kernel/tracing", "/sys/kernel/debug",
                                   "/sys/kernel/security"}
    tracing = doc["tracing"]
    assert tracing["tracefs"] and tracing["debugfs"] and tracing["securityfs"]
    assert tracing["read_tracepoints"]["detail"].startswith("present in") or \
        tracing["read_tracepoints"]["ok"] is False
    assert doc["kernel"]["lockdown"]["source"] == "securityfs"


# ---- the command line ----------------------------------------------------------------

def _is_answer(doc):
    return set(doc) == {"ok", "detail"} and doc["ok"] in (True, False, None) \
        and isinstance(doc["detail"], str)


def test_json_schema(result):
    out = subprocess.run([sys.executable, "-m", "pybpf", "probe", "--json"], cwd=REPO,
                         check=True, capture_output=True, text=True).stdout
    doc = json.loads(out)
    assert set(doc) == {"kernel", "tracing", "program_types", "map_types", "helpers",
                        "pipeline", "seconds", "mounted", "features"}
    assert set(doc["features"]) == set(features.FEATURES)
    for name, found in doc["features"].items():
        assert set(found) == {"available", "minimum", "description", "detail"}, name
        assert found["available"] in (True, False, None) and found["description"], name
    kernel = doc["kernel"]
    assert isinstance(kernel["release"], str) and len(kernel["version"]) == 3
    assert _is_answer(kernel["btf"]) and _is_answer(kernel["jit"])
    assert set(kernel["lockdown"]) == {"mode", "source", "detail"}
    tracing = doc["tracing"]
    assert _is_answer(tracing["kprobes"]) and _is_answer(tracing["read_tracepoints"])
    assert set(tracing["pmus"]) == {"kprobe", "uprobe", "tracepoint"}
    assert set(tracing["symbol_facts"]) == {"in_kallsyms", "kprobe_blacklisted",
                                            "ftrace_able", "error_injectable"}
    for section in ("program_types", "map_types"):
        assert len(doc[section]) >= 31
        for name, support in doc[section].items():
            assert set(support) == {"available", "error", "detail"}, name
            assert isinstance(support["available"], bool)
            assert (support["error"] is None) == support["available"], name
    # the subprocess saw what this process sees
    assert {n: s["available"] for n, s in doc["program_types"].items()} == \
        {n: s.available for n, s in result.program_types.items()}
    helpers = doc["helpers"]
    assert set(helpers) == {"available", "not_probed", "probed", "skipped", "newer",
                            "loads", "seconds"}
    assert set(helpers["available"]) | set(helpers["not_probed"]) == set(doc["program_types"])
    for names in helpers["available"].values():
        assert set(names) <= set(helpers["probed"])
    assert helpers["loads"] == len(helpers["probed"]) * len(helpers["available"])
    pipeline = doc["pipeline"]
    assert pipeline["backend"] in backends.ORDER + ("none",)
    assert list(pipeline["backends"]) == list(backends.ORDER)
    for backend in pipeline["backends"].values():
        assert set(backend) == {"backend", "usable", "missing", "notes", "can_override"}
        assert backend["usable"] == (not backend["missing"])
    assert set(doc["seconds"]) == {"program_types", "map_types", "helpers", "total"}


def test_text_output_starts_with_the_verdict(capsys, result):
    assert main(["probe", "--no-helpers"]) == 0
    out = capsys.readouterr().out
    lines, flat = out.splitlines(), " ".join(out.split())  # flat: undo the line wrapping
    assert lines[0].startswith(f"pybpf probe: Linux {os.uname().release}")
    assert "Summary" in lines[:4]
    verdicts = backends.verdicts(facts.gather(mount=False))
    chosen = next((n for n, v in verdicts.items() if v.usable), "none")
    assert f"filter-reduce backend: {chosen}" in out
    for heading in ("Kernel", "Tracing", "Program types (", "Map types (",
                    "Helpers: not probed (--no-helpers)"):
        assert any(line.startswith(heading) for line in lines), heading
    for reason in verdicts["copyout"].missing:
        assert " ".join(reason.split()) in flat
