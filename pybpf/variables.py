"""Global variables of a loaded object, and the images of its data sections.

``obj.variables`` reads and sets globals by name like a libbpf skeleton: before load
in the initial images the loader will write into the data maps, after load through a
shared mapping of the live maps. Here too: writing those images into new maps
without copies of their size, and the values of ``.kconfig`` externs.
"""
import struct

from . import args
from . import objfile as O
from .btf import types as T
from .dataimage import ZeroImage
from .errors import InputError, MissingError, UnsupportedError
from .kernel import bpf as kbpf
from .kernel import arena, cpus, kconfig, release
from .kernel.constants import BPF_F_MMAPABLE, BPF_F_RDONLY_PROG


class Variables:
    """Global variables by name, like a libbpf skeleton: read and set before load (the
    initial image) and after load through a shared mapping of the live data map
    (BPF_F_MMAPABLE), so reads and writes cost no syscall and programs see writes at
    once. .rodata is frozen at load: writing it then fails as the kernel says."""

    def __init__(self, obj):
        self._obj = obj
        self._views = {}  # section -> mmap of the loaded map
        self._writable = set()  # sections whose mapping is writable (not frozen)

    def __contains__(self, name):
        return name in self._obj.spec.variables

    def __iter__(self):
        return iter(self._obj.spec.variables)

    def __getitem__(self, name):
        return _decode_var(self._var(name), self.raw(name), self._obj.spec.btf)

    def raw(self, name):
        """The bytes of global name (what ``[name]`` decodes), for decoders that read
        them through BTF (pybpf.btf.values)."""
        var = self._var(name)
        image = self._view(var.section)
        if image is None:
            image = self._obj.spec.maps[var.section].data
        return bytes(image[var.offset:var.offset + var.size])

    def __setitem__(self, name, value):
        var = self._var(name)
        raw = _encode_var(var, value, self._obj.spec.btf)
        m = self._obj.maps.get(var.section)
        if m is None:
            self._obj.spec.maps[var.section].data[var.offset:var.offset + var.size] = raw
            return
        view, writable = self._view(var.section), var.section in self._writable
        if view is not None and writable:
            view[var.offset:var.offset + var.size] = raw
            return
        # Frozen (the kernel refuses this with the reason) or not mappable: an update.
        image = bytearray(m[0])
        image[var.offset:var.offset + var.size] = raw
        m[0] = bytes(image)

    def _var(self, name):
        try:
            return self._obj.spec.variables[name]
        except KeyError:
            raise MissingError(f"no global variable {name!r} (has: "
                               f"{', '.join(self._obj.spec.variables) or 'none'})") from None

    def _view(self, section):
        """The live mapping of a loaded data map (None before load), or its value read
        now when the map cannot be mapped (no non-static variable: see objglobals)."""
        m = self._obj.maps.get(section)
        if m is None:
            return None
        if not m.flags & BPF_F_MMAPABLE:
            return m[0]
        if section not in self._views:
            self._views[section] = m.mmap()  # read-only when the map is frozen
            if not m.info().frozen:
                self._writable.add(section)
        return self._views[section]

    def close(self):
        for view in self._views.values():
            view.close()
        self._views, self._writable = {}, set()


def _int_type(var, btf):
    """(size, signed) when the variable is a plain integer (or enum), else None."""
    if btf is None or not var.btf_type_id:
        return None
    t = btf.type(btf.resolve(var.btf_type_id))
    if isinstance(t, T.Int) and t.size in (1, 2, 4, 8):
        return t.size, t.signed
    if isinstance(t, (T.Enum, T.Enum64)):
        return t.size, t.signed
    return None


def _decode_var(var, raw, btf):
    it = _int_type(var, btf)
    if it is None:
        return raw
    return int.from_bytes(raw, "little" if struct.pack("=H", 1)[0] else "big", signed=it[1])


def _encode_var(var, value, btf):
    if isinstance(value, (bytes, bytearray)):
        if len(value) != var.size:
            raise InputError(f"variable {var.name!r} is {var.size} bytes, got {len(value)}")
        return bytes(value)
    it = _int_type(var, btf)
    if it is None:
        raise UnsupportedError(f"variable {var.name!r} is not an integer; assign {var.size} bytes")
    value = args.integer(value, f"variable {var.name!r}")
    try:
        return value.to_bytes(it[0], "little" if struct.pack("=H", 1)[0] else "big",
                              signed=it[1])
    except OverflowError:
        raise InputError(f"{value} does not fit variable {var.name!r} "
                         f"({it[0]} bytes, {'signed' if it[1] else 'unsigned'})") from None


# Externs libbpf itself provides, with the values that hold for kernels pybpf supports.
_LIBBPF_KCONFIG = {"LINUX_HAS_BPF_COOKIE": 1, "LINUX_HAS_SYSCALL_WRAPPER": 1}


