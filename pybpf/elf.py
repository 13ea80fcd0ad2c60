"""Read ELF64 files: clang's BPF objects and the shared libraries uprobes attach to.

Why a reader of our own: the core package has no third-party dependencies, and the
object loader needs only a small, well-checked part of ELF -- section headers and
data, symbol tables, REL/RELA relocations and, for uprobes, program headers to turn a
symbol's virtual address into a file offset.

Why it is this strict: object files come from users and from the network. A malformed
one must fail with one clear :class:`ElfError` naming the section (or offset) and the
problem -- never an ``IndexError`` from deep inside the loader, never a huge allocation
sized by a corrupt count, never a hang. Every count read from the file is checked
against the file's size before anything is allocated from it, and every offset is
checked before it is used.

Both byte orders are read (``clang -target bpfel`` / ``bpfeb``; ``-target bpf`` means the
host's). ELF32 is refused: BPF objects and the 64-bit libraries we attach to are ELF64.

Laziness: the constructor reads the ELF header, the program headers and the section
headers (and checks them all); symbol tables and relocations are parsed on first use
and cached; section data is sliced from the file image only when asked for.

Names are decoded as UTF-8 with ``surrogateescape`` (as Python does for file names),
so a name that is not valid UTF-8 still round-trips to its bytes with
``name.encode("utf-8", "surrogateescape")`` instead of making the whole table unreadable.
"""
import struct
import types
from dataclasses import dataclass, field
from functools import cached_property
from typing import Dict, List, Mapping, Optional, Tuple

from .elfdefs import *  # noqa: F401,F403 (the ELF numbers, used as elf.SHT_* etc.)
from .errors import InputError
from .kernel import files

# Section types whose sh_link names another section (so it must be a valid index).
_LINKED_TYPES = frozenset((
    SHT_SYMTAB, SHT_DYNSYM, SHT_REL, SHT_RELA, SHT_HASH, SHT_DYNAMIC, SHT_GROUP,
    SHT_SYMTAB_SHNDX, SHT_GNU_HASH, SHT_GNU_VERDEF, SHT_GNU_VERNEED, SHT_GNU_VERSYM,
    SHT_LLVM_ADDRSIG,
))
_SYMBOL_TABLES = (SHT_SYMTAB, SHT_DYNSYM)
_RELOCATION_TABLES = (SHT_REL, SHT_RELA)

_EHDR_SIZE, _SHDR_SIZE, _PHDR_SIZE, _SYM_SIZE = 64, 64, 56, 24
_REL_SIZE = {SHT_REL: 16, SHT_RELA: 24}

#: names decoded from one file may total at most this many times the file's size
NAME_BUDGET_FACTOR = 8


class ElfError(InputError):
    """The data is not an ELF64 file this reader accepts; the message says where and why."""


# One set of precompiled layouts per byte order.
class _Layout:
    def __init__(self, prefix: str):
        self.ehdr = struct.Struct(prefix + "HHIQQQIHHHHHH")   # after the 16-byte e_ident
        self.shdr = struct.Struct(prefix + "IIQQQQIIQQ")
        self.phdr = struct.Struct(prefix + "IIQQQQQQ")
        self.sym = struct.Struct(prefix + "IBBHQQ")
        self.rel = struct.Struct(prefix + "QQ")
        self.rela = struct.Struct(prefix + "QQq")
        self.word = struct.Struct(prefix + "I")


_LAYOUTS = {"little": _Layout("<"), "big": _Layout(">")}


@dataclass(frozen=True)
class Section:
    """One section header, with lazy access to the section's bytes.

    ``data`` is ``b""`` for SHT_NOBITS sections (``.bss``) and SHT_NULL; ``size`` still
    says how much memory a NOBITS section occupies.
    """

    index: int
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int
    info: int
    addralign: int
    entsize: int
    _image: memoryview = field(repr=False, compare=False)

    @property
    def view(self) -> memoryview:
        """The section's bytes without copying (read-only)."""
        if self.type in (SHT_NOBITS, SHT_NULL):
            return self._image[0:0]
        return self._image[self.offset:self.offset + self.size]

    @cached_property
    def data(self) -> bytes:
        """The section's bytes (copied once, then cached)."""
        return self.view.tobytes()

    @property
    def has_data(self) -> bool:
        """True when the section occupies bytes in the file."""
        return self.type not in (SHT_NOBITS, SHT_NULL)


