"""uprobe_multi: one kernel BPF link (BPF_TRACE_UPROBE_MULTI, 6.6+) putting a program
on many functions of one binary at once, or on their returns.
SEC("uprobe.multi/PATH:PATTERN") and "uretprobe.multi/..." (also their sleepable ".s"
forms) attach here.

Shaped as libbpf's bpf_program__attach_uprobe_multi(), so an object means the same to
both: PATTERN is a glob with ``*`` and ``?`` only (libbpf's glob_match(), no ``[...]``
classes), matched against the names of the binary's function symbols (STT_FUNC,
defined), in .symtab, or in .dynsym when nothing in .symtab matches; PATH is found as
attach/uprobe.py finds a uprobe's binary (a path, a library mapped in the process, an
executable on PATH, a library directory). One difference: two matching symbols at the
same address (aliases, as libc's ``malloc`` and ``__libc_malloc``) are probed once,
where libbpf would run the program twice per call.

The programs must be loaded with expected_attach_type BPF_TRACE_UPROBE_MULTI (the
sections' rows say so; the kernel refuses other programs with EINVAL). There is no
older mechanism to fall back on: on kernels without these links
:func:`attach_uprobe_multi` raises HookNotSupportedError, and attach_uprobe() per
function is the way there.
"""
import ctypes
import errno
import re

from .. import elf
from ..kernel import bpf as kbpf
from ..kernel import features
from ..kernel.attr import UprobeMultiOpts
from ..kernel.constants import BPF_F_UPROBE_MULTI_RETURN, AttachType, ProgType
from ..links import BpfLink
from .common import AttachError, HookNotSupportedError, check_pid, check_type, need_target
from .uprobe import resolve_binary

OPTIONS = ("pid",)

# The kernel's limit on probes in one link (MAX_UPROBE_MULTI_CNT).
MAX_PROBES = 1 << 20


def glob_regex(pattern, what="pattern"):
    """The compiled regex of a libbpf glob: ``*`` any run, ``?`` any one character,
    everything else itself. AttachError for an empty pattern."""
    if not isinstance(pattern, str) or not pattern:
        raise AttachError(f"{what} {pattern!r} is empty: give a function name or a glob "
                          f"such as 'malloc' or 'str*'")
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                              for c in pattern), re.DOTALL)


def glob_match(name, pattern):
    """Whether name matches pattern as libbpf's glob_match() decides."""
    return glob_regex(pattern).fullmatch(name) is not None


def matching_functions(path, pattern):
    """[(symbol name, file offset)] of the functions of ELF file path whose names match
    pattern: .symtab's, else .dynsym's; one entry per address. AttachError when none
    matches, naming similar functions."""
    regex = glob_regex(pattern)
    try:
        image = elf.ElfFile.from_path(path)
    except elf.ElfError as e:
        raise AttachError(f"{path} is not an ELF file uprobes can go in: {e}") from None
    tables = (image.symbols(), image.dynamic_symbols())
    for table in tables:
        found, seen = [], set()
        for s in table:
            if (s.type != elf.STT_FUNC or not s.defined or not s.value
                    or not regex.fullmatch(s.name) or s.value in seen):
                continue
            seen.add(s.value)
            try:
                found.append((s.name, image.vaddr_to_offset(s.value)))
            except elf.ElfError as e:
                raise AttachError(f"{s.name!r} in {path}: {e}") from None
        if found:
            return found
    stem = pattern.replace("*", " ").replace("?", " ").split()
    near = sorted({s.name for t in tables for s in t if s.type == elf.STT_FUNC and s.defined
                   and stem and max(stem, key=len) in s.name}, key=len)[:5]
    stripped = "" if image.symbols() else " (it is stripped: no .symtab)"
    raise AttachError(f"no function of {path} matches {pattern!r} in .symtab or .dynsym"
                      f"{stripped}" + (f"; similar: {', '.join(near)}" if near else
                                       "; patterns take * and ? (as libbpf's)"))


class UprobeMultiLink(BpfLink):
    """A uprobe_multi link: the program runs at every function it names (``functions``,
    at file offsets ``offsets`` of ``path``); closing it removes every probe at once."""

    def __init__(self, fd, program, description, *, path, functions, offsets, pid=None):
        super().__init__(fd, program, description)
        self.path, self.functions, self.offsets, self.pid = path, functions, offsets, pid


