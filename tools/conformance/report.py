"""Judging the verdicts (agreement, notes, totals) and writing the markdown report."""
import platform
import re

from .corpus import _run, bpftool_version, clang_version
from .toolscorpus import CORPORA, TOOLS_CORPUS, libbpf_tools
from .explanations import EXPLANATIONS, HISTORY, NOTES, UNJUDGED, explain


def compare(libbpf, pybpf):
    return libbpf["ok"] == pybpf["ok"]


def totals(records):
    records = list(records)
    loaded = [r for r in records if r["compiled"]]
    agree = sum(1 for r in loaded if r["agree"])
    return {"sources": len(records), "compiled": len(loaded),
            "skipped": len(records) - len(loaded), "agree": agree,
            "disagree": len(loaded) - agree,
            "agreement_percent": round(100.0 * agree / len(loaded), 1) if loaded else 0.0,
            "both_load": sum(1 for r in loaded if r["libbpf"]["ok"] and r["pybpf"]["ok"]),
            "both_fail": sum(1 for r in loaded
                             if not r["libbpf"]["ok"] and not r["pybpf"]["ok"]),
            "with_core": sum(1 for r in loaded if r["pybpf"].get("core"))}


_TRACING = re.compile(r"^\??(fentry|fexit|fmod_ret|lsm|lsm_cgroup|freplace|iter|tp_btf)"
                      r"(\.s)?(/|$)")

# Why both loaders refuse an object: (pattern in libbpf's or pybpf's reason, note).
# The first match wins; the tracing rule is checked before these (it needs sections).
_BOTH_FAIL = [
    (r"failed to guess program type|follows no known convention|missing BPF prog type",
     "section name follows no libbpf convention (the test sets the type itself)"),
    (r"failed to find kernel BTF type ID|cannot attach to it",
     "attach target is not in this kernel's BTF (bpf_testmod, a program, or gone)"),
    (r"ksym\)? '[^']*': not found|\(\.ksyms\) is not in the kernel|not resolved|"
     r"typeless __ksym",
     "needs a kfunc/ksym this kernel lacks (most are bpf_testmod's)"),
    (r"failed to find BTF for extern|unrecognized extern section|is an extern|"
     r"neither __ksym nor __kconfig",
     "extern defined by another object: needs static linking first"),
    (r"is in no \.struct_ops variable",
     "struct_ops program that no .struct_ops map uses (the test expects the failure)"),
    (r"struct_ops init_kern|no struct_ops type",
     "struct_ops of a type this kernel lacks (bpf_testmod's)"),
    (r"failed to prepare load attributes|replaces function",
     "freplace program: needs the target program at load"),
    (r"invalid pinning", "invalid pinning value (the test expects the failure)"),
    (r"failed to open object file|legacy map",
     "legacy SEC(\"maps\") in iproute2's layout: libbpf 1.x refuses it, so does pybpf"),
    (r"failed to create|create_map|BPF_MAP_CREATE",
     "the kernel refuses a map as defined (the test completes it at run time, "
     "e.g. sets max_entries or the inner map)"),
    (r"Argument list too long|E2BIG", "program too large/complex for the verifier (E2BIG)"),
    (r"No such file or directory|ENOENT",
     "the verifier cannot find something the program uses on this kernel (ENOENT)"),
    (r"Permission denied|EACCES",
     "the verifier rejects the program (EACCES; many are deliberate *_fail tests)"),
    (r"Invalid argument|EINVAL",
     "the verifier/kernel rejects the program (EINVAL; many are deliberate *_fail "
     "tests or use {tree}-only kernel interfaces)"),
    (r"Operation not permitted|EPERM", "the kernel refuses the program (EPERM)"),
    (r"Bad address|EFAULT", "the verifier refuses the program (EFAULT)"),
    (r"strerror_r\(524\)|ENOTSUPP|Unknown error 524", "the kernel does not support it (ENOTSUPP)"),
]


def why(tree, rec):
    """A disagreement's explanation: 6.1's per-object text, or a newer tree's cause
    (its group in "What pybpf lacks"); UNEXPLAINED without an entry."""
    cause = explain(tree, rec)
    if not cause:
        return "UNEXPLAINED"
    return cause[1] if isinstance(EXPLANATIONS.get(tree), dict) else cause[0]


