"""uprobes and uretprobes: a program run when a process executes a function of a
binary (an executable or a shared library), or returns from it. SEC("uprobe/PATH:FUNC[+OFF]")
and "uretprobe/..." (also their sleepable ".s" forms) attach here; the binary is
found by path, as a library mapped in the process (/proc/PID/maps), on PATH, or in
the library directories, and the function's file offset is read from its ELF symbols.
"""
import ctypes
import errno
import glob
import os
import re
import shutil

from .. import elf
from ..kernel import features, perf, procs
from ..kernel.constants import ProgType
from ..kernel.pmu import pmu_format
from .common import (AttachError, HookNotSupportedError, check_pid, check_type, description,
                     need_target)
from .perflink import attach_legacy, attach_perf, choose_legacy, pid_cpu, probe_pmu

OPTIONS = ("pid",)

LIB_DIRS = ("/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/local/lib")


def resolve_binary(binary, pid=None):
    """The path of binary: a path as given; else a library name ("libc", "c",
    "libc.so.6") loaded in process pid or this process (from /proc/PID/maps); else an
    executable on PATH; else a library in the standard library directories."""
    if "/" in binary:
        if not os.path.isfile(binary):
            raise AttachError(f"uprobe target {binary!r} does not exist (or is not a "
                              f"regular file)")
        return os.path.realpath(binary)
    for maps_pid in ([pid] if pid is not None else []) + ["self"]:
        for path in procs.mapped_files(maps_pid):
            if _library_matches(os.path.basename(path), binary):
                return path
    found = shutil.which(binary)
    if found:
        return os.path.realpath(found)
    for directory in LIB_DIRS:
        # the directory itself and its multiarch subdirectories (x86_64-linux-gnu)
        for path in sorted(glob.glob(os.path.join(directory, "*.so*"))
                           + glob.glob(os.path.join(directory, "*", "*.so*"))):
            if _library_matches(os.path.basename(path), binary) and os.path.isfile(path):
                return os.path.realpath(path)
    where = f"process {pid}'s or " if pid is not None else ""
    raise AttachError(
        f"cannot find {binary!r}: it is not a library mapped in {where}this process, "
        f"not an executable on PATH and not in {', '.join(LIB_DIRS)}; give its full path")


def _library_matches(base, name):
    stem = name[3:] if name.startswith("lib") else name
    return base == name or base.startswith(f"lib{stem}.so") or base.startswith(f"{name}.so")


def function_offset(path, symbol):
    """File offset of function symbol in ELF file path (.symtab first, then .dynsym),
    the number a uprobe is attached at."""
    try:
        image = elf.ElfFile.from_path(path)
    except elf.ElfError as e:
        raise AttachError(f"{path} is not an ELF file a uprobe can go in: {e}") from None
    name = symbol.split("@")[0]
    for table in (image.symbols(), image.dynamic_symbols()):
        matches = [s for s in table if s.defined and s.value
                   and (s.name == symbol or s.name.split("@")[0] == name)]
        funcs = [s for s in matches if s.type == elf.STT_FUNC]
        if funcs:
            try:
                return image.vaddr_to_offset(funcs[0].value)
            except elf.ElfError as e:
                raise AttachError(f"{symbol!r} in {path}: {e}") from None
        if any(s.type == elf.STT_GNU_IFUNC for s in matches):
            raise AttachError(
                f"{symbol!r} in {path} is an indirect function (IFUNC): its address is "
                f"the resolver that picks an implementation at load time, not the code "
                f"that runs; probe the implementation by name or offset instead")
        if matches:
            raise AttachError(f"{symbol!r} in {path} is not a function (a data symbol)")
    stripped = "" if image.symbols() else " (it is stripped: no .symtab)"
    near = sorted({s.name for t in (image.symbols(), image.dynamic_symbols()) for s in t
                   if name and name in s.name and s.type == elf.STT_FUNC}, key=len)[:5]
    raise AttachError(f"{path} has no function {symbol!r} in .symtab or .dynsym"
                      f"{stripped}" + (f"; similar: {', '.join(near)}" if near else ""))