def _kconfig_bytes(ext, value, btf, warnings):
    """Encode a kconfig value ("y"/"m"/"n", a number, a string) for extern ext. A
    string longer than its char array is cut to fit, NUL included, with a warning
    appended to warnings: libbpf does the same, and objects written for it expect
    to load (CONFIG_DEFAULT_HOSTNAME into a char[4], say)."""
    if isinstance(value, str):
        v = value.strip()
        if v in ("y", "m", "n"):
            t = btf.type(btf.resolve(ext.btf_type_id)) if btf is not None else None
            if isinstance(t, T.Enum):  # enum libbpf_tristate
                value = {"y": 1, "n": 0, "m": 2}[v]
            elif v == "m":
                raise O.ObjectError(f"{ext.name} is 'm' (a module) but is declared bool; "
                                    f"declare it enum libbpf_tristate")
            else:
                value = 1 if v == "y" else 0
        elif v.startswith('"'):
            raw = v.strip('"').encode() + b"\0"
            if len(raw) > ext.size:
                if ext.size == 0:
                    raise O.ObjectError(f"{ext.name}={v}: its char array has no room")
                warnings.append(f"extern {ext.name} (.kconfig): {v} ({len(raw) - 1} "
                                f"bytes) truncated to {ext.size - 1} bytes to fit its "
                                f"char[{ext.size}], as libbpf does")
                raw = raw[:ext.size - 1] + b"\0"
            return raw.ljust(ext.size, b"\0")
        else:
            value = int(v, 0)
    try:
        return int(value).to_bytes(ext.size, "little" if struct.pack("=H", 1)[0] else "big",
                                   signed=int(value) < 0)
    except OverflowError:
        raise O.ObjectError(f"{ext.name}={value} does not fit in {ext.size} bytes") from None


def kconfig_image(spec, overrides, warnings=None):
    """A copy of the .kconfig image with the value of every .kconfig extern (None
    without externs): overrides first, then the running kernel's config and version,
    then what libbpf provides. The spec's own image stays as parsed. What was changed
    to fit (long strings) is said in the list warnings, when given."""
    warnings = [] if warnings is None else warnings
    if O.KCONFIG not in spec.maps:
        return None
    data = bytearray(spec.maps[O.KCONFIG].data)
    config = None
    for ext in (e for e in spec.externs.values() if e.section == O.KCONFIG):
        if ext.name in overrides:
            value = overrides[ext.name]
        elif ext.name == "LINUX_KERNEL_VERSION":
            value = release.kernel_version_code()
        elif ext.name.startswith("CONFIG_"):
            if config is None:
                config = kconfig.kernel_config()[0] or {}
            value = config.get(ext.name)
        else:
            value = _LIBBPF_KCONFIG.get(ext.name)
        if value is None:
            if ext.weak:
                continue
            raise O.ObjectError(
                f"extern {ext.name!r} (.kconfig) has no value: this kernel's config "
                f"does not set it; declare it __weak or pass kconfig={{{ext.name!r}: ...}}")
        data[ext.offset:ext.offset + ext.size] = _kconfig_bytes(ext, value, spec.btf, warnings)
    return data


def write_image(m, image):
    """Copy a global data section's initial image into its (mmapable) map.

    A writable section goes through a shared mapping of just the part written, straight
    from the image, and of a .bss only the pages written before load (the kernel hands
    out the map zeroed): nothing of the section's size is copied or mapped. A
    read-only one (.rodata, .kconfig: BPF_F_RDONLY_PROG, which the kernel will not map
    writable) is one update of the whole value; those are file bytes, or small.
    """
    chunks = list(image.written()) if isinstance(image, ZeroImage) else [(0, image)]
    if not chunks:
        return
    if m.flags & BPF_F_RDONLY_PROG or not m.flags & BPF_F_MMAPABLE:
        m.update(0, image[0:len(image)])
        return
    page = cpus.page_size()
    for offset, data in chunks:
        start = offset // page * page
        view = kbpf.mmap(m.fd, offset + len(data) - start, writable=True, offset=start)
        try:
            view[offset - start:offset - start + len(data)] = data
        finally:
            view.close()


def arena_base(mspec):
    """Byte offset in its arena of an object's __arena globals: its last pages, where
    libbpf puts them, so objects built for libbpf find them where they expect."""
    page = cpus.page_size()
    used = (len(mspec.arena_data or b"") + page - 1) // page * page
    base = mspec.max_entries * page - used
    if base < 0:
        raise InputError(f"arena map {mspec.name!r}: its __arena globals take {used} bytes "
                         f"but the arena has {mspec.max_entries} pages of {page}: raise "
                         f"its max_entries")
    return base


def write_arena(m, mspec):
    """Map the new arena m once and copy the object's __arena globals into it.

    The first mmap of an arena fixes its user address range (where map_extra did not),
    which the programs' pointers into it are relative to: as libbpf does, it happens
    for every arena before any program is loaded. The pages written stay in the arena
    after the mapping is closed."""
    data = mspec.arena_data or b""
    arena.write(m.fd, mspec.max_entries * cpus.page_size(), mspec.map_extra,
                arena_base(mspec) if data else 0, data)
