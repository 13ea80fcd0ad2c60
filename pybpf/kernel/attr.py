"""ctypes layouts of ``union bpf_attr`` (one structure per command) and the info structs.

The kernel copies the ``size`` bytes we pass into a zeroed ``union bpf_attr`` and
refuses a command if a byte past that command's last field is not zero (EINVAL), or a
byte past the end of its own union (E2BIG). Bytes we do not pass read as zero, so each
command gets its own structure, sized to the fields it has, instead of one big union,
and a field this module lacks simply reads as zero (its default). Field order and
widths follow ``include/uapi/linux/bpf.h``; tests/unit/test_attr_layout.py compiles
a C program against the installed header and checks every offset and size.

Fields the installed 6.1 header does not have yet (``log_true_size`` and friends, added
in 6.4) are marked NEWER_FIELDS: they sit past the end of the 6.1 layout, where older
kernels ignore them as long as they are zero on input.
"""
import ctypes
import sys
from ctypes import c_char, c_uint8, c_uint32, c_uint64

from ..errors import InputError
from .constants import BPF_OBJ_NAME_LEN, BPF_TAG_SIZE

# __aligned_u64 is a u64 with 8-byte alignment on every ABI; c_uint64 is that on the
# 64-bit targets pybpf supports (x86_64, aarch64, riscv64, ppc64le, s390x).
u64 = c_uint64
u32 = c_uint32
ObjName = c_char * BPF_OBJ_NAME_LEN


class CheckedStructure(ctypes.Structure):
    """A ctypes structure whose constructor refuses values its fields cannot hold.

    ctypes stores an int into a field modulo the field's width, without a word:
    max_entries=2**32+4 would reach the kernel as 4, a u32 flags=2**40 as 0, -1 as
    0xffffffff. Every integer going into a kernel structure passes through here (the
    constructor's keyword arguments, or check() for the few fields set afterwards), so
    a value out of range is an InputError naming the field instead.
    """

    def __init__(self, **fields):
        for name, value in fields.items():
            check(type(self), name, value)
        super().__init__(**fields)


def check(cls, name, value):
    """Raise InputError unless value fits field name of structure cls."""
    kind, lo, hi, length = _ranges(cls)[name]
    if kind == "bytes":
        if not isinstance(value, (bytes, bytearray)) or len(value) > length:
            raise InputError(f"{cls.__name__}.{name} takes at most {length} bytes, got "
                             f"{value!r}")
        return
    values = value if kind == "array" else (value,)
    if kind == "array" and len(values) > length:
        raise InputError(f"{cls.__name__}.{name} holds {length} values, got {len(values)}")
    for v in values:
        if not isinstance(v, int):
            raise InputError(f"{cls.__name__}.{name} takes an integer, got {v!r}")
        if not lo <= v <= hi:
            raise InputError(f"{cls.__name__}.{name}={v} is out of range: the kernel's "
                             f"field holds {lo}..{hi} (ctypes would pass it on truncated)")


_RANGES = {}


def _ranges(cls):
    """{field: (kind, min, max, length)} of a structure, computed once per class."""
    found = _RANGES.get(cls)
    if found is None:
        found = _RANGES[cls] = {}
        for field in cls._fields_:
            name, ctype = field[0], field[1]
            kind, length = "int", 1
            if issubclass(ctype, ctypes.Array):
                kind = "bytes" if ctype._type_ is c_char else "array"
                length, ctype = ctype._length_, ctype._type_
            bits = field[2] if len(field) == 3 else ctypes.sizeof(ctype) * 8
            if kind != "bytes" and ctype(-1).value == -1:  # a signed type
                found[name] = (kind, -(1 << (bits - 1)), (1 << (bits - 1)) - 1, length)
            else:
                found[name] = (kind, 0, (1 << bits) - 1, length)
    return found


class _Attr(CheckedStructure):
    """Base class: every struct here is an input/output buffer for the kernel."""

    def __repr__(self):
        body = ", ".join(f"{name}={getattr(self, name)!r}" for name, *_ in self._fields_)
        return f"{type(self).__name__}({body})"


