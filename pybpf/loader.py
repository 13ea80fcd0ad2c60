"""Loading a parsed BPF object into the running kernel.

``BpfObject.open("prog.o")`` parses (no kernel involved); globals can be set through
``obj.variables`` before ``obj.load()``, which then

1. loads the object's BTF (fixed up and sanitized for this kernel) so maps and
   programs carry type information and the verifier can quote source lines;
2. creates the maps (reusing pins for ``LIBBPF_PIN_BY_NAME`` maps), writes the global
   data and freezes ``.rodata``/``.kconfig`` so the verifier can trust constants;
3. on a copy of each program (linked with its subprograms at parse time, see
   :mod:`pybpf.linker`) applies CO-RE relocations against the kernel's BTF, points
   its map and extern references at this load's objects (:mod:`pybpf.relocate`),
   and loads it with func_info/line_info;
5. fills program arrays and map-in-maps from their ``.values`` initialisers.

The object owns every map, program and BTF it created; ``close()`` (or ``with``)
releases them all, also when loading fails halfway. The parsed specs
(``obj.spec``) are never changed by a load, so a failed load may be retried.
"""
import collections.abc
import dataclasses
import os
import sys
import time

from . import args
from . import objfile as O
from .btf import Btf
from .btf import types as T
from .btf.handle import KernelBtf
from .fd import pin_all
from .kernelbtf import KernelBtfs
from .ksyms import resolve_ksyms
from .relocate import POISON_HELPER, relocated
from .structops import struct_ops_target, struct_ops_value
from .variables import Variables, arena_base, kconfig_image, write_arena, write_image
from .errors import BPFError, ClosedError, InputError, MissingError, VerifierError
from .kernel import btffiles
from .kernel.constants import BPF_F_RDONLY_PROG, MapType, ProgType
from .maps import Map
from .programs import Program

INSN = O.INSN


@dataclasses.dataclass
class LoadStats:
    """What loading one program took: instructions and the kernel's verifier work."""
    insns: int
    verified_insns: int
    load_seconds: float