@dataclass(frozen=True)
class Symbol:
    """One symbol table entry.

    ``shndx`` is the section index with SHN_XINDEX already resolved, so it is either a
    real section index or a special value (SHN_UNDEF, SHN_ABS, SHN_COMMON, ...);
    ``section_name`` is that section's name, or None for the special values.
    ``table`` is the index of the symbol table section the symbol came from.
    """

    index: int
    name: str
    value: int
    size: int
    bind: int
    type: int
    visibility: int
    other: int
    shndx: int
    section_name: Optional[str]
    table: int

    @property
    def defined(self) -> bool:
        return self.shndx != SHN_UNDEF


@dataclass(frozen=True)
class Relocation:
    """One REL or RELA entry.

    ``addend`` is None for SHT_REL entries: their addend is implicit, stored in the
    bytes being relocated (for BPF: the instruction's imm field). ``symbol`` is None
    only when the relocation section has no symbol table (sh_link 0) and the entry
    uses symbol 0.
    """

    offset: int
    type: int
    symbol_index: int
    symbol: Optional[Symbol]
    addend: Optional[int]


@dataclass(frozen=True)
class Segment:
    """One program header (executables and shared libraries)."""

    index: int
    type: int
    flags: int
    offset: int
    vaddr: int
    paddr: int
    filesz: int
    memsz: int
    align: int


def _describe(sec: Section) -> str:
    return f"section {sec.index} {sec.name!r}" if sec.name else f"section {sec.index}"