def attach_uprobe_multi(program, binary, pattern=None, *, offsets=None, retprobe=False,
                        pid=None, cookies=None, ref_ctr_offsets=None):
    """Run a kprobe-type program, loaded for BPF_TRACE_UPROBE_MULTI, whenever a
    function of binary matching pattern runs (returns, retprobe=True), in process pid
    or in every process; one :class:`UprobeMultiLink` for all of them.

    binary: as for attach_uprobe(). pattern: a glob over its function names (see the
    module's docstring); or offsets: file offsets to probe instead. cookies
    (bpf_get_attach_cookie()): {function name: cookie} with a pattern, a sequence
    parallel to offsets without. ref_ctr_offsets: USDT semaphores, parallel to offsets.
    """
    kind = "uretprobe.multi" if retprobe else "uprobe.multi"
    check_type(program, (ProgType.KPROBE,), f"{kind} links", f"{kind}/BINARY:PATTERN")
    if (pattern is None) == (offsets is None):
        raise AttachError(f"{kind}: give a pattern of function names or a list of offsets "
                          f"in {binary}, not {'both' if pattern is not None else 'neither'}")
    if pid is not None:
        check_pid(pid)
    path = resolve_binary(binary, pid)
    if pattern is not None:
        functions, places = map(list, zip(*matching_functions(path, pattern)))
        where = f"{path}:{pattern}"
    else:
        places = _offsets(offsets, "offsets")
        functions = [f"{o:#x}" for o in places]
        where = f"{path}:{','.join(functions)}"
    if len(places) > MAX_PROBES:
        raise AttachError(f"{kind}: {len(places)} probes, more than the kernel's "
                          f"{MAX_PROBES} per link: narrow the pattern")
    cookie_list = _cookies(cookies, functions, pattern is not None, kind)
    if ref_ctr_offsets is not None:
        ref_ctr_offsets = _offsets(ref_ctr_offsets, "ref_ctr_offsets")
        if len(ref_ctr_offsets) != len(places):
            raise AttachError(f"{kind}: {len(ref_ctr_offsets)} ref_ctr_offsets for "
                              f"{len(places)} offsets")
    if not features.have("uprobe_multi"):
        raise features.missing("uprobe_multi", f"{kind}/{where} needs uprobe_multi links",
                               "attach each function with attach_uprobe() instead",
                               error=HookNotSupportedError)
    arrays = [_u64s(places), _u64s(ref_ctr_offsets), _u64s(cookie_list)]
    name = ctypes.create_string_buffer(path.encode())
    opts = UprobeMultiOpts(path=ctypes.addressof(name), offsets=_address(arrays[0]),
                           ref_ctr_offsets=_address(arrays[1]), cookies=_address(arrays[2]),
                           cnt=len(places), pid=pid or 0,
                           flags=BPF_F_UPROBE_MULTI_RETURN if retprobe else 0)
    fd = kbpf.link_create(program.fd, 0, AttachType.TRACE_UPROBE_MULTI, extra=opts,
                          hints=_hints(kind, path, pid))
    return UprobeMultiLink(fd, program, f"{kind}/{where}", path=path, functions=functions,
                           offsets=places, pid=pid)


def _offsets(values, what):
    try:
        values = [int(v) for v in values]
    except (TypeError, ValueError):
        raise AttachError(f"{what} must be a list of file offsets, got {values!r}") from None
    if not values or any(not 0 <= v < 1 << 64 for v in values):
        raise AttachError(f"{what} must be a non-empty list of file offsets, got {values!r}")
    return values


def _cookies(cookies, functions, by_name, kind):
    if cookies is None:
        return None
    if by_name:
        if not isinstance(cookies, dict):
            raise AttachError(f"{kind}: with a pattern, cookies is {{function: cookie}}")
        unknown = sorted(set(cookies) - set(functions))
        if unknown:
            raise AttachError(f"{kind}: cookies for {', '.join(unknown)}, which the "
                              f"pattern does not match (it matches {', '.join(functions)})")
        cookies = [cookies.get(f, 0) for f in functions]
    elif len(cookies) != len(functions):
        raise AttachError(f"{kind}: {len(cookies)} cookies for {len(functions)} offsets")
    return _offsets(cookies, "cookies") if any(cookies) else None


def _u64s(values):
    return None if values is None else (ctypes.c_uint64 * len(values))(*values)


def _address(array):
    return 0 if array is None else ctypes.addressof(array)


def _hints(kind, path, pid):
    return {errno.EINVAL: f"the kernel refused the {kind} link: load the program from a "
                          f"SEC(\"{kind}/...\") section (expected_attach_type "
                          f"BPF_TRACE_UPROBE_MULTI), and give offsets inside {path}",
            errno.ESRCH: f"there is no process {pid}",
            errno.EBADF: f"{path} is not a regular file"}


def attach_section(program, sd, pid=None):
    """uprobe.multi/PATH:PATTERN, uretprobe.multi/... (and their .s forms)."""
    target = need_target(sd, "PATH:PATTERN")
    path, sep, pattern = target.partition(":")
    if not sep or not path or not pattern:
        raise AttachError(f"{sd.prefix} section target {target!r} is not PATH:PATTERN "
                          f"(e.g. {sd.prefix}/libc.so.6:malloc*)")
    return attach_uprobe_multi(program, path, pattern, pid=pid,
                               retprobe=sd.prefix.startswith("uretprobe"))
