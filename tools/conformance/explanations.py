"""Why each remaining disagreement happens, per tree, and what earlier runs fixed.

6.1 (bpftool 7.1 as the reference) has no disagreement left: its table is per object.
Newer trees hold a list of causes, each naming what pybpf lacks; a disagreement is
matched to the first cause whose ``objects`` name it or whose ``pybpf`` pattern
matches pybpf's error or the verifier's reason it quotes (``libbpf`` likewise). The
report marks a disagreement no cause covers as UNEXPLAINED, and
tests/kernel/test_conformance.py pins a few objects of each cause as expected to
disagree.
"""
import dataclasses
import re


@dataclasses.dataclass(frozen=True)
class Cause:
    key: str                # a short name, the report's group heading
    lacks: str              # what pybpf must do (or why the difference is not pybpf's)
    pybpf: str = ""         # regex on pybpf's error and the verifier's reason
    libbpf: str = ""        # regex on libbpf's error
    objects: tuple = ()     # objects matched by name


_NO_CONVENTION = "holds a program but its name follows no known convention"

# The 6.12 corpus's disagreements (all: libbpf 1.5 loads the object, pybpf refuses it),
# by cause. Sections first: pybpf/sections.py is gaining these names.
CAUSES_6_12 = [
    Cause("section uprobe.multi / uretprobe.multi",
          "pybpf/sections.py lacks libbpf's `uprobe.multi[.s]` and `uretprobe.multi[.s]` "
          "(bare, or `/PATH:FUNC_GLOB`): BPF_PROG_TYPE_KPROBE with expected attach type "
          "BPF_TRACE_UPROBE_MULTI (libbpf 1.2+); attaching needs a BPF_LINK_TYPE_UPROBE_MULTI "
          "link over the binary's symbols matching the glob.",
          pybpf=r"section '\??u(ret)?probe\.multi(\.s)?(/[^']*)?' " + _NO_CONVENTION),
    Cause("section cgroup/*_unix",
          "pybpf/sections.py lacks the AF_UNIX sock_addr hooks of 6.7+ "
          "(`cgroup/connect_unix`, `sendmsg_unix`, `recvmsg_unix`, `getpeername_unix`, "
          "`getsockname_unix`): BPF_PROG_TYPE_CGROUP_SOCK_ADDR with BPF_CGROUP_UNIX_CONNECT "
          "etc. (verifier_bpf_fastcall fails only on this section, its one non-raw_tp "
          "program: bpf_fastcall is the verifier's business; 6.12's libbpf has no code for "
          "it, and the object holds nothing a loader must treat).",
          pybpf=r"section '\??cgroup/\w+_unix' " + _NO_CONVENTION),
    Cause("section tc/ingress, tcx/*",
          "pybpf/sections.py lacks `tc/ingress`, `tc/egress`, `tcx/ingress`, `tcx/egress` "
          "(BPF_PROG_TYPE_SCHED_CLS with BPF_TCX_INGRESS/EGRESS, libbpf 1.3+; attach through "
          "a BPF_LINK_TYPE_TCX link on the interface).",
          pybpf=r"section '\??tcx?/(ingress|egress)' " + _NO_CONVENTION),
    Cause("section netfilter",
          "pybpf/sections.py lacks `netfilter` (BPF_PROG_TYPE_NETFILTER, expected attach "
          "BPF_NETFILTER; attach via a BPF_LINK_TYPE_NETFILTER link with pf/hooknum/priority).",
          pybpf=r"section '\??netfilter' " + _NO_CONVENTION),
    Cause("section sk_skb/verdict",
          "pybpf/sections.py lacks `sk_skb/verdict` (BPF_PROG_TYPE_SK_SKB with "
          "BPF_SK_SKB_VERDICT, libbpf 1.0+; 6.1's objects used only stream_parser/verdict).",
          pybpf=r"section '\??sk_skb/verdict' " + _NO_CONVENTION),
    Cause("section struct_ops.s",
          "pybpf/sections.py lacks `struct_ops.s/NAME` (sleepable struct_ops members: "
          "BPF_PROG_TYPE_STRUCT_OPS loaded with BPF_F_SLEEPABLE).",
          pybpf=r"section '\??struct_ops\.s/[^']*' " + _NO_CONVENTION),
    Cause("section kprobe.session",
          "pybpf/sections.py lacks `kprobe.session/PATTERN` (6.10+: BPF_PROG_TYPE_KPROBE with "
          "BPF_TRACE_KPROBE_SESSION, attached by a kprobe_multi link). No disagreement here "
          "only because this kernel has no kprobes, so libbpf's load fails too.",
          pybpf=r"section '\??kprobe\.session(/[^']*)?' " + _NO_CONVENTION),
    Cause("arena maps and __arena globals",
          "BPF_MAP_TYPE_ARENA (33) as libbpf 1.4+ handles it, three parts, each shown by "
          "objects here: (1) `__ulong(map_extra, ...)` map attributes (bpf_helpers.h's "
          "`__ulong` is an enum-typed member carrying a 64-bit value, not __uint's array "
          "pointer; arena_atomics, arena_list); (2) the `.addr_space.1` section of `__arena` "
          "globals: libbpf makes it the arena map's initial data, relocates ld_imm64 "
          "references to it as map-value references (BPF_PSEUDO_MAP_VALUE) into the one "
          "arena map, with the symbol's offset, and copies the data in after mmap "
          "(arena_htab, verifier_arena_large); (3) right after creating an arena map, mmap it "
          "(at map_extra with MAP_FIXED when given): the verifier refuses programs using an "
          "arena whose user address is unset (arena_htab_asm). The `addr_space_cast` "
          "instructions clang 19 emits for `__arena` casts need nothing from the loader.",
          pybpf=r"'map_extra' must be declared with __uint|'\.addr_space\.1'|"
                r"arena's user address must be set"),
    Cause("exception callbacks",
          "bpf_throw() with an `exception_callback:NAME` BTF decl tag on the main program "
          "(libbpf 1.3+'s bpf_prog_assign_exc_cb): pybpf must find the decl tag, and append "
          "the named global subprogram (code, func_info and line_info) to that program even "
          "though nothing calls it, else the verifier says \"exception callback type id not "
          "found in func_info\".",
          pybpf=r"exception callback type id not found"),
    Cause("global data sections with special fields",
          "libbpf's map_is_mmapable(): a `.data*`/`.bss*`/`.rodata*` map is created "
          "BPF_F_MMAPABLE only if its DATASEC has a non-static variable; sections of only "
          "static/__hidden variables (`private(A)` in the selftests, holding bpf_spin_lock, "
          "bpf_rb_root, bpf_list_head) are plain arrays whose image is written with "
          "BPF_MAP_UPDATE_ELEM. The kernel refuses to mmap a map value with such fields "
          "(ENOTSUPP), which pybpf does unconditionally.",
          pybpf=r"mmap: ENOTSUPP"),
]