def note_for(rec, tree="6.1"):
    """A short reason for a verdict, from what both loaders said."""
    lb, pb = rec["libbpf"], rec["pybpf"]
    if not rec["agree"]:
        return why(tree, rec)
    known = NOTES.get(tree, {}).get(rec["object"])
    if known:
        return known
    if lb["ok"]:
        if lb.get("programs") is not None and lb["programs"] != pb.get("programs"):
            return (f"libbpf loaded {lb['programs']} programs, pybpf "
                    f"{pb.get('programs')}")
        return lb.get("quirk", "")
    text = lb["error"] + "\n" + pb["error"]
    if any(_TRACING.match(s) for s in pb.get("sections", [])) and \
            re.search(r"Operation not permitted|EPERM", text):
        return "tracing/lsm program: this kernel refuses the load (EPERM)"
    for pattern, note in _BOTH_FAIL:
        if re.search(pattern, text):
            return note.format(tree=tree)
    return ""


def machine_info(tree, libbpf=None):
    """libbpf: how the tree's own libbpf was used (None: bpftool's)."""
    date = _run(["date"]).stdout.strip()
    info = {"date": date, "kernel": platform.release(), "kernel_version": platform.version(),
            "machine": platform.machine(), "python": platform.python_version()}
    if tree.clang:
        info["clang"] = clang_version(tree)
    else:  # an extracted corpus: the package version is what it depends on
        info["package"] = f"{tree.package} {libbpf_tools.package_version()}"
    if tree.name != "6.1":
        info["tree"] = tree.name
    if libbpf:
        info["libbpf"] = libbpf
    else:
        info["bpftool"] = bpftool_version()
    return info


# -- the report --------------------------------------------------------------------------

def _cell(text, limit=110):
    text = (text or "").replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _method(tree, meta):
    if tree.name == "6.1":
        return _METHOD_6_1
    if tree is TOOLS_CORPUS:
        return _method_tools(meta)
    flags = " ".join(sorted({" ".join(f) for f in tree.extra_cflags.values()}))
    return [
        "## Method", "",
        f"- Corpus: every `tools/testing/selftests/bpf/progs/*.c` of Debian's "
        f"{tree.package} ({tree.tarball}); only the selftests, tools/lib/bpf, tools/include, "
        f"scripts/bpf_doc.py and what libbpf's own build needs are extracted.",
        "- Headers: as for 6.1 ([conformance.md](conformance.md)): `vmlinux.h` from this "
        "machine's BTF, `bpf_helper_defs.h` generated by the tree's scripts/bpf_doc.py, the "
        "other libbpf headers from the tree's tools/lib/bpf.",
        f"- Compile: the {tree.name} selftests Makefile's test_progs rule with "
        f"{tree.clang}: `{tree.clang} -g {' '.join(tree.warnings)} -Werror "
        "-D__TARGET_ARCH_x86 -mlittle-endian -I<include> -I<selftests/bpf> "
        "-I<tools/include/uapi> -idirafter <clang's system dirs> "
        "-Wno-compare-distinct-pointer-types -DENABLE_ATOMICS_TESTS -O2 -target bpf "
        f"-mcpu=v3`, plus the Makefile's per-object flags ({flags} for the objects it "
        "names). The Makefile sets no -std; objects clang rejects are skipped.",
        f"- Load: each tool in a child process (`unshare --mount`) with a private bpffs at "
        f"/sys/fs/bpf. libbpf is the tree's own ({meta.get('libbpf', '?')}): bpftool 7.1's "
        "libbpf 1.1 refuses this era's sections and features, so tools/lib/bpf is built "
        "(`make -C tools/lib/bpf`, static) into the cache and linked with "
        "tools/conformance/libbpf_load.c, which does what `bpftool prog loadall` does: "
        "`bpf_object__open_file` (pin root /sys/fs/bpf) and `bpf_object__load`, then counts "
        "the programs that got an fd. pybpf through "
        "`BpfObject.open(OBJ).load(pin_maps=\"/sys/fs/bpf\")`. "
        f"{meta.get('timeout', 60)} s timeout per load.",
        "- Where both load, the number of programs each loaded is compared too.", ""]


