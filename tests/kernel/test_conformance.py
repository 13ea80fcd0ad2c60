"""pybpf's object loader agrees with libbpf on a representative set of the kernel's own
BPF selftest programs (the full corpora: tools/conformance.py, docs/conformance.md for
linux-source-6.1, docs/conformance-6.12.md for linux-source-6.12).

Each object is compiled from Debian's linux-source-6.1 as the selftests Makefile does,
then loaded on this kernel by libbpf (bpftool prog loadall) and by pybpf, each in a
child process with a private bpffs. Both must load it, or both must refuse it; where
both load, both must have loaded the same number of programs (when bpftool can tell).
The expected verdict is checked too, so a broken bpftool or compiler cannot pass as
"both fail".

The 6.12 subset is built with clang-19 and loaded by 6.12's own libbpf (built from
the tree's tools/lib/bpf, driven by tools/conformance/libbpf_load.c). It holds objects
both load and, for each known cause of disagreement, one or two objects marked with the
cause: those must still disagree, so that pybpf learning the feature turns them into a
failure asking to update the subset and docs/conformance-6.12.md.

The extracted tree, vmlinux.h, objects (and 6.12's libbpf) are cached under
/var/tmp/pybpf-conformance-cache/<tree>-<clang version>-<kernel release>, so reruns
only load.
"""

import pytest
from toolbox import load_tool, setup_missing

conformance = load_tool("conformance")

# object -> (loads on this kernel?, what it covers)
SUBSET = {
    "test_global_data": (True, "tc; .data/.rodata/.bss and .rodata.str1.1 global data"),
    "test_subprogs": (True, "static and global subprograms, calls between them; CO-RE"),
    "bpf_cubic": (True, "struct_ops map and programs; 52 CO-RE relocations"),
    "test_prog_array_init": (True, "prog array filled from .values (tail calls)"),
    "test_btf_map_in_map": (True, "map-in-map filled from .values"),
    "test_core_extern": (True, ".kconfig externs"),
    "test_snprintf": (True, "typeless __ksym resolved through kallsyms; .rodata strings"),
    "test_tracepoint": (True, "tracepoint program"),
    "test_raw_tp_test_run": (True, "raw_tp program"),
    "xdp_dummy": (True, "xdp program"),
    "loop4": (True, "socket filter with a bounded loop"),
    "netcnt_prog": (True, "cgroup/skb; percpu cgroup storage (max_entries 0)"),
    "tcp_rtt": (True, "sockops; sk_storage map (max_entries 0)"),
    "test_ringbuf_multi": (True, "ring buffer sized 1000 (rounded to a page), "
                                 "array of ring buffers"),
    "test_usdt": (True, "__hidden global subprograms verified as static (usdt.bpf.h)"),
    "test_pinning": (True, "maps pinned by name (LIBBPF_PIN_BY_NAME)"),
    "strncmp_test": (True, 'SEC("?...") programs left unloaded'),
    "test_sk_assign": (False, "legacy SEC(\"maps\") in iproute2's bpf_elf_map layout"),
    "test_pinning_invalid": (False, "invalid pinning value"),
    "fentry_test": (False, "fentry programs: this kernel refuses them (EPERM)"),
    "linked_funcs1": (False, "extern functions that need static linking"),
    "test_map_in_map": (False, "map-in-map without an inner map definition"),
}


@pytest.fixture(scope="module")
def results():
    """Compile (cached) and load the subset once, two at a time."""
    try:
        ws = conformance.prepare(conformance.cache_dir())
        doc = conformance.run(ws, sorted(SUBSET), jobs=2)
    except conformance.SetupError as e:
        setup_missing(f"{e}\n(run tools/run-tests: it installs linux-source-6.1, clang and "
                      f"bpftool)")
    return {r["object"]: r for r in doc["objects"]}


@pytest.mark.parametrize("name", sorted(SUBSET))
def test_pybpf_agrees_with_libbpf(results, name):
    rec = results[name]
    assert rec["compiled"], f"clang could not compile {name}: {rec['compile_error']}"
    _agree(name, rec, *SUBSET[name])


def _agree(name, rec, expected, covers):
    """libbpf's verdict is the expected one, pybpf's is libbpf's, and where both load
    they loaded as many programs (when the libbpf side can tell)."""
    libbpf, pybpf = rec["libbpf"], rec["pybpf"]
    assert libbpf["ok"] == expected, (
        f"{name} ({covers}): libbpf {'loads' if libbpf['ok'] else 'fails'}, expected "
        f"{'a load' if expected else 'a failure'}; libbpf said: {libbpf['error']}")
    assert pybpf["ok"] == libbpf["ok"], (
        f"{name} ({covers}): libbpf {'loads it' if libbpf['ok'] else 'refuses it'} but "
        f"pybpf {'loads it' if pybpf['ok'] else 'refuses it: ' + pybpf['error']}"
        + ("" if libbpf["ok"] else f"; libbpf said: {libbpf['error']}"))
    if libbpf["ok"] and libbpf["programs"] is not None:
        assert pybpf["programs"] == libbpf["programs"], (
            f"{name}: libbpf loaded {libbpf['programs']} programs, pybpf "
            f"{pybpf['programs']}")


