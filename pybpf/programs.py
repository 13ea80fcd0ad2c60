"""Loaded BPF programs: load from instructions, test-run, inspect, pin.

``Program.load(ProgType.XDP, insns)`` verifies and loads; the verifier's reason for a
refusal arrives as a :class:`~pybpf.errors.VerifierError` with the log attached.
"""
import ctypes
import dataclasses

from .btf import Btf, BtfError
from .errors import InputError, MissingError
from . import args
from .btf.handle import KernelBtf
from .fd import FdObject, Pinnable, open_pinned
from .kernel import bpf as kbpf
from .kernel import release
from .kernel.constants import (BPF_F_SLEEPABLE, BPF_F_XDP_HAS_FRAGS, AttachType, Cmd,
                               ProgType, StatsType)
from . import sections
from .specs import ProgramSpec
from .typenames import type_name

# BPF_PROG_TEST_RUN output room for packet programs beyond the input's length: XDP and
# tc programs may grow the packet (bpf_xdp_adjust_head/tail).
_PACKET_GROWTH = 4096
# Program types whose BPF_PROG_TEST_RUN takes only a context (and copies it back in
# place for syscall programs): any repeat, data or ctx_out is EINVAL.
_CTX_ONLY_TEST_RUN = (ProgType.RAW_TRACEPOINT, ProgType.RAW_TRACEPOINT_WRITABLE,
                      ProgType.SYSCALL, ProgType.TRACING)


def prog_type_of(value):
    """ProgType from a ProgType, its number or a name like "socket_filter"."""
    return _enum_of(ProgType, value, "program type")


def attach_type_of(value):
    return _enum_of(AttachType, value, "attach type")


def _enum_of(enum, value, what):
    try:
        return enum[value.upper()] if isinstance(value, str) else enum(value)
    except (KeyError, ValueError):
        raise InputError(f"unknown {what} {value!r}; known: "
                         f"{', '.join(t.name.lower() for t in enum)}") from None


def assemble(insns):
    """Instruction bytes from bytes or a sequence of objects with .encode() (pybpf.asm)."""
    if isinstance(insns, (bytes, bytearray, memoryview)):
        code = bytes(insns)
    elif hasattr(insns, "__iter__") and all(hasattr(i, "encode") and not isinstance(i, str)
                                            for i in insns):
        code = b"".join(i.encode() for i in insns)
    else:
        raise InputError(f"a program is instruction bytes or a list of pybpf.asm "
                         f"instructions, not {insns!r:.80}")
    if not code or len(code) % 8:
        raise InputError(f"a program is a non-empty multiple of 8-byte instructions, "
                         f"got {len(code)} bytes")
    return code


@dataclasses.dataclass(frozen=True)
class TestRun:
    """The result of BPF_PROG_TEST_RUN."""
    retval: int
    duration_ns: int  # mean per repetition, as the kernel measures it
    data: bytes
    ctx: bytes

    __test__ = False  # not a pytest class


@dataclasses.dataclass(frozen=True)
class ProgInfo:
    """What BPF_OBJ_GET_INFO_BY_FD reports about a program."""
    type: ProgType
    id: int
    name: str
    tag: str
    load_time_ns: int  # since boot
    created_by_uid: int
    map_ids: tuple
    xlated_len: int
    jited_len: int
    verified_insns: int  # 0 on kernels before 5.16
    run_cnt: int  # counted only while stats are enabled (enable_stats)
    run_time_ns: int
    recursion_misses: int
    btf_id: int
    gpl_compatible: bool

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["type"] = type_name(self.type, ProgType)
        d["map_ids"] = list(self.map_ids)
        return d