_METHOD_6_1 = [
    "## Method", "",
    "- Corpus: every `tools/testing/selftests/bpf/progs/*.c` of Debian's linux-source-6.1 "
    "(/usr/src/linux-source-6.1.tar.xz); only the selftests, tools/lib/bpf, tools/include "
    "and scripts/bpf_doc.py are extracted.",
    "- Headers: `vmlinux.h` dumped from this machine's BTF (`bpftool btf dump file "
    "/sys/kernel/btf/vmlinux format c`); `bpf_helper_defs.h` generated from the tree's "
    "UAPI bpf.h by its own scripts/bpf_doc.py (what libbpf's Makefile does, so helper "
    "prototypes match the 6.1 programs; libbpf-dev's copy is the fallback); the other "
    "libbpf headers from the tree's tools/lib/bpf.",
    "- Compile: the selftests Makefile's test_progs rule: `clang -g -Werror "
    "-D__TARGET_ARCH_x86 -mlittle-endian -I<include> -I<selftests/bpf> "
    "-I<tools/include/uapi> -idirafter <clang's system dirs> "
    "-Wno-compare-distinct-pointer-types -DENABLE_ATOMICS_TESTS -O2 -target bpf -mcpu=v3` "
    "(plus -fno-inline for the two *_noinline tests). Objects clang rejects are skipped.",
    "- Load: each tool in a child process (`unshare --mount`) with a private bpffs at "
    "/sys/fs/bpf, so by-name map pins neither collide nor outlive the load; libbpf through "
    "`bpftool prog loadall OBJ /sys/fs/bpf/conformance`, pybpf through "
    "`BpfObject.open(OBJ).load(pin_maps=\"/sys/fs/bpf\")` (libbpf's default pin root). "
    "60 s timeout per load.",
    "- bpftool 7.1 quirk: `loadall` pins every program after libbpf loaded the object, also "
    "the `SEC(\"?...\")` ones libbpf (rightly) did not load, and then fails with \"can't pin "
    "program that wasn't loaded\". That message only appears after a successful load, so "
    "it counts as libbpf loading the object (noted per object).",
    "- Where both load, the number of programs each loaded is compared too.", ""]


def _method_tools(meta):
    return [
        "## Method", "",
        f"- Corpus: the BPF object inside each binary of Debian's {meta.get('package')} "
        "(/usr/sbin), taken out by tools/extract_bpf_objects.py (the ELF whose e_machine is "
        "EM_BPF, through the end of its section headers) into a cache keyed by the package "
        "version. Nothing is compiled: these are the objects the package ships.",
        "- Like for like: each object is loaded with what its tool's user space does between "
        "open and load (tools/libbpf_tools.py, shared with tests/kernel/test_real_tools.py): "
        "of the fentry/kprobe or tp_btf/raw_tp variant pairs, the one the running kernel "
        "cannot run (probed as the tools' trace_helpers.c does: a fentry program on vfs_read, "
        "a tp_btf one on sched_switch) has autoload off; unsized maps get the tools' default "
        "size. Both loaders get the same: libbpf_load's `-n PROG` / `-m MAP=N`, pybpf's "
        "`--no-autoload` / `--max-entries` (pybpf.cli.loadopts).",
        f"- Load: each tool in a child process (`unshare --mount`) with a private bpffs at "
        f"/sys/fs/bpf. libbpf: {meta.get('libbpf', '?')} (bpftool cannot be given the "
        "options). pybpf: `BpfObject.open(OBJ)`, the options applied, "
        "`.load(pin_maps=\"/sys/fs/bpf\", programs=...)`. "
        f"{meta.get('timeout', 60)} s timeout per load.",
        "- Where both load, the number of programs each loaded is compared too (all equal).",
        "- What is not given to either: the stack maps' value size (capable, offcputime, "
        "wakeuptime size it from perf_max_stack_depth; neither `run` nor libbpf_load has an "
        "option for it) and the attach targets the fs*/dist tools set at run time (their "
        "kprobe variants load regardless; their fentry ones are off here).", ""]


def _options_text(options):
    parts = [f"no autoload: {', '.join(options['no_autoload'])}"] if options.get(
        "no_autoload") else []
    parts += [f"max_entries {m}={n}" for m, n in options.get("max_entries", {}).items()]
    return "; ".join(parts)


def _load_seconds(doc, tool):
    return round(sum(r[tool]["seconds"] for r in doc["objects"] if r["compiled"]), 1)


