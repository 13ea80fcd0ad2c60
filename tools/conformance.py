#!/usr/bin/env python3
"""Conformance of pybpf's object loader with libbpf on a real corpus.

The corpus is the kernel's own BPF selftest programs
(tools/testing/selftests/bpf/progs/*.c of Debian's ``linux-source-6.1``). Each one is
compiled the way the selftests Makefile compiles it, then loaded on THIS kernel twice:

- by libbpf, through ``bpftool prog loadall OBJ DIR``;
- by pybpf, through ``BpfObject.open(OBJ).load()``.

Both loads run in a child process (a crash, hang or leak in one object cannot touch
the others) inside a private mount namespace with a bpffs of its own at /sys/fs/bpf:
libbpf pins ``LIBBPF_PIN_BY_NAME`` maps under /sys/fs/bpf by default, and a private
bpffs means those pins can neither collide between objects loaded in parallel nor
outlive the child (the namespace's bpffs, and every pin in it, goes away with it).
pybpf is given the same pin root, so both tools exercise map pinning alike.

The two verdicts agree when both load or both fail. Many objects fail under both on
this kernel for reasons that are the kernel's (fentry/fexit/lsm refused with EPERM,
programs written for helpers or kfuncs 6.1 had and 6.18 changed): that is agreement.

    python3 tools/conformance.py                   # full run, writes docs/conformance.md
    python3 tools/conformance.py --only test_global_data,test_map_in_map
    python3 tools/conformance.py --jobs 2 --workdir /tmp/pybpf-conformance

Why the headers are made the way they are:

- vmlinux.h is dumped from this machine's BTF (``bpftool btf dump ... format c``), as
  the selftests do for the kernel they test.
- bpf_helper_defs.h is generated from the 6.1 tree's UAPI header with the tree's own
  scripts/bpf_doc.py (what libbpf's Makefile does), so helper prototypes match the
  programs' era exactly; libbpf-dev's copy (/usr/include/bpf) is the fallback when
  the script fails. The other libbpf headers come from the tree's tools/lib/bpf.
"""
import argparse
import concurrent.futures
import dataclasses
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

TARBALL = "/usr/src/linux-source-6.1.tar.xz"
TOP = "linux-source-6.1"
SELFTESTS = "tools/testing/selftests/bpf"
# What the progs need from the tree: their own directory (progs/ and the headers next
# to it), libbpf's BPF-side headers, the tools copy of the UAPI headers, and the
# script that generates bpf_helper_defs.h.
MEMBERS = (SELFTESTS, "tools/lib/bpf", "tools/include", "scripts/bpf_doc.py")
DEFAULT_WORKDIR = "/tmp/pybpf-conformance"
CACHE_ROOT = "/var/tmp/pybpf-conformance-cache"
VMLINUX_BTF = "/sys/kernel/btf/vmlinux"
PIN_ROOT = "/sys/fs/bpf"
DOCS = os.path.join(REPO, "docs", "conformance.md")
LOAD_TIMEOUT = 60
# Per-object additions of the selftests Makefile.
EXTRA_CFLAGS = {"test_l4lb_noinline": ["-fno-inline"], "test_xdp_noinline": ["-fno-inline"]}

# Why each remaining disagreement happens (object -> explanation). The report marks a
# disagreement without an entry here as UNEXPLAINED.
EXPLANATIONS = {}