# Agreements that still show a pybpf gap (not disagreements, so not in CAUSES):
# object -> what differs.
NOTES_6_12 = {
    "verifier_global_subprogs":
        "libbpf loads 1 program, pybpf 0: libbpf 1.3+ turns autoload on for a "
        "SEC(\"?struct_ops/...\") program that a .struct_ops map references "
        "(bpf_object_adjust_struct_ops_autoload); pybpf leaves every \"?\" program unloaded.",
}

# Why both loaders refuse 11 of Debian's libbpf-tools objects on this kernel (6.18,
# fentry refused, no kprobes): none is a loader's doing.
_FENTRY_HERE = ("fentry program the tool uses whatever the kernel (no kprobe variant to "
                "choose): this kernel refuses fentry (EPERM)")
_STACKMAP = ("stack map left unsized: the tool's user space sets its value size "
             "(perf_max_stack_depth) and entries, which neither loader is given")
_GONE = "fentry target not in this kernel's BTF (renamed or inlined since the tool was written)"
_CORE_GONE = ("a CO-RE relocation of a field 6.18 no longer has fails, so the program is "
              "poisoned ({what}); libbpf and pybpf both report it")
NOTES_TOOLS = {
    "biosnoop": _FENTRY_HERE, "biostacks": _FENTRY_HERE, "cachestat": _FENTRY_HERE,
    "capable": _STACKMAP, "offcputime": _STACKMAP, "wakeuptime": _STACKMAP,
    "mdflush": _GONE, "numamove": _GONE, "readahead": _GONE,
    "bindsnoop": _CORE_GONE.format(what="inet_sock's freebind bitfield, now a flag bit"),
    "runqlen": _CORE_GONE.format(what="cfs_rq.nr_running"),
}

EXPLANATIONS = {"6.1": {}, "6.12": CAUSES_6_12, "libbpf-tools": {}}

# What the first run (41 disagreements in 486 objects) found, and what fixed it.
HISTORY_6_1 = [
    ("18 objects with SK/TASK/CGROUP storage maps (tcp_rtt, netcnt_prog, sockopt_sk, ...)",
     "pybpf refused max_entries 0, which local-storage maps require: Map.create()'s "
     "generic check ran on object maps. The loader now creates maps exactly as defined "
     "(kernel judges) and wraps the fd with Map.from_fd()."),
    ("8 objects with SEC(\"?...\") programs (strncmp_test, htab_update, ...)",
     "not a loader difference: bpftool 7.1 fails pinning programs libbpf did not load; "
     "counted as libbpf loading them (see Method)."),
    ("4 struct_ops objects (bpf_cubic, dummy_st_ops, tcp_ca_incompl_cong_ops, "
     "tcp_ca_write_sk_pacing; bpf_dctcp too, once past its storage map)",
     "pybpf ignored .struct_ops: it now parses the variables and their program "
     "relocations, creates STRUCT_OPS maps with the kernel's bpf_struct_ops_<name> value "
     "type, and loads each program with the ops struct's BTF id and member index."),
    ("cb_refs, kfunc_call_fail, map_kptr_fail, linked_funcs1/2",
     "pybpf loaded objects whose strong externs this kernel lacks (or that need static "
     "linking) when only unloaded SEC(\"?...\") programs used them; externs are now "
     "resolved up front, like libbpf."),
    ("test_usdt, test_urandom_usdt",
     "__hidden global subprograms (usdt.bpf.h's bpf_usdt_arg) must be marked static in "
     "the loaded BTF so the verifier checks them in the caller's context."),
    ("test_snprintf", "typeless `extern const void sym __ksym` is now resolved through "
                      "/proc/kallsyms (address in ld_imm64)."),
    ("test_ringbuf_multi", "ring buffer max_entries is rounded up to a power-of-2 number "
                           "of pages, as libbpf does."),
    ("test_btf_map_in_map", ".values initialisation of a hash of maps without BTF key "
                            "type: slot keys are now u32."),
    ("test_pinning_invalid", "pinning values other than 0/1 are now refused."),
]