def attach_uprobe(program, binary, symbol=None, offset=0, *, retprobe=False, pid=None,
                  cookie=None, ref_ctr_offset=0, legacy=None, use_link=None):
    """Run a kprobe-type program when code in binary at symbol+offset runs (or when
    that function returns, retprobe=True) in process pid, or in every process.

    binary: a path, a library name ("libc", "c"), or an executable on PATH.
    symbol: a function in its .symtab or .dynsym; without it, offset is a file
    offset. ref_ctr_offset: file offset of a USDT semaphore the kernel increments
    while probed. legacy/use_link/cookie as for attach_kprobe.
    """
    kind = "uretprobe" if retprobe else "uprobe"
    check_type(program, (ProgType.KPROBE,), f"{kind}s", f"{kind}/BINARY:FUNCTION")
    if symbol is None and not offset:
        raise AttachError(f"{kind}: give a function name or a file offset in {binary}")
    if pid is not None:
        check_pid(pid)
    path = resolve_binary(binary, pid)
    if retprobe and symbol is not None and offset:
        raise AttachError(f"a uretprobe fires when {symbol} returns: it takes no offset")
    file_offset = (function_offset(path, symbol) if symbol is not None else 0) + offset
    where = f"{path}:{symbol}" if symbol is not None else f"{path}:{offset:#x}"
    if symbol is not None and offset:
        where += f"+{offset}"
    what = description(kind, where)
    hints = {errno.EINVAL: f"the kernel refused a uprobe at offset {file_offset:#x} of "
                           f"{path} (not in the file, or not on an instruction)",
             errno.ESRCH: f"there is no process {pid}"}
    if choose_legacy("uprobe", legacy, False, ""):
        if re.search(r"\s", path):
            raise AttachError(f"tracefs uprobe_events cannot name {path!r} (whitespace); "
                              f"use the uprobe PMU (legacy=None) or a path without spaces")
        definition = f"{path}:{file_offset:#x}" + (
            f"({ref_ctr_offset:#x})" if ref_ctr_offset else "")
        return attach_legacy(program, "uprobe", f"{os.path.basename(path)}_{symbol or offset}",
                             "r" if retprobe else "p", definition, what, pid=pid,
                             cookie=cookie, use_link=use_link)
    pmu, config = probe_pmu("uprobe", retprobe)
    if ref_ctr_offset:
        if not features.have("uprobe_ref_ctr"):
            raise features.missing("uprobe_ref_ctr", "this kernel's uprobe PMU has no "
                                   "ref_ctr_offset", error=HookNotSupportedError)
        config |= ref_ctr_offset << pmu_format("uprobe", "ref_ctr_offset")[1]
    name = ctypes.create_string_buffer(os.fsencode(path))
    attr = perf.PerfEventAttr(type=pmu, config=config, disabled=1, sample_period=1,
                              config1=ctypes.addressof(name), config2=file_offset)
    pfd = perf.open_event(attr, *pid_cpu(pid), hints=hints, detail=what)
    return attach_perf(program, pfd, what, cookie=cookie, use_link=use_link)


def attach_uretprobe(program, binary, symbol=None, offset=0, *, pid=None, cookie=None,
                     legacy=None, use_link=None):
    """attach_uprobe(..., retprobe=True): run program when the function returns."""
    return attach_uprobe(program, binary, symbol, offset, retprobe=True, pid=pid,
                         cookie=cookie, legacy=legacy, use_link=use_link)


def attach_section(program, sd, pid=None):
    """uprobe/PATH:FUNCTION[+OFFSET] (or PATH:OFFSET), uretprobe/..."""
    target = need_target(sd, "PATH:FUNCTION[+OFFSET]")
    path, sep, func = target.rpartition(":")
    m = re.fullmatch(r"([^+\s]*)(?:\+(0x[0-9a-fA-F]+|\d+))?", func)
    if not sep or not path or not m or not (m.group(1) or m.group(2)):
        raise AttachError(f"uprobe section target {target!r} is not PATH:FUNCTION[+OFFSET]")
    symbol, offset = m.group(1), int(m.group(2) or "0", 0)
    if re.fullmatch(r"0x[0-9a-fA-F]+|\d+", symbol or ""):
        symbol, offset = None, int(symbol, 0) + offset
    return attach_uprobe(program, path, symbol or None, offset,
                         retprobe=sd.prefix.split(".")[0] == "uretprobe", pid=pid)
