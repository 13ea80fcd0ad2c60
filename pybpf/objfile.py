"""Reading a clang-built BPF object into a kernel-independent description.

``ObjectFile.parse(data)`` turns ``clang -target bpf`` output into specs: programs
(their instruction bytes, section convention, the relocations they need), maps (from
BTF ``.maps``, the legacy ``maps`` section, and the global data sections), the
license, and the externs the object expects the loader to supply. Nothing here asks
the running kernel anything: load-time work (map creation, CO-RE, fds) lives in
:mod:`pybpf.loader`.

The conventions are the ones clang and libbpf share, so an object libbpf loads parses
here too: ``SEC("...")`` section names (:mod:`pybpf.sections`), ``.text`` for
subprograms, ``__uint``/``__type``/``__array`` map definitions encoded in BTF, and
global variables in ``.data``, ``.rodata``, ``.bss`` and their ``.*`` variants.
"""
import dataclasses
import os
import struct
import sys
from typing import Dict, List, Optional

from .errors import InputError
from . import elf as E
from . import sections
from .btf import Btf, BtfError
from .btf.ext import BtfExt
from .btf import types as T
from .dataimage import ZeroImage
from .kernel import files
from .kernel.constants import (BPF_F_MMAPABLE, BPF_F_RDONLY_PROG, BPF_JMP, BPF_CALL,
                               BPF_PSEUDO_CALL, MapType)

INSN = 8
LD_IMM64 = 0x18
CALL = BPF_JMP | BPF_CALL
LIBBPF_PIN_BY_NAME = 1
DATA_PREFIXES = (".data", ".rodata", ".bss")
KCONFIG = ".kconfig"
KSYMS = ".ksyms"
STRUCT_OPS = ".struct_ops"
# struct bpf_map_def: type, key_size, value_size, max_entries, map_flags (u32 each).
LEGACY_MAP_DEF = 20
# Map "pinning" values libbpf defines; any other value is an error there too.
PIN_NONE = 0
# The largest value of an array map (kernel/bpf/arraymap.c, array_map_alloc_check()):
# global data and .kconfig become one-element arrays, so no section may be larger.
ARRAY_VALUE_MAX = 0x7FFFFFFF


class ObjectError(InputError):
    """The object file is not something pybpf can load; the message says what and where."""


@dataclasses.dataclass
class MapSpec:
    """A map the object defines, before it exists in the kernel."""
    name: str
    type: MapType
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    numa_node: Optional[int] = None
    map_extra: int = 0
    pinning: int = 0
    btf_key_type_id: int = 0
    btf_value_type_id: int = 0
    inner: Optional["MapSpec"] = None
    # slot -> symbol name (a program for prog arrays, a map for map-in-map)
    init_values: Dict[int, str] = dataclasses.field(default_factory=dict)
    data: Optional[bytearray] = None   # initial value of a global data map
    section: str = ""                  # where it was defined (".maps", ".rodata", ...)
    struct_ops: Optional["StructOps"] = None  # for STRUCT_OPS maps

    @property
    def is_data(self):
        return self.data is not None


@dataclasses.dataclass(frozen=True)
class Reloc:
    """An instruction (slot index in its section) that needs a load-time value.

    kind: "map" (ld_imm64 of a map fd), "map_value" (ld_imm64 of an address inside a
    data map, ``offset`` bytes in), "call" (bpf-to-bpf call), "func" (ld_imm64 of a
    callback function), "extern_var" (ld_imm64 of a .kconfig/.ksyms extern),
    "kfunc" (call of a kernel function). ``target`` is a map name, a (section, slot)
    pair for code, or an extern's name.
    """
    slot: int
    kind: str
    target: object
    offset: int = 0


@dataclasses.dataclass
class Function:
    """A function in a code section: a program entry point or a subprogram."""
    name: str
    section: str
    start: int          # slot index in its section
    end: int            # one past its last slot


@dataclasses.dataclass
class ProgramSpec:
    name: str
    section_def: sections.SectionDef
    function: Function

    @property
    def section(self):
        return self.function.section