# What the first run (41 disagreements in 486 objects) found, and what fixed it.
HISTORY = [
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


class SetupError(RuntimeError):
    """Something the conformance run needs is missing; the message names the fix."""


# -- workspace -------------------------------------------------------------------------

@dataclasses.dataclass
class Workspace:
    """The extracted tree, generated headers and compiled objects under one directory."""
    root: str

    @property
    def tree(self):
        return os.path.join(self.root, TOP)

    @property
    def selftests(self):
        return os.path.join(self.tree, SELFTESTS)

    @property
    def progs(self):
        return os.path.join(self.selftests, "progs")

    @property
    def include(self):
        return os.path.join(self.root, "include")

    @property
    def objdir(self):
        return os.path.join(self.root, "obj")

    def obj_path(self, name):
        return os.path.join(self.objdir, name + ".bpf.o")

    def sources(self):
        """Names (without .c) of every selftest program, sorted."""
        return sorted(f[:-2] for f in os.listdir(self.progs) if f.endswith(".c"))


def _run(cmd, timeout=None, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          errors="replace", timeout=timeout, **kw)


def _tool_output(cmd, package):
    """stdout of a tool the run needs; SetupError naming its package if missing."""
    try:
        return _run(cmd).stdout
    except FileNotFoundError:
        raise SetupError(f"{cmd[0]} is not installed: run tools/run-tests (it installs "
                         f"{package}) or apt-get install {package}") from None


def clang_version():
    out = _tool_output(["clang", "--version"], "clang")
    return out.splitlines()[0].strip() if out else "unknown"


def bpftool_version():
    out = _tool_output(["bpftool", "version"], "bpftool")
    return " / ".join(line.strip() for line in out.splitlines()[:2])


def cache_dir():
    """A workspace directory keyed by clang version and kernel release, so objects
    built for one toolchain/kernel are never reused for another."""
    key = re.sub(r"[^A-Za-z0-9.]+", "-", f"{clang_version()}-{platform.release()}")
    return os.path.join(CACHE_ROOT, key.strip("-"))


def _stamp():
    """What the workspace's contents depend on; a change rebuilds everything."""
    st = os.stat(TARBALL)
    btf = os.stat(VMLINUX_BTF).st_size if os.path.exists(VMLINUX_BTF) else 0
    return {"tarball": [st.st_size, int(st.st_mtime)], "clang": clang_version(),
            "kernel": platform.release(), "vmlinux_btf_size": btf, "format": 1}


def prepare(root=DEFAULT_WORKDIR):
    """Extract the tree and generate the headers into root (once; reused while the
    tarball, clang and kernel stay the same). Returns the Workspace."""
    if not os.path.exists(TARBALL):
        raise SetupError(f"{TARBALL} is missing: the conformance corpus comes from Debian's "
                         f"linux-source-6.1 package; run tools/run-tests (it installs it) "
                         f"or apt-get install linux-source-6.1")
    ws = Workspace(root)
    stamp_path = os.path.join(root, "stamp.json")
    want = _stamp()
    try:
        with open(stamp_path) as f:
            if json.load(f) == want:
                return ws
    except (OSError, ValueError):
        pass
    for sub in (TOP, "include", "obj"):
        shutil.rmtree(os.path.join(root, sub), ignore_errors=True)
    os.makedirs(root, exist_ok=True)
    _extract(ws)
    _make_headers(ws)
    os.makedirs(ws.objdir, exist_ok=True)
    with open(stamp_path, "w") as f:
        json.dump(want, f)
    return ws


def _extract(ws):
    """Only MEMBERS of the tarball: one decompression pass, ~10 MB written."""
    prefixes = tuple(f"{TOP}/{m}" for m in MEMBERS)
    tmp = ws.tree + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    with tarfile.open(TARBALL, "r:xz") as tar:
        def wanted():
            for member in tar:
                if member.name.startswith(prefixes) and (member.isfile() or member.isdir()
                                                         or member.issym()):
                    yield member
        kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(tmp, members=wanted(), **kwargs)
    os.rename(os.path.join(tmp, TOP), ws.tree)
    os.rmdir(tmp)


def _make_headers(ws):
    bpf_inc = os.path.join(ws.include, "bpf")
    os.makedirs(bpf_inc, exist_ok=True)
    libbpf = os.path.join(ws.tree, "tools/lib/bpf")
    for f in os.listdir(libbpf):
        if f.endswith(".h"):
            shutil.copy(os.path.join(libbpf, f), bpf_inc)
    defs = os.path.join(bpf_inc, "bpf_helper_defs.h")
    gen = _run([sys.executable, os.path.join(ws.tree, "scripts/bpf_doc.py"), "--header",
                "--file", os.path.join(ws.tree, "tools/include/uapi/linux/bpf.h")])
    if gen.returncode == 0 and "bpf_map_lookup_elem" in gen.stdout:
        with open(defs, "w") as f:
            f.write(gen.stdout)
    elif os.path.exists("/usr/include/bpf/bpf_helper_defs.h"):
        shutil.copy("/usr/include/bpf/bpf_helper_defs.h", defs)
    else:
        raise SetupError(f"cannot generate bpf_helper_defs.h ({gen.stderr.strip()[:200]}) "
                         f"and libbpf-dev's copy is not installed: apt-get install libbpf-dev")
    if not os.path.exists(VMLINUX_BTF):
        raise SetupError(f"{VMLINUX_BTF} is missing: the selftests need a kernel with "
                         f"CONFIG_DEBUG_INFO_BTF=y")
    dump = _run(["bpftool", "btf", "dump", "file", VMLINUX_BTF, "format", "c"])
    if dump.returncode != 0:
        raise SetupError(f"bpftool btf dump failed: {dump.stderr.strip()[:300]}")
    with open(os.path.join(ws.include, "vmlinux.h"), "w") as f:
        f.write(dump.stdout)


# -- compiling ---------------------------------------------------------------------------

def _system_includes():
    """clang's own include search list as -idirafter flags (the Makefile's
    get_sys_includes): -target bpf alone does not find asm/ and sys/ headers."""
    out = _run(["clang", "-v", "-E", "-"], stdin=subprocess.DEVNULL).stderr
    flags, inside = [], False
    for line in out.splitlines():
        if line.startswith("#include <...> search starts here:"):
            inside = True
        elif line.startswith("End of search list."):
            break
        elif inside and line.strip().startswith("/"):
            flags += ["-idirafter", line.strip()]
    return flags


def compile_command(ws, name, sys_includes=None):
    """The selftests Makefile's CLANG_BPF_BUILD_RULE with BPF_CFLAGS + CLANG_CFLAGS
    (the test_progs flavour: -mcpu=v3, ENABLE_ATOMICS_TESTS)."""
    if sys_includes is None:
        sys_includes = _system_includes()
    endian = "-mlittle-endian" if sys.byteorder == "little" else "-mbig-endian"
    arch = {"x86_64": "x86", "aarch64": "arm64", "s390x": "s390", "ppc64le": "powerpc",
            "riscv64": "riscv"}.get(platform.machine(), platform.machine())
    return (["clang", "-g", "-Werror", f"-D__TARGET_ARCH_{arch}", endian,
             "-I", ws.include, "-I", ws.selftests,
             "-I", os.path.join(ws.tree, "tools/include/uapi")]
            + sys_includes + ["-Wno-compare-distinct-pointer-types", "-DENABLE_ATOMICS_TESTS"]
            + EXTRA_CFLAGS.get(name, [])
            + ["-O2", "-target", "bpf", "-c", os.path.join(ws.progs, name + ".c"),
               "-mcpu=v3", "-o"])


def _first_error(text):
    for line in text.splitlines():
        if "error:" in line:
            return line.split("error:", 1)[1].strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0].strip() if lines else "unknown error"


