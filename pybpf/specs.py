"""What a BPF object asks for, as plain values: programs, maps, externs, globals.

Parsing (:mod:`pybpf.objfile`) fills these in and nothing changes them afterwards:
the loader works on copies, so one parsed object can be loaded twice, or into two
kernels, and still compares equal to what it was. Each spec is self-contained: a
program holds its own linked instructions and names what they refer to, a map holds
every attribute its creation needs, so neither points back into the ELF file.
"""
import dataclasses
from collections import namedtuple
from typing import Dict, Optional, Tuple

from . import sections
from .errors import InputError
from .kernel.constants import BPF_CALL, BPF_JMP, MapType

INSN = 8
LD_IMM64 = 0x18
CALL = BPF_JMP | BPF_CALL
LIBBPF_PIN_BY_NAME = 1
KCONFIG = ".kconfig"
KSYMS = ".ksyms"
# Where clang puts __arena globals (address_space(1)): memory of the object's arena map.
ARENA_SECTION = ".addr_space.1"


class ObjectError(InputError):
    """The object file is not something pybpf can load; the message says what and where."""


@dataclasses.dataclass
class MapSpec:
    """A map the object defines, before it exists in the kernel.

    ``key_format``/``value_format`` are the struct formats of integer keys and
    values the object's BTF describes (so ``m[1]`` works), None for raw bytes.
    ``kernel_name`` is the name asked of the kernel before its byte rules apply:
    data maps are called <object>.<section>, as libbpf calls them."""
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
    key_format: Optional[str] = None
    value_format: Optional[str] = None
    kernel_name: str = ""
    # The kernel's type of a STRUCT_OPS value: known only once loading has the
    # kernel's BTF, so set on the loader's copy.
    btf_vmlinux_value_type_id: int = 0
    # An ARENA map's initial contents: the object's __arena globals, which the loader
    # writes at the arena's last pages (where libbpf puts them) before any program loads.
    arena_data: Optional[bytes] = None

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
    pair for code, or an extern's name. In a ProgramSpec's ``relocs`` the slot is the
    linked program's and calls are already resolved, so only names remain.
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


# Where a function of the object lies in a linked program: its first slot there.
Placement = namedtuple("Placement", "function base")
# A CO-RE record of the object (``index`` among its section's records, as messages
# number them) for the instruction now at ``slot`` of a linked program.
CoreSite = namedtuple("CoreSite", "section index relo slot")


@dataclasses.dataclass
class ProgramSpec:
    """A program entry point with everything its load needs but the kernel's answers.

    ``insns`` is the program followed by every subprogram it reaches (see
    :mod:`pybpf.linker`), calls already pointing at their callees; ``relocs`` (by
    slot of ``insns``) name the maps and externs the loader fills in, ``core_sites``
    the CO-RE records to apply against the kernel's BTF. ``layout`` says where each
    function landed, and func_info/line_info are ``(bytes, record size)`` for it.
    """
    name: str
    section_def: sections.SectionDef
    function: Function
    insns: bytes = b""
    layout: Tuple[Placement, ...] = ()
    relocs: Dict[int, Reloc] = dataclasses.field(default_factory=dict)
    core_sites: Tuple[CoreSite, ...] = ()
    func_info: Optional[tuple] = None
    line_info: Optional[tuple] = None
    license: str = ""
    kern_version: Optional[int] = None

    @property
    def section(self):
        return self.function.section

    @property
    def subprograms(self):
        """Names of the functions linked in after the program itself, in order."""
        return [p.function.name for p in self.layout[1:]]


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
