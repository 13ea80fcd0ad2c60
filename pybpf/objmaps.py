"""Map definitions in an object: BTF ``.maps``, the legacy ``maps`` section, and
``.struct_ops`` tables, with the ``.values`` that initialise prog arrays and
map-in-maps.

They are read here apart from the code because their rules are clang's and libbpf's
encodings (``__uint``/``__type``/``__array`` as BTF pointer and array types, struct
bpf_map_def records), which nothing else in the object shares. A mixin of
:class:`pybpf.objfile._Parser`: it uses the parser's ``elf``, ``obj`` and ``symbols``.
"""
import dataclasses
import struct

from . import elf as E
from .btf import types as T
from .kernel.constants import MapType
from .specs import ARENA_SECTION, INSN, LIBBPF_PIN_BY_NAME, MapSpec, ObjectError, StructOps

STRUCT_OPS = ".struct_ops"
# struct bpf_map_def: type, key_size, value_size, max_entries, map_flags (u32 each).
LEGACY_MAP_DEF = 20
# Map "pinning" values libbpf defines; any other value is an error there too.
PIN_NONE = 0
_INT_FORMATS = {1: "B", 2: "H", 4: "I", 8: "Q"}


class MapReader:
    """The parser's map-definition half (see the module's doc)."""

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
        """__uint(name, N) is ``int (*name)[N]``: the array's length is the value.
        __ulong(name, N) (libbpf 1.4+, for 64-bit values such as an arena's map_extra)
        is a member of an anonymous enum type whose one enumerator is N."""
        btf = self.obj.btf
        t = btf.type(btf.resolve(member.type))
        if isinstance(t, (T.Enum, T.Enum64)) and len(t.values) == 1:
            return t.values[0].value & 0xFFFFFFFFFFFFFFFF
        arr = btf.type(btf.resolve(t.type)) if isinstance(t, T.Ptr) else None
        if not isinstance(arr, T.Array):
            raise ObjectError(f"{where}: '{member.name}' must be declared with __uint() "
                              f"or __ulong()")
        return arr.nelems

    def _read_arena(self):
        """``__arena`` globals (clang's .addr_space.1) live in the object's one ARENA map,
        as libbpf requires; their initial bytes go with its spec."""
        arenas = [name for name, m in self.obj.maps.items() if m.type == MapType.ARENA]
        if len(arenas) > 1:
            raise ObjectError(f"the object defines {len(arenas)} arena maps "
                              f"({', '.join(arenas)}); pybpf, like libbpf, supports one")
        sec = self.elf.section(ARENA_SECTION)
        if sec is None:
            return
        if not arenas:
            raise ObjectError(f"the object has __arena globals ({ARENA_SECTION}) but no "
                              f"arena map: define one (__uint(type, BPF_MAP_TYPE_ARENA))")
        name = arenas[0]
        if sec.size > ARENA_MAX:
            raise ObjectError(f"{ARENA_SECTION} claims {sec.size} bytes; an arena holds at "
                              f"most {ARENA_MAX} (4 GiB)")
        data = bytes(sec.size) if sec.type == E.SHT_NOBITS else bytes(sec.view)
        self.obj.maps[name] = dataclasses.replace(self.obj.maps[name], arena_data=data)
        self.obj.arena_map = name

    def _read_struct_ops(self):
        """``.struct_ops`` variables: one STRUCT_OPS map each (programs are bound to
        their members by the section's relocations, see _struct_ops_relocs)."""
        self.struct_ops_offsets = {}
        for sec in self.elf.sections:
            if not is_struct_ops(sec.name) or not sec.size:
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



# An arena spans at most 4 GiB of user address space (kernel/bpf/arena.c).
ARENA_MAX = 1 << 32


def is_struct_ops(name):
    return name == STRUCT_OPS or name.startswith(STRUCT_OPS + ".")


def _map_type(value, name):
    """MapType, or the number of a type newer than pybpf's constants: such a map is
    created as defined and the kernel judges it (a kernel that knows the type loads
    the object; one that does not refuses it with EINVAL)."""
    try:
        return MapType(value)
    except ValueError:
        return value



def int_format(btf, type_id, size):
    """A struct format for an integer key or value (so m[1] works), else None (bytes)."""
    if btf is None or not type_id or not size:
        return None
    t = btf.type(btf.resolve(type_id))
    if isinstance(t, (T.Int, T.Enum)) and t.size == size and size in _INT_FORMATS:
        fmt = _INT_FORMATS[size]
        return fmt.lower() if t.signed else fmt
    return None
