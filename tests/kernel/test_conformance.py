"""pybpf's object loader agrees with libbpf on a representative set of the kernel's own
BPF selftest programs (the full corpus: tools/conformance.py, docs/conformance.md).

Each object is compiled from Debian's linux-source-6.1 as the selftests Makefile does,
then loaded on this kernel by libbpf (bpftool prog loadall) and by pybpf, each in a
child process with a private bpffs. Both must load it, or both must refuse it; where
both load, both must have loaded the same number of programs (when bpftool can tell).
The expected verdict is checked too, so a broken bpftool or compiler cannot pass as
"both fail".

The extracted tree, vmlinux.h and objects are cached under
/var/tmp/pybpf-conformance-cache/<clang version>-<kernel release>, so reruns only load.
"""

import pytest
from toolbox import load_tool

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
        pytest.fail(f"{e}\n(run tools/run-tests: it installs linux-source-6.1, clang and "
                    f"bpftool)")
    return {r["object"]: r for r in doc["objects"]}


@pytest.mark.parametrize("name", sorted(SUBSET))
def test_pybpf_agrees_with_libbpf(results, name):
    rec = results[name]
    assert rec["compiled"], f"clang could not compile {name}: {rec['compile_error']}"
    libbpf, pybpf = rec["libbpf"], rec["pybpf"]
    expected, covers = SUBSET[name]
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


def test_first_error_line_skips_the_verifier_log():
    """The libbpf verdict quotes libbpf's reason, not a line of the verifier log."""
    output = ("libbpf: prog 'p': BPF program load failed: Permission denied\n"
              "libbpf: prog 'p': -- BEGIN PROG LOAD LOG --\n"
              "0: R1 invalid mem access 'scalar'\n"
              "libbpf: prog 'p': -- END PROG LOAD LOG --\n"
              "libbpf: failed to load object 'x.o'\n")
    assert conformance.libbpf_first_error(output) == \
        "libbpf: prog 'p': BPF program load failed: Permission denied"
