"""Global data and externs in an object: ``.data``/``.rodata``/``.bss`` (and their
``.*`` variants) as one-element array maps with their variables, and the ``extern``
symbols the loader resolves, ``.kconfig`` values laid out in a map of their own.

Both become maps whose single value is an image the loader writes before any program
sees it, which is why they are read together and apart from map definitions. A
mixin of :class:`pybpf.objfile._Parser`: it uses the parser's ``elf``, ``obj`` and
``symbols``.
"""
from . import elf as E
from .btf import types as T
from .dataimage import ZeroImage
from .kernel.constants import BPF_F_MMAPABLE, BPF_F_RDONLY_PROG, MapType
from .specs import KCONFIG, KSYMS, Extern, MapSpec, ObjectError, Variable

DATA_PREFIXES = (".data", ".rodata", ".bss")
# The largest value of an array map (kernel/bpf/arraymap.c, array_map_alloc_check()):
# global data and .kconfig become one-element arrays, so no section may be larger.
ARRAY_VALUE_MAX = 0x7FFFFFFF


class GlobalsReader:
    """The parser's global-data and extern half (see the module's doc)."""

    def _read_data_maps(self):
        """.data/.rodata/.bss (and their .* variants) become one-element array maps."""
        obj = self.obj
        for sec in self.elf.sections:
            if not is_data_section(sec):
                continue
            readonly = sec.name.startswith(".rodata")
            check_array_value(f"section {sec.name}", sec.size)
            # .bss takes no room in the file, so its header may claim any size: hold only
            # what is written before load. Other sections: one copy of the file's bytes.
            data = ZeroImage(sec.size) if sec.type == E.SHT_NOBITS else bytearray(sec.view)
            value_id = self._datasec_id(sec.name)
            flags = (BPF_F_MMAPABLE if self._mmapable(sec, value_id) else 0) | \
                (BPF_F_RDONLY_PROG if readonly else 0)
            obj.maps[sec.name] = MapSpec(
                name=sec.name, type=MapType.ARRAY, key_size=4, value_size=sec.size,
                max_entries=1, flags=flags, btf_value_type_id=value_id, data=data,
                section=sec.name)
            for sym in self.symbols:
                if sym.shndx == sec.index and sym.type == E.STT_OBJECT and sym.name:
                    obj.variables[sym.name] = Variable(
                        sym.name, sec.name, sym.value, sym.size, self._var_type(sym.name))

    def _mmapable(self, sec, datasec_id):
        """Whether a data section's map is BPF_F_MMAPABLE, by libbpf's rule: it holds a
        variable that is neither static nor hidden (``__hidden``: ELF visibility hidden
        or internal), one a skeleton's user would map. The kernel refuses to create a
        mapped map whose value holds special fields (a bpf_spin_lock, an rb_root), and
        objects keep those in sections of hidden variables (selftests' private(NAME)),
        so the rule is what lets them load."""
        if not datasec_id:
            return False
        btf = self.obj.btf
        hidden = {s.name for s in self.symbols if s.shndx == sec.index and
                  s.visibility in (E.STV_HIDDEN, E.STV_INTERNAL)}
        for entry in btf.type(datasec_id).vars:
            var = btf.type(entry.type)
            if getattr(var, "linkage", T.VAR_STATIC) != T.VAR_STATIC and \
                    var.name not in hidden:
                return True
        return False

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
            check_array_value("the .kconfig externs", offset)
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


def check_array_value(what, size):
    """Refuse, before anything is allocated for it, data that no array map can hold."""
    if size > ARRAY_VALUE_MAX:
        raise ObjectError(f"{what} is {size} bytes, but it becomes the value of a "
                          f"one-element array map, which the kernel limits to "
                          f"{ARRAY_VALUE_MAX} bytes")


def is_data_section(sec):
    if not sec.size or sec.flags & E.SHF_EXECINSTR:
        return False
    if sec.type not in (E.SHT_PROGBITS, E.SHT_NOBITS):
        return False
    return any(sec.name == p or sec.name.startswith(p + ".") for p in DATA_PREFIXES)