# What the first 6.12 run (32 disagreements in 786 objects, 95.9%) found: in every one
# libbpf 1.5 loaded the object and pybpf refused it; each cause is now fixed.
HISTORY_6_12 = [
    ("8 objects with uprobe.multi/uretprobe.multi sections (uprobe_multi, test_build_id, "
     "...), 6 with cgroup/*_unix (connect_unix_prog, ...), 3 with tc/ingress and tcx/* "
     "(test_tc_link, ...), 2 with netfilter, 1 each with struct_ops.s and sk_skb/verdict",
     "sections.py has every convention of libbpf 1.5's table, held to libbpf.c's "
     "section_defs[] by tests/unit/test_sections.py."),
    ("5 arena objects (arena_atomics, arena_list, arena_htab, arena_htab_asm, "
     "verifier_arena_large)",
     "__ulong(map_extra) attributes are read from their enum; __arena globals "
     "(.addr_space.1) are written at the arena's last pages and referenced as arena "
     "map values; the arena is mapped, at its map_extra address, before programs load."),
    ("5 objects with special fields in data sections (rbtree, test_spin_lock, ...)",
     "a data section's map is mmapable only if it holds a variable that is neither "
     "static nor hidden, libbpf's rule: the kernel refuses mapped spin locks."),
    ("exceptions", "a program's exception callback (the exception_callback: decl tag) is "
                   "linked into it though nothing calls it."),
    ("verifier_global_subprogs (1 program vs 0)", "?struct_ops programs a .struct_ops "
     "table uses are loaded, as libbpf does; bad_struct_ops2 (a struct_ops program no "
     "table uses, without ?) is loaded and refused by both."),
]

# What this host cannot judge: both refuse for the kernel's reasons. Each is tested
# elsewhere, named with it.
UNJUDGED_6_12 = [
    "kfuncs, ksyms and struct_ops types in modules: every such selftest uses bpf_testmod's, "
    "which this host does not have, so libbpf fails too (kfunc_call_test, ksym_race, "
    "struct_ops_module, ...); module BTF is tested in the VM tier with nf_conntrack "
    "(tests/kernel/test_module_btf.py).",
    "fentry/fexit/fmod_ret/lsm (.s) programs: this kernel refuses them (EPERM) whoever "
    "loads them; freplace against a program the user names is tested in the VM tier "
    "(tests/kernel/test_freplace.py).",
    "kprobe.multi/kprobe.session: no kprobes on this kernel; kprobe.multi links are "
    "tested in the patched tier (CONFIG_FPROBE), kprobe.session needs 6.10.",
]

# tree -> (what the first run found, [(objects, what fixed them)])
HISTORY = {
    "6.1": ("The first run had 41 disagreements (91.6%). Each was a pybpf bug (fixed in "
            "pybpf/objfile.py and pybpf/loader.py) or a bpftool quirk:", HISTORY_6_1),
    "6.12": ("The first run had 32 disagreements (95.9%), each an object libbpf 1.5 "
             "loaded and pybpf refused:", HISTORY_6_12),
}
NOTES = {"6.12": NOTES_6_12, "libbpf-tools": NOTES_TOOLS}
UNJUDGED = {"6.12": UNJUDGED_6_12}


def explain(tree, rec):
    """(cause, explanation) for a disagreement, or None."""
    table = EXPLANATIONS.get(tree) or {}
    if isinstance(table, dict):
        return (rec["object"], table[rec["object"]]) if rec["object"] in table else None
    lb, pb = rec.get("libbpf", {}), rec.get("pybpf", {})
    for cause in table:
        if rec["object"] in cause.objects:
            return cause.key, cause.lacks
    for cause in table:
        said = pb.get("error", "") + "\n" + pb.get("verifier", "")
        if cause.pybpf and not pb.get("ok") and re.search(cause.pybpf, said):
            return cause.key, cause.lacks
        if cause.libbpf and not lb.get("ok") and re.search(cause.libbpf, lb.get("error", "")):
            return cause.key, cause.lacks
    return None
