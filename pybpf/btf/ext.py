"""The .BTF.ext section: per-ELF-section func_info, line_info and CO-RE relocations,
and the kernel's bpf_func_info / bpf_line_info arrays built from them.

Layout (byte order from the magic, as in .BTF)::

    header   u16 magic 0xeB9F, u8 version 1, u8 flags, u32 hdr_len,
             u32 func_info_off, u32 func_info_len, u32 line_info_off, u32 line_info_len,
             [u32 core_relo_off, u32 core_relo_len]         (when hdr_len >= 32)
    subsection (at hdr_len + off, len bytes)
             u32 record_size, then per ELF section:
             u32 sec_name_off, u32 num_info, num_info records of record_size bytes

Every ``insn_off`` here is in BYTES from the start of its ELF section, as clang
stores it. The kernel wants instruction indexes into the loaded program: the loader,
which knows where each function lands after subprograms are appended, converts with
:func:`encode_func_info` / :func:`encode_line_info` (index = insn_base + insn_off // 8).
String offsets (section, file and line text, CO-RE access strings) index the .BTF
string section; each record carries both the offsets and the text.
"""
import enum
import struct
import sys
from collections import namedtuple

from .parse import byte_order
from .types import BtfError

FuncInfo = namedtuple("FuncInfo", "insn_off type_id")
FuncInfo.__doc__ = "A function's start (bytes into its ELF section) and its FUNC type id."
LineInfo = namedtuple("LineInfo", "insn_off file_name line_text line col file_name_off line_off")
LineInfo.__doc__ = ("The source line of the instruction at insn_off (bytes); the *_off "
                    "fields are .BTF string offsets, as the kernel's bpf_line_info wants.")
CoreRelo = namedtuple("CoreRelo", "insn_off type_id access_str kind access_str_off")
CoreRelo.__doc__ = ("A CO-RE relocation of the instruction at insn_off (bytes): ``kind`` "
                    "of ``access_str`` (e.g. '0:1:2') on local type type_id.")


class CoreReloKind(enum.IntEnum):
    """enum bpf_core_relo_kind."""
    FIELD_BYTE_OFFSET = 0
    FIELD_BYTE_SIZE = 1
    FIELD_EXISTS = 2
    FIELD_SIGNED = 3
    FIELD_LSHIFT_U64 = 4
    FIELD_RSHIFT_U64 = 5
    TYPE_ID_LOCAL = 6
    TYPE_ID_TARGET = 7
    TYPE_EXISTS = 8
    TYPE_SIZE = 9
    ENUMVAL_EXISTS = 10
    ENUMVAL_VALUE = 11
    TYPE_MATCHES = 12


# The kernel's record sizes (bpf_func_info, bpf_line_info, bpf_core_relo).
FUNC_INFO_SIZE, LINE_INFO_SIZE, CORE_RELO_SIZE = 8, 16, 16
INSN_SIZE = 8
_MIN_HEADER = 24
_NATIVE = "<" if sys.byteorder == "little" else ">"


class BtfExt:
    """Parsed .BTF.ext: ``func_info``, ``line_info`` and ``core_relos`` each map an ELF
    section name ("tracepoint/x", ".text") to its list of records, in file order.
    ``record_sizes`` holds the sizes the file declared (newer compilers may write
    larger records; the known prefix is read)."""

    def __init__(self, func_info=None, line_info=None, core_relos=None, record_sizes=None):
        self.func_info = func_info or {}
        self.line_info = line_info or {}
        self.core_relos = core_relos or {}
        self.record_sizes = record_sizes or {}

    @classmethod
    def from_bytes(cls, data, btf):
        """Parse .BTF.ext bytes; btf is the object's .BTF (for its strings)."""
        data = bytes(data)
        order = byte_order(data, ".BTF.ext")
        if len(data) < _MIN_HEADER:
            raise BtfError(f".BTF.ext header truncated: {len(data)} bytes, need "
                           f"{_MIN_HEADER}")
        version, _flags, hdr_len = struct.unpack_from(order + "xxBBI", data)
        if version != 1:
            raise BtfError(f"unsupported .BTF.ext version {version}")
        if not _MIN_HEADER <= hdr_len <= len(data):
            raise BtfError(f".BTF.ext hdr_len {hdr_len} is outside {_MIN_HEADER}.."
                           f"{len(data)}")
        fields = struct.unpack_from(order + "IIII", data, 8)
        if hdr_len >= 32:
            fields += struct.unpack_from(order + "II", data, 24)
        else:
            fields += (0, 0)
        reader = _Reader(data, order, hdr_len, btf)
        self = cls()
        for (off, length), (name, size, decode) in zip(
                zip(fields[0::2], fields[1::2]), _SUBSECTIONS):
            if length:
                self.record_sizes[name], per_section = reader.subsection(
                    name, off, length, size, decode)
                setattr(self, name, per_section)
        return self

    def __repr__(self):
        counts = ", ".join(f"{name} in {len(getattr(self, name))} sections"
                           for name in ("func_info", "line_info", "core_relos"))
        return f"<BtfExt {counts}>"