class Program(Pinnable):
    """A loaded BPF program."""

    def __init__(self, fd, prog_type, name="", log=""):
        super().__init__(fd)
        self.type, self.name = prog_type, name
        self.verifier_log = log  # set when loaded with log_level > 0

    @classmethod
    def load(cls, prog_type, insns=None, license="GPL", *, name="", expected_attach_type=None,
             kern_version=None, flags=0, log_level=0, log_size=None, attach_btf_id=0,
             attach_prog_fd=0, ifindex=0, btf=None, func_info=None, line_info=None,
             fd_array=None):
        """Verify and load a program.

        ``insns`` is bytes or a sequence of pybpf.asm instructions. kern_version defaults
        to the running kernel's version for kprobes (kernels before 5.0 check it).
        ``btf`` (a loaded BTF object), ``func_info`` and ``line_info`` (``(bytes,
        record_size)`` pairs from .BTF.ext) let the verifier name C source lines.
        Raises VerifierError, whose ``log`` is the whole verifier log.

        ``Program.load(spec, ...)`` loads a :class:`pybpf.specs.ProgramSpec` whose
        references the caller has filled in (see :mod:`pybpf.relocate`): its type,
        instructions, license, name and flags come from the spec, and its func_info
        and line_info with ``btf``, the object's loaded BTF they index.
        """
        if isinstance(prog_type, ProgramSpec):
            if insns is not None:
                raise InputError("Program.load(spec) takes the instructions from the spec")
            spec, sd = prog_type, prog_type.section_def
            prog_type, insns, license = sd.prog_type, spec.insns, spec.license
            name = name or kernel_name(spec.name)
            if expected_attach_type is None:
                expected_attach_type = sd.expected_attach_type
            flags |= (BPF_F_SLEEPABLE if sd.flags & sections.SLEEPABLE else 0) | \
                (BPF_F_XDP_HAS_FRAGS if sd.flags & sections.XDP_FRAGS else 0)
            if kern_version is None:
                kern_version = spec.kern_version
            func_info, line_info = (spec.func_info, spec.line_info) if btf is not None \
                else (None, None)
            btf = btf if func_info else None
        elif insns is None:
            raise InputError("Program.load() needs the program's instructions")
        ptype = prog_type_of(prog_type)
        code = assemble(insns)
        if not isinstance(license, str):
            raise InputError(f"license is a str such as \"GPL\", not {license!r}")
        log_level = args.integer(log_level, "log_level", 0)
        if kern_version is None:
            kern_version = release.kernel_version_code() if ptype == ProgType.KPROBE else 0
        # struct_ops programs pass a member index here, not an AttachType.
        eat = 0 if expected_attach_type is None else (
            expected_attach_type if prog_type_of(prog_type) == ProgType.STRUCT_OPS
            else attach_type_of(expected_attach_type))
        fi, fi_size = _records(func_info, "func_info")
        li, li_size = _records(line_info, "line_info")
        fd, log = kbpf.prog_load(
            ptype, code, license, name=name, expected_attach_type=eat,
            kern_version=kern_version, prog_flags=flags, log_level=log_level,
            log_size=log_size,
            prog_btf_fd=args.fd_of(btf, KernelBtf, "btf") if btf is not None else 0,
            func_info=fi, func_info_rec_size=fi_size,
            func_info_cnt=len(fi) // fi_size if fi else 0,
            line_info=li, line_info_rec_size=li_size,
            line_info_cnt=len(li) // li_size if li else 0,
            attach_btf_id=attach_btf_id, attach_prog_fd=attach_prog_fd,
            fd_array=_fd_array(fd_array), prog_ifindex=ifindex)
        return cls(fd, ptype, name, log)

    @classmethod
    def from_fd(cls, fd):
        """Wrap an fd of a program, taking ownership of it (an fd that is not a
        program's is refused, and left alone)."""
        kbpf.check_kind(fd, "prog")
        try:
            info = _prog_info(fd, with_maps=False)
        except BaseException:
            kbpf.close(fd)
            raise
        return cls(fd, info.type, info.name)

    @classmethod
    def from_pin(cls, path):
        return cls.from_fd(open_pinned(path, "prog"))

    @classmethod
    def from_id(cls, prog_id):
        return cls.from_fd(kbpf.fd_by_id(Cmd.PROG_GET_FD_BY_ID, prog_id))

    def info(self):
        return _prog_info(self.fd)

    def function_btf_id(self, name):
        """The id, in this program's own BTF, of its function ``name``: what a freplace
        program that replaces that function is loaded against."""
        btf_id = self.info().btf_id
        if not btf_id:
            raise MissingError(f"{self!r} was loaded without BTF, so none of its functions "
                               f"can be replaced (load it from a clang -g object)")
        with KernelBtf(kbpf.btf_get_fd_by_id(btf_id)) as handle:
            raw = kbpf.btf_info(handle.fd, with_data=True)[2]
        try:
            return Btf.from_bytes(raw).find_one(name, "func")
        except BtfError:
            raise MissingError(f"{self!r} has no function {name!r} in its BTF (a global or "
                               f"static function of its source, not inlined)") from None

    def xlated(self):
        """The instructions as the kernel holds them after verification (bytes)."""
        n = kbpf.obj_get_info(self.fd, "prog").xlated_prog_len
        buf = ctypes.create_string_buffer(n)
        info = kbpf.obj_get_info(self.fd, "prog", xlated_prog_insns=(buf, "xlated_prog_len", n))
        return buf.raw[:info.xlated_prog_len]

    def test_run(self, data=b"", *, ctx=None, data_out_size=None, ctx_out_size=None,
                 repeat=None, flags=0, cpu=0):
        """Run the program once (or ``repeat`` times) in the kernel on data/ctx.

        Returns TestRun(retval, duration_ns, data, ctx) with the possibly modified
        packet and context (for syscall programs, the context as the program left it).
        Raw tracepoint and syscall programs run once on ctx only: the kernel refuses
        repeat, data and ctx_out for them, so those default to off.
        """
        data = _bytes(data, "data")
        ctx = None if ctx is None else _bytes(ctx, "ctx")
        ctx_only = self.type in _CTX_ONLY_TEST_RUN
        if repeat is None:
            repeat = 0 if ctx_only else 1
        if data_out_size is None:
            data_out_size = len(data) + _PACKET_GROWTH if data else 0
        if ctx_out_size is None:
            ctx_out_size = len(ctx) if ctx and not ctx_only else 0
        retval, duration, out, ctx_out = kbpf.prog_test_run(
            self.fd, data or None, data_out_size, ctx, ctx_out_size, repeat, flags, cpu,
            ctx_in_place=self.type == ProgType.SYSCALL)
        return TestRun(retval, duration, out, ctx_out)

    def _describe(self):
        return f"Program {self.name!r}" if self.name else "Program"

    def __repr__(self):
        state = "closed" if self.closed else f"fd={self._fd}"
        tname = self.type.name if isinstance(self.type, ProgType) else self.type
        return f"<{self._describe()} {tname} {state}>"