class BpfObject:
    """A BPF object file: parsed on open, loaded into the kernel by :meth:`load`."""

    def __init__(self, spec):
        self.spec = spec
        self.maps = {}        # name -> Map, after load
        self.programs = {}    # name -> Program, after load
        self.stats = {}       # program name -> LoadStats
        self.btf = None       # KernelBtf of the object's own types, after load
        self.kernel_btf = None
        self._kbtfs = None    # KernelBtfs of this load (vmlinux and modules)
        self._replace = {}    # freplace program -> (target Program, function)
        self._module_btfs, self._fd_array = {}, None
        self.core_notes = {}  # (section, slot) -> why a CO-RE relocation failed
        self.warnings = []
        self.variables = Variables(self)
        self._loaded = self._closed = False

    @classmethod
    def open(cls, path_or_bytes, name=None):
        """Parse an object from its path (str or os.PathLike) or its bytes."""
        if isinstance(path_or_bytes, (bytes, bytearray)):
            return cls(O.ObjectFile.parse(path_or_bytes, name or "obj"))
        if not isinstance(path_or_bytes, (str, os.PathLike)):
            # open() would take an int as an fd, and close it: the caller's.
            raise InputError(f"BpfObject.open() takes a path or the object's bytes, not "
                             f"{type(path_or_bytes).__name__} (to read an fd, pass "
                             f"os.read()'s bytes)")
        return cls(O.ObjectFile.from_path(path_or_bytes, name))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Release every map, program and BTF of the object; it cannot be loaded again."""
        self._closed = True
        self._release()

    def _release(self):
        self._loaded = False
        self.variables.close()
        for prog in self.programs.values():
            prog.close()
        for m in self.maps.values():
            m.close()
        if self.btf is not None:
            self.btf.close()
        self._close_kernel_btfs()
        self.programs, self.maps, self.btf = {}, {}, None

    def __repr__(self):
        state = "closed" if self._closed else "loaded" if self._loaded else "not loaded"
        return f"<BpfObject {self.spec.name!r} {state} programs={list(self.spec.programs)}>"

    # -- loading -------------------------------------------------------------------

    def load(self, *, pin_maps=None, kernel_btf=None, kconfig=None, log_level=0,
             programs=None, replace=None):
        """Create the maps and load the programs.

        pin_maps: bpffs directory for maps declared ``pinning LIBBPF_PIN_BY_NAME``
        (reused when already pinned there). kernel_btf: a Btf, or the path of a BTF
        file, to use instead of /sys/kernel/btf/vmlinux (kernels without BTF).
        kconfig: values for ``.kconfig`` externs, overriding the running kernel's.
        programs: names to load (default: every program not marked ``SEC("?...")``).
        replace: for freplace programs, {program name: the loaded Program whose function
        it replaces} (the function is the one its section names, ``freplace/FUNC``), or
        {name: (Program, "function")} to name another one.
        """
        if self._loaded or self._closed:
            raise InputError(f"{self!r} is already {'closed' if self._closed else 'loaded'}")
        _check_load_args(pin_maps, kernel_btf, kconfig, log_level, programs)
        if self.spec.byteorder != sys.byteorder:
            raise O.ObjectError(
                f"the object is {self.spec.byteorder}-endian but this machine is "
                f"{sys.byteorder}-endian; rebuild it with clang -target bpf (or "
                f"-target bpf{'el' if sys.byteorder == 'little' else 'eb'})")
        self._kernel_btf_source = kernel_btf
        self._replace = _check_replace(replace, self.spec)
        try:
            self._load_btf()
            kconfig_data = kconfig_image(self.spec, kconfig or {}, self.warnings)
            self._ksyms = resolve_ksyms(self.spec, self._kernel_btfs)
            self._module_btfs, self._fd_array = self._module_btf_slots()
            self._create_maps(pin_maps, kconfig_data)
            wanted = programs if programs is not None else _autoloaded(self.spec)
            for name in wanted:
                if name not in self.spec.programs:
                    raise MissingError(f"no program {name!r} in {self.spec.name} (has "
                                       f"{', '.join(self.spec.programs)})")
            cache = self._core_cache(wanted)
            for name in wanted:
                self.programs[name] = self._load_program(self.spec.programs[name],
                                                         log_level, cache)
            self._init_values()
            self._close_kernel_btfs()
        except BaseException:
            self._release()  # a failed load may be retried (other kconfig, programs)
            raise
        self._loaded = True
        return self

    def _target_btf(self):
        """The kernel's BTF (or the user's stand-in), parsed on first need."""
        if self.kernel_btf is None:
            src = self._kernel_btf_source
            if isinstance(src, Btf):
                self.kernel_btf = src
            elif src is not None:
                self.kernel_btf = Btf.load(src)
            elif os.path.exists(btffiles.VMLINUX_BTF):
                self.kernel_btf = Btf.vmlinux()
            else:
                raise O.ObjectError(
                    "this object needs the kernel's BTF (CO-RE relocations or BTF-attached "
                    "programs) but /sys/kernel/btf/vmlinux does not exist; pass a BTF file "
                    "for this kernel (--btf FILE / kernel_btf=)")
        return self.kernel_btf

    def _load_btf(self):
        spec = self.spec
        if spec.btf is None:
            return
        from .btf.probe import probe_btf_features
        btf = spec.btf.copy()
        sizes = dict(spec.section_sizes)
        offsets = dict(spec.symbol_offsets)
        if O.KCONFIG in spec.maps:
            sizes[O.KCONFIG] = spec.maps[O.KCONFIG].value_size
            for ext in spec.externs.values():
                if ext.section == O.KCONFIG:
                    offsets[(O.KCONFIG, ext.name)] = ext.offset
        btf.fixup_datasecs(sizes, offsets)
        for name in spec.hidden_functions:
            for type_id in btf.find(name, "func"):
                btf.replace(type_id, btf.type(type_id)._replace(linkage=T.FUNC_STATIC))
        try:
            self.btf = KernelBtf.load(btf.sanitize(probe_btf_features()))
        except BPFError as e:
            # Like libbpf: an object whose BTF this kernel refuses still loads,
            # without source lines in verifier errors.
            self.warnings.append(f"the kernel refused the object's BTF; loading without "
                                 f"it: {e}")

    # -- maps ----------------------------------------------------------------------

    def _create_maps(self, pin_dir, kconfig_data):
        for name, mspec in self.spec.maps.items():
            if name == O.KCONFIG:
                mspec = dataclasses.replace(mspec, data=kconfig_data)
            self.maps[name] = self._create_map(mspec, pin_dir)

    def _create_map(self, mspec, pin_dir):
        pin_path = None
        if mspec.pinning == O.LIBBPF_PIN_BY_NAME and pin_dir:
            pin_path = os.path.join(pin_dir, mspec.name)
            if os.path.exists(pin_path):
                existing = Map.from_pin(pin_path, key=mspec.key_format,
                                        value=mspec.value_format)
                _check_compatible(existing, mspec, pin_path)
                return existing
        inner = self._create_map(mspec.inner, None) if mspec.inner is not None else None
        try:
            if mspec.struct_ops is not None:
                if self.btf is None:
                    raise O.ObjectError(f"map {mspec.name!r}: STRUCT_OPS maps need the "
                                        f"object's BTF, which this kernel refused")
                size, type_id = struct_ops_value(self.spec, mspec, self._target_btf())
                mspec = dataclasses.replace(mspec, value_size=size,
                                            btf_vmlinux_value_type_id=type_id)
            m = Map.create(mspec, inner_map=inner, btf=self.btf)
        finally:
            if inner is not None:
                inner.close()
        try:
            if mspec.type == MapType.ARENA:
                write_arena(m, mspec)
            if mspec.data is not None:
                write_image(m, mspec.data)
                if mspec.flags & BPF_F_RDONLY_PROG:
                    m.freeze()
            if pin_path:
                m.pin(pin_path)
        except BaseException:
            m.close()
            raise
        return m

    def _init_values(self):
        for name, mspec in self.spec.maps.items():
            for slot, target in sorted(mspec.init_values.items()):
                if mspec.type == MapType.PROG_ARRAY:
                    value = self.programs.get(target)
                    if value is None:
                        continue  # a program not loaded (SEC("?...") or not selected)
                else:
                    value = self.maps[target]
                self.maps[name][slot] = value

    # -- programs ------------------------------------------------------------------

    def _core_cache(self, wanted):
        """One CO-RE cache for every program loaded: each local type's kernel
        candidates are found once, and narrowing by earlier relocations carries over
        (libbpf's rule). None when no program to load has CO-RE records."""
        if not any(self.spec.programs[n].core_sites for n in wanted):
            return None
        from .btf import core
        return core.CoreCache(self._kernel_btfs().targets())

    def _kernel_btfs(self):
        """The kernel's BTF with its modules' (none when the user gave a BTF file)."""
        if self._kbtfs is None:
            self._kbtfs = KernelBtfs(self._target_btf(),
                                     with_modules=self._kernel_btf_source is None)
        return self._kbtfs

    def _module_btf_slots(self):
        """({module: (fd_array index, BTF fd)}, fd_array or None) for the modules whose
        kfuncs or variables the object uses; index 0 stands for vmlinux."""
        slots, fd_array = {}, [0]
        for found in self._ksyms.values():
            if found is not None and found[2] is not None and found[2] not in slots:
                slots[found[2]] = (len(fd_array), self._kbtfs.fd(found[2]))
                fd_array.append(slots[found[2]][1])
        return slots, (fd_array if slots else None)

    def _close_kernel_btfs(self):
        """Module BTF fds are needed only while programs load: the kernel holds its
        own references to what a loaded program uses."""
        if self._kbtfs is not None:
            self._kbtfs.close()
        self._kbtfs, self._module_btfs, self._fd_array = None, {}, None

    def _arena_base(self):
        name = self.spec.arena_map
        return arena_base(self.spec.maps[name]) if name is not None else 0

    def _load_program(self, pspec, log_level, cache):
        sd = pspec.section_def
        pspec, poisoned = relocated(pspec, self.spec.externs,
                                    {name: m.fd for name, m in self.maps.items()},
                                    self._ksyms, self.spec.btf, cache,
                                    self._arena_base(), self._module_btfs)
        for res in poisoned:
            self.core_notes[(res.section, res.slot)] = res.message
        attach_btf_id = self._attach_btf_id(pspec)
        expected_attach_type = None
        attach_prog_fd = 0
        if sd.prog_type == ProgType.EXT:
            # The kernel verifies an extension against the function it replaces, in
            # another loaded program (attach_prog_fd); without one it refuses with a
            # bare EPERM. libbpf refuses such a load before the syscall too.
            if pspec.name not in self._replace:
                raise O.ObjectError(
                    f"program {pspec.name!r} (section {sd.section!r}) replaces function "
                    f"{sd.target!r} of another loaded program: give that program with "
                    f"load(replace={{{pspec.name!r}: program}}), or leave this one out "
                    f"(programs=[...])")
            target, function = self._replace[pspec.name]
            attach_prog_fd, attach_btf_id = target.fd, target.function_btf_id(function)
        if sd.prog_type == ProgType.STRUCT_OPS:
            attach_btf_id, expected_attach_type = struct_ops_target(
                self.spec, pspec, self._target_btf)
        started = time.perf_counter()
        try:
            prog = Program.load(pspec, expected_attach_type=expected_attach_type,
                                log_level=log_level, attach_btf_id=attach_btf_id,
                                attach_prog_fd=attach_prog_fd, btf=self.btf,
                                fd_array=self._fd_array)
        except VerifierError as e:
            raise self._explain(e, pspec) from None
        elapsed = time.perf_counter() - started
        try:
            verified = prog.info().verified_insns
        except BPFError:
            verified = 0
        self.stats[pspec.name] = LoadStats(len(pspec.insns) // INSN, verified, elapsed)
        return prog

    def _attach_btf_id(self, pspec):
        target = pspec.section_def.btf_target()
        if target is None:
            return 0
        kind, name = target
        if not pspec.section_def.target:
            raise O.ObjectError(f"program {pspec.name!r}: section "
                                f"{pspec.section_def.section!r} must name its target, "
                                f"e.g. {pspec.section_def.prefix}/FUNCTION")
        ids = self._target_btf().find(name, kind)
        if not ids:
            raise O.ObjectError(f"program {pspec.name!r}: {kind} {name!r} is not in the "
                                f"kernel's BTF, so {pspec.section_def.section!r} cannot "
                                f"attach to it")
        return ids[0]

    def _explain(self, err, pspec):
        """The verifier error, told in the object's terms: which program, which section,
        which source line, and whether a failed CO-RE relocation is the reason."""
        context = f"program {pspec.name!r} (section {pspec.section_def.section!r})"
        source = _last_source_line(err.log)
        if source:
            context += f" failed at: {source}"
        notes = [note for (section, slot), note in self.core_notes.items()
                 if any(fn.section == section and fn.start <= slot < fn.end
                        for fn, _ in pspec.layout)]
        if notes and str(POISON_HELPER) in err.log:
            context += "; " + "; ".join(notes)
        err = VerifierError(err.cmd, err.errno, context, err.hint, err.log)
        err.program = pspec.name
        err.source_line = source
        return err

    # -- pinning ---------------------------------------------------------------------

    def pin(self, directory):
        """Pin every program at DIR/NAME and every map at DIR/maps/NAME (bpffs), all or
        nothing (see pybpf.fd.pin_all): a failure leaves no pin and no directory of
        this call behind."""
        pin_all(self.pin_targets(directory))

    def pin_targets(self, directory):
        """[(object, path)] that :meth:`pin` pins, for callers pinning more with them."""
        self._check_loaded("pin")
        return ([(prog, os.path.join(directory, name)) for name, prog in self.programs.items()]
                + [(m, os.path.join(directory, "maps", name.lstrip(".") or name))
                   for name, m in self.maps.items()])

    def _check_loaded(self, what):
        if self._closed:
            raise ClosedError(f"cannot {what} {self!r}")
        if not self._loaded:
            raise InputError(f"cannot {what} {self!r}: load() it first")


def _autoloaded(spec):
    """The programs load() loads by default, by libbpf's rules: every program not
    marked SEC("?..."), and also a "?" struct_ops program that one of the object's
    .struct_ops tables uses (it is loaded against that table's kernel type). A
    struct_ops program no table uses keeps its section's say, so without "?" it is
    loaded and refused, as with libbpf."""
    used = {p for m in spec.maps.values() if m.struct_ops is not None
            for p in m.struct_ops.programs.values()}
    return [name for name, p in spec.programs.items()
            if p.section_def.autoload or (
                p.section_def.prog_type == ProgType.STRUCT_OPS and name in used)]


def _check_replace(replace, spec):
    """{freplace program: (target Program, function name)} from load(replace=...)."""
    out = {}
    for name, target in (replace or {}).items():
        pspec = spec.programs.get(name)
        if pspec is None or pspec.section_def.prog_type != ProgType.EXT:
            raise InputError(f"replace={{{name!r}: ...}}: {spec.name} has no freplace "
                             f"program {name!r}")
        function = pspec.section_def.target
        if isinstance(target, tuple) and len(target) == 2:
            target, function = target
        if not isinstance(target, Program) or not isinstance(function, str) or not function:
            raise InputError(f"replace={{{name!r}: ...}} takes a loaded Program, or "
                             f"(Program, \"function name\")")
        out[name] = (target, function)
    return out


def _check_load_args(pin_maps, kernel_btf, kconfig, log_level, programs):
    """Refuse load() arguments of the wrong kind now: most are used only by objects
    that need them (a kconfig= for one without .kconfig externs would go unnoticed)."""
    if pin_maps is not None:
        args.path(pin_maps, "pin_maps")
    if kernel_btf is not None and not isinstance(kernel_btf, Btf):
        args.path(kernel_btf, "kernel_btf (a Btf or the path of a BTF file)")
    if kconfig is not None and not isinstance(kconfig, collections.abc.Mapping):
        raise InputError(f"kconfig is a mapping of extern names to values, not {kconfig!r}")
    args.integer(log_level, "log_level", 0)
    if programs is not None:
        args.names(programs, "programs")


def _check_compatible(existing, mspec, path):
    info = existing.info()
    want = (mspec.type, mspec.key_size, mspec.value_size, mspec.max_entries)
    have = (info.type, info.key_size, info.value_size, info.max_entries)
    if want != have:
        existing.close()
        raise O.ObjectError(
            f"the map pinned at {path} (type {have[0]}, key {have[1]}, value {have[2]}, "
            f"max_entries {have[3]}) does not match map {mspec.name!r} of this object "
            f"(type {want[0]}, key {want[1]}, value {want[2]}, max_entries {want[3]}); "
            f"unpin it or use another pin directory")


def _last_source_line(log):
    """The last C source line the kernel printed from line_info ("; x = y; @ f.c:12")."""
    for line in reversed(log.splitlines()):
        if line.startswith("; "):
            return line[2:].strip()
    return None