def _intro(tree, m):
    if tree is TOOLS_CORPUS:
        return ["Every BPF object inside Debian's libbpf-tools binaries (bcc's tools, built by "
                "Debian) is loaded on this machine by libbpf and by pybpf, each with the "
                "choices the tool's own user space makes before load, each in a child "
                "process with a private bpffs. The tools *agree* when both load the object "
                "or both refuse it. The selftest corpora: [conformance.md](conformance.md) "
                "(6.1), [conformance-6.12.md](conformance-6.12.md).", ""]
    if tree.name == "6.1":
        return ["Every program in linux-source-6.1's tools/testing/selftests/bpf/progs is "
                "compiled as the selftests Makefile compiles it, then loaded on this machine "
                "by libbpf (`bpftool prog loadall`) and by pybpf (`BpfObject.open(obj)"
                ".load()`), each in a child process with a private bpffs. The tools *agree* "
                "when both load the object or both refuse it.", ""]
    return [f"Every program in linux-source-{tree.name}'s tools/testing/selftests/bpf/progs "
            f"is compiled by {tree.clang} as that tree's selftests Makefile compiles it, then "
            f"loaded on this machine by libbpf (the tree's own, {m.get('libbpf', '?')}) and "
            "by pybpf (`BpfObject.open(obj).load()`), each in a child process with a private "
            "bpffs. The tools *agree* when both load the object or both refuse it. The same "
            "comparison for linux-source-6.1 with bpftool: [conformance.md](conformance.md).",
            ""]


def _gaps(tree, dis, objs):
    """The disagreements grouped by what pybpf lacks (trees with explanations), then
    the agreements that show a gap too."""
    groups = {}
    for r in dis:
        cause = explain(tree.name, r)
        key = cause[0] if cause else "UNEXPLAINED"
        groups.setdefault(key, (cause[1] if cause else "no explanation entry yet", []))
        groups[key][1].append(r)
    out = ["## What pybpf lacks, grouped", "",
           "Each remaining disagreement, grouped by cause (the `EXPLANATIONS` of "
           "tools/conformance/explanations.py); the objects show each.", ""]
    for key, (text, recs) in sorted(groups.items(), key=lambda kv: -len(kv[1][1])):
        lb = sum(1 for r in recs if r["libbpf"]["ok"])
        out += [f"### {key} ({len(recs)} object{'s' if len(recs) > 1 else ''}: libbpf "
                f"loads {lb}, pybpf {len(recs) - lb})", "", text, "",
                "Objects: " + ", ".join(f"`{r['object']}`" for r in recs), ""]
    # Both refuse, but pybpf stops at one of the gaps above before the kernel judges
    # the object, while libbpf got as far as the kernel: fixing the gap may turn these
    # into disagreements (or into agreement for the right reason).
    hidden = [r for r in objs if r["compiled"] and r["agree"] and not r["libbpf"]["ok"]
              and explain(tree.name, r)]
    notes = NOTES.get(tree.name, {})
    if hidden or notes:
        out += ["### Agreements that show a gap too", ""]
    for r in hidden:
        out.append(f"- `{r['object']}`: both refuse it, but pybpf stops at "
                   f"\"{explain(tree.name, r)[0]}\" where libbpf got to the kernel, which "
                   f"said: {_cell(r['libbpf']['error'], 200)}")
    out += [f"- `{name}`: {text}" for name, text in notes.items()
            if any(r["object"] == name for r in objs)]
    if hidden or notes:
        out.append("")
    if UNJUDGED.get(tree.name):
        out += ["### What this host cannot judge", ""]
        out += [f"- {text}" for text in UNJUDGED[tree.name]] + [""]
    return out