TREE_6_12 = conformance.TREES["6.12"]

# 6.12 objects both must load: object -> what it covers.
BOTH_LOAD_6_12 = {
    "test_global_data": "global data built by clang 19",
    "bpf_cubic": "struct_ops with CO-RE, as 6.12's libbpf headers write it",
    "iters": "open-coded iterators (bpf_iter_num_*, 6.4+)",
    "cpumask_success": "vmlinux kfuncs (bpf_cpumask_*) and kptrs",
    "local_kptr_stash": "local kptrs (bpf_obj_new) stashed in maps",
    "test_tcp_custom_syncookie": "a 6.9-era tc program with kfuncs",
    # What 6.12's objects first showed pybpf lacked, each now loaded as libbpf does:
    "uprobe_multi": "sections uprobe.multi / uretprobe.multi",
    "connect_unix_prog": "sections cgroup/*_unix",
    "test_tc_link": "sections tc/ingress, tcx/*",
    "ip_check_defrag": "section netfilter",
    "test_sockmap_skb_verdict_attach": "section sk_skb/verdict",
    "dummy_st_ops_success": "section struct_ops.s",
    "arena_atomics": "arena maps: __ulong(map_extra)",
    "arena_htab": "arena maps: __arena globals in .addr_space.1",
    "arena_htab_asm": "arena maps: mapped before programs load",
    "exceptions": "exception callbacks (exception_callback: decl tags)",
    "test_spin_lock": "a data section of hidden variables with special fields, not "
                      "mapped",
    "verifier_global_subprogs": "?struct_ops programs loaded when a table uses them",
}
# No 6.12 object libbpf loads is refused by pybpf any more (docs/conformance-6.12.md);
# a new gap shows as a failure of test_6_12_both_load.
# Both refuse it on this kernel (bpf_testmod's kfuncs are not here).
BOTH_FAIL_6_12 = {"kfunc_call_test": "kfuncs of bpf_testmod, which this host lacks",
                  "bad_struct_ops2": "a struct_ops program no table uses, not marked '?'"}
SUBSET_6_12 = sorted({**BOTH_LOAD_6_12, **BOTH_FAIL_6_12})


@pytest.fixture(scope="module")
def results_6_12():
    """Compile (cached) the 6.12 subset with clang-19, build 6.12's libbpf and the
    loader (cached), load the subset once, two at a time."""
    missing = conformance.available(TREE_6_12)
    if missing:
        pytest.skip(f"the 6.12 corpus needs it: {missing} (tools/run-tests installs both)")
    try:
        ws = conformance.prepare(conformance.cache_dir(TREE_6_12), TREE_6_12)
        doc = conformance.run(ws, SUBSET_6_12, jobs=2)
    except conformance.SetupError as e:
        setup_missing(f"{e}\n(run tools/run-tests: it installs clang-19, libelf-dev, "
                      f"zlib1g-dev and linux-source-6.12)")
    return {r["object"]: r for r in doc["objects"]}


def _compiled(results, name):
    rec = results[name]
    assert rec["compiled"], f"clang-19 could not compile {name}: {rec['compile_error']}"
    return rec, rec["libbpf"], rec["pybpf"]


@pytest.mark.parametrize("name", sorted(BOTH_LOAD_6_12))
def test_6_12_both_load(results_6_12, name):
    rec, libbpf, pybpf = _compiled(results_6_12, name)
    assert libbpf["ok"], f"6.12's libbpf refuses {name}: {libbpf['error']}"
    assert pybpf["ok"], (f"{name} ({BOTH_LOAD_6_12[name]}): libbpf loads it but pybpf "
                         f"refuses it: {pybpf['error']}")
    assert pybpf["programs"] == libbpf["programs"], (
        f"{name}: libbpf loaded {libbpf['programs']} programs, pybpf {pybpf['programs']}")


@pytest.mark.parametrize("name", sorted(BOTH_FAIL_6_12))
def test_6_12_both_fail(results_6_12, name):
    rec, libbpf, pybpf = _compiled(results_6_12, name)
    assert not libbpf["ok"] and not pybpf["ok"], (
        f"{name} ({BOTH_FAIL_6_12[name]}): libbpf {'loads' if libbpf['ok'] else 'fails'}, "
        f"pybpf {'loads' if pybpf['ok'] else 'fails'}")


