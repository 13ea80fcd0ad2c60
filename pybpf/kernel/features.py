"""What the running kernel can do: named feature tests, each run once per process.

"Does this kernel support X?" has one answer in pybpf, and it comes from here. Each
test asks the kernel the way the feature will be used (a BPF_LINK_CREATE the kernel
answers EBADF or EINVAL, a tiny load, a sysfs file), never its version number:
distributions backport features, and a version says nothing about build options.
A test runs when the library first needs its answer, and the answer is kept for the
life of the process (the kernel does not change under it).

``have(name)`` answers True or False; ``missing(name, ...)`` is the
:class:`~pybpf.errors.NotSupportedError` to raise when the answer is no, naming the
feature and the first release that has it. ``have_helper(prog_type, helper)`` asks
the same of helpers. ``python -m pybpf probe`` reports every test (:func:`report`).
(As cilium/ebpf's internal feature tests and libbpf's kernel_supports() do.)
"""
import ctypes
import dataclasses
import errno
import functools
import re
import _thread
from typing import Callable, Optional

from .. import asm
from ..errors import ENOTSUPP, BPFError, NotSupportedError
from . import attr as A
from . import namespaces, release, syscall, tracefs
from . import constants
from .constants import (BPF_F_SLEEPABLE, AttachType, Cmd, MapType, ProgType, XDP_PASS)
from .pmu import pmu_format, pmu_type


@dataclasses.dataclass(frozen=True)
class Feature:
    """One named feature: ``test()`` returns True when the kernel has it (it may raise
    BPFError when the kernel refuses to be asked, e.g. without privilege)."""
    name: str
    minimum: Optional[str]   # first Linux release with it; None: a build option or PMU
    description: str
    test: Callable[[], bool]
    mounts: bool = False     # testing it mounts tracefs where none is mounted


FEATURES = {}
_answers = {}
# Tests may ask other features (map creation: memlock). _thread's lock, not threading's:
# this module is on every command's import path, and threading costs ~1 ms to import.
_lock = _thread.RLock()


def _feature(name, minimum, description, mounts=False):
    def register(test):
        FEATURES[name] = Feature(name, minimum, description, test, mounts)
        return test
    return register


def have(name):
    """Whether the running kernel has feature name; tested on first ask, then kept.
    A BPFError from the test (the kernel would not say) propagates and nothing is kept."""
    try:
        return _answers[name]
    except KeyError:
        pass
    with _lock:
        if name not in _answers:
            _answers[name] = bool(FEATURES[name].test())
        return _answers[name]


def missing(name, detail="", hint=None, error=NotSupportedError):
    """The error saying this kernel lacks feature name (for ``raise``): detail says what
    needed it; error may be a subclass that also keeps an older base class."""
    f = FEATURES[name]
    return error(f.name, f.minimum, detail or f"this kernel has no {f.description}", hint)


def require(name, detail="", hint=None):
    """Raise :func:`missing` unless the kernel has feature name."""
    if not have(name):
        raise missing(name, detail, hint)


def refused_as_unknown(err):
    """Whether a BPFError is the kernel saying it does not know the command, attach
    type or operation (EINVAL from kernels that predate it, ENOTSUPP, EOPNOTSUPP):
    the answer to a feature learnt only by trying it with the caller's own program."""
    return err.errno in (errno.EINVAL, ENOTSUPP, errno.EOPNOTSUPP)


def report(mount=False):
    """{name: {"available", "minimum", "description", "detail"}} of every feature,
    testing each (``available`` None with the reason when the kernel would not say).
    Without mount, a feature whose test would mount tracefs is left untested while
    tracefs is not mounted."""
    out = {}
    for name, f in FEATURES.items():
        try:
            if f.mounts and not mount and name not in _answers and not tracefs.root(False):
                available, detail = None, "not tested: that mounts tracefs (probe --mount)"
            else:
                available, detail = have(name), ""
        except BPFError as e:
            available, detail = None, f"could not tell: {e}".splitlines()[0]
        out[name] = {"available": available, "minimum": f.minimum,
                     "description": f.description, "detail": detail}
    return out


# ---- probe loads -------------------------------------------------------------------