def compile_one(ws, name, sys_includes=None):
    """(ok, first error line). Results, failures included, are cached in the workspace."""
    obj, err_file = ws.obj_path(name), os.path.join(ws.objdir, name + ".err")
    if os.path.exists(obj):
        return True, ""
    if os.path.exists(err_file):
        with open(err_file) as f:
            return False, f.read().strip()
    tmp = f"{obj}.{os.getpid()}.tmp"
    res = _run(compile_command(ws, name, sys_includes) + [tmp])
    if res.returncode == 0:
        os.replace(tmp, obj)
        return True, ""
    if os.path.exists(tmp):
        os.unlink(tmp)
    err = _first_error(res.stderr)
    with open(err_file, "w") as f:
        f.write(err + "\n")
    return False, err


def compile_all(ws, names, jobs=2):
    """{name: (ok, error)}; clang runs `jobs` at a time (each compile is a process of
    its own, so a thread pool that waits on them is the process pool)."""
    sys_includes = _system_includes()
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        futures = {n: pool.submit(compile_one, ws, n, sys_includes) for n in names}
        return {n: f.result() for n, f in futures.items()}


# -- loading -----------------------------------------------------------------------------

def _isolated(mode, obj, timeout):
    """Run `this file --inner MODE OBJ` in a private mount namespace; its JSON verdict."""
    cmd = ["unshare", "--mount", "--propagation", "private", sys.executable,
           os.path.abspath(__file__), "--inner", mode, obj]
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    started = time.monotonic()
    try:
        res = _run(cmd, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout} s", "seconds": timeout}
    except FileNotFoundError:
        raise SetupError("unshare (util-linux) is missing: apt-get install util-linux")
    elapsed = round(time.monotonic() - started, 2)
    for line in reversed(res.stdout.splitlines()):
        if line.startswith("{"):
            verdict = json.loads(line)
            verdict["seconds"] = elapsed
            return verdict
    tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
    return {"ok": False, "error": f"child exited with status {res.returncode}: {tail}",
            "seconds": elapsed}


