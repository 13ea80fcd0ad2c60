"""Loading a parsed BPF object into the running kernel.

``BpfObject.open("prog.o")`` parses (no kernel involved); globals can be set through
``obj.variables`` before ``obj.load()``, which then

1. loads the object's BTF (fixed up and sanitized for this kernel) so maps and
   programs carry type information and the verifier can quote source lines;
2. creates the maps (reusing pins for ``LIBBPF_PIN_BY_NAME`` maps), writes the global
   data and freezes ``.rodata``/``.kconfig`` so the verifier can trust constants;
3. applies CO-RE relocations against the kernel's BTF;
4. links each program with the subprograms it calls, points its map references at
   the new maps, and loads it with func_info/line_info;
5. fills program arrays and map-in-maps from their ``.values`` initialisers.

The object owns every map, program and BTF it created; ``close()`` (or ``with``)
releases them all, also when loading fails halfway.
"""
import collections.abc
import dataclasses
import errno
import os
import struct
import time

from . import args
from . import objfile as O
from .btf import Btf
from .btf import ext as X
from .btf import types as T
from .btf.handle import KernelBtf
from .fd import pin_all
from .variables import Variables, fill_kconfig, write_image
from .errors import BPFError, ClosedError, InputError, MissingError, VerifierError
from .kernel import bpf as kbpf
from .kernel import btffiles, cpus, kallsyms, release
from .kernel.constants import (BPF_F_SLEEPABLE, BPF_F_XDP_HAS_FRAGS, BPF_PSEUDO_BTF_ID,
                               BPF_PSEUDO_FUNC, BPF_PSEUDO_KFUNC_CALL, BPF_PSEUDO_MAP_FD,
                               BPF_PSEUDO_MAP_VALUE, MapType, ProgType)
from .maps import Map
from .programs import Program
from . import sections as S