@dataclasses.dataclass
class StructOps:
    """A ``SEC(".struct_ops")`` variable: a table of a kernel ops type (e.g. struct
    tcp_congestion_ops) filled with the object's programs. It becomes a STRUCT_OPS map
    whose value type is the kernel's, so sizes and the layout come from the kernel's
    BTF at load; here is only what the object says."""
    type_name: str                     # the kernel struct it implements
    type_id: int                       # that struct in the object's BTF
    data: bytes                        # the variable's initial bytes
    # member name -> program name, for the function pointers the object set
    programs: Dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Extern:
    """An ``extern`` the loader must resolve: a kconfig value or a kernel symbol.

    ``section`` is "" for an extern the object's BTF declares neither ``__kconfig``
    nor ``__ksym``: a symbol another object defines, which only static linking
    (``bpftool gen object``) can supply, so loading such an object fails."""
    name: str
    section: str          # .kconfig, .ksyms, or "" (see above)
    weak: bool
    btf_type_id: int      # the VAR/FUNC in the object's BTF (0 without BTF)
    size: int = 0
    offset: int = 0       # in the .kconfig map


@dataclasses.dataclass
class Variable:
    """A global variable: ``size`` bytes at ``offset`` of data map ``section``."""
    name: str
    section: str
    offset: int
    size: int
    btf_type_id: int = 0


class ObjectFile:
    """A parsed BPF object: ``programs``, ``maps``, ``variables``, ``externs``,
    ``license``, ``kern_version``, ``btf``/``btf_ext``, and per code section its
    instruction bytes (``code``), relocations (``relocs``) and functions."""

    def __init__(self, name="obj"):
        self.name = name
        self.license = ""
        self.kern_version = None
        self.programs: Dict[str, ProgramSpec] = {}
        self.maps: Dict[str, MapSpec] = {}
        self.variables: Dict[str, Variable] = {}
        self.externs: Dict[str, Extern] = {}
        self.code: Dict[str, bytearray] = {}
        self.relocs: Dict[str, Dict[int, Reloc]] = {}
        self.functions: Dict[str, List[Function]] = {}
        # Global subprograms with hidden visibility (__hidden): the loader marks them
        # static in the BTF it loads (see _read_code).
        self.hidden_functions: List[str] = []
        self.btf: Optional[Btf] = None
        self.btf_ext: Optional[BtfExt] = None
        # What BTF DATASECs need from the ELF (clang leaves their sizes at 0).
        self.section_sizes: Dict[str, int] = {}
        self.symbol_offsets: Dict[tuple, int] = {}
        self.byteorder = sys.byteorder

    @classmethod
    def from_path(cls, path):
        data = files.read_regular_file(path)
        return cls.parse(data, os.path.basename(path).split(".")[0] or "obj")

    @classmethod
    def parse(cls, data, name="obj"):
        try:
            return _Parser(data, name).run()
        except E.ElfError as e:
            raise ObjectError(f"not a valid ELF object: {e}") from None
        except BtfError as e:
            raise ObjectError(f"bad BTF in the object: {e}") from None

    def function_at(self, section, slot):
        """The function of section that starts at slot, or None."""
        for f in self.functions.get(section, ()):
            if f.start == slot:
                return f
        return None

    def __repr__(self):
        return (f"<ObjectFile {self.name!r} programs={list(self.programs)} "
                f"maps={list(self.maps)}>")


