"""The tenant table: who takes part, with which stages, and what they got so far.

A tenant is a (tgid, buffer address) pair, as in the thesis: the hooks see the
process and the user buffer a copy goes to, not the file. Registering writes the
whole fr_tenants value once with BPF_NOEXIST (so two registrations of one buffer
cannot both succeed); from then on only the kernel writes it, and user space reads
the results and finally deletes the entry.

A process that exits without unregistering leaves its entry behind. The kernel
already ignores it once the pid belongs to someone else (the entry holds the
process's start-time window, which the dispatchers compare); :meth:`reclaim`
removes such entries for good, and the inflight entries of threads that are gone.
"""
import errno
import os

from ..errors import BPFError, MapFullError, PipelineError
from ..kernel import procs
from ..kernel.constants import BPF_NOEXIST
from . import layout as L
from .results import empty_counters


class TenantTable:
    """fr_tenants and fr_inflight, opened with the layouts of layout.py (Map checks
    that their sizes match the kernel's maps)."""

    def __init__(self, tenants, inflight, states):
        self.tenants, self.inflight, self.states = tenants, inflight, states

    def register(self, buf, filter_slot, reduce_slot, flags=0, state=None):
        """Register this process's buffer at address buf; returns its Key. state: the
        initial slots of a custom reduce stage's state (custom.Reduce), if it has one."""
        pid = os.getpid()
        window = procs.start_window(pid)
        key = L.Key(tgid=pid, buf=buf)
        value = L.Tenant(filter_slot=filter_slot, reduce_slot=reduce_slot,
                         start_lo=window[0], start_hi=window[1], flags=flags,
                         res=empty_counters())
        try:
            self._insert(key, value)
        except MapFullError:
            if not self.reclaim():
                raise PipelineError(
                    f"the pipeline's tenant table is full ({self.tenants.max_entries} "
                    f"tenants registered and alive); unregister some") from None
            self._insert(key, value)
        if state is not None:
            # After the tenant: a registration refused (EEXIST) must not reset the
            # state of the tenant already there. No read of this buffer can happen in
            # between: this thread registers before it reads.
            slots = L.State()
            slots.slot[:len(state)] = state
            try:
                self.states[key] = slots
            except BaseException:
                self.unregister(key)
                raise
        return key

    def _insert(self, key, value):
        try:
            self.tenants.update(key, value, BPF_NOEXIST)
        except BPFError as e:
            if e.errno == errno.EEXIST:
                raise PipelineError(f"buffer {key.buf:#x} of process {key.tgid} is already "
                                    f"registered with the pipeline") from None
            raise

    def counters(self, key):
        """The tenant's layout.Tenant as the kernel has it now (KeyError: gone)."""
        return self.tenants[key]

    def state(self, key):
        """The custom reduce state's slots (a list of ints)."""
        return list(self.states[key].slot)

    def unregister(self, key):
        for table in (self.tenants, self.states):
            try:
                del table[key]
            except KeyError:
                pass

    def reclaim(self):
        """Remove the entries of processes that have exited (or whose pid now names
        another process) and inflight entries of threads that are gone; returns the
        number of tenants removed."""
        stale, windows = [], {}
        for key, value in self.tenants.items():
            if key.tgid not in windows:
                windows[key.tgid] = procs.start_window(key.tgid)
            if windows[key.tgid] != (value.start_lo, value.start_hi):
                stale.append(key)
        for key in stale:
            self.unregister(key)
        for key in list(self.states.keys()):      # states whose tenant went first
            if key not in self.tenants:
                try:
                    del self.states[key]
                except KeyError:
                    pass
        for pid_tgid in list(self.inflight.keys()):
            tid, tgid = pid_tgid & 0xFFFFFFFF, pid_tgid >> 32
            if not procs.thread_exists(tgid, tid):
                try:
                    del self.inflight[pid_tgid]
                except KeyError:
                    pass
        return len(stale)

    def __len__(self):
        return len(self.tenants)
