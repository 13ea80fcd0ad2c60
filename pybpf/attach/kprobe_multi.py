"""kprobe_multi: one kernel BPF link (BPF_TRACE_KPROBE_MULTI, 5.18+, built on fprobe)
putting a program on many kernel functions at once, or on their returns; and kprobe
sessions (BPF_TRACE_KPROBE_SESSION, 6.10+), one program run at entry and, if the entry
run returns 0, again at return. SEC("kprobe.multi/PATTERN"), "kretprobe.multi/..." and
"kprobe.session/..." attach here.

Shaped as libbpf's bpf_program__attach_kprobe_multi_opts(): PATTERN is a glob with
``*`` and ``?`` (libbpf's glob_match()) over the functions ftrace can attach to
(tracefs available_filter_functions, read through pybpf.kernel.kallsyms), and the
link names them by address where tracefs gives addresses (6.5+'s
available_filter_functions_addrs, as libbpf does), else by name, each name once (the
kernel resolves a name to one of the functions sharing it). A section pattern may use
only the characters libbpf's parser takes (letters, digits, ``_ . * ?``); libbpf
quietly cuts the pattern at the first other character, pybpf refuses it.

The programs must be loaded with the section's expected_attach_type (the rows say
so). Kernels without these links, or built without CONFIG_FPROBE, raise
HookNotSupportedError: attach_kprobe() per function is the way there.
"""
import ctypes
import errno
import re

from ..kernel import bpf as kbpf
from ..kernel import features, kallsyms
from ..kernel.attr import KprobeMultiOpts
from ..kernel.constants import BPF_F_KPROBE_MULTI_RETURN, AttachType, ProgType
from ..links import BpfLink
from .common import AttachError, HookNotSupportedError, check_type, need_target
from .uprobe_multi import glob_regex

OPTIONS = ()

_SECTION_PATTERN = re.compile(r"[a-zA-Z0-9_.*?]+")
# Entries of available_filter_functions that are no function (ftrace's placeholder
# for records it could not resolve).
_INVALID = "__ftrace_invalid_address__"


def select_functions(entries, pattern):
    """[(name, address or None)] of entries (as kallsyms.traceable_functions() gives
    them) whose names match pattern; by name, each name once; by address, each address
    once."""
    regex = glob_regex(pattern, "kprobe.multi pattern")
    found, seen = [], set()
    for name, address in entries:
        if _INVALID in name or not regex.fullmatch(name):
            continue
        key = address if address else name
        if key not in seen:
            seen.add(key)
            found.append((name, address))
    return found


class KprobeMultiLink(BpfLink):
    """A kprobe_multi (or kprobe session) link on every function in ``functions``."""

    def __init__(self, fd, program, description, *, functions, retprobe, session):
        super().__init__(fd, program, description)
        self.functions, self.retprobe, self.session = functions, retprobe, session


def attach_kprobe_multi(program, pattern=None, *, functions=None, retprobe=False,
                        session=False, cookies=None):
    """Run a kprobe-type program, loaded for BPF_TRACE_KPROBE_MULTI (for
    BPF_TRACE_KPROBE_SESSION with session=True), at every kernel function matching
    pattern (or in functions, a list of names), at their returns with retprobe=True;
    one :class:`KprobeMultiLink` for all. cookies: {function name: cookie}."""
    kind = "kprobe.session" if session else "kretprobe.multi" if retprobe else "kprobe.multi"
    check_type(program, (ProgType.KPROBE,), f"{kind} links", f"{kind}/PATTERN")
    if retprobe and session:
        raise AttachError("a kprobe session runs at entry and return already: it takes no "
                          "retprobe=True")
    if (pattern is None) == (functions is None):
        raise AttachError(f"{kind}: give a pattern of kernel function names or a list of "
                          f"them, not {'both' if pattern is not None else 'neither'}")
    feature = "kprobe_session" if session else "kprobe_multi"
    if not features.have(feature):
        raise features.missing(feature, f"{kind} needs {features.FEATURES[feature].description}",
                               "attach each function with attach_kprobe() instead",
                               error=HookNotSupportedError)
    if pattern is not None:
        entries = kallsyms.traceable_functions()
        if entries is None:
            raise AttachError(f"{kind}/{pattern}: tracefs lists no traceable functions "
                              f"(available_filter_functions), so a pattern cannot be "
                              f"matched; give the functions by name")
        chosen = select_functions(entries, pattern)
        if not chosen:
            near = kallsyms.functions_like(max(re.split(r"[*?]", pattern), key=len))
            raise AttachError(f"no traceable kernel function matches {pattern!r}"
                              + (f"; similar: {', '.join(near)}" if near else ""))
        where = pattern
    else:
        if isinstance(functions, str) or not functions:
            raise AttachError(f"{kind}: functions is a non-empty list of names")
        chosen = [(str(f), None) for f in dict.fromkeys(functions)]
        where = ",".join(name for name, _ in chosen)
    names = [name for name, _ in chosen]
    keep = []  # buffers the kernel reads, alive until link_create returns
    opts = KprobeMultiOpts(cnt=len(chosen),
                           flags=BPF_F_KPROBE_MULTI_RETURN if retprobe else 0)
    if all(address for _, address in chosen):
        opts.addrs = _array(keep, [address for _, address in chosen])
    else:
        strings = [ctypes.create_string_buffer(n.encode()) for n in names]
        keep += strings
        opts.syms = _array(keep, [ctypes.addressof(s) for s in strings])
    if cookies is not None:
        if not isinstance(cookies, dict) or set(cookies) - set(names):
            raise AttachError(f"{kind}: cookies is {{function: cookie}} for functions "
                              f"linked: {', '.join(names[:10])}")
        opts.cookies = _array(keep, [cookies.get(n, 0) for n in names])
    attach_type = AttachType.TRACE_KPROBE_SESSION if session else AttachType.TRACE_KPROBE_MULTI
    fd = kbpf.link_create(program.fd, 0, attach_type, extra=opts, hints=_hints(kind))
    return KprobeMultiLink(fd, program, f"{kind}/{where} ({len(names)} functions)",
                           functions=names, retprobe=retprobe, session=session)


def _array(keep, values):
    array = (ctypes.c_uint64 * len(values))(*values)
    keep.append(array)
    return ctypes.addressof(array)


def _hints(kind):
    attach_type = "KPROBE_SESSION" if kind == "kprobe.session" else "KPROBE_MULTI"
    return {errno.EINVAL: f"the kernel refused the {kind} link: load the program from a "
                          f"SEC(\"{kind}/...\") section (expected_attach_type "
                          f"BPF_TRACE_{attach_type})",
            errno.ESRCH: "a function named is not in kallsyms (inlined, or in a module "
                         "not loaded)",
            errno.EINTR: "ftrace refused a function (not traceable, or on the kprobe "
                         "blacklist); narrow the pattern"}


def attach_section(program, sd):
    """kprobe.multi/PATTERN, kretprobe.multi/PATTERN, kprobe.session/PATTERN."""
    pattern = need_target(sd, "PATTERN")
    if not _SECTION_PATTERN.fullmatch(pattern):
        raise AttachError(f"{sd.prefix} pattern {pattern!r} has characters libbpf's "
                          f"section parser does not take: use letters, digits, _ . * ?")
    return attach_kprobe_multi(program, pattern, retprobe=sd.prefix == "kretprobe.multi",
                               session=sd.prefix == "kprobe.session")