class _Parser:
    """One pass over an ELF object, filling an ObjectFile."""

    def __init__(self, data, name):
        self.elf = E.ElfFile(bytes(data))
        self.obj = ObjectFile(name)

    def run(self):
        elf, obj = self.elf, self.obj
        if elf.machine != E.EM_BPF:
            raise ObjectError(f"the object is for machine {elf.machine}, not BPF "
                              f"(EM_BPF={E.EM_BPF}); compile with clang -target bpf")
        if elf.elf_type != E.ET_REL:
            raise ObjectError("the file is not a relocatable object (ET_REL); give the "
                              ".o that clang -c produced")
        if elf.byteorder != sys.byteorder:
            raise ObjectError(
                f"the object is {elf.byteorder}-endian but this machine is "
                f"{sys.byteorder}-endian; rebuild it with clang -target bpf (or "
                f"-target bpf{'el' if sys.byteorder == 'little' else 'eb'})")
        self.symbols = elf.symbols()
        self._read_btf()
        self._read_license()
        self._read_code()
        self._read_data_maps()
        self._read_legacy_maps()
        self._read_btf_maps()
        self._read_struct_ops()
        self._read_externs()
        self._read_relocations()
        self._read_datasec_layout()
        return obj

    def _read_datasec_layout(self):
        obj = self.obj
        wanted = set(obj.maps) | {".maps", "license", "maps"} | {
            sec.name for sec in self.elf.sections if _is_struct_ops(sec.name)}
        for sec in self.elf.sections:
            if sec.name in wanted:
                obj.section_sizes[sec.name] = sec.size
        for sym in self.symbols:
            if sym.section_name in obj.section_sizes and sym.name and \
                    sym.type != E.STT_SECTION:
                obj.symbol_offsets[(sym.section_name, sym.name)] = sym.value

    # -- simple sections ---------------------------------------------------------

    def _read_btf(self):
        sec = self.elf.section(".BTF")
        if sec is None:
            return
        self.obj.btf = Btf.from_bytes(sec.data, lazy=False)
        ext = self.elf.section(".BTF.ext")
        if ext is not None:
            self.obj.btf_ext = BtfExt.from_bytes(ext.data, self.obj.btf)

    def _read_license(self):
        sec = self.elf.section("license")
        if sec is not None:
            self.obj.license = sec.data.split(b"\0", 1)[0].decode("ascii", "replace")
        sec = self.elf.section("version")
        if sec is not None:
            if sec.size != 4:
                raise ObjectError(f"section 'version' is {sec.size} bytes; it holds one u32")
            self.obj.kern_version = int.from_bytes(sec.data, self.elf.byteorder)

    def _read_code(self):
        """Code sections: .text holds subprograms, every other one programs."""
        obj = self.obj
        for sec in self.elf.sections:
            if not (sec.flags & E.SHF_EXECINSTR) or sec.type != E.SHT_PROGBITS or not sec.size:
                continue
            if sec.size % INSN:
                raise ObjectError(f"code section {sec.name!r} is {sec.size} bytes, not a "
                                  f"multiple of the 8-byte instruction size")
            obj.code[sec.name] = bytearray(sec.data)
            obj.relocs[sec.name] = {}
            funcs = sorted((s for s in self.symbols if s.shndx == sec.index and
                            s.type == E.STT_FUNC), key=lambda s: s.value)
            obj.functions[sec.name] = []
            for sym in funcs:
                if sym.value % INSN or sym.value + sym.size > sec.size:
                    raise ObjectError(f"function {sym.name!r} lies outside section "
                                      f"{sec.name!r} or is misaligned")
                fn = Function(sym.name, sec.name, sym.value // INSN,
                              (sym.value + sym.size) // INSN)
                obj.functions[sec.name].append(fn)
                if sec.name == ".text" and sym.bind != E.STB_LOCAL and \
                        sym.visibility in (E.STV_HIDDEN, E.STV_INTERNAL):
                    # The verifier checks a global function once, on its own, trusting
                    # only its BTF signature; a static one is checked in each caller's
                    # context. A hidden function cannot be called from outside the
                    # object, so (as libbpf does) it is verified like a static one:
                    # helpers such as usdt.bpf.h's bpf_usdt_arg() verify only that way.
                    obj.hidden_functions.append(sym.name)
                if sec.name != ".text":
                    if sym.name in obj.programs:
                        raise ObjectError(f"two programs are called {sym.name!r}")
                    obj.programs[sym.name] = ProgramSpec(
                        sym.name, sections.parse(sec.name), fn)

    # -- maps ----------------------------------------------------------------

    def _read_data_maps(self):
        """.data/.rodata/.bss (and their .* variants) become one-element array maps."""
        obj = self.obj
        for sec in self.elf.sections:
            if not _is_data_section(sec):
                continue
            readonly = sec.name.startswith(".rodata")
            _check_array_value(f"section {sec.name}", sec.size)
            # .bss takes no room in the file, so its header may claim any size: hold only
            # what is written before load. Other sections: one copy of the file's bytes.
            data = ZeroImage(sec.size) if sec.type == E.SHT_NOBITS else bytearray(sec.view)
            value_id = self._datasec_id(sec.name)
            obj.maps[sec.name] = MapSpec(
                name=sec.name, type=MapType.ARRAY, key_size=4, value_size=sec.size,
                max_entries=1, flags=BPF_F_MMAPABLE | (BPF_F_RDONLY_PROG if readonly else 0),
                btf_value_type_id=value_id, data=data, section=sec.name)
            for sym in self.symbols:
                if sym.shndx == sec.index and sym.type == E.STT_OBJECT and sym.name:
                    obj.variables[sym.name] = Variable(
                        sym.name, sec.name, sym.value, sym.size, self._var_type(sym.name))

    def _datasec_id(self, name):
        if self.obj.btf is None:
            return 0
        ids = self.obj.btf.find(name, "datasec")
        return ids[0] if ids else 0

    def _var_type(self, name):
        btf = self.obj.btf
        if btf is None:
            return 0
        ids = btf.find(name, "var")
        return btf.type(ids[0]).type if ids else 0

    def _read_legacy_maps(self):
        """The ``maps`` section: struct bpf_map_def records named by their symbols."""
        sec = self.elf.section("maps")
        if sec is None:
            return
        syms = sorted((s for s in self.symbols if s.shndx == sec.index and s.name and
                       s.type in (E.STT_OBJECT, E.STT_NOTYPE)), key=lambda s: s.value)
        if not syms:
            return
        rec = sec.size // len(syms)
        if rec < LEGACY_MAP_DEF or rec * len(syms) != sec.size:
            raise ObjectError(f"legacy 'maps' section: {sec.size} bytes for {len(syms)} "
                              f"maps is not a whole number of bpf_map_def records")
        order = "<" if self.elf.byteorder == "little" else ">"
        for sym in syms:
            if sym.value + rec > len(sec.data):
                raise ObjectError(f"legacy map {sym.name!r}: its {rec}-byte record at offset "
                                  f"{sym.value} lies outside section 'maps' "
                                  f"({len(sec.data)} bytes in the file)")
            raw = sec.data[sym.value:sym.value + rec]
            if any(raw[LEGACY_MAP_DEF:]):
                # Records longer than struct bpf_map_def come in incompatible layouts
                # (samples/bpf's inner_map_idx/numa_node, iproute2's bpf_elf_map with
                # id/pinning): guessing would, say, read a pinning mode as a NUMA node.
                # libbpf refuses non-zero extra fields too.
                raise ObjectError(
                    f"legacy map {sym.name!r}: its {rec}-byte definition sets fields past "
                    f"struct bpf_map_def's five (type, key_size, value_size, max_entries, "
                    f"map_flags), e.g. iproute2's struct bpf_elf_map; define it in .maps")
            mtype, key, value, entries, flags = struct.unpack_from(order + "5I", raw)
            self.obj.maps[sym.name] = MapSpec(
                sym.name, _map_type(mtype, sym.name), key, value, entries, flags,
                section="maps")

    def _read_btf_maps(self):
        """``.maps``: each variable is a struct whose members encode the definition."""
        sec = self.elf.section(".maps")
        if sec is None:
            return
        btf = self.obj.btf
        if btf is None:
            raise ObjectError("section .maps needs BTF to describe its maps; compile "
                              "with clang -g")
        ids = btf.find(".maps", "datasec")
        if not ids:
            raise ObjectError("section .maps has no DATASEC in the object's BTF")
        offsets = {}
        for v in btf.type(ids[0]).vars:
            var = self._datasec_var(".maps", v)
            spec = self._btf_map(var.name, var.type)
            self.obj.maps[var.name] = spec
            sym = next((s for s in self.symbols if s.shndx == sec.index and
                        s.name == var.name), None)
            if sym is None:
                if any(s.name == var.name and s.shndx == E.SHN_UNDEF for s in self.symbols):
                    raise ObjectError(f"map {var.name!r} is an extern: another BPF object "
                                      f"defines it; link the objects into one first "
                                      f"(bpftool gen object OUT.o A.o B.o)")
                raise ObjectError(f"map {var.name!r} is in .maps' BTF but has no symbol")
            offsets[var.name] = sym.value
        self.map_offsets = offsets

    def _datasec_var(self, section, entry):
        """The VAR a DATASEC entry names (BTF can name anything there)."""
        var = self.obj.btf.type(entry.type)
        if not isinstance(var, T.Var):
            what = "void" if entry.type == 0 else f"a {var.KIND.name}"
            raise ObjectError(f"the BTF of section {section} lists type {entry.type}, "
                              f"{what}, where a variable belongs")
        return var

    def _btf_map(self, name, type_id, inner=False):
        btf = self.obj.btf
        where = f"map {name!r}" + (" (inner map)" if inner else "")
        t = btf.type(btf.resolve(type_id))
        if not isinstance(t, T.Struct):
            raise ObjectError(f"{where}: its BTF type is a {t.KIND.name}, not a struct of "
                              f"__uint/__type/__array definitions")
        spec = MapSpec(name, MapType.UNSPEC, 0, 0, 0, section=".maps")
        for m in t.members:
            kind = m.name
            if kind in ("type", "max_entries", "map_flags", "numa_node", "pinning",
                        "map_extra", "key_size", "value_size"):
                value = self._uint_member(where, m)
                if kind == "type":
                    spec.type = _map_type(value, name)
                elif kind == "map_flags":
                    spec.flags = value
                elif kind == "numa_node":
                    spec.numa_node = value
                else:
                    setattr(spec, kind, value)
            elif kind in ("key", "value"):
                target = self._pointee(where, m)
                size = btf.size_of(target)
                setattr(spec, f"{kind}_size", size)
                setattr(spec, f"btf_{kind}_type_id", target)
            elif kind == "values":
                arr = btf.type(btf.resolve(m.type))
                if not isinstance(arr, T.Array):
                    raise ObjectError(f"{where}: 'values' must be an array (__array)")
                elem = btf.type(btf.resolve(arr.type))
                if not isinstance(elem, T.Ptr):
                    raise ObjectError(f"{where}: 'values' must be an array of pointers")
                target = btf.type(btf.resolve(elem.type))
                if isinstance(target, T.Struct):
                    spec.inner = self._btf_map(name + ".inner", elem.type, inner=True)
            else:
                raise ObjectError(f"{where}: unknown map attribute {kind!r} (known: type, "
                                  f"key, value, key_size, value_size, max_entries, "
                                  f"map_flags, numa_node, pinning, map_extra, values)")
        if spec.type == MapType.UNSPEC:
            raise ObjectError(f"{where}: no map type (__uint(type, BPF_MAP_TYPE_...))")
        if spec.pinning not in (PIN_NONE, LIBBPF_PIN_BY_NAME):
            raise ObjectError(f"{where}: pinning {spec.pinning} is not a pinning mode (0: "
                              f"none, {LIBBPF_PIN_BY_NAME}: LIBBPF_PIN_BY_NAME)")
        if spec.type in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
            if spec.inner is None:
                raise ObjectError(f"{where}: a map-in-map needs __array(values, struct "
                                  f"{{...}}) describing its inner maps")
            spec.value_size = spec.value_size or 4
        if spec.type in (MapType.PROG_ARRAY,):
            spec.value_size = spec.value_size or 4
        if spec.type in (MapType.PROG_ARRAY, MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS,
                         MapType.PERF_EVENT_ARRAY):
            spec.key_size = spec.key_size or 4
            spec.value_size = spec.value_size or 4
            spec.btf_key_type_id = spec.btf_value_type_id = 0
        return spec

    def _pointee(self, where, member):
        btf = self.obj.btf
        ptr = btf.type(btf.resolve(member.type))
        if not isinstance(ptr, T.Ptr):
            raise ObjectError(f"{where}: '{member.name}' must be a pointer (__type)")
        return ptr.type

    def _uint_member(self, where, member):
        """__uint(name, N) is ``int (*name)[N]``: the array's length is the value."""
        btf = self.obj.btf
        ptr = btf.type(btf.resolve(member.type))
        arr = btf.type(btf.resolve(ptr.type)) if isinstance(ptr, T.Ptr) else None
        if not isinstance(arr, T.Array):
            raise ObjectError(f"{where}: '{member.name}' must be declared with __uint()")
        return arr.nelems

    def _read_struct_ops(self):
        """``.struct_ops`` variables: one STRUCT_OPS map each (programs are bound to
        their members by the section's relocations, see _struct_ops_relocs)."""
        self.struct_ops_offsets = {}
        for sec in self.elf.sections:
            if not _is_struct_ops(sec.name) or not sec.size:
                continue
            btf = self.obj.btf
            ids = btf.find(sec.name, "datasec") if btf is not None else []
            if not ids:
                raise ObjectError(f"section {sec.name} needs BTF describing its variables; "
                                  f"compile with clang -g")
            if sec.type == E.SHT_NOBITS:  # clang never writes one: the table has pointers
                raise ObjectError(f"section {sec.name} takes no room in the file "
                                  f"(SHT_NOBITS), so it initialises no struct_ops table")
            data = sec.data
            for v in btf.type(ids[0]).vars:
                var = self._datasec_var(sec.name, v)
                local = btf.resolve(var.type)
                t = btf.type(local)
                if not isinstance(t, T.Struct) or not t.name:
                    raise ObjectError(f"{sec.name} variable {var.name!r} is not a named "
                                      f"struct (it must be a kernel ops struct)")
                sym = next((s for s in self.symbols if s.shndx == sec.index and
                            s.name == var.name), None)
                if sym is None or sym.value + t.size > sec.size:
                    raise ObjectError(f"{sec.name} variable {var.name!r} has no symbol or "
                                      f"lies outside its section")
                self.obj.maps[var.name] = MapSpec(
                    var.name, MapType.STRUCT_OPS, 4, 0, 1, section=sec.name,
                    struct_ops=StructOps(t.name, local,
                                         bytes(data[sym.value:sym.value + t.size])))
                self.struct_ops_offsets.setdefault(sec.name, {})[var.name] = sym.value

    def _struct_ops_relocs(self, section, relos):
        """Each relocation in .struct_ops stores a program's address into a function
        pointer member: that program implements that member."""
        obj, btf = self.obj, self.obj.btf
        owners = self.struct_ops_offsets.get(section.name, {})
        for r in relos:
            owner = max(((off, n) for n, off in owners.items() if off <= r.offset),
                        default=None)
            sym = r.symbol
            if owner is None or sym is None:
                raise ObjectError(f"{section.name} relocation at {r.offset:#x} belongs to "
                                  f"no variable")
            base, name = owner
            ops = obj.maps[name].struct_ops
            member = next((m for m in btf.members(ops.type_id)
                           if m.bit_offset == (r.offset - base) * 8), None)
            prog = next((p for p in obj.programs.values()
                         if p.section == sym.section_name and
                         p.function.start * INSN == sym.value), None)
            if member is None or prog is None:
                raise ObjectError(f"{section.name}: {name}+{r.offset - base:#x} must point "
                                  f"a member of struct {ops.type_name} at a SEC(\"struct_ops/"
                                  f"...\") program, not at {sym.name!r}")
            ops.programs[member.name] = prog.name

    # -- externs ---------------------------------------------------------------

    def _read_externs(self):
        btf = self.obj.btf
        for sym in self.symbols:
            if sym.shndx != E.SHN_UNDEF or not sym.name or sym.bind not in (E.STB_GLOBAL,
                                                                           E.STB_WEAK):
                continue
            section, type_id = self._extern_section(sym.name)
            self.obj.externs[sym.name] = Extern(sym.name, section, sym.bind == E.STB_WEAK,
                                                type_id)
        kconfig = [e for e in self.obj.externs.values() if e.section == KCONFIG]
        offset = 0
        for ext in sorted(kconfig, key=lambda e: e.name):
            ext.size = btf.size_of(ext.btf_type_id) if btf is not None else 8
            align = min(8, ext.size) or 1
            offset = (offset + align - 1) // align * align
            ext.offset = offset
            offset += ext.size
        if kconfig:
            _check_array_value("the .kconfig externs", offset)
            self.obj.maps[KCONFIG] = MapSpec(
                KCONFIG, MapType.ARRAY, 4, max(offset, 1), 1,
                BPF_F_MMAPABLE | BPF_F_RDONLY_PROG, data=bytearray(max(offset, 1)),
                section=KCONFIG)

    def _extern_section(self, name):
        """Which extern section the object's BTF files name under, and its type id."""
        btf = self.obj.btf
        if btf is None:
            return KSYMS, 0
        for sec_name in (KCONFIG, KSYMS):
            for sec_id in btf.find(sec_name, "datasec"):
                for v in btf.type(sec_id).vars:
                    t = btf.type(v.type)
                    if t.name == name:
                        return sec_name, (t.type if isinstance(t, T.Var) else v.type)
        # Not declared __ksym/__kconfig: defined by another object (see Extern).
        ids = btf.find(name, "func")
        return "", (ids[0] if ids else 0)

    # -- relocations -------------------------------------------------------------

    def _read_relocations(self):
        obj, elf = self.obj, self.elf
        by_index = {s.index: s for s in elf.sections}
        for target_index, relos in elf.relocations().items():
            target = by_index[target_index]
            if target.name == ".maps":
                self._map_init_values(relos)
                continue
            if _is_struct_ops(target.name):
                self._struct_ops_relocs(target, relos)
                continue
            if target.name not in obj.code:
                continue  # debug info and the like
            for r in relos:
                if r.type in (E.R_BPF_NONE, E.R_BPF_64_NODYLD32):
                    continue
                obj.relocs[target.name][r.offset // INSN] = self._code_reloc(target, r)

    def _code_reloc(self, section, r):
        where = f"relocation at {section.name}+{r.offset:#x}"
        if r.offset % INSN or r.offset + INSN > section.size:
            raise ObjectError(f"{where}: not at an instruction")
        sym = r.symbol
        if sym is None:
            raise ObjectError(f"{where}: has no symbol")
        code = self.obj.code[section.name]
        slot = r.offset // INSN
        opcode = code[r.offset]
        imm = struct.unpack_from("<i" if self.elf.byteorder == "little" else ">i",
                                 code, r.offset + 4)[0]
        is_ld64 = opcode == LD_IMM64
        is_call = opcode == CALL
        if not (is_ld64 or is_call):
            raise ObjectError(f"{where}: relocates a {opcode:#04x} instruction; only "
                              f"ld_imm64 and call can be relocated")
        if is_ld64 and r.offset + 2 * INSN > section.size:
            raise ObjectError(f"{where}: ld_imm64 is cut off at the end of the section")
        if sym.shndx == E.SHN_UNDEF:
            ext = self.obj.externs.get(sym.name)
            if ext is None:
                raise ObjectError(f"{where}: refers to undefined symbol {sym.name!r}")
            return Reloc(slot, "kfunc" if is_call else "extern_var", sym.name)
        if sym.shndx >= len(self.elf.sections):  # SHN_ABS, SHN_COMMON: no section's data
            raise ObjectError(f"{where}: refers to {sym.name!r}, which lies in no section "
                              f"(section index {sym.shndx:#x})")
        sec = self.elf.sections[sym.shndx]
        if sec.name in self.obj.code:
            # Code: a bpf-to-bpf call or the address of a callback function.
            if is_call:
                if (code[r.offset + 1] >> 4) != BPF_PSEUDO_CALL:
                    raise ObjectError(f"{where}: a helper call cannot be relocated")
                target_slot = sym.value // INSN + imm + 1
                return Reloc(slot, "call", (sec.name, target_slot))
            return Reloc(slot, "func", (sec.name, (sym.value + imm) // INSN))
        if not is_ld64:
            raise ObjectError(f"{where}: a call to non-code symbol {sym.name!r}")
        if sec.name in (".maps", "maps"):
            name = self._symbol_name_at(sec, sym)
            if name not in self.obj.maps:
                raise ObjectError(f"{where}: refers to {name!r} in section {sec.name!r}, "
                                  f"which defines no such map")
            return Reloc(slot, "map", name)
        if sec.name in self.obj.maps and self.obj.maps[sec.name].is_data:
            return Reloc(slot, "map_value", sec.name, sym.value + imm)
        raise ObjectError(f"{where}: refers to {sym.name or sec.name!r} in section "
                          f"{sec.name!r}, which is neither code, a map nor global data")

    def _symbol_name_at(self, sec, sym):
        """The named symbol for a reference that may use the section symbol."""
        if sym.type != E.STT_SECTION and sym.name:
            return sym.name
        for s in self.symbols:
            if s.shndx == sec.index and s.value == sym.value and s.name and \
                    s.type != E.STT_SECTION:
                return s.name
        raise ObjectError(f"no map symbol at offset {sym.value} of section {sec.name!r}")

    def _map_init_values(self, relos):
        """``.values = { [i] = &prog_or_map }`` in .maps: 8-byte pointer slots after the
        map struct's other members, each a relocation against the referenced symbol."""
        obj = self.obj
        btf = obj.btf
        for r in relos:
            owner = max(((off, n) for n, off in self.map_offsets.items() if off <= r.offset),
                        default=None)
            if owner is None or r.symbol is None:
                raise ObjectError(f".maps relocation at {r.offset:#x} belongs to no map")
            base, name = owner
            spec = obj.maps[name]
            var_type = btf.type(btf.find(name, "var")[0]).type
            values = next((m for m in btf.members(var_type) if m.name == "values"), None)
            if values is None:
                raise ObjectError(f"map {name!r}: a relocation at {r.offset:#x} initialises "
                                  f"it, but it has no 'values' member")
            slot = (r.offset - base - values.bit_offset // 8) // 8
            if slot < 0:
                raise ObjectError(f"map {name!r}: initial value relocation before 'values'")
            target = r.symbol.name
            # Programs may not be loaded (SEC("?...")): the loader skips those. A map
            # must exist.
            known = obj.programs if spec.type == MapType.PROG_ARRAY else obj.maps
            if target not in known:
                raise ObjectError(f"map {name!r}: .values[{slot}] refers to {target!r}, "
                                  f"which is no {'program' if known is obj.programs else 'map'}"
                                  f" of this object")
            spec.init_values[slot] = target


def _check_array_value(what, size):
    """Refuse, before anything is allocated for it, data that no array map can hold."""
    if size > ARRAY_VALUE_MAX:
        raise ObjectError(f"{what} is {size} bytes, but it becomes the value of a "
                          f"one-element array map, which the kernel limits to "
                          f"{ARRAY_VALUE_MAX} bytes")


def _is_struct_ops(name):
    return name == STRUCT_OPS or name.startswith(STRUCT_OPS + ".")


def _is_data_section(sec):
    if not sec.size or sec.flags & E.SHF_EXECINSTR:
        return False
    if sec.type not in (E.SHT_PROGBITS, E.SHT_NOBITS):
        return False
    return any(sec.name == p or sec.name.startswith(p + ".") for p in DATA_PREFIXES)


def _map_type(value, name):
    try:
        return MapType(value)
    except ValueError:
        raise ObjectError(f"map {name!r} has map type {value}, which pybpf's constants "
                          f"(generated from the installed UAPI header) do not name") from None


def iter_insns(code, byteorder):
    """(slot, opcode, src_reg, imm) for each slot of a code section's bytes."""
    order = "<" if byteorder == "little" else ">"
    for slot in range(len(code) // INSN):
        op, regs, _off, imm = struct.unpack_from(order + "BBhi", code, slot * INSN)
        src = regs >> 4 if byteorder == "little" else regs & 0xF
        yield slot, op, src, imm

