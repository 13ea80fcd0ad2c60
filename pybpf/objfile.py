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
import os
import struct
import sys
from typing import Dict, List, Optional

from . import elf as E
from . import linker
from . import sections
from .btf import Btf, BtfError
from .btf.ext import BtfExt
from .kernel import files
from .kernel.constants import BPF_PSEUDO_CALL
from .objglobals import GlobalsReader
from .objmaps import MapReader, int_format, is_struct_ops
# The specs' names stay importable from here, where they used to be defined.
from .specs import (ARENA_SECTION, CALL, INSN, KCONFIG, KSYMS, LD_IMM64,  # noqa: F401
                    LIBBPF_PIN_BY_NAME,
                    CoreSite, Extern, Function, MapSpec, ObjectError, Placement,
                    ProgramSpec, Reloc, StructOps, Variable)


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
        # What parsing read the programs from; the programs hold their own copies.
        self.code: Dict[str, bytes] = {}
        self.relocs: Dict[str, Dict[int, Reloc]] = {}
        self.functions: Dict[str, List[Function]] = {}
        # Global subprograms with hidden visibility (__hidden): the loader marks them
        # static in the BTF it loads (see _read_code).
        self.hidden_functions: List[str] = []
        self.arena_map: Optional[str] = None  # the ARENA map holding __arena globals
        self.btf: Optional[Btf] = None
        self.btf_ext: Optional[BtfExt] = None
        # What BTF DATASECs need from the ELF (clang leaves their sizes at 0).
        self.section_sizes: Dict[str, int] = {}
        self.symbol_offsets: Dict[tuple, int] = {}
        self.byteorder = sys.byteorder

    @classmethod
    def from_path(cls, path, name=None):
        data = files.read_regular_file(path)
        return cls.parse(data, name or os.path.basename(path).split(".")[0] or "obj")

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


class _Parser(MapReader, GlobalsReader):
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
        # Either byte order parses (a big-endian appliance's objects can be inspected
        # on a little-endian build machine); BpfObject.load refuses a foreign one.
        obj.byteorder = elf.byteorder
        self.symbols = elf.symbols()
        self._read_btf()
        self._read_license()
        self._read_code()
        self._read_data_maps()
        self._read_legacy_maps()
        self._read_btf_maps()
        self._read_struct_ops()
        self._read_arena()
        self._read_externs()
        self._read_relocations()
        self._read_datasec_layout()
        linker.link_programs(obj)
        _describe_maps(obj)
        return obj

    def _read_datasec_layout(self):
        obj = self.obj
        wanted = set(obj.maps) | {".maps", "license", "maps", ARENA_SECTION} | {
            sec.name for sec in self.elf.sections if is_struct_ops(sec.name)}
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
            obj.code[sec.name] = bytes(sec.data)
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

    def _read_relocations(self):
        obj, elf = self.obj, self.elf
        by_index = {s.index: s for s in elf.sections}
        for target_index, relos in elf.relocations().items():
            target = by_index[target_index]
            if target.name == ".maps":
                self._map_init_values(relos)
                continue
            if is_struct_ops(target.name):
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
        if sec.name == ARENA_SECTION:
            return Reloc(slot, "arena", self.obj.arena_map, sym.value + imm)
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

def _describe_maps(obj):
    """What creating each map needs beyond its definition: the key and value formats
    of its BTF types and the name to ask of the kernel."""
    for mspec in obj.maps.values():
        for m in (mspec, mspec.inner) if mspec.inner is not None else (mspec,):
            m.key_format = int_format(obj.btf, m.btf_key_type_id, m.key_size)
            m.value_format = int_format(obj.btf, m.btf_value_type_id, m.value_size)
            m.kernel_name = m.name
        if mspec.is_data:
            prefix = obj.name[:min(8, 15 - min(len(mspec.name), 7))]
            mspec.kernel_name = prefix + mspec.name


def iter_insns(code, byteorder):
    """(slot, opcode, src_reg, imm) for each slot of a code section's bytes."""
    order = "<" if byteorder == "little" else ">"
    for slot in range(len(code) // INSN):
        op, regs, _off, imm = struct.unpack_from(order + "BBhi", code, slot * INSN)
        src = regs >> 4 if byteorder == "little" else regs & 0xF
        yield slot, op, src, imm