class _Reader:
    def __init__(self, data, order, hdr_len, btf):
        self.data, self.order, self.hdr_len, self.btf = data, order, hdr_len, btf

    def string(self, off, what):
        try:
            return self.btf.strings.get(off)
        except BtfError as e:
            raise BtfError(f".BTF.ext {what}: bad string offset {off}: {e}") from None

    def subsection(self, name, off, length, min_size, decode):
        start = self.hdr_len + off
        end = start + length
        if end > len(self.data) or length < 4:
            raise BtfError(f".BTF.ext {name}: {length} bytes at {off} do not fit the "
                           f"{len(self.data) - self.hdr_len} bytes after the header")
        (rec_size,) = struct.unpack_from(self.order + "I", self.data, start)
        if rec_size < min_size or rec_size % 4:
            raise BtfError(f".BTF.ext {name}: record size {rec_size} (need a multiple of 4, "
                           f">= {min_size})")
        out, pos = {}, start + 4
        while pos < end:
            if pos + 8 > end:
                raise BtfError(f".BTF.ext {name}: section header truncated at {pos - start}")
            name_off, count = struct.unpack_from(self.order + "II", self.data, pos)
            section = self.string(name_off, f"{name} section name")
            pos += 8
            if pos + count * rec_size > end:
                raise BtfError(f".BTF.ext {name}: {count} records of {rec_size} bytes for "
                               f"section {section!r} run past the end of the subsection")
            records = out.setdefault(section, [])
            for _ in range(count):
                fields = struct.unpack_from(self.order + "IIII"[:min_size // 4], self.data, pos)
                if fields[0] % INSN_SIZE:
                    raise BtfError(f".BTF.ext {name} of {section!r}: insn_off {fields[0]} "
                                   f"is not a multiple of {INSN_SIZE} bytes")
                records.append(decode(self, fields))
                pos += rec_size
        return rec_size, out


def _func(reader, fields):
    return FuncInfo(*fields)


def _line(reader, fields):
    insn_off, file_off, line_off, line_col = fields
    return LineInfo(insn_off, reader.string(file_off, "line_info file name"),
                    reader.string(line_off, "line_info line text"),
                    line_col >> 10, line_col & 0x3FF, file_off, line_off)


def _core(reader, fields):
    insn_off, type_id, access_off, kind = fields
    try:
        kind = CoreReloKind(kind)
    except ValueError:
        pass  # a kind newer than this module: keep the number, the loader refuses it
    return CoreRelo(insn_off, type_id, reader.string(access_off, "CO-RE access string"),
                    kind, access_off)


_SUBSECTIONS = (("func_info", FUNC_INFO_SIZE, _func),
                ("line_info", LINE_INFO_SIZE, _line),
                ("core_relos", CORE_RELO_SIZE, _core))


def slice_records(records, start, end):
    """The records of instructions in bytes [start, end) of a section, rebased so
    insn_off counts from start (a function's own records, before it is placed)."""
    return [r._replace(insn_off=r.insn_off - start) for r in records
            if start <= r.insn_off < end]


def encode_func_info(records, insn_base=0, type_id_map=None):
    """bpf_func_info[] for BPF_PROG_LOAD (native byte order): ``{u32 insn_off (in
    instructions), u32 type_id}`` per record, sorted, with insn_off = insn_base +
    byte offset // 8. type_id_map (dict or callable) renumbers type ids when the
    loaded BTF is not the object's own."""
    remap = _mapper(type_id_map)
    pack = struct.Struct(_NATIVE + "II").pack
    return b"".join(pack(insn_base + r.insn_off // INSN_SIZE, remap(r.type_id))
                    for r in sorted(records, key=lambda r: r.insn_off))


def encode_line_info(records, insn_base=0):
    """bpf_line_info[] for BPF_PROG_LOAD (native byte order): ``{u32 insn_off,
    u32 file_name_off, u32 line_off, u32 line_col}``, sorted by instruction. The string
    offsets are the object's .BTF ones: load that BTF (sanitize keeps its strings)."""
    pack = struct.Struct(_NATIVE + "IIII").pack
    return b"".join(pack(insn_base + r.insn_off // INSN_SIZE, r.file_name_off, r.line_off,
                         (r.line << 10) | (r.col & 0x3FF))
                    for r in sorted(records, key=lambda r: r.insn_off))


def _mapper(mapping):
    if mapping is None:
        return lambda type_id: type_id
    if callable(mapping):
        return mapping
    return mapping.__getitem__