class ElfFile:
    """A parsed ELF64 file. Immutable: every accessor returns tuples or read-only views.

    ``section(name)`` and ``symbol(name)`` return None when there is no such entry.
    """

    def __init__(self, data: bytes):
        # memoryview() refuses ints and str, which bytes() would turn into zeros or encode.
        image = data if isinstance(data, bytes) else memoryview(data).tobytes()
        self._data = image
        self._image = memoryview(image)
        self._symtabs: Dict[int, Tuple[Symbol, ...]] = {}
        self._reltabs: Dict[int, Tuple[Relocation, ...]] = {}
        self._relocations: Optional[Mapping[int, Tuple[Relocation, ...]]] = None
        self._name_budget = [NAME_BUDGET_FACTOR * len(image)]
        self._read_ident()
        self._read_header()
        self.sections: Tuple[Section, ...] = self._read_sections()
        self.segments: Tuple[Segment, ...] = self._read_segments()
        self._by_name: Dict[str, Section] = {}
        for sec in self.sections:
            self._by_name.setdefault(sec.name, sec)

    @classmethod
    def from_path(cls, path) -> "ElfFile":
        """Read and parse a file (OSError when it cannot be read, InputError when it is
        not a regular file, ElfError when bad)."""
        return cls(files.read_regular_file(path))

    def __repr__(self) -> str:
        return (f"<ElfFile type={self.elf_type} machine={self.machine} {self.byteorder}-endian"
                f" {len(self.sections)} sections {len(self.segments)} segments>")

    # -- headers -------------------------------------------------------------

    def _read_ident(self) -> None:
        data = self._data
        if len(data) < 16:
            raise ElfError(f"file is {len(data)} bytes, too short for an ELF identification (16)")
        if data[:4] != b"\x7fELF":
            raise ElfError(f"not an ELF file: magic is {data[:4]!r}, expected b'\\x7fELF'")
        cls, enc, version = data[4], data[5], data[6]
        if cls == ELFCLASS32:
            raise ElfError("ELF32 file: only ELF64 is supported (BPF objects are ELF64)")
        if cls != ELFCLASS64:
            raise ElfError(f"bad EI_CLASS {cls}: expected 2 (ELFCLASS64)")
        if enc not in (ELFDATA2LSB, ELFDATA2MSB):
            raise ElfError(f"bad EI_DATA {enc}: expected 1 (little-endian) or 2 (big-endian)")
        if version != EV_CURRENT:
            raise ElfError(f"bad EI_VERSION {version}: expected 1")
        self.byteorder = "little" if enc == ELFDATA2LSB else "big"
        self.osabi = data[7]
        self._layout = _LAYOUTS[self.byteorder]

    def _read_header(self) -> None:
        if len(self._data) < _EHDR_SIZE:
            raise ElfError(f"file is {len(self._data)} bytes, too short for an ELF64 header (64)")
        (self.elf_type, self.machine, self.version, self.entry, self._phoff, self._shoff,
         self.flags, _ehsize, self._phentsize, self._phnum, self._shentsize, self._shnum,
         self._shstrndx) = self._layout.ehdr.unpack_from(self._data, 16)

    def _table(self, what: str, offset: int, count: int, entsize: int) -> memoryview:
        """The bytes of a table of count entries, checked to lie inside the file."""
        end = offset + count * entsize
        if end > len(self._data):
            raise ElfError(f"{what} at offset {offset:#x} ({count} entries of {entsize} bytes)"
                           f" extends past the end of the file ({len(self._data)} bytes)")
        return self._image[offset:end]

    def _read_sections(self) -> Tuple[Section, ...]:
        lay = self._layout
        if self._shoff == 0:
            if self._shnum:
                raise ElfError(f"e_shoff is 0 but e_shnum is {self._shnum}")
            self._section0 = None
            return ()
        if self._shentsize != _SHDR_SIZE:
            raise ElfError(f"e_shentsize is {self._shentsize}, expected {_SHDR_SIZE} for ELF64")
        first = self._table("section header 0", self._shoff, 1, _SHDR_SIZE)
        self._section0 = lay.shdr.unpack_from(first)
        count = self._shnum
        if count == 0:  # extended numbering: the real count is section 0's sh_size
            count = self._section0[5]
            if count == 0:
                raise ElfError("e_shnum is 0 and section 0's sh_size (extended count) is 0")
        raw = self._table("section header table", self._shoff, count, _SHDR_SIZE)
        headers = list(lay.shdr.iter_unpack(raw))

        strndx = self._shstrndx
        if strndx == SHN_XINDEX:
            strndx = self._section0[6]
        if strndx >= count:
            raise ElfError(f"e_shstrndx {strndx} is out of range: the file has {count} sections")
        names = None
        if strndx != SHN_UNDEF:
            h = headers[strndx]
            if h[1] != SHT_STRTAB:
                raise ElfError(f"e_shstrndx {strndx} is not a string table (sh_type {h[1]})")
            names = _Strings(self._checked_bytes(f"section {strndx} (section names)", h[4], h[5])
                             .tobytes(), self._name_budget)

        sections = []
        for index, (name_off, typ, flags, addr, off, size, link, info, align, entsize) \
                in enumerate(headers):
            name = names.get(name_off, f"section {index}: name") if names is not None else ""
            sec = Section(index, name, typ, flags, addr, off, size, link, info, align, entsize,
                          self._image)
            if sec.has_data:
                self._checked_bytes(_describe(sec), off, size)
            if typ in _LINKED_TYPES and link >= count:
                raise ElfError(f"{_describe(sec)}: sh_link {link} is out of range"
                               f" (the file has {count} sections)")
            if (typ in _RELOCATION_TABLES or flags & SHF_INFO_LINK) and info >= count:
                raise ElfError(f"{_describe(sec)}: sh_info {info} is out of range"
                               f" (the file has {count} sections)")
            sections.append(sec)
        _check_no_overlap(sections)
        return tuple(sections)

    def _checked_bytes(self, what: str, offset: int, size: int) -> memoryview:
        if offset + size > len(self._data):
            raise ElfError(f"{what}: data at offset {offset:#x} size {size:#x} extends past the"
                           f" end of the file ({len(self._data)} bytes)")
        return self._image[offset:offset + size]

    def _read_segments(self) -> Tuple[Segment, ...]:
        count = self._phnum
        if count == PN_XNUM and self._section0 is not None:
            count = self._section0[7]
        if count == 0:
            return ()
        if self._phoff == 0:
            raise ElfError(f"e_phoff is 0 but there are {count} program headers")
        if self._phentsize != _PHDR_SIZE:
            raise ElfError(f"e_phentsize is {self._phentsize}, expected {_PHDR_SIZE} for ELF64")
        raw = self._table("program header table", self._phoff, count, _PHDR_SIZE)
        segments = []
        for index, (typ, flags, off, vaddr, paddr, filesz, memsz, align) \
                in enumerate(self._layout.phdr.iter_unpack(raw)):
            self._checked_bytes(f"program header {index}", off, filesz)
            if typ == PT_LOAD and filesz > memsz:
                raise ElfError(f"program header {index}: PT_LOAD p_filesz {filesz:#x} is larger"
                               f" than p_memsz {memsz:#x}")
            segments.append(Segment(index, typ, flags, off, vaddr, paddr, filesz, memsz, align))
        return tuple(segments)

    # -- sections ------------------------------------------------------------

    def section(self, name: str) -> Optional[Section]:
        """The first section called name, or None."""
        return self._by_name.get(name)

    def _section_at(self, index: int, what: str) -> Section:
        if not 0 <= index < len(self.sections):
            raise ElfError(f"{what}: section index {index} is out of range"
                           f" (the file has {len(self.sections)} sections)")
        return self.sections[index]

    # -- symbols -------------------------------------------------------------

    def symbols(self) -> Tuple[Symbol, ...]:
        """The static symbol table (.symtab, SHT_SYMTAB); empty when stripped."""
        return self._first_table(SHT_SYMTAB)

    def dynamic_symbols(self) -> Tuple[Symbol, ...]:
        """The dynamic symbol table (.dynsym, SHT_DYNSYM) of a shared library or executable."""
        return self._first_table(SHT_DYNSYM)

    def _first_table(self, sh_type: int) -> Tuple[Symbol, ...]:
        for sec in self.sections:
            if sec.type == sh_type:
                return self.symbol_table(sec)
        return ()

    def symbol(self, name: str) -> Optional[Symbol]:
        """The first defined symbol called name: .symtab first, then .dynsym; or None.

        Shared libraries can define one name several times (symbol versions); this gives
        the first in table order. Use symbols()/dynamic_symbols() to choose yourself.
        """
        for table in (self.symbols(), self.dynamic_symbols()):
            for sym in table:
                if sym.name == name and sym.defined:
                    return sym
        return None

    def symbol_table(self, sec: Section) -> Tuple[Symbol, ...]:
        """All entries of one SHT_SYMTAB/SHT_DYNSYM section, index 0 (the null symbol) included."""
        return self._cached(self._symtabs, sec, self._parse_symbols)

    def _parse_symbols(self, sec: Section) -> Tuple[Symbol, ...]:
        where = _check_table(sec, _SYMBOL_TABLES, "a symbol table", _SYM_SIZE)
        strtab = self._section_at(sec.link, f"{where}: sh_link (string table)")
        if strtab.type != SHT_STRTAB:
            raise ElfError(f"{where}: sh_link {sec.link} names {_describe(strtab)},"
                           f" which is not a string table (sh_type {strtab.type})")
        strings = _Strings(strtab.data, self._name_budget)
        count = sec.size // _SYM_SIZE
        xindex = None
        nsections = len(self.sections)
        symbols = []
        for i, (name_off, info, other, shndx, value, size) \
                in enumerate(self._layout.sym.iter_unpack(sec.view)):
            name = strings.get(name_off, f"{where}: symbol {i} name")
            real_index = shndx < SHN_LORESERVE
            if shndx == SHN_XINDEX:
                if xindex is None:
                    xindex = self._extended_indices(sec, count)
                shndx, real_index = xindex[i], True
            section_name = None
            if real_index:
                if shndx >= nsections:
                    raise ElfError(f"{where}: symbol {i} ({name!r}) is in section {shndx},"
                                   f" which does not exist ({nsections} sections)")
                if shndx != SHN_UNDEF:
                    section_name = self.sections[shndx].name
            symbols.append(Symbol(i, name, value, size, info >> 4, info & 0xF, other & 3, other,
                                  shndx, section_name, sec.index))
        return tuple(symbols)

    def _extended_indices(self, symtab: Section, count: int) -> Tuple[int, ...]:
        """Section indices of symbols whose st_shndx is SHN_XINDEX (SHT_SYMTAB_SHNDX)."""
        where = _describe(symtab)
        for sec in self.sections:
            if sec.type == SHT_SYMTAB_SHNDX and sec.link == symtab.index:
                if sec.size != count * 4:
                    raise ElfError(f"{_describe(sec)}: size {sec.size} does not hold one 4-byte"
                                   f" index for each of the {count} symbols of {where}")
                return tuple(v for (v,) in self._layout.word.iter_unpack(sec.view))
        raise ElfError(f"{where}: a symbol uses SHN_XINDEX but no SHT_SYMTAB_SHNDX section"
                       " belongs to this symbol table")

    # -- relocations ---------------------------------------------------------

    def relocations(self) -> Mapping[int, Tuple[Relocation, ...]]:
        """Target section index -> its relocations, from every SHT_REL and SHT_RELA section.

        Relocation sections with sh_info 0 (the dynamic relocations of shared libraries,
        which apply to the whole image) are not included; read them with
        relocation_table(). In an ET_REL object sh_info 0 is an error.
        """
        if self._relocations is None:
            out: Dict[int, List[Relocation]] = {}
            for sec in self.sections:
                if sec.type not in _RELOCATION_TABLES:
                    continue
                if sec.info == 0:
                    if self.elf_type == ET_REL:
                        raise ElfError(f"{_describe(sec)}: relocation section has sh_info 0"
                                       " (no target section) in a relocatable object")
                    continue
                out.setdefault(sec.info, []).extend(self.relocation_table(sec))
            self._relocations = types.MappingProxyType({k: tuple(v) for k, v in out.items()})
        return self._relocations

    def relocation_table(self, sec: Section) -> Tuple[Relocation, ...]:
        """The entries of one SHT_REL or SHT_RELA section, with their symbols resolved."""
        return self._cached(self._reltabs, sec, self._parse_relocations)

    def _cached(self, cache: Dict[int, tuple], sec: Section, parse) -> tuple:
        """cache[sec.index], parsing the section on first use."""
        if not (0 <= sec.index < len(self.sections) and self.sections[sec.index] is sec):
            raise InputError(f"{_describe(sec)} is not a section of this file")
        found = cache.get(sec.index)
        if found is None:
            found = cache[sec.index] = parse(sec)
        return found

    def _parse_relocations(self, sec: Section) -> Tuple[Relocation, ...]:
        where = _check_table(sec, _RELOCATION_TABLES, "a relocation table",
                             _REL_SIZE.get(sec.type, 0))
        rela = sec.type == SHT_RELA
        symbols: Tuple[Symbol, ...] = ()
        if sec.link != SHN_UNDEF:
            symtab = self._section_at(sec.link, f"{where}: sh_link (symbol table)")
            if symtab.type not in _SYMBOL_TABLES:
                raise ElfError(f"{where}: sh_link {sec.link} names {_describe(symtab)},"
                               f" which is not a symbol table (sh_type {symtab.type})")
            symbols = self.symbol_table(symtab)
        limit = None
        if self.elf_type == ET_REL and sec.info:
            target = self._section_at(sec.info, f"{where}: sh_info (target section)")
            limit = target.size
        layout = self._layout.rela if rela else self._layout.rel
        out = []
        for i, entry in enumerate(layout.iter_unpack(sec.view)):
            offset, info = entry[0], entry[1]
            sym_index = info >> 32
            if sym_index < len(symbols):
                sym = symbols[sym_index]
            elif sym_index == 0:
                sym = None
            else:
                table = (f"its symbol table has {len(symbols)} symbols" if sec.link
                         else "the section has no symbol table (sh_link 0)")
                raise ElfError(f"{where}: entry {i} refers to symbol {sym_index}, but {table}")
            if limit is not None and offset >= limit:
                raise ElfError(f"{where}: entry {i} offset {offset:#x} is beyond the end of"
                               f" target section {sec.info} (size {limit:#x})")
            out.append(Relocation(offset, info & 0xFFFFFFFF, sym_index, sym,
                                  entry[2] if rela else None))
        return tuple(out)

    # -- addresses -----------------------------------------------------------

    def vaddr_to_offset(self, vaddr: int) -> int:
        """The file offset holding the byte at virtual address vaddr.

        This is what a uprobe needs: the kernel attaches at (inode, file offset), while
        symbol tables of executables and shared libraries give virtual addresses. The
        address must fall in the file-backed part of a PT_LOAD segment.
        """
        loads = [s for s in self.segments if s.type == PT_LOAD]
        if not loads:
            raise ElfError(f"cannot map address {vaddr:#x} to a file offset: the file has no"
                           " PT_LOAD program headers (a relocatable object has none)")
        for seg in loads:
            if seg.vaddr <= vaddr < seg.vaddr + seg.filesz:
                return vaddr - seg.vaddr + seg.offset
        for seg in loads:
            if seg.vaddr <= vaddr < seg.vaddr + seg.memsz:
                raise ElfError(f"address {vaddr:#x} is in the zero-filled part of PT_LOAD"
                               f" program header {seg.index}: it has no file offset")
        raise ElfError(f"address {vaddr:#x} is not inside any PT_LOAD segment")


