"""The pipeline in the kernel: maps, dispatchers, stages and the links that attach it.

:meth:`Pipeline.create` loads the shipped object (programs/filterreduce.bpf.c) with
the programs of one backend, fills the pipeline's own stage slots (feed, and the
count/sum/min/max reduce stage), and attaches the dispatchers. Filter stages are
generated per filter (stage.py) into slots claimed in fr_slots, so any number of
tenants, in this process or in others that :meth:`join` a pinned pipeline, each run
their own filter, and replacing one tenant's filter replaces that slot's program
only.

:meth:`pin` leaves the whole pipeline in a bpffs directory (maps and links), and
:func:`detach` removes it; docs/filterreduce.md describes the layout for programs
written in other languages.
"""
import errno
import os

from .. import shipped
from ..btf import funcs
from ..btf.handle import KernelBtf
from ..errors import BPFError, PipelineError
from ..fd import unpin
from ..kernel import cpus, mounts, procs
from ..kernel.constants import BPF_NOEXIST, ProgType
from ..links import BpfLink
from ..loader import BpfObject
from ..maps import Map
from ..programs import Program
from . import backends, reducestage, stage
from . import layout as L
from .tenants import TenantTable

MAP_NAMES = ("fr_tenants", "fr_inflight", "fr_scratch", "fr_stages", "fr_slots", "fr_info",
             "fr_state")
# How the maps are read from Python: (key, value) layouts.
_LAYOUTS = {"fr_tenants": (L.Key, L.Tenant), "fr_inflight": ("Q", L.Inflight),
            "fr_slots": ("I", L.Slot), "fr_info": ("I", L.Info),
            "fr_state": (L.Key, L.State)}