class MapCreateAttr(_Attr):
    _fields_ = [
        ("map_type", u32), ("key_size", u32), ("value_size", u32),
        ("max_entries", u32), ("map_flags", u32), ("inner_map_fd", u32),
        ("numa_node", u32), ("map_name", ObjName), ("map_ifindex", u32),
        ("btf_fd", u32), ("btf_key_type_id", u32), ("btf_value_type_id", u32),
        ("btf_vmlinux_value_type_id", u32), ("map_extra", u64),
    ]


class MapElemAttr(_Attr):
    """BPF_MAP_LOOKUP_ELEM/UPDATE_ELEM/DELETE_ELEM/GET_NEXT_KEY/LOOKUP_AND_DELETE_ELEM;
    ``value`` doubles as ``next_key``."""
    _fields_ = [("map_fd", u32), ("key", u64), ("value", u64), ("flags", u64)]


class MapBatchAttr(_Attr):
    _fields_ = [
        ("in_batch", u64), ("out_batch", u64), ("keys", u64), ("values", u64),
        ("count", u32), ("map_fd", u32), ("elem_flags", u64), ("flags", u64),
    ]


class ProgLoadAttr(_Attr):
    _fields_ = [
        ("prog_type", u32), ("insn_cnt", u32), ("insns", u64), ("license", u64),
        ("log_level", u32), ("log_size", u32), ("log_buf", u64),
        ("kern_version", u32), ("prog_flags", u32), ("prog_name", ObjName),
        ("prog_ifindex", u32), ("expected_attach_type", u32), ("prog_btf_fd", u32),
        ("func_info_rec_size", u32), ("func_info", u64), ("func_info_cnt", u32),
        ("line_info_rec_size", u32), ("line_info", u64), ("line_info_cnt", u32),
        ("attach_btf_id", u32), ("attach_prog_fd", u32),  # or attach_btf_obj_fd
        ("core_relo_cnt", u32), ("fd_array", u64), ("core_relos", u64),
        ("core_relo_rec_size", u32),
        ("log_true_size", u32),  # NEWER_FIELDS: 6.4+, output
    ]


class ObjAttr(_Attr):
    """BPF_OBJ_PIN / BPF_OBJ_GET."""
    _fields_ = [("pathname", u64), ("bpf_fd", u32), ("file_flags", u32)]


class ProgAttachAttr(_Attr):
    _fields_ = [
        ("target_fd", u32), ("attach_bpf_fd", u32), ("attach_type", u32),
        ("attach_flags", u32), ("replace_bpf_fd", u32),
    ]


class TestRunAttr(_Attr):
    _fields_ = [
        ("prog_fd", u32), ("retval", u32), ("data_size_in", u32), ("data_size_out", u32),
        ("data_in", u64), ("data_out", u64), ("repeat", u32), ("duration", u32),
        ("ctx_size_in", u32), ("ctx_size_out", u32), ("ctx_in", u64), ("ctx_out", u64),
        ("flags", u32), ("cpu", u32), ("batch_size", u32),
    ]
    __test__ = False  # not a pytest test class, despite the name


class GetIdAttr(_Attr):
    """BPF_*_GET_NEXT_ID and BPF_*_GET_FD_BY_ID; ``start_id`` is also prog_id, map_id,
    btf_id and link_id."""
    _fields_ = [("start_id", u32), ("next_id", u32), ("open_flags", u32)]


class InfoAttr(_Attr):
    _fields_ = [("bpf_fd", u32), ("info_len", u32), ("info", u64)]


class ProgQueryAttr(_Attr):
    """BPF_PROG_QUERY. A tcx query (6.6+) writes ``revision`` whatever size it is told
    the attr has, so the newer fields must be here even where unused: without them the
    kernel would write past this structure."""
    _fields_ = [
        ("target_fd", u32), ("attach_type", u32), ("query_flags", u32),
        ("attach_flags", u32), ("prog_ids", u64), ("prog_cnt", u32),
        ("prog_attach_flags", u64),
        ("link_ids", u64), ("link_attach_flags", u64), ("revision", u64),  # NEWER_FIELDS: 6.6
    ]


class RawTracepointAttr(_Attr):
    _fields_ = [("name", u64), ("prog_fd", u32)]


class BtfLoadAttr(_Attr):
    _fields_ = [
        ("btf", u64), ("btf_log_buf", u64), ("btf_size", u32), ("btf_log_size", u32),
        ("btf_log_level", u32),
        ("btf_log_true_size", u32),  # NEWER_FIELDS: 6.4+, output
    ]