def _check_no_overlap(sections: List[Section]) -> None:
    """Refuse sections whose file bytes overlap.

    Linkers and assemblers never write overlapping sections (none of ~960 system libraries
    and programs checked while writing this does; the unit tests read a sample), while a
    corrupt file that points thousands of table sections at the same bytes would make
    every per-section walk read the file thousands of times over. With this check, all
    sections together hold at most the file's size.
    """
    spans = sorted((s.offset, s.offset + s.size, s.index) for s in sections
                   if s.has_data and s.size)
    for (start, end, first), (nstart, nend, second) in zip(spans, spans[1:]):
        if nstart < end:
            raise ElfError(f"{_describe(sections[second])} (bytes {nstart:#x}..{nend:#x})"
                           f" overlaps {_describe(sections[first])} (bytes {start:#x}..{end:#x})")


def _check_table(sec: Section, sh_types: Tuple[int, ...], kind: str, expected: int) -> str:
    """Check that sec is a table of fixed-size entries of one of sh_types; returns its
    description for error messages."""
    where = _describe(sec)
    if sec.type not in sh_types:
        raise ElfError(f"{where}: sh_type {sec.type} is not {kind}")
    if sec.entsize != expected:
        raise ElfError(f"{where}: sh_entsize is {sec.entsize}, expected {expected}")
    if sec.size % expected:
        raise ElfError(f"{where}: size {sec.size} is not a multiple of the entry size {expected}")
    return where


class _Strings:
    """Decodes names from one string table, caching by offset.

    Why the budget: names are copied out of the table, so a corrupt file whose thousands
    of symbols all point into one long unterminated run would make gigabytes of strings
    from a megabyte file. Every table of a file draws on one budget of NAME_BUDGET_FACTOR
    times the file size, far more than real files use (their names sum to about the size
    of their string tables).
    """

    def __init__(self, table: bytes, budget: List[int]):
        self.table = table
        self.cache: Dict[int, str] = {}
        self.budget = budget

    def get(self, offset: int, what: str) -> str:
        name = self.cache.get(offset)
        if name is not None:
            return name
        table = self.table
        if offset >= len(table):
            raise ElfError(f"{what}: offset {offset:#x} is outside its string table"
                           f" ({len(table)} bytes)")
        end = table.find(b"\0", offset)
        if end < 0:
            raise ElfError(f"{what}: string at offset {offset:#x} is not NUL-terminated")
        self.budget[0] -= end - offset
        if self.budget[0] < 0:
            raise ElfError(f"{what}: names read from this file exceed {NAME_BUDGET_FACTOR}"
                           " times its size: the string table references are corrupt")
        name = self.cache[offset] = table[offset:end].decode("utf-8", "surrogateescape")
        return name