def load_libbpf(obj, timeout=LOAD_TIMEOUT):
    return _isolated("libbpf", obj, timeout)


def load_pybpf(obj, timeout=LOAD_TIMEOUT):
    return _isolated("pybpf", obj, timeout)


# Lines of libbpf's output that say what went wrong, in the order they are preferred.
_LIBBPF_ERROR = re.compile(r"fail|error|unsupported|unrecogni[sz]ed|not found|invalid|"
                           r"can't|cannot|missing|unknown|unexpected|doesn't|mismatch|"
                           r"not resolved", re.IGNORECASE)
# bpftool 7.1's loadall pins every program of the object after libbpf loaded it, also
# those libbpf was told not to load (SEC("?...")), and then fails with this message.
# The object did load: the message exists only past a successful bpf_object__load().
_PIN_UNLOADED = "can't pin program that wasn't loaded"


def libbpf_first_error(output):
    """The first line of bpftool's output that names the failure (the verifier log
    between BEGIN/END PROG LOAD LOG is skipped: its last line is kept apart)."""
    in_log = False
    for line in output.splitlines():
        if "-- BEGIN PROG LOAD LOG --" in line:
            in_log = True
            continue
        if "-- END PROG LOAD LOG --" in line:
            in_log = False
            continue
        if not in_log and _LIBBPF_ERROR.search(line):
            return line.strip()
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "failed without a message"


def _inner_mount():
    from pybpf.kernel import system
    if not system.is_bpffs(PIN_ROOT):
        system.mount("bpf", PIN_ROOT, "bpf")


def _inner_libbpf(obj):
    _inner_mount()
    pins = os.path.join(PIN_ROOT, "conformance")
    res = _run(["bpftool", "prog", "loadall", obj, pins])
    output = res.stdout + res.stderr
    programs = len(os.listdir(pins)) if os.path.isdir(pins) else 0
    shutil.rmtree(pins, ignore_errors=True)
    if res.returncode == 0:
        return {"ok": True, "error": "", "programs": programs}
    if _PIN_UNLOADED in output:
        return {"ok": True, "error": "", "programs": None,  # pins were rolled back
                "quirk": "loaded; bpftool then failed to pin a SEC(\"?...\") program "
                         "libbpf did not load"}
    return {"ok": False, "error": libbpf_first_error(output)}


def _inner_pybpf(obj):
    from pybpf.loader import BpfObject
    _inner_mount()
    info = {"sections": [], "core": 0}
    try:
        with BpfObject.open(obj) as o:
            ext = o.spec.btf_ext
            info["core"] = sum(len(r) for r in ext.core_relos.values()) if ext else 0
            info["sections"] = sorted({p.section_def.section for p in o.spec.programs.values()})
            o.load(pin_maps=PIN_ROOT)
            info["programs"] = len(o.programs)
    except Exception as e:  # the verdict is the point: every failure is data here
        text = str(e).strip().splitlines()
        return dict(info, ok=False, error=f"{type(e).__name__}: {text[0] if text else ''}")
    return dict(info, ok=True, error="")


# -- the run -----------------------------------------------------------------------------

def compare(libbpf, pybpf):
    return libbpf["ok"] == pybpf["ok"]


def run(ws, names=None, jobs=2, timeout=LOAD_TIMEOUT, progress=None):
    """Compile and load names (default: all); returns the result document."""
    started = time.monotonic()
    names = names or ws.sources()
    compiled = compile_all(ws, names, jobs)
    compile_seconds = round(time.monotonic() - started, 1)
    records = {n: {"object": n, "compiled": ok, "compile_error": err}
               for n, (ok, err) in compiled.items()}

    def load(name):
        obj = ws.obj_path(name)
        lb, pb = load_libbpf(obj, timeout), load_pybpf(obj, timeout)
        return name, lb, pb

    todo = [n for n in names if compiled[n][0]]
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        for i, (name, lb, pb) in enumerate(pool.map(load, todo), 1):
            rec = records[name]
            rec.update(libbpf=lb, pybpf=pb, agree=compare(lb, pb))
            rec["note"] = note_for(rec)
            if progress:
                progress(f"[{i}/{len(todo)}] {name}: libbpf {_verdict(lb)}, "
                         f"pybpf {_verdict(pb)}{'' if rec['agree'] else '  <-- DISAGREE'}")
    return {"meta": dict(machine_info(), compile_seconds=compile_seconds,
                         total_seconds=round(time.monotonic() - started, 1), jobs=jobs),
            "totals": totals(records.values()),
            "objects": [records[n] for n in names]}


