"""Conformance of pybpf's object loader with libbpf on the kernel's BPF selftests.

The corpus is a kernel tree's tools/testing/selftests/bpf/progs/*.c (Debian's
linux-source-6.1 with clang, or linux-source-6.12 with clang-19). Each program is
compiled the way that tree's selftests Makefile compiles it, then loaded on THIS
kernel twice, each in an isolated child:

- by libbpf: ``bpftool prog loadall OBJ DIR`` for 6.1; for 6.12, whose sections and
  features bpftool 7.1's libbpf 1.1 refuses, the tree's own tools/lib/bpf built into
  the cache and driven by libbpf_load.c;
- by pybpf, through ``BpfObject.open(OBJ).load()``.

The two verdicts agree when both load or both fail. Many objects fail under both on
this kernel for reasons that are the kernel's (fentry/fexit/lsm refused with EPERM,
programs written for helpers or kfuncs the tree's kernel had and 6.18 changed): that
is agreement.

A third corpus, ``--tree libbpf-tools``, is not compiled: the objects inside Debian's
libbpf-tools binaries, loaded by 6.12's libbpf and by pybpf with the choices each
tool's user space makes before load (toolscorpus, tools/libbpf_tools.py).

Modules, by what they hold: corpus (trees, workspaces, extracting and headers),
toolscorpus (the libbpf-tools corpus), build
(compiling; the tree's libbpf and the loader), load (the isolated loads), report
(verdicts, totals, markdown), explanations (why disagreements remain), cli (the run
and the command line; tools/conformance.py is its entry point).
"""
from .build import build_loader, compile_all, compile_command, compile_one, libbpf_version
from .cli import main, run
from .corpus import (CACHE_ROOT, DEFAULT_TREE, LOAD_TIMEOUT, PIN_ROOT, TREES, SetupError, Tree,
                     Workspace, available, cache_dir, clang_version, prepare)
from .explanations import EXPLANATIONS, HISTORY, Cause, explain
from .load import libbpf_first_error, load_libbpf, load_pybpf
from .toolscorpus import CORPORA, TOOLS_CORPUS, prepare_tools
from .report import compare, note_for, totals, why, write_markdown