class Pipeline:
    """The kernel objects of one pipeline. Close it (or use ``with``) to detach it;
    a pinned pipeline stays until :func:`detach`."""

    def __init__(self, backend, maps, *, obj=None, links=(), pinned=None):
        self.backend = backend
        self.maps = maps            # name -> Map (a view with the layouts of layout.py)
        self._obj = obj             # the loaded object, when this process created it
        self.links = list(links)
        self.pinned = pinned        # the bpffs directory it lives in, if pinned
        self._stages = {}           # slot -> Program this process put there
        self._permanent = set()     # ... of which stay with the pin when it goes
        self.tenants = TenantTable(maps["fr_tenants"], maps["fr_inflight"], maps["fr_state"])
        self.closed = False

    # -- making one ---------------------------------------------------------------

    @classmethod
    def create(cls, backend="auto", override=False):
        """Load and attach a pipeline; backend: "auto" or a name from backends.ORDER.
        Returns (pipeline, why that backend)."""
        chosen, why = backends.choose(backend, override)
        obj = BpfObject.open(shipped.path("filterreduce"))
        maps, links = {}, []
        try:
            obj.spec.maps["fr_scratch"].max_entries = cpus.possible_cpus()
            obj.load(programs=list(chosen.programs))
            maps = _views(obj.maps)
            maps["fr_stages"][L.SLOT_FEED] = obj.programs[f"fr_feed_{chosen.stage_suffix}"]
            maps["fr_stages"][L.SLOT_REDUCE_STATS] = \
                obj.programs[f"fr_reduce_{chosen.stage_suffix}"]
            for slot, desc in ((L.SLOT_FEED, "feed"), (L.SLOT_REDUCE_STATS, "count sum min max")):
                maps["fr_slots"][slot] = L.Slot(kind=L.SLOT_KIND_REDUCE,
                                                description=desc.encode())
            maps["fr_info"][0] = L.Info(magic=L.MAGIC, version=L.VERSION,
                                        backend=chosen.code, prog_type=chosen.prog_type,
                                        piece=L.PIECE,
                                        flags=L.INFO_CAN_SKIP if chosen.can_skip else 0)
            links = chosen.attach(obj.programs)
        except BaseException:
            for m in maps.values():
                m.close()
            obj.close()
            raise
        return cls(chosen, maps, obj=obj, links=links), why

    @classmethod
    def join(cls, directory):
        """Take part in a pipeline pinned under directory (by another process): its
        maps, without loading or attaching anything."""
        maps = {}
        try:
            for name in MAP_NAMES:
                path = os.path.join(directory, name)
                if not os.path.exists(path):
                    raise PipelineError(f"{directory} holds no pybpf filter-reduce "
                                        f"pipeline (no {name}); pin one with python -m "
                                        f"pybpf attach copyout --pin {directory}")
                key, value = _LAYOUTS.get(name, (None, None))
                maps[name] = Map.from_pin(path, key=key, value=value)
            info = maps["fr_info"][0]
            if info.magic != L.MAGIC or info.version != L.VERSION:
                raise PipelineError(f"{directory} holds a filter-reduce pipeline of "
                                    f"protocol version {info.version}, this pybpf speaks "
                                    f"{L.VERSION}")
        except BaseException:
            for m in maps.values():
                m.close()
            raise
        backend = backends.by_code(info.backend, bool(info.flags & L.INFO_CAN_SKIP))
        return cls(backend, maps, pinned=directory)

    # -- stages -------------------------------------------------------------------

    def claim_slot(self, kind, description):
        """A free fr_stages slot, claimed for this process in fr_slots (BPF_NOEXIST, so
        processes sharing a pinned pipeline never take the same one)."""
        pid = os.getpid()
        lo, hi = procs.start_window(pid)
        entry = L.Slot(kind=kind, owner_tgid=pid, owner_start_lo=lo, owner_start_hi=hi,
                       description=description.encode()[:103])
        slots = self.maps["fr_slots"]
        for attempt in range(2):
            for slot in range(L.SLOT_FIRST_FREE, L.MAX_SLOTS):
                try:
                    slots.update(slot, entry, BPF_NOEXIST)
                    return slot
                except BPFError as e:
                    if e.errno != errno.EEXIST:
                        raise
            if attempt or not self.reclaim():
                break
        raise PipelineError(f"all {L.MAX_SLOTS - L.SLOT_FIRST_FREE} stage slots of the "
                            f"pipeline are taken; close some filters")

    def release_slot(self, slot):
        try:
            del self.maps["fr_stages"][slot]
        except KeyError:
            pass
        try:
            del self.maps["fr_slots"][slot]
        except KeyError:
            pass
        prog = self._stages.pop(slot, None)
        if prog is not None:
            prog.close()

    def load_filter_stage(self, flt, parser):
        """Load (but do not install) the filter stage program for flt."""
        insns, functions = stage.build(flt, parser, self.maps["fr_scratch"].fd,
                                       self.maps["fr_tenants"].fd, self.maps["fr_stages"].fd)
        return self._load_stage(insns, functions, "fr_filter")

    def _load_stage(self, insns, functions, name):
        """Load a generated stage of this pipeline's program type, with the BTF
        func_info its subprograms need."""
        btf, func_info = funcs.for_functions(functions)
        with KernelBtf.load(btf) as kbtf:
            return Program.load(ProgType(self.backend.prog_type), insns, name=name,
                                btf=kbtf, func_info=func_info)

    def set_filter(self, slot, flt, parser):
        """Put the filter stage for flt into slot (replacing what was there, in one
        update: tenants of the slot switch filters between two events)."""
        prog = self.load_filter_stage(flt, parser)
        try:
            self.maps["fr_stages"][slot] = prog
        except BaseException:
            prog.close()
            raise
        old = self._stages.pop(slot, None)
        self._stages[slot] = prog
        if old is not None:
            old.close()

    def add_reducer(self, reducer):
        """Claim a slot and install the reduce stage of a custom.Reduce in it; returns
        the slot."""
        slot = self.claim_slot(L.SLOT_KIND_REDUCE, str(reducer))
        try:
            insns, functions = reducestage.build(
                reducer.compiled.instructions(), self.maps["fr_scratch"].fd,
                self.maps["fr_tenants"].fd, self.maps["fr_state"].fd,
                self.maps["fr_stages"].fd)
            prog = self._load_stage(insns, functions, "fr_reduce")
            try:
                self.maps["fr_stages"][slot] = prog
            except BaseException:
                prog.close()
                raise
            self._stages[slot] = prog
        except BaseException:
            self.release_slot(slot)
            raise
        return slot

    def add_filter(self, flt, parser):
        """Claim a slot and install the filter stage for flt in it; returns the slot."""
        slot = self.claim_slot(L.SLOT_KIND_FILTER, str(flt) if flt else "keep all")
        try:
            self.set_filter(slot, flt, parser)
        except BaseException:
            self.release_slot(slot)
            raise
        return slot

    def reclaim(self):
        """Drop tenants and stage slots of processes that have exited; returns how
        many were dropped."""
        count = self.tenants.reclaim()
        for slot, entry in self.maps["fr_slots"].items():
            if entry.owner_tgid and not procs.is_same_process(
                    entry.owner_tgid, (entry.owner_start_lo, entry.owner_start_hi)):
                self.release_slot(slot)
                count += 1
        return count

    # -- pinning ------------------------------------------------------------------

    def pin(self, directory):
        """Leave the pipeline in directory (on bpffs): its maps and links, all or
        nothing. The directory is created if needed and must hold no pins yet."""
        if self.pinned:
            raise PipelineError(f"the pipeline is already pinned under {self.pinned}")
        parent = os.path.dirname(os.path.abspath(directory))
        created = False
        if not os.path.isdir(directory):
            if not mounts.is_bpffs(parent):
                raise PipelineError(f"{parent} is not on a bpf filesystem; pin under "
                                    f"{mounts.BPFFS_DEFAULT} (mount -t bpf bpf "
                                    f"{mounts.BPFFS_DEFAULT})")
            os.mkdir(directory)
            created = True
        elif not mounts.is_bpffs(directory):
            raise PipelineError(f"{directory} is not on a bpf filesystem")
        done = []
        try:
            for name in MAP_NAMES:
                path = os.path.join(directory, name)
                self.maps[name].pin(path)
                done.append(path)
            for i, link in enumerate(self.links):
                if not isinstance(link, BpfLink):
                    raise PipelineError(f"the {self.backend.name} backend's link {link} "
                                        f"cannot be pinned on this kernel (perf-event "
                                        f"links need 5.15+)")
                path = os.path.join(directory, f"link_{i}")
                link.pin(path)
                done.append(path)
        except BaseException:
            for path in done:
                os.unlink(path)
            if created:
                os.rmdir(directory)
            raise
        self.pinned = directory
        # The stages installed so far belong to the pinned pipeline from now on.
        for slot in self._stages:
            entry = self.maps["fr_slots"][slot]
            entry.owner_tgid = entry.owner_start_lo = entry.owner_start_hi = 0
            self.maps["fr_slots"][slot] = entry
            self._permanent.add(slot)

    def set_default_filter(self, slot):
        """Name slot in fr_info as the filter that tenants of other processes use
        unless they bring their own."""
        info = self.maps["fr_info"][0]
        info.default_filter_slot = slot
        self.maps["fr_info"][0] = info

    def hook_programs(self):
        """The programs this process attached to the hooks (the dispatchers), for
        BPF's run-time statistics: a hook's run counts the stages it tail-calls.
        Empty for a pipeline joined from a pin."""
        if self._obj is None:
            return []
        attached = {link.info().prog_id for link in self.links}
        return [p for p in self._obj.programs.values()
                if not p.closed and p.info().id in attached]

    # -- closing ------------------------------------------------------------------

    def close(self):
        """Detach the pipeline (unless it is pinned) and release what this process
        holds: the stage slots it claimed (unless handed to the pin) and its fds."""
        if self.closed:
            return
        self.closed = True
        for link in self.links:
            link.close()
        for slot in list(self._stages):
            if slot in self._permanent:
                self._stages.pop(slot).close()
            else:
                self.release_slot(slot)
        for m in self.maps.values():
            m.close()
        if self._obj is not None:
            self._obj.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _views(obj_maps):
    """The object's maps, as Maps that read and write the layouts of layout.py."""
    views = {}
    try:
        for name in MAP_NAMES:
            key, value = _LAYOUTS.get(name, (None, None))
            views[name] = Map.from_fd(os.dup(obj_maps[name].fd), key=key, value=value)
    except BaseException:
        for m in views.values():
            m.close()
        raise
    return views


def detach(directory):
    """Remove a pipeline pinned under directory: its links (which detaches it), maps
    and the directory. Returns the names removed."""
    info = os.path.join(directory, "fr_info")
    if not os.path.exists(info):
        raise PipelineError(f"{directory} holds no pybpf filter-reduce pipeline "
                            f"(no fr_info pin)")
    removed = []
    names = sorted(os.listdir(directory), key=lambda n: (not n.startswith("link_"), n))
    for name in names:
        if name.startswith("link_") or name in MAP_NAMES:
            unpin(os.path.join(directory, name))
            removed.append(name)
    try:
        os.rmdir(directory)
    except OSError as e:
        if e.errno != errno.ENOTEMPTY:
            raise
    return removed