INSN = O.INSN
# A call to this helper id marks an instruction the loader could not resolve; the
# verifier refuses it only if the program can reach it (the same value libbpf uses,
# so tools that know one recognise the other).
POISON_HELPER = 0xBAD2310


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
        spec = O.ObjectFile.from_path(path_or_bytes)
        if name:
            spec.name = name
        return cls(spec)

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
        self.programs, self.maps, self.btf = {}, {}, None

    def __repr__(self):
        state = "closed" if self._closed else "loaded" if self._loaded else "not loaded"
        return f"<BpfObject {self.spec.name!r} {state} programs={list(self.spec.programs)}>"

    # -- loading -------------------------------------------------------------------

    def load(self, *, pin_maps=None, kernel_btf=None, kconfig=None, log_level=0,
             programs=None):
        """Create the maps and load the programs.

        pin_maps: bpffs directory for maps declared ``pinning LIBBPF_PIN_BY_NAME``
        (reused when already pinned there). kernel_btf: a Btf, or the path of a BTF
        file, to use instead of /sys/kernel/btf/vmlinux (kernels without BTF).
        kconfig: values for ``.kconfig`` externs, overriding the running kernel's.
        programs: names to load (default: every program not marked ``SEC("?...")``).
        """
        if self._loaded or self._closed:
            raise InputError(f"{self!r} is already {'closed' if self._closed else 'loaded'}")
        _check_load_args(pin_maps, kernel_btf, kconfig, log_level, programs)
        self._kernel_btf_source = kernel_btf
        try:
            self._load_btf()
            fill_kconfig(self.spec, kconfig or {})
            self._resolve_ksyms()
            self._create_maps(pin_maps)
            self._relocate_core()
            wanted = programs if programs is not None else [
                n for n, p in self.spec.programs.items() if p.section_def.autoload]
            for name in wanted:
                if name not in self.spec.programs:
                    raise MissingError(f"no program {name!r} in {self.spec.name} (has "
                                       f"{', '.join(self.spec.programs)})")
                self.programs[name] = self._load_program(self.spec.programs[name], log_level)
            self._init_values()
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

    def _create_maps(self, pin_dir):
        for name, mspec in self.spec.maps.items():
            self.maps[name] = self._create_map(mspec, pin_dir)

    def _create_map(self, mspec, pin_dir):
        pin_path = None
        if mspec.pinning == O.LIBBPF_PIN_BY_NAME and pin_dir:
            pin_path = os.path.join(pin_dir, mspec.name)
            if os.path.exists(pin_path):
                existing = Map.from_pin(
                    pin_path, key=self._codec_spec(mspec.btf_key_type_id, mspec.key_size),
                    value=self._codec_spec(mspec.btf_value_type_id, mspec.value_size))
                _check_compatible(existing, mspec, pin_path)
                return existing
        inner = self._create_map(mspec.inner, None) if mspec.inner is not None else None
        try:
            m = self._new_map(mspec, inner)
        finally:
            if inner is not None:
                inner.close()
        try:
            if mspec.data is not None:
                write_image(m, mspec.data)
                if mspec.flags & O.BPF_F_RDONLY_PROG:
                    m.freeze()
            if pin_path:
                m.pin(pin_path)
        except BaseException:
            m.close()
            raise
        return m

    def _new_map(self, mspec, inner):
        """Create the map exactly as the object defines it.

        The kernel, not Map.create()'s argument checks, judges the definition (as with
        libbpf): an object may define maps whose rules differ from the common ones
        (local-storage maps want max_entries 0, bloom filters no key, STRUCT_OPS a
        kernel value type). Map.from_fd() then wraps the fd in the usual class.
        """
        kernel_name = self._kernel_map_name(mspec)
        key = self._codec_spec(mspec.btf_key_type_id, mspec.key_size)
        if key is None and mspec.init_values and mspec.key_size == 4:
            key = "I"  # .values slots are u32 indexes (keys of a hash of maps too)
        value = self._codec_spec(mspec.btf_value_type_id, mspec.value_size)
        value_size, vmlinux_value_id = mspec.value_size, 0
        if mspec.struct_ops is not None:
            value_size, vmlinux_value_id = self._struct_ops_value(mspec)
        args = dict(key_size=mspec.key_size, value_size=value_size,
                    max_entries=_max_entries(mspec), flags=mspec.flags, name=kernel_name,
                    inner_map_fd=inner.fd if inner is not None else 0,
                    numa_node=mspec.numa_node, map_extra=mspec.map_extra,
                    hints={errno.EINVAL: _refused_hint(mspec, value_size)})
        fd = None
        if self.btf is not None and (mspec.btf_value_type_id or mspec.btf_key_type_id or
                                     vmlinux_value_id):
            try:
                fd = kbpf.map_create(mspec.type, btf_fd=self.btf.fd,
                                     btf_key_type_id=mspec.btf_key_type_id,
                                     btf_value_type_id=mspec.btf_value_type_id,
                                     btf_vmlinux_value_type_id=vmlinux_value_id, **args)
            except BPFError as e:
                if vmlinux_value_id:  # STRUCT_OPS maps exist only with BTF
                    raise type(e)(*_with_context(e, f"map {mspec.name!r}")) from None
                # otherwise retried without type information, as libbpf does
        if fd is None:
            try:
                fd = kbpf.map_create(mspec.type, **args)
            except BPFError as e:
                raise type(e)(*_with_context(e, f"map {mspec.name!r}")) from None
        return Map.from_fd(fd, key=key if mspec.key_size else None,
                           value=value if mspec.value_size else None)

    def _struct_ops_value(self, mspec):
        """(value size, type id) of the kernel's ``struct bpf_struct_ops_<name>``, the
        value a STRUCT_OPS map holds; refusing objects whose ops type this kernel
        lacks or whose members it does not have (as libbpf does)."""
        ops = mspec.struct_ops
        if self.btf is None:
            raise O.ObjectError(f"map {mspec.name!r}: STRUCT_OPS maps need the object's "
                                f"BTF, which this kernel refused")
        kbtf = self._target_btf()
        wrapper = kbtf.find(f"bpf_struct_ops_{ops.type_name}", "struct")
        kernel_type = kbtf.find(ops.type_name, "struct")
        if not wrapper or not kernel_type:
            raise O.ObjectError(f"map {mspec.name!r}: this kernel has no struct_ops type "
                                f"'struct {ops.type_name}'")
        kernel_members = {m.name for m in kbtf.members(kernel_type[0])}
        for m in self.spec.btf.members(ops.type_id):
            if m.name not in kernel_members and _nonzero_member(self.spec.btf, ops, m):
                raise O.ObjectError(f"map {mspec.name!r}: struct {ops.type_name} has no "
                                    f"member {m.name!r} in this kernel")
        return kbtf.size_of(wrapper[0]), wrapper[0]

    def _struct_ops_target(self, pspec):
        """(attach_btf_id, member index) for a struct_ops program: the kernel's ops
        struct and which of its function pointers the program implements."""
        for mspec in self.spec.maps.values():
            ops = mspec.struct_ops
            member = next((m for m, p in (ops.programs.items() if ops else ())
                           if p == pspec.name), None)
            if member is None:
                continue
            kbtf = self._target_btf()
            type_id = kbtf.find(ops.type_name, "struct")[0]
            names = [m.name for m in kbtf.members(type_id)]
            return type_id, names.index(member)
        raise O.ObjectError(f"program {pspec.name!r} (section {pspec.section_def.section!r}) "
                            f"is in no .struct_ops variable, so nothing says which kernel "
                            f"ops member it implements")

    def _codec_spec(self, type_id, size):
        """A struct format for integer keys/values (so m[1] works), else raw bytes."""
        btf = self.spec.btf
        if btf is None or not type_id or not size:
            return None
        t = btf.type(btf.resolve(type_id))
        if isinstance(t, (T.Int, T.Enum)) and t.size == size and size in _INT_FORMATS:
            fmt = _INT_FORMATS[size]
            return fmt.lower() if t.signed else fmt
        return None

    def _kernel_map_name(self, mspec):
        """The map's name in the kernel: data maps are called <object>.<section>, and
        as libbpf does, bytes the kernel refuses become '_' and the name is cut to
        the kernel's 15 bytes."""
        if not mspec.is_data:
            name = mspec.name
        else:
            prefix = self.spec.name[:min(8, 15 - min(len(mspec.name), 7))]
            name = prefix + mspec.name
        raw = name.encode("utf-8", "surrogateescape")
        return bytes(b if b < 0x80 and b in kbpf.NAME_BYTES else ord("_")
                     for b in raw)[:kbpf.NAME_MAX]

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

    # -- CO-RE ---------------------------------------------------------------------

    def _relocate_core(self):
        ext = self.spec.btf_ext
        if ext is None or not any(ext.core_relos.values()):
            return
        from .btf import core
        # One cache for every section: each local type's kernel candidates are found
        # once, and narrowing by earlier relocations carries over (libbpf's rule).
        cache = core.CoreCache(self._target_btf())
        for section, relos in ext.core_relos.items():
            if section not in self.spec.code or not relos:
                continue
            code, results = core.relocate_section(
                bytes(self.spec.code[section]), relos, self.spec.btf, cache,
                section=section)
            self.spec.code[section][:] = code
            for res in results:
                if res.poisoned:
                    self.core_notes[(section, res.slot)] = res.message

    # -- programs ------------------------------------------------------------------

    def _load_program(self, pspec, log_level):
        sd = pspec.section_def
        image, layout = self._link(pspec)
        insns = self._relocate(image, layout)
        flags = (BPF_F_SLEEPABLE if sd.flags & S.SLEEPABLE else 0) | \
                (BPF_F_XDP_HAS_FRAGS if sd.flags & S.XDP_FRAGS else 0)
        attach_btf_id = self._attach_btf_id(pspec)
        expected_attach_type = sd.expected_attach_type
        if sd.prog_type == ProgType.EXT:
            # The kernel verifies an extension against the function it replaces, in
            # another loaded program (attach_prog_fd); without one it refuses with a
            # bare EPERM. libbpf refuses such a load before the syscall too.
            raise O.ObjectError(
                f"program {pspec.name!r} (section {sd.section!r}) replaces function "
                f"{sd.target!r} of another loaded program; the object loader cannot be "
                f"given that program, so leave it out (programs=[...])")
        if sd.prog_type == ProgType.STRUCT_OPS:
            attach_btf_id, expected_attach_type = self._struct_ops_target(pspec)
        kern_version = self.spec.kern_version
        if kern_version is None and sd.prog_type == ProgType.KPROBE:
            kern_version = release.kernel_version_code()
        func_info = line_info = None
        if self.btf is not None and self.spec.btf_ext is not None:
            func_info, line_info = self._btf_ext_for(layout)
        started = time.perf_counter()
        try:
            prog = Program.load(
                sd.prog_type, insns, self.spec.license or "", name=_kernel_name(pspec.name),
                expected_attach_type=expected_attach_type, kern_version=kern_version or 0,
                flags=flags, log_level=log_level, attach_btf_id=attach_btf_id,
                btf=self.btf if func_info else None, func_info=func_info,
                line_info=line_info)
        except VerifierError as e:
            raise self._explain(e, pspec, layout) from None
        elapsed = time.perf_counter() - started
        try:
            verified = prog.info().verified_insns
        except BPFError:
            verified = 0
        self.stats[pspec.name] = LoadStats(len(insns) // INSN, verified, elapsed)
        return prog

    def _link(self, pspec):
        """The program's instructions followed by every subprogram it reaches.

        Returns (bytearray image, layout): layout lists (Function, first image slot),
        the program first. Call and callback offsets are rewritten for the image.
        """
        spec = self.spec
        layout, placed, queue = [], {}, [pspec.function]
        image = bytearray()
        while queue:
            fn = queue.pop(0)
            key = (fn.section, fn.start)
            if key in placed:
                continue
            placed[key] = len(image) // INSN
            layout.append((fn, placed[key]))
            image += spec.code[fn.section][fn.start * INSN:fn.end * INSN]
            for slot, target in self._calls(fn):
                callee = spec.function_at(*target)
                if callee is None:
                    raise O.ObjectError(
                        f"program {pspec.name!r}: instruction {slot} of {fn.section} calls "
                        f"{target[0]}+{target[1]}, which is not the start of a function")
                queue.append(callee)
        # Second pass: now every function has its place, point calls at them.
        for fn, base in layout:
            for slot, target in self._calls(fn):
                callee = spec.function_at(*target)
                at = base + slot - fn.start
                rel = placed[(callee.section, callee.start)] - (at + 1)
                struct.pack_into("<i", image, at * INSN + 4, rel)
                if image[at * INSN] == O.LD_IMM64:
                    image[at * INSN + 1] = (image[at * INSN + 1] & 0x0F) | (BPF_PSEUDO_FUNC << 4)
        return image, layout

    def _calls(self, fn):
        """(slot, (section, target slot)) of every call/callback in fn to code."""
        relocs = self.spec.relocs.get(fn.section, {})
        code = self.spec.code[fn.section]
        for slot in range(fn.start, fn.end):
            r = relocs.get(slot)
            if r is not None:
                if r.kind in ("call", "func"):
                    yield slot, r.target
                continue
            op, regs, _off, imm = struct.unpack_from("<BBhi", code, slot * INSN)
            if op == O.CALL and regs >> 4 == O.BPF_PSEUDO_CALL:
                yield slot, (fn.section, slot + imm + 1)  # a call within the section

    def _relocate(self, image, layout):
        """Point map, global data and extern references at this load's objects."""
        for fn, base in layout:
            relocs = self.spec.relocs.get(fn.section, {})
            for slot, r in relocs.items():
                if not fn.start <= slot < fn.end or r.kind in ("call", "func"):
                    continue
                if r.kind != "kfunc" and slot + 1 >= fn.end:  # the rest are ld_imm64s
                    raise O.ObjectError(f"function {fn.name!r}: the ld_imm64 at slot {slot} "
                                        f"of {fn.section} is cut off by the function's end")
                at = (base + slot - fn.start) * INSN
                if r.kind == "map":
                    _set_ld_imm64(image, at, BPF_PSEUDO_MAP_FD, self.maps[r.target].fd, 0)
                elif r.kind == "map_value":
                    _set_ld_imm64(image, at, BPF_PSEUDO_MAP_VALUE, self.maps[r.target].fd,
                                  r.offset)
                else:
                    self._relocate_extern(image, at, r)
        return bytes(image)

    def _resolve_ksyms(self):
        """Look every extern up in the kernel before anything is loaded.

        As libbpf does, so both accept the same objects: an object whose strong
        (non-__weak) extern this kernel lacks fails to load even when only programs
        that are not loaded (SEC("?...")) use it. Results go to ``self._ksyms``:
        name -> ("func"|"var", BTF id) or ("addr", address) or None (weak, missing).
        """
        self._ksyms = {}
        externs = self.spec.externs.values()
        undeclared = sorted(e.name for e in externs if not e.section)
        if undeclared:
            raise O.ObjectError(
                f"extern {', '.join(map(repr, undeclared))} is declared neither __ksym nor "
                f"__kconfig: it is defined by another BPF object; link the objects into one "
                f"first (bpftool gen object OUT.o A.o B.o)")
        typeless = []
        for ext in (e for e in externs if e.section == O.KSYMS):
            kind = self._ksym_kind(ext)
            if kind is None:
                typeless.append(ext)
                continue
            ids = self._target_btf().find(ext.name, kind)
            self._ksyms[ext.name] = (kind, ids[0]) if ids else None
            if not ids and not ext.weak:
                raise O.ObjectError(f"extern {kind} {ext.name!r} (.ksyms) is not in the "
                                    f"kernel's BTF; declare it __weak to make it optional")
        if typeless:
            found = kallsyms.kallsyms_addresses(e.name for e in typeless)
            for ext in typeless:
                addr = found.get(ext.name)
                self._ksyms[ext.name] = ("addr", addr) if addr else None
                if not addr and not ext.weak:
                    raise O.ObjectError(
                        f"extern {ext.name!r} (typeless __ksym) is not in /proc/kallsyms "
                        f"(or kallsyms hides addresses: kptr_restrict); declare it __weak "
                        f"to make it optional")

    def _ksym_kind(self, ext):
        """"func" or "var" for a typed ksym, None for a typeless one (``extern const
        void sym __ksym``: only its address, found in kallsyms, is wanted)."""
        btf = self.spec.btf
        if btf is None or not ext.btf_type_id:
            return "var" if btf is not None else "func"
        if isinstance(btf.type(ext.btf_type_id), T.Func):
            return "func"
        return "var" if btf.resolve(ext.btf_type_id) else None

    def _relocate_extern(self, image, at, r):
        ext = self.spec.externs[r.target]
        if ext.section == O.KCONFIG:
            _set_ld_imm64(image, at, BPF_PSEUDO_MAP_VALUE, self.maps[O.KCONFIG].fd, ext.offset)
            return
        found = self._ksyms.get(ext.name)
        if r.kind == "kfunc":
            if found is None or found[0] != "func":
                struct.pack_into("<BBhi", image, at, O.CALL, 0, 0, POISON_HELPER)
            else:
                struct.pack_into("<BBhi", image, at, O.CALL, BPF_PSEUDO_KFUNC_CALL << 4, 0,
                                 found[1])
        elif found is None:
            _set_ld_imm64(image, at, 0, 0, 0)   # a missing weak ksym reads as NULL
        elif found[0] == "addr":
            _set_ld_imm64(image, at, 0, found[1] & 0xFFFFFFFF, found[1] >> 32)
        else:
            _set_ld_imm64(image, at, BPF_PSEUDO_BTF_ID, found[1], 0)

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

    def _btf_ext_for(self, layout):
        """func_info and line_info for the linked image, as the kernel wants them."""
        ext = self.spec.btf_ext
        func_info = line_info = b""
        for fn, base in layout:
            lo, hi = fn.start * INSN, fn.end * INSN
            func_info += X.encode_func_info(
                X.slice_records(ext.func_info.get(fn.section, []), lo, hi), base)
            line_info += X.encode_line_info(
                X.slice_records(ext.line_info.get(fn.section, []), lo, hi), base)
        if not func_info:
            return None, None
        return (func_info, X.FUNC_INFO_SIZE), (line_info, X.LINE_INFO_SIZE) if line_info \
            else None

    def _explain(self, err, pspec, layout):
        """The verifier error, told in the object's terms: which program, which section,
        which source line, and whether a failed CO-RE relocation is the reason."""
        context = f"program {pspec.name!r} (section {pspec.section_def.section!r})"
        source = _last_source_line(err.log)
        if source:
            context += f" failed at: {source}"
        notes = [note for (section, slot), note in self.core_notes.items()
                 if any(fn.section == section and fn.start <= slot < fn.end
                        for fn, _ in layout)]
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


_INT_FORMATS = {1: "B", 2: "H", 4: "I", 8: "Q"}

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


def _max_entries(mspec):
    """max_entries as libbpf would create the map: a ring buffer's size rounded up to
    a power-of-2 number of pages (the kernel takes nothing else), and a perf event
    array without a size gets one slot per possible CPU."""
    n = mspec.max_entries
    if mspec.type in (MapType.RINGBUF, MapType.USER_RINGBUF) and n:
        page = cpus.page_size()
        pages = 1
        while pages * page < n:
            pages *= 2
        return pages * page
    if mspec.type == MapType.PERF_EVENT_ARRAY and not n:
        return cpus.possible_cpus()
    return n


def _refused_hint(mspec, value_size):
    return (f"the kernel refused map {mspec.name!r} as defined ({mspec.type.name}, "
            f"key_size={mspec.key_size}, value_size={value_size}, "
            f"max_entries={mspec.max_entries}, flags={mspec.flags:#x})")


def _nonzero_member(btf, ops, member):
    """Whether the object sets member (a program or non-zero bytes): a member the
    kernel's type lacks is an error only then."""
    if member.name in ops.programs:
        return True
    start = member.bit_offset // 8
    return any(ops.data[start:start + btf.size_of(member.type)])


def _set_ld_imm64(image, at, src, lo, hi):
    image[at + 1] = (image[at + 1] & 0x0F) | (src << 4)
    struct.pack_into("<i", image, at + 4, _s32(lo))
    struct.pack_into("<i", image, at + 12, _s32(hi))


def _s32(v):
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


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


def _with_context(err, what):
    if isinstance(err, BPFError):
        return (err.cmd, err.errno, f"{what}: {err.detail}" if err.detail else what, err.hint)
    return (f"{what}: {err}",)


def _kernel_name(name):
    """A program's name as the kernel holds it: its first 15 bytes, as libbpf cuts
    them (the object keeps the whole name; obj.programs is keyed by it)."""
    return name.encode("utf-8", "surrogateescape")[:kbpf.NAME_MAX].decode(
        "utf-8", "surrogateescape")


def _last_source_line(log):
    """The last C source line the kernel printed from line_info ("; x = y; @ f.c:12")."""
    for line in reversed(log.splitlines()):
        if line.startswith("; "):
            return line[2:].strip()
    return None

