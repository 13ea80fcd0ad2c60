"""The corpora (one kernel tree each), their workspaces, and making them ready.

A tree is a Debian linux-source tarball whose tools/testing/selftests/bpf/progs/*.c
are the corpus. Preparing one extracts only what the programs (and, for trees whose
libbpf bpftool's cannot load, libbpf's own build) need, generates the headers and
keeps the result while the tarball, the tree's clang and the kernel stay the same.

Why the headers are made the way they are:

- vmlinux.h is dumped from this machine's BTF (``bpftool btf dump ... format c``), as
  the selftests do for the kernel they test.
- bpf_helper_defs.h is generated from the tree's UAPI header with the tree's own
  scripts/bpf_doc.py (what libbpf's Makefile does), so helper prototypes match the
  programs' era exactly; libbpf-dev's copy (/usr/include/bpf) is the fallback when
  the script fails. The other libbpf headers come from the tree's tools/lib/bpf.
"""
import dataclasses
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(TOOLS)
SELFTESTS = "tools/testing/selftests/bpf"
CACHE_ROOT = "/var/tmp/pybpf-conformance-cache"
VMLINUX_BTF = "/sys/kernel/btf/vmlinux"
PIN_ROOT = "/sys/fs/bpf"
LOAD_TIMEOUT = 60
# What the progs need from a tree: their own directory (progs/ and the headers next
# to it), libbpf's BPF-side headers, the tools copy of the UAPI headers, and the
# script that generates bpf_helper_defs.h.
MEMBERS = (SELFTESTS, "tools/lib/bpf", "tools/include", "scripts/bpf_doc.py")
# What `make -C tools/lib/bpf` needs besides: its make includes and feature checks.
LIBBPF_BUILD_MEMBERS = ("tools/build", "tools/scripts", "tools/arch", "include/uapi")

# The 6.12 selftests Makefile's per-object flags (progs/X.c-CFLAGS and BPF_CFLAGS +=).
_NO_STRICT_ALIASING_6_12 = ("bind4_prog", "bind6_prog", "dynptr_fail", "linked_list_fail",
                            "map_kptr_fail", "syscall", "test_pkt_md_access",
                            "test_sk_lookup", "timer_crash", "test_global_func9",
                            "verifier_nocsr")


@dataclasses.dataclass(frozen=True)
class Tree:
    """One corpus: where it comes from, how its programs are compiled and which
    libbpf is the reference for them."""
    name: str            # "6.1", the --tree value
    package: str         # the Debian package that installs the tarball
    clang: str           # the compiler its selftests are built with here
    clang_package: str
    extra_cflags: dict   # object -> flags the selftests Makefile adds for it
    # The selftests Makefile's BPF_CFLAGS differ between trees (6.12 adds -Wall).
    warnings: tuple = ()
    # "bpftool": bpftool prog loadall; "tree": the tree's own tools/lib/bpf, built
    # into the workspace and driven by tools/conformance/libbpf_load.c.
    libbpf: str = "bpftool"
    default_workdir: str = ""
    docs: str = ""

    @property
    def top(self):
        return f"linux-source-{self.name}"

    @property
    def tarball(self):
        return f"/usr/src/linux-source-{self.name}.tar.xz"

    @property
    def members(self):
        return MEMBERS + (LIBBPF_BUILD_MEMBERS if self.libbpf == "tree" else ())


TREES = {
    "6.1": Tree("6.1", "linux-source-6.1", "clang", "clang",
                {"test_l4lb_noinline": ["-fno-inline"], "test_xdp_noinline": ["-fno-inline"]},
                default_workdir="/tmp/pybpf-conformance",
                docs=os.path.join(REPO, "docs", "conformance.md")),
    "6.12": Tree("6.12", "linux-source-6.12", "clang-19", "clang-19",
                 dict({"test_l4lb_noinline": ["-fno-inline"],
                       "test_xdp_noinline": ["-fno-inline"]},
                      **{n: ["-fno-strict-aliasing"] for n in _NO_STRICT_ALIASING_6_12}),
                 warnings=("-Wall",), libbpf="tree",
                 default_workdir="/tmp/pybpf-conformance-6.12",
                 docs=os.path.join(REPO, "docs", "conformance-6.12.md")),
}
DEFAULT_TREE = TREES["6.1"]


class SetupError(RuntimeError):
    """Something the conformance run needs is missing; the message names the fix."""