# Verifier log room per probe load. A refusal is one short line near the end of a log
# of a few hundred bytes; kernels before 6.4 keep a log's head and answer ENOSPC when
# it overflows, which the load retries with a larger buffer.
LOG_SIZE = 1024
# Load attributes a minimal program of these types needs to be accepted at all.
LOAD_OPTIONS = {
    ProgType.CGROUP_SOCK_ADDR: {"expected_attach_type": AttachType.CGROUP_INET4_CONNECT},
    ProgType.CGROUP_SOCKOPT: {"expected_attach_type": AttachType.CGROUP_GETSOCKOPT},
    ProgType.SK_LOOKUP: {"expected_attach_type": AttachType.SK_LOOKUP},
    ProgType.LIRC_MODE2: {"expected_attach_type": AttachType.LIRC_MODE2},
    ProgType.SYSCALL: {"prog_flags": BPF_F_SLEEPABLE},  # syscall programs must be sleepable
}
RET0 = asm.encode([asm.mov64(0, 0), asm.exit()])
# The verifier's words for "this program type may not call this helper": older kernels
# say "unknown func NAME#ID", newer ones (6.18 here) "program of this type cannot use
# helper NAME#ID"; "invalid func" means the kernel does not know the helper id at all.
REFUSED = ("invalid func ", "unknown func ", "cannot use helper ")
UNKNOWN_ID = "invalid func "
CALL_NAME = re.compile(r"call (\w+)#(\d+)")


def probe_load(ptype, insns, options=None, log_level=1):
    """Load a probe program and close it; None on success, else the BPFError (a
    VerifierError carrying the log when the verifier refused it)."""
    from . import bpf as kbpf  # bpf.py itself asks this module (memlock)
    options = dict(options or {})
    if ptype == ProgType.KPROBE:
        options.setdefault("kern_version", release.kernel_version_code())
    try:
        fd, _ = kbpf.prog_load(ptype, insns, "GPL", log_level=log_level, log_size=LOG_SIZE,
                               **options)
    except BPFError as e:
        return e
    kbpf.close(fd)
    return None


@functools.lru_cache(maxsize=None)
def calling(helper_id):
    """``call helper_id; exit`` as bytes, encoded once for all program types."""
    return asm.encode([asm.call(helper_id), asm.exit()])


def helper_answer(ptype, helper_id, log_level=1):
    """(available, the kernel's name or None). A refusal by name means "not for this
    type"; any other outcome (loaded, or refused for its arguments) means the verifier
    found a definition of the helper for this program type."""
    e = probe_load(ptype, calling(int(helper_id)), LOAD_OPTIONS.get(ptype), log_level)
    if e is None:
        return True, None
    log = getattr(e, "log", "")
    named = CALL_NAME.search(log)
    return not any(word in log for word in REFUSED), named.group(1) if named else None


@functools.lru_cache(maxsize=None)
def program_type_loads(ptype):
    """None when a minimal program of ptype (``r0 = 0; exit``) loads, else the
    BPFError that refused it."""
    return probe_load(ProgType(ptype), RET0, LOAD_OPTIONS.get(ProgType(ptype)))


@functools.lru_cache(maxsize=None)
def have_helper(ptype, helper_id):
    """Whether programs of ptype may call the helper here (False when the type itself
    does not load); one probe load per (type, helper) and process."""
    return program_type_loads(ptype) is None and helper_answer(ProgType(ptype), helper_id)[0]


def _link_answer(ptype, target, attach_type, yes, within=lambda fn: fn()):
    """Link a minimal program of ptype to target (within(fn) runs the attempt): errno
    yes is the kernel refusing the target, so it knows this kind of link; EINVAL is it
    not knowing the kind; success (then undone at once) says it knows it too."""
    from . import bpf as kbpf  # bpf.py itself asks this module (memlock)
    code = asm.encode([asm.mov64(0, XDP_PASS if ptype == ProgType.XDP else 0), asm.exit()])
    prog = kbpf.prog_load(ptype, code, "GPL")[0]

    def attempt():
        kbpf.close(kbpf.link_create(prog, target(), attach_type))
    try:
        within(attempt)
    except BPFError as e:
        if e.errno == yes:
            return True
        if e.errno == errno.EINVAL:
            return False
        raise
    finally:
        kbpf.close(prog)
    return True