def write_markdown(doc, path, command):
    m, t = doc["meta"], doc["totals"]
    tree = CORPORA[m.get("tree", "6.1")]
    tool = f"- bpftool: {m['bpftool']}" if "bpftool" in m else f"- libbpf: {m['libbpf']}"
    title = ("the BPF objects of Debian's libbpf-tools" if tree is TOOLS_CORPUS else
             "the kernel's BPF selftests"
             + ("" if tree.name == "6.1" else f" (linux-source-{tree.name})"))
    out = [f"# Object loader conformance: pybpf vs libbpf on {title}", "",
           "Generated by `tools/conformance.py` (do not edit by hand; re-run it).", ""]
    out += _intro(tree, m)
    out += ["## Setup", "",
            f"- date: {m['date']}",
            f"- kernel: {m['kernel']} ({m['kernel_version']}), {m['machine']}",
            f"- clang: {m['clang']}" if "clang" in m else f"- package: {m['package']}",
            tool,
            f"- python: {m['python']}",
            f"- command: `{command}`",
            f"- wall time: {m['total_seconds']} s ({m['compile_seconds']} s compiling), "
            f"{m['jobs']} jobs; load time summed over objects: libbpf "
            f"{_load_seconds(doc, 'libbpf')} s, pybpf {_load_seconds(doc, 'pybpf')} s "
            f"(per object in the JSON)", ""]
    if m.get("partial"):
        out += [f"**Partial run**: {m['partial']}", ""]
    out += ["## Totals", "",
            "| sources | compiled | skipped (clang failed) | agree | disagree | agreement |"
            " both load | both fail |",
            "|---|---|---|---|---|---|---|---|",
            f"| {t['sources']} | {t['compiled']} | {t['skipped']} | {t['agree']} | "
            f"{t['disagree']} | {t['agreement_percent']}% | {t['both_load']} | "
            f"{t['both_fail']} |", ""]
    objs = doc["objects"]
    for r in objs:  # notes from this version's explanations (--from-json re-renders)
        if r["compiled"]:
            r["note"] = note_for(r, tree.name)
    out += _method(tree, m)
    reasons = {}
    for r in objs:
        if r["compiled"] and r["agree"] and not r["libbpf"]["ok"]:
            reasons[r["note"] or "other"] = reasons.get(r["note"] or "other", 0) + 1
    out += ["## Why both refuse some objects", "",
            "Agreement includes objects neither tool loads on this kernel. Grouped by the "
            "reason both gave (per object below):", "", "| objects | reason |", "|---|---|"]
    out += [f"| {n} | {reason} |" for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])]
    out.append("")
    dis = [r for r in objs if r["compiled"] and not r["agree"]]
    if dis and EXPLANATIONS.get(tree.name):
        out += _gaps(tree, dis, objs)
    out += ["## Disagreements", ""]
    if not dis:
        out += ["None.", ""]
    for r in dis:
        out += [f"### {r['object']}", "",
                f"- libbpf: {'loads' if r['libbpf']['ok'] else _cell(r['libbpf']['error'], 400)}",
                f"- pybpf: {'loads' if r['pybpf']['ok'] else _cell(r['pybpf']['error'], 400)}",
                f"- why: {why(tree.name, r)}", ""]
    if HISTORY.get(tree.name):
        intro, items = HISTORY[tree.name]
        out += ["## Disagreements found and fixed", "", intro, ""]
        out += [f"- {what}: {how}" for what, how in items]
        out.append("")
    out += ["## Per object", "",
            "| object | libbpf | pybpf | agree | note |", "|---|---|---|---|---|"]
    for r in objs:
        if not r["compiled"]:
            continue
        lb = "ok" if r["libbpf"]["ok"] else "fail: " + _cell(r["libbpf"]["error"], 90)
        pb = "ok" if r["pybpf"]["ok"] else "fail: " + _cell(r["pybpf"]["error"], 90)
        out.append(f"| {r['object']} | {lb} | {pb} | {'yes' if r['agree'] else '**no**'} | "
                   f"{_cell(r['note'])} |")
    with_options = [r for r in objs if r.get("options") and _options_text(r["options"])]
    if with_options:
        out += ["", "## What the tools' user space did before load", "",
                "Given alike to both loaders (the other objects were loaded as they are).", "",
                "| object | options |", "|---|---|"]
        out += [f"| {r['object']} | {_cell(_options_text(r['options']), 300)} |"
                for r in with_options]
    skipped = [r for r in objs if not r["compiled"]]
    if not skipped and tree is TOOLS_CORPUS:
        with open(path, "w") as f:
            f.write("\n".join(out) + "\n")
        return
    out += ["", "## Skipped: clang could not compile them", "",
            f"Mostly programs written against {tree.name}'s kernel types: this vmlinux.h "
            "comes from the running kernel's BTF, where some types changed.", "",
            "| object | first error |", "|---|---|"]
    out += [f"| {r['object']} | {_cell(r['compile_error'], 160)} |" for r in skipped]
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