@dataclasses.dataclass
class Workspace:
    """The extracted tree, generated headers and compiled objects under one directory."""
    root: str
    tree_def: Tree = DEFAULT_TREE

    @property
    def tree(self):
        return os.path.join(self.root, self.tree_def.top)

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

    @property
    def libbpf_dir(self):
        """The tree's libbpf, built (tree libbpf only): libbpf.a, include/, the loader."""
        return os.path.join(self.root, "libbpf")

    def obj_path(self, name):
        return os.path.join(self.objdir, name + ".bpf.o")

    def sources(self):
        """Names (without .c) of every selftest program, sorted."""
        return sorted(f[:-2] for f in os.listdir(self.progs) if f.endswith(".c"))

    @property
    def loader_workspace(self):
        """The workspace whose libbpf loads this corpus (a tree's own)."""
        return self

    def objects(self, names, jobs=2):
        """{name: (compiled?, first error)}: selftests are compiled (cached)."""
        from .build import compile_all
        return compile_all(self, names, jobs)

    def options(self, name):
        """Load options of an object: the selftests load theirs as they are."""
        return {}


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


def clang_version(tree=DEFAULT_TREE):
    out = _tool_output([tree.clang, "--version"], tree.clang_package)
    return out.splitlines()[0].strip() if out else "unknown"


def bpftool_version():
    out = _tool_output(["bpftool", "version"], "bpftool")
    return " / ".join(line.strip() for line in out.splitlines()[:2])


def cache_dir(tree=DEFAULT_TREE):
    """A workspace directory keyed by tree, clang version and kernel release, so
    objects built for one tree/toolchain/kernel are never reused for another."""
    key = re.sub(r"[^A-Za-z0-9.]+", "-",
                 f"{tree.name}-{clang_version(tree)}-{platform.release()}")
    return os.path.join(CACHE_ROOT, key.strip("-"))


def _stamp(tree):
    """What the workspace's contents depend on; a change rebuilds everything."""
    st = os.stat(tree.tarball)
    btf = os.stat(VMLINUX_BTF).st_size if os.path.exists(VMLINUX_BTF) else 0
    return {"tarball": [st.st_size, int(st.st_mtime)], "clang": clang_version(tree),
            "kernel": platform.release(), "vmlinux_btf_size": btf, "format": 1}


def available(tree):
    """None when tree can be prepared here, else what is missing (for skips)."""
    if not os.path.exists(tree.tarball):
        return f"{tree.tarball} is missing (apt-get install {tree.package})"
    if shutil.which(tree.clang) is None:
        return f"{tree.clang} is not installed (apt-get install {tree.clang_package})"
    return None


def prepare(root=None, tree=DEFAULT_TREE):
    """Extract the tree and generate the headers into root (once; reused while the
    tarball, clang and kernel stay the same). Returns the Workspace."""
    root = root or tree.default_workdir
    if not os.path.exists(tree.tarball):
        raise SetupError(f"{tree.tarball} is missing: the conformance corpus comes from "
                         f"Debian's {tree.package} package; run tools/run-tests (it "
                         f"installs it) or apt-get install {tree.package}")
    ws = Workspace(root, tree)
    stamp_path = os.path.join(root, "stamp.json")
    want = _stamp(tree)
    try:
        with open(stamp_path) as f:
            if json.load(f) == want:
                return ws
    except (OSError, ValueError):
        pass
    for sub in (tree.top, "include", "obj", "libbpf"):
        shutil.rmtree(os.path.join(root, sub), ignore_errors=True)
    os.makedirs(root, exist_ok=True)
    _extract(ws)
    _make_headers(ws)
    os.makedirs(ws.objdir, exist_ok=True)
    with open(stamp_path, "w") as f:
        json.dump(want, f)
    return ws


def _extract(ws):
    """Only the tree's members of the tarball: one decompression pass."""
    top = ws.tree_def.top
    prefixes = tuple(f"{top}/{m}" for m in ws.tree_def.members)
    tmp = ws.tree + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    with tarfile.open(ws.tree_def.tarball, "r:xz") as tar:
        def wanted():
            for member in tar:
                if member.name.startswith(prefixes) and (member.isfile() or member.isdir()
                                                         or member.issym()):
                    yield member
        kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(tmp, members=wanted(), **kwargs)
    os.rename(os.path.join(tmp, top), ws.tree)
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