def _verdict(v):
    return "ok" if v["ok"] else "FAIL"


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
    (r"failed to guess program type|follows no known convention",
     "section name follows no libbpf convention (the test sets the type itself)"),
    (r"failed to find kernel BTF type ID|cannot attach to it",
     "attach target is not in this kernel's BTF (bpf_testmod, a program, or gone)"),
    (r"ksym\)? '[^']*': not found|\(\.ksyms\) is not in the kernel|not resolved|"
     r"typeless __ksym",
     "needs a kfunc/ksym this kernel lacks (most are bpf_testmod's)"),
    (r"failed to find BTF for extern|unrecognized extern section|is an extern|"
     r"neither __ksym nor __kconfig",
     "extern defined by another object: needs static linking first"),
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
     "tests or use 6.1-only kernel interfaces)"),
    (r"Operation not permitted|EPERM", "the kernel refuses the program (EPERM)"),
    (r"strerror_r\(524\)|ENOTSUPP", "the kernel does not support it (ENOTSUPP)"),
]


def note_for(rec):
    """A short reason for a verdict, from what both loaders said."""
    lb, pb = rec["libbpf"], rec["pybpf"]
    if not rec["agree"]:
        return EXPLANATIONS.get(rec["object"], "UNEXPLAINED")
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
            return note
    return ""


def machine_info():
    date = _run(["date"]).stdout.strip()
    return {"date": date, "kernel": platform.release(), "kernel_version": platform.version(),
            "machine": platform.machine(), "clang": clang_version(),
            "bpftool": bpftool_version(), "python": platform.python_version()}


# -- the report --------------------------------------------------------------------------

def _cell(text, limit=110):
    text = (text or "").replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[:limit - 3] + "..."