_BAD_FD = 0xFFFFFFFF


# ---- the features ------------------------------------------------------------------

@_feature("memcg_accounting", "5.11", "BPF memory charged to the memory cgroup")
def _memcg_accounting():
    """A program calling bpf_ktime_get_coarse_ns loads only where the kernel also
    charges BPF memory to the memcg (the same release), as libbpf tests it. Issued
    without lifting RLIMIT_MEMLOCK, which is what the answer decides."""
    from . import bpf as kbpf
    code, lic = calling(constants.plain("BPF_FUNC_ktime_get_coarse_ns")), b"GPL\0"
    attr = A.ProgLoadAttr(prog_type=ProgType.SOCKET_FILTER, insn_cnt=len(code) // 8,
                          insns=kbpf.address(code), license=kbpf.address(lic))
    fd = syscall.bpf_errno(Cmd.PROG_LOAD, attr)
    if fd < 0:
        return False
    kbpf.close(fd)
    return True


@_feature("bpf_link", "5.7", "BPF links on cgroups (BPF_LINK_CREATE)")
def _bpf_link():
    """A cgroup program linked to a bad cgroup fd: EBADF where the command exists,
    EINVAL before it."""
    return _link_answer(ProgType.CGROUP_SKB, lambda: _BAD_FD, AttachType.CGROUP_INET_INGRESS,
                        errno.EBADF)


@_feature("bpf_perf_link", "5.15", "BPF links on perf events (kprobes, uprobes, "
          "tracepoints; bpf_cookie)")
def _bpf_perf_link():
    """A tracepoint program linked to a bad perf event fd: EBADF where perf links
    exist, EINVAL before."""
    return _link_answer(ProgType.TRACEPOINT, lambda: _BAD_FD, AttachType.PERF_EVENT,
                        errno.EBADF)


@_feature("bpf_link_xdp", "5.9", "BPF links on XDP hooks")
def _bpf_link_xdp():
    """An XDP link to the loopback device of a private network namespace: the kernel
    looks the device up before it knows the link kind, so only a real device tells;
    nothing outside that namespace sees the program, which passes every packet."""
    import socket
    return _link_answer(ProgType.XDP, lambda: socket.if_nametoindex("lo"), AttachType.XDP,
                        None, namespaces.in_private_netns)


@_feature("tcx", "6.6", "tcx links on tc hooks")
def _tcx():
    """A tcx link to interface 0, which does not exist: ENODEV where tcx exists."""
    return _link_answer(ProgType.SCHED_CLS, lambda: 0, AttachType.TCX_INGRESS, errno.ENODEV)


@_feature("map_batch", "5.6", "batch map operations (BPF_MAP_*_BATCH)")
def _map_batch():
    """Two elements into a hash map with one BPF_MAP_UPDATE_BATCH."""
    from . import bpf as kbpf
    fd = kbpf.map_create(MapType.HASH, 4, 4, 2)
    try:
        ops = kbpf.ElemOps(fd, 4, 4)
        ops.batch(Cmd.MAP_UPDATE_BATCH, None, None, bytes(range(8)), bytes(8), 2)
    except BPFError:
        return False
    finally:
        kbpf.close(fd)
    return True


@_feature("kprobe_pmu", "4.17", "kprobe perf PMU")
def _kprobe_pmu():
    return pmu_type("kprobe") is not None


@_feature("uprobe_pmu", "4.17", "uprobe perf PMU")
def _uprobe_pmu():
    return pmu_type("uprobe") is not None


@_feature("kretprobe_pmu", "4.17", "return probes through the kprobe PMU")
def _kretprobe_pmu():
    return _pmu_config_bit("kprobe", "retprobe")


@_feature("uretprobe_pmu", "4.17", "return probes through the uprobe PMU")
def _uretprobe_pmu():
    return _pmu_config_bit("uprobe", "retprobe")


@_feature("uprobe_ref_ctr", "4.20", "USDT semaphores (the uprobe PMU's ref_ctr_offset)")
def _uprobe_ref_ctr():
    return _pmu_config_bit("uprobe", "ref_ctr_offset")


