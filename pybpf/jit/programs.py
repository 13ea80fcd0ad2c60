"""Python functions compiled into whole BPF programs, loaded and attached by pybpf.

    from pybpf import jit

    calls = jit.Map("hash", max_entries=1024)

    def count_getpid(ctx):
        calls[jit.tgid()] += 1

    prog = jit.program(count_getpid, "tracepoint/syscalls/sys_enter_getpid")
    with prog.load() as loaded, loaded.attach():
        os.getpid()
    # loaded.maps["calls"][os.getpid()] == 1, while loaded

A program is a function of the subset (subset.py) that may also use maps, helpers and
its context (``ctx[i]``, the context's 64-bit word i). The section names the hook, as
``SEC()`` does in C; the object is what clang would write for it (BTF-defined maps,
BTF, line info) and :class:`pybpf.loader.BpfObject` loads it. The program's own body
talks to the kernel, so it is checked in the kernel (TEST_RUN, or by running it);
the pure functions it calls are compiled on their own as well and checked on the
host against Python, as filters are.
"""
import struct

from .. import sections
from ..attach import attach
from ..loader import BpfObject
from .functions import CompiledFunction, default_samples, define
from .irgen import Module
from .target import bpf_object
from .subset import JitError, all_functions, check


class JitProgram:
    """A compiled program: bpf (the ELF object's bytes), the section, the maps it
    declares ({name: jit.Map}) and the checked functions."""

    def __init__(self, python, checked, section):
        self.python, self.checked, self.section = python, checked, section
        self.name = checked.name
        try:
            self.section_def = sections.parse(section)
        except sections.UnknownSectionError as e:
            raise JitError(f"{checked.filename}: {e}") from None
        self.maps = {}
        for f in all_functions(checked):
            self.maps.update(f.maps)
        module = Module(f"jit_{self.name}", checked.filename, self.maps)
        module.add(checked, section=section)
        module.add_license()
        self.ir = module.finish()
        self.bpf = bpf_object(module.ir)

    def load(self, **options):
        """Load the object (options: BpfObject.load's); a :class:`Loaded`, which
        closes program and maps when it closes."""
        obj = BpfObject.open(self.bpf, name=f"jit_{self.name}")
        try:
            obj.load(**options)
        except BaseException:
            obj.close()
            raise
        return Loaded(self, obj)

    def __repr__(self):
        return f"<jit.JitProgram {self.name} in {self.section!r} maps={list(self.maps)}>"


class Loaded:
    """A loaded jit program: .program (pybpf Program), .maps (pybpf maps by name),
    .object (the BpfObject); a context manager."""

    def __init__(self, jit_program, obj):
        self.jit_program, self.object = jit_program, obj
        self.program = obj.programs[jit_program.name]
        self.maps = obj.maps

    def attach(self, **options):
        """Attach to the section's hook (options: pybpf.attach.attach's, such as
        cgroup= or pid=); a Link, itself a context manager."""
        return attach(self.program, self.jit_program.section_def, **options)

    def test_run(self, *words):
        """Run once under BPF_PROG_TEST_RUN with a context of 64-bit words (raw
        tracepoint and syscall programs take one); the program's return value."""
        ctx = struct.pack(f"<{len(words)}Q", *[w & ((1 << 64) - 1) for w in words])
        return self.program.test_run(ctx=ctx or None).retval

    def close(self):
        self.object.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def program(fn, section, *, source=None, name=None, samples=None):
    """Compile fn (or with source=, the function name in that source) into a program
    for section (e.g. "tracepoint/syscalls/sys_enter_getpid", "raw_tracepoint/
    sys_enter", "syscall"); the pure functions it calls are checked on the host first
    (samples: argument tuples, default: default_samples)."""
    if source is not None:
        namespace = define(source)
        checked = check(name or fn, source=source, env=namespace, program=True)
    else:
        namespace = fn.__globals__
        checked = check(fn, program=True)
    for f in all_functions(checked):
        if f is checked or f.kernel:
            continue
        pure = CompiledFunction(namespace[f.name], f)
        pure.check_on_host(samples if samples is not None else default_samples(pure.nparams))
    return JitProgram(namespace.get(checked.name), checked, section)


__all__ = ["program", "JitProgram", "Loaded"]