class TaskFdQueryAttr(_Attr):
    _fields_ = [
        ("pid", u32), ("fd", u32), ("flags", u32), ("buf_len", u32), ("buf", u64),
        ("prog_id", u32), ("fd_type", u32), ("probe_offset", u64), ("probe_addr", u64),
    ]


class LinkCreateAttr(_Attr):
    """BPF_LINK_CREATE. The kernel's trailing union is raw words: ``extra`` is the 6.1
    union (its largest member kprobe_multi; ``target_btf_id``/``iter_info``/
    ``bpf_cookie`` overlay it), ``extra_newer`` the two words 6.6's uprobe_multi added
    (zero for every other member, so older kernels accept them). The members pybpf
    fills field by field are the LINK_CREATE_UNIONS structures below."""
    _fields_ = [
        ("prog_fd", u32), ("target_fd", u32),  # or target_ifindex
        ("attach_type", u32), ("flags", u32),
        ("extra", u64 * 4),
        ("extra_newer", u64 * 2),  # NEWER_FIELDS: 6.6, uprobe_multi's cnt/flags/pid
    ]


# ---- members of link_create's union, packed into LinkCreateAttr's words -------------
#
# Not _Attr (no command of their own): tests/unit/test_link_create_unions.py checks
# them against the 6.12 UAPI header, as the installed 6.1 one has only kprobe_multi.

class KprobeMultiOpts(CheckedStructure):
    """link_create.kprobe_multi (5.18): syms or addrs, cnt of them; cookies optional."""
    _fields_ = [("flags", u32), ("cnt", u32), ("syms", u64), ("addrs", u64),
                ("cookies", u64)]


class UprobeMultiOpts(CheckedStructure):
    """link_create.uprobe_multi (6.6): a path, cnt file offsets (and optional
    ref_ctr_offsets, cookies), the pid to narrow to (0: every process)."""
    _fields_ = [("path", u64), ("offsets", u64), ("ref_ctr_offsets", u64), ("cookies", u64),
                ("cnt", u32), ("flags", u32), ("pid", u32)]


class NetfilterOpts(CheckedStructure):
    """link_create.netfilter (6.4): protocol family, hook, priority, flags."""
    _fields_ = [("pf", u32), ("hooknum", u32), ("priority", ctypes.c_int32), ("flags", u32)]


class TcxOpts(CheckedStructure):
    """link_create.tcx (6.6), also link_create.netkit (6.7): where in the hook's chain
    (with BPF_F_BEFORE/AFTER) and the chain revision expected (0: any)."""
    _fields_ = [("relative_fd", u32), ("expected_revision", u64)]


LINK_CREATE_UNIONS = {KprobeMultiOpts: "kprobe_multi", UprobeMultiOpts: "uprobe_multi",
                      NetfilterOpts: "netfilter", TcxOpts: "tcx"}


def union_words(opts):
    """A LINK_CREATE_UNIONS structure as the u64 words link_create's ``extra`` takes."""
    raw = bytes(opts)
    raw += bytes(-len(raw) % 8)
    return tuple(int.from_bytes(raw[i:i + 8], sys.byteorder) for i in range(0, len(raw), 8))


class LinkUpdateAttr(_Attr):
    _fields_ = [("link_fd", u32), ("new_prog_fd", u32), ("flags", u32), ("old_prog_fd", u32)]


class LinkDetachAttr(_Attr):
    _fields_ = [("link_fd", u32)]


class EnableStatsAttr(_Attr):
    _fields_ = [("type", u32)]


class IterCreateAttr(_Attr):
    _fields_ = [("link_fd", u32), ("flags", u32)]


class ProgBindMapAttr(_Attr):
    _fields_ = [("prog_fd", u32), ("map_fd", u32), ("flags", u32)]


# ---- structs filled by BPF_OBJ_GET_INFO_BY_FD ----------------------------------