def _pmu_config_bit(pmu, field):
    fmt = pmu_format(pmu, field)
    return fmt is not None and fmt[0] == "config"


@_feature("kprobe_events", None, "kprobes through tracefs kprobe_events "
          "(CONFIG_KPROBE_EVENTS)", mounts=True)
def _kprobe_events():
    """Mounts tracefs when it is not mounted, as attaching through it does."""
    return tracefs.has_probe_events("kprobe")


@_feature("uprobe_events", None, "uprobes through tracefs uprobe_events "
          "(CONFIG_UPROBE_EVENTS)", mounts=True)
def _uprobe_events():
    return tracefs.has_probe_events("uprobe")


def _union_link_answer(ptype, attach_type, opts, yes, ret=0):
    """Link a minimal program of ptype (loaded with expected_attach_type attach_type)
    with link_create union opts that the kernel refuses with errno yes where it has
    this kind of link; EINVAL (a kernel that predates it, which may already refuse the
    load) or EOPNOTSUPP (one built without it) say no."""
    from . import bpf as kbpf  # bpf.py itself asks this module (memlock)
    code = asm.encode([asm.mov64(0, ret), asm.exit()])
    try:
        prog = kbpf.prog_load(ptype, code, "GPL", expected_attach_type=attach_type,
                              kern_version=release.kernel_version_code())[0]
    except BPFError as e:
        if e.errno == errno.EINVAL:
            return False
        raise
    try:
        kbpf.close(kbpf.link_create(prog, 0, attach_type, extra=opts))
    except BPFError as e:
        if e.errno == yes:
            return True
        if e.errno in (errno.EINVAL, errno.EOPNOTSUPP, ENOTSUPP):
            return False
        raise
    finally:
        kbpf.close(prog)
    return True


def _pointer_to(*values):
    """(keep-alive buffer, its address) of a u64 array."""
    from . import bpf as kbpf
    buf = (ctypes.c_uint64 * len(values))(*values)
    return buf, kbpf.address(buf)


@_feature("uprobe_multi", "6.6", "uprobe_multi links (BPF_TRACE_UPROBE_MULTI)")
def _uprobe_multi():
    """A uprobe_multi link on the path "/": EBADF (not a regular file) where the kernel
    has them, as libbpf asks."""
    path = ctypes.create_string_buffer(b"/")
    offsets, addr = _pointer_to(0)
    opts = A.UprobeMultiOpts(path=ctypes.addressof(path), offsets=addr, cnt=1)
    return _union_link_answer(ProgType.KPROBE, AttachType.TRACE_UPROBE_MULTI, opts,
                              errno.EBADF)


def _kprobe_multi_answer(attach_type):
    name = ctypes.create_string_buffer(b"pybpf_no_such_kernel_function")
    syms, addr = _pointer_to(ctypes.addressof(name))
    opts = A.KprobeMultiOpts(syms=addr, cnt=1)
    return _union_link_answer(ProgType.KPROBE, attach_type, opts, errno.ESRCH)


@_feature("kprobe_multi", "5.18", "kprobe_multi links (BPF_TRACE_KPROBE_MULTI; needs "
          "CONFIG_FPROBE)")
def _kprobe_multi():
    """A kprobe_multi link on a function that does not exist: ESRCH where the kernel
    has them; EOPNOTSUPP from a kernel built without CONFIG_FPROBE."""
    return _kprobe_multi_answer(AttachType.TRACE_KPROBE_MULTI)


@_feature("kprobe_session", "6.10", "kprobe session links (BPF_TRACE_KPROBE_SESSION; "
          "needs CONFIG_FPROBE)")
def _kprobe_session():
    return _kprobe_multi_answer(AttachType.TRACE_KPROBE_SESSION)


@_feature("netfilter_link", "6.4", "netfilter links (BPF_LINK_TYPE_NETFILTER; needs "
          "CONFIG_NETFILTER_BPF_LINK)")
def _netfilter_link():
    """A netfilter link for protocol family 0: EAFNOSUPPORT where the kernel has them."""
    return _union_link_answer(ProgType.NETFILTER, AttachType.NETFILTER,
                              A.NetfilterOpts(pf=0), errno.EAFNOSUPPORT, ret=1)