def test_6_12_loader_reports_program_count():
    """libbpf_load's verdict line is what the libbpf side parses."""
    assert conformance.load._LOADED.search("libbpf: x\nloaded 3 programs\n").group(1) == "3"


def test_first_error_line_skips_the_verifier_log():
    """The libbpf verdict quotes libbpf's reason, not a line of the verifier log."""
    output = ("libbpf: prog 'p': BPF program load failed: Permission denied\n"
              "libbpf: prog 'p': -- BEGIN PROG LOAD LOG --\n"
              "0: R1 invalid mem access 'scalar'\n"
              "libbpf: prog 'p': -- END PROG LOAD LOG --\n"
              "libbpf: failed to load object 'x.o'\n")
    assert conformance.libbpf_first_error(output) == \
        "libbpf: prog 'p': BPF program load failed: Permission denied"


def _disagreement(name, pybpf_error):
    return {"object": name, "compiled": True, "compile_error": "", "agree": False,
            "libbpf": {"ok": True, "error": "", "programs": 1, "seconds": 0.1},
            "pybpf": {"ok": False, "error": pybpf_error, "seconds": 0.1}}


def test_6_12_report_groups_disagreements_by_cause(tmp_path):
    """A disagreement goes under the cause its pybpf error matches; one that no cause
    covers is UNEXPLAINED, in its own group of the report."""
    known = _disagreement("a", "UnknownSectionError: section 'netfilter' holds a program "
                               "but its name follows no known convention (e.g. ...)")
    new = _disagreement("b", "ObjectError: something no cause names")
    assert conformance.why("6.12", known) == "section netfilter"
    assert conformance.why("6.12", new) == "UNEXPLAINED"
    meta = {"date": "d", "kernel": "k", "kernel_version": "v", "machine": "m", "clang": "c",
            "python": "p", "libbpf": "libbpf 1.5", "tree": "6.12", "jobs": 1,
            "compile_seconds": 0, "total_seconds": 0}
    doc = {"meta": meta, "totals": conformance.totals([known, new]), "objects": [known, new]}
    out = tmp_path / "report.md"
    conformance.write_markdown(doc, str(out), "cmd")
    text = out.read_text()
    assert "### section netfilter (1 object: libbpf loads 1, pybpf 0)" in text
    assert "### UNEXPLAINED (1 object" in text


TOOLS_CORPUS = conformance.toolscorpus.TOOLS_CORPUS

# libbpf-tools objects (docs/conformance-tools.md has all 61): object -> (loads on this
# kernel?, what it covers). Each is loaded with the options its tool's user space
# would use (tools/libbpf_tools.py), by 6.12's libbpf and by pybpf alike.
TOOLS_SUBSET = {
    "opensnoop": (True, "tracepoints, perf event array sized by the loader"),
    "cpudist": (True, "tp_btf kept, raw_tp variant off; unsized maps given 10240 entries"),
    "vfsstat": (True, "fentry variants off (refused here), the kprobe ones loaded"),
    "biolatency": (True, "tp_btf/raw_tp pair of three programs"),
    "capable": (False, "stack map whose value size its user space sets"),
    "cachestat": (False, "fentry programs with no kprobe variant: EPERM here"),
}


@pytest.fixture(scope="module")
def results_tools():
    missing = conformance.toolscorpus.unavailable()
    if missing:
        pytest.skip(f"the libbpf-tools corpus needs it: {missing}")
    try:
        ws = conformance.toolscorpus.prepare_tools()
        doc = conformance.run(ws, sorted(TOOLS_SUBSET), jobs=2)
    except conformance.SetupError as e:
        setup_missing(f"{e}\n(run tools/run-tests: it installs libbpf-tools, clang-19, "
                      f"libelf-dev, zlib1g-dev and linux-source-6.12)")
    return {r["object"]: r for r in doc["objects"]}


@pytest.mark.parametrize("name", sorted(TOOLS_SUBSET))
def test_libbpf_tools_agree(results_tools, name):
    rec, _, _ = _compiled(results_tools, name)
    _agree(name, rec, *TOOLS_SUBSET[name])


def test_libbpf_tools_options_reach_both_loaders(results_tools):
    """The variant the kernel refuses is off in both; libbpf_load gets it as -n."""
    tools = conformance.toolscorpus.libbpf_tools
    refused = "kprobe_" if tools.this_kernel().fentry else "fentry_"
    off = results_tools["vfsstat"]["options"]["no_autoload"]
    assert off and all(p.startswith(refused) for p in off)
    assert conformance.load.loader_arguments(
        {"no_autoload": ["a"], "max_entries": {"m": 8}}) == ["-n", "a", "-m", "m=8"]