class BpfProgInfo(_Attr):
    _fields_ = [
        ("type", u32), ("id", u32), ("tag", c_uint8 * BPF_TAG_SIZE),
        ("jited_prog_len", u32), ("xlated_prog_len", u32),
        ("jited_prog_insns", u64), ("xlated_prog_insns", u64), ("load_time", u64),
        ("created_by_uid", u32), ("nr_map_ids", u32), ("map_ids", u64),
        ("name", ObjName), ("ifindex", u32), ("gpl_compatible", u32, 1), ("_pad0", u32, 31),
        ("netns_dev", u64), ("netns_ino", u64),
        ("nr_jited_ksyms", u32), ("nr_jited_func_lens", u32),
        ("jited_ksyms", u64), ("jited_func_lens", u64),
        ("btf_id", u32), ("func_info_rec_size", u32), ("func_info", u64),
        ("nr_func_info", u32), ("nr_line_info", u32), ("line_info", u64),
        ("jited_line_info", u64), ("nr_jited_line_info", u32),
        ("line_info_rec_size", u32), ("jited_line_info_rec_size", u32),
        ("nr_prog_tags", u32), ("prog_tags", u64),
        ("run_time_ns", u64), ("run_cnt", u64), ("recursion_misses", u64),
        ("verified_insns", u32), ("attach_btf_obj_id", u32), ("attach_btf_id", u32),
        ("_pad1", u32),
    ]


class BpfMapInfo(_Attr):
    _fields_ = [
        ("type", u32), ("id", u32), ("key_size", u32), ("value_size", u32),
        ("max_entries", u32), ("map_flags", u32), ("name", ObjName),
        ("ifindex", u32), ("btf_vmlinux_value_type_id", u32),
        ("netns_dev", u64), ("netns_ino", u64),
        ("btf_id", u32), ("btf_key_type_id", u32), ("btf_value_type_id", u32),
        ("_pad0", u32), ("map_extra", u64),
    ]


class BpfLinkInfo(_Attr):
    """struct bpf_link_info; the per-link-type union is raw words (``extra``), read by
    pybpf.links according to ``type``."""
    _fields_ = [("type", u32), ("id", u32), ("prog_id", u32), ("_pad0", u32),
                ("extra", u64 * 4)]


class BpfBtfInfo(_Attr):
    _fields_ = [
        ("btf", u64), ("btf_size", u32), ("id", u32), ("name", u64),
        ("name_len", u32), ("kernel_btf", u32),
    ]


# Fields named after the kernel's but absent from the installed (6.1) header.
NEWER_FIELDS = {("ProgLoadAttr", "log_true_size"), ("BtfLoadAttr", "btf_log_true_size"),
                ("ProgQueryAttr", "link_ids"), ("ProgQueryAttr", "link_attach_flags"),
                ("ProgQueryAttr", "revision"), ("LinkCreateAttr", "extra_newer")}

# Which C struct each layout mirrors, for the layout test: anonymous members of
# union bpf_attr are reached through a representative field name.
C_LAYOUTS = {
    MapCreateAttr: "union bpf_attr", MapElemAttr: "union bpf_attr",
    MapBatchAttr: "union bpf_attr.batch", ProgLoadAttr: "union bpf_attr",
    ObjAttr: "union bpf_attr", ProgAttachAttr: "union bpf_attr",
    TestRunAttr: "union bpf_attr.test", GetIdAttr: "union bpf_attr",
    InfoAttr: "union bpf_attr.info", ProgQueryAttr: "union bpf_attr.query",
    RawTracepointAttr: "union bpf_attr.raw_tracepoint", BtfLoadAttr: "union bpf_attr",
    TaskFdQueryAttr: "union bpf_attr.task_fd_query",
    LinkCreateAttr: "union bpf_attr.link_create",
    LinkUpdateAttr: "union bpf_attr.link_update",
    LinkDetachAttr: "union bpf_attr.link_detach",
    EnableStatsAttr: "union bpf_attr.enable_stats",
    IterCreateAttr: "union bpf_attr.iter_create",
    ProgBindMapAttr: "union bpf_attr.prog_bind_map",
    BpfProgInfo: "struct bpf_prog_info", BpfMapInfo: "struct bpf_map_info",
    BpfBtfInfo: "struct bpf_btf_info", BpfLinkInfo: "struct bpf_link_info",
}

__all__ = [name for name, obj in list(globals().items())
           if isinstance(obj, type) and issubclass(obj, _Attr) and obj is not _Attr]