def kernel_name(name):
    """A program's name as the kernel holds it: its first 15 bytes, as libbpf cuts
    them (an object keeps the whole name; obj.programs is keyed by it)."""
    return name.encode("utf-8", "surrogateescape")[:kbpf.NAME_MAX].decode(
        "utf-8", "surrogateescape")


def _fd_array(fds):
    if not fds:
        return None
    return (ctypes.c_int32 * len(fds))(*[f.fd if isinstance(f, FdObject) else
                                         args.integer(f, "an fd_array entry", 0) for f in fds])


def _records(info, what):
    """(bytes, record size) of func_info/line_info, (None, 0) for none."""
    if not info:
        return None, 0
    if not (isinstance(info, tuple) and len(info) == 2 and isinstance(info[0], bytes)):
        raise InputError(f"{what} is a (bytes, record size) pair from .BTF.ext, not "
                         f"{info!r:.80}")
    return info[0], args.integer(info[1], f"{what}'s record size", 1)


def _bytes(value, what):
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise InputError(f"{what} is bytes, not {type(value).__name__}")
    return bytes(value)


def _prog_info(fd, with_maps=True):
    i = kbpf.obj_get_info(fd, "prog")
    map_ids = ()
    if with_maps and i.nr_map_ids:
        buf = (ctypes.c_uint32 * i.nr_map_ids)()
        kbpf.obj_get_info(fd, "prog", map_ids=(buf, "nr_map_ids", i.nr_map_ids))
        map_ids = tuple(buf)
    try:
        ptype = ProgType(i.type)
    except ValueError:  # newer than our constants
        ptype = i.type
    return ProgInfo(ptype, i.id, kbpf.name_text(i.name), bytes(i.tag).hex(), i.load_time,
                    i.created_by_uid, map_ids, i.xlated_prog_len, i.jited_prog_len,
                    i.verified_insns, i.run_cnt, i.run_time_ns, i.recursion_misses,
                    i.btf_id, bool(i.gpl_compatible))


class StatsEnabled(FdObject):
    """Holds BPF_ENABLE_STATS: while open, the kernel counts run_cnt and run_time_ns
    for every program (at a small cost per run, hence off by default)."""

    def __init__(self, stats_type=StatsType.RUN_TIME):
        super().__init__(kbpf.enable_stats(stats_type))


def enable_stats():
    """``with pybpf.enable_stats(): ...``: count program runs and run time."""
    return StatsEnabled()