_METHOD = [
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


def _load_seconds(doc, tool):
    return round(sum(r[tool]["seconds"] for r in doc["objects"] if r["compiled"]), 1)


def write_markdown(doc, path, command):
    m, t = doc["meta"], doc["totals"]
    out = ["# Object loader conformance: pybpf vs libbpf on the kernel's BPF selftests", "",
           "Generated by `tools/conformance.py` (do not edit by hand; re-run it).", "",
           "Every program in linux-source-6.1's tools/testing/selftests/bpf/progs is "
           "compiled as the selftests Makefile compiles it, then loaded on this machine by "
           "libbpf (`bpftool prog loadall`) and by pybpf (`BpfObject.open(obj).load()`), each "
           "in a child process with a private bpffs. The tools *agree* when both load the "
           "object or both refuse it.", "",
           "## Setup", "",
           f"- date: {m['date']}",
           f"- kernel: {m['kernel']} ({m['kernel_version']}), {m['machine']}",
           f"- clang: {m['clang']}",
           f"- bpftool: {m['bpftool']}",
           f"- python: {m['python']}",
           f"- command: `{command}`",
           f"- wall time: {m['total_seconds']} s ({m['compile_seconds']} s compiling), "
           f"{m['jobs']} jobs; load time summed over objects: libbpf "
           f"{_load_seconds(doc, 'libbpf')} s, pybpf {_load_seconds(doc, 'pybpf')} s "
           f"(per object in the JSON)", "",
           "## Totals", "",
           "| sources | compiled | skipped (clang failed) | agree | disagree | agreement |"
           " both load | both fail |",
           "|---|---|---|---|---|---|---|---|",
           f"| {t['sources']} | {t['compiled']} | {t['skipped']} | {t['agree']} | "
           f"{t['disagree']} | {t['agreement_percent']}% | {t['both_load']} | "
           f"{t['both_fail']} |", ""]
    objs = doc["objects"]
    out += _METHOD
    reasons = {}
    for r in objs:
        if r["compiled"] and r["agree"] and not r["libbpf"]["ok"]:
            reasons[r["note"] or "other"] = reasons.get(r["note"] or "other", 0) + 1
    out += ["## Why both refuse some objects", "",
            "Agreement includes objects neither tool loads on this kernel. Grouped by the "
            "reason both gave (per object below):", "", "| objects | reason |", "|---|---|"]
    out += [f"| {n} | {why} |" for why, n in sorted(reasons.items(), key=lambda kv: -kv[1])]
    out.append("")
    dis = [r for r in objs if r["compiled"] and not r["agree"]]
    out += ["## Disagreements", ""]
    if not dis:
        out += ["None.", ""]
    for r in dis:
        out += [f"### {r['object']}", "",
                f"- libbpf: {'loads' if r['libbpf']['ok'] else _cell(r['libbpf']['error'], 400)}",
                f"- pybpf: {'loads' if r['pybpf']['ok'] else _cell(r['pybpf']['error'], 400)}",
                f"- why: {EXPLANATIONS.get(r['object'], 'UNEXPLAINED')}", ""]
    out += ["## Disagreements found and fixed", "",
            "The first run had 41 disagreements (91.6%). Each was a pybpf bug (fixed in "
            "pybpf/objfile.py and pybpf/loader.py) or a bpftool quirk:", ""]
    out += [f"- {what}: {why}" for what, why in HISTORY]
    out += ["", "## Per object", "",
            "| object | libbpf | pybpf | agree | note |", "|---|---|---|---|---|"]
    for r in objs:
        if not r["compiled"]:
            continue
        lb = "ok" if r["libbpf"]["ok"] else "fail: " + _cell(r["libbpf"]["error"], 90)
        pb = "ok" if r["pybpf"]["ok"] else "fail: " + _cell(r["pybpf"]["error"], 90)
        out.append(f"| {r['object']} | {lb} | {pb} | {'yes' if r['agree'] else '**no**'} | "
                   f"{_cell(r['note'])} |")
    skipped = [r for r in objs if not r["compiled"]]
    out += ["", "## Skipped: clang could not compile them", "",
            "Mostly programs written against 6.1's kernel types: this vmlinux.h comes from "
            "the running kernel's BTF, where some types changed.", "",
            "| object | first error |", "|---|---|"]
    out += [f"| {r['object']} | {_cell(r['compile_error'], 160)} |" for r in skipped]
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default=DEFAULT_WORKDIR,
                    help=f"where to extract, generate and compile (default {DEFAULT_WORKDIR})")
    ap.add_argument("--jobs", type=int, default=2, help="parallel compiles/loads (default 2)")
    ap.add_argument("--timeout", type=int, default=LOAD_TIMEOUT,
                    help=f"seconds per load (default {LOAD_TIMEOUT})")
    ap.add_argument("--only", help="comma-separated object names (no .c)")
    ap.add_argument("--json", help="result file (default WORKDIR/results.json)")
    ap.add_argument("--docs", default=None,
                    help=f"markdown report (default {DOCS} on a full run, none with --only)")
    ap.add_argument("--from-json", metavar="PATH",
                    help="only rewrite the markdown report from an earlier result file")
    ap.add_argument("--inner", nargs=2, metavar=("MODE", "OBJ"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.inner:
        mode, obj = args.inner
        verdict = _inner_libbpf(obj) if mode == "libbpf" else _inner_pybpf(obj)
        print(json.dumps(verdict))
        return 0
    command = " ".join(["python3 tools/conformance.py"] + list(
        argv if argv is not None else sys.argv[1:]))
    if args.from_json:
        with open(args.from_json) as f:
            doc = json.load(f)
        write_markdown(doc, args.docs or DOCS, doc["meta"].get("command", command))
        return 0
    try:
        ws = prepare(args.workdir)
        names = args.only.split(",") if args.only else None
        doc = run(ws, names, args.jobs, args.timeout,
                  progress=lambda s: print(s, flush=True))
    except SetupError as e:
        print(f"conformance: {e}", file=sys.stderr)
        return 2
    doc["meta"]["command"] = command
    json_path = args.json or os.path.join(args.workdir, "results.json")
    with open(json_path, "w") as f:
        json.dump(doc, f, indent=1)
    docs = args.docs if args.docs is not None else (None if args.only else DOCS)
    if docs:
        write_markdown(doc, docs, command)
    t = doc["totals"]
    print(f"compiled {t['compiled']}/{t['sources']}, agree {t['agree']}, disagree "
          f"{t['disagree']} ({t['agreement_percent']}%), both load {t['both_load']}; "
          f"{doc['meta']['total_seconds']} s; results in {json_path}"
          + (f", report in {docs}" if docs else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
