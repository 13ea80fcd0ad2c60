"""The libbpf-tools corpus: the BPF objects Debian's libbpf-tools package ships inside
its binaries, extracted (not compiled) and loaded as each tool's user space would.

Unlike the selftest trees, these objects come built: the corpus is what the installed
package version holds, extracted into a workspace keyed by that version. Each object
is loaded with the choices its tool makes between open and load (the variant the
kernel runs, the sizes of unsized maps: tools/libbpf_tools.py, shared with
tests/kernel/test_real_tools.py), given alike to pybpf and to libbpf. The libbpf is
6.12's (1.5, built from linux-source-6.12 by the 6.12 corpus's workspace), since
bpftool cannot be told those choices.
"""
import dataclasses
import os
import sys

from .corpus import CACHE_ROOT, REPO, TOOLS, TREES, SetupError, available, cache_dir, prepare

if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)
import libbpf_tools  # noqa: E402  (tools/libbpf_tools.py: the tools' own choices)


@dataclasses.dataclass(frozen=True)
class ToolsCorpus:
    """The corpus's counterpart of corpus.Tree: what report and cli ask of one."""
    name: str = "libbpf-tools"
    package: str = libbpf_tools.PACKAGE
    clang: str = ""          # nothing is compiled
    libbpf: str = "tree"     # loaded by the 6.12 tree's libbpf
    loader_tree: str = "6.12"
    default_workdir: str = os.path.join(CACHE_ROOT, "libbpf-tools")
    docs: str = os.path.join(REPO, "docs", "conformance-tools.md")


TOOLS_CORPUS = ToolsCorpus()
# Every corpus by its --tree name: the selftest trees and the extracted tools.
CORPORA = dict(TREES, **{TOOLS_CORPUS.name: TOOLS_CORPUS})


@dataclasses.dataclass
class ToolsWorkspace:
    """The extracted objects (root/VERSION/) and the 6.12 workspace whose libbpf loads
    them."""
    root: str
    loader_workspace: object
    version: str
    tree_def: ToolsCorpus = TOOLS_CORPUS

    @property
    def objdir(self):
        return os.path.join(self.root, self.version)

    def obj_path(self, name):
        return os.path.join(self.objdir, name + ".bpf.o")

    def sources(self):
        return sorted(f[:-len(".bpf.o")] for f in os.listdir(self.objdir)
                      if f.endswith(".bpf.o") and f.count(".") == 2)

    def objects(self, names, jobs=2):
        """{name: (ok, error)} as compile_all gives: extracted objects always are."""
        return {n: (True, "") if os.path.exists(self.obj_path(n)) else
                (False, f"no object {n} in {self.tree_def.package} {self.version}")
                for n in names}

    def options(self, name):
        """What tool name's user space does before load, on this kernel."""
        off, sizes = libbpf_tools.load_options(
            name, libbpf_tools.sections_of(self.obj_path(name)), libbpf_tools.this_kernel())
        return {"no_autoload": off, "max_entries": sizes}


def unavailable():
    """None when the corpus can be prepared here, else what is missing (for skips)."""
    if libbpf_tools.package_version() is None:
        return f"{libbpf_tools.PACKAGE} is not installed (apt-get install libbpf-tools)"
    return available(TREES[TOOLS_CORPUS.loader_tree])


def prepare_tools(root=None):
    """Extract the installed package's objects under root/VERSION (once per version)
    and prepare the 6.12 workspace for its libbpf."""
    missing = unavailable()
    if missing:
        raise SetupError(f"the libbpf-tools corpus needs it: {missing}")
    root = root or TOOLS_CORPUS.default_workdir
    version = libbpf_tools.package_version()
    tree = TREES[TOOLS_CORPUS.loader_tree]
    ws = ToolsWorkspace(root, prepare(cache_dir(tree), tree), version.replace("/", "_"))
    libbpf_tools.extract_all(ws.objdir)
    return ws
