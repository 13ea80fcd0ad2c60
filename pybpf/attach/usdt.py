"""USDT probes: a program run when a process passes a static probe point of a
binary (``DTRACE_PROBE*``/``STAP_PROBE*`` from <sys/sdt.h>). SEC("usdt/PATH:PROVIDER:NAME")
and its sleepable form "usdt.s/..." attach here, as libbpf's bpf_program__attach_usdt().

The probe's sites come from the binary's ``.note.stapsdt`` notes (pybpf.usdtnotes);
each site gets a uprobe (pybpf.attach.uprobe, so the PMU or tracefs, a BPF perf link or
the ioctl, as there), with the probe's semaphore as the uprobe's reference counter, so
the kernel keeps it non-zero while the probe is attached.

Programs built against libbpf's <bpf/usdt.bpf.h> read the probe's arguments with
bpf_usdt_arg(): it finds a description of the site's arguments in the object's
``__bpf_usdt_specs`` array, at the index the BPF cookie of the uprobe gives, or, on
kernels without BPF cookies, the index ``__bpf_usdt_ip_to_spec_id`` gives for the
site's address in the process. When the program uses those maps, attach_usdt fills
them as libbpf does, and empties what it wrote when the link closes.
"""
import struct
import threading

from .. import elf, usdtnotes
from ..kernel import features, procs
from ..kernel.constants import ProgType
from ..kernel.constants import BPF_NOEXIST
from ..errors import BPFError
from ..maps import Map
from .common import AttachError, LinkSet, check_pid, check_type, description, need_target
from .uprobe import attach_uprobe, resolve_binary

OPTIONS = ("pid",)

SPECS_MAP = "__bpf_usdt_specs"
IP_MAP = "__bpf_usdt_ip_to_spec_id"
_NAME_LEN = 15  # kernel map names are cut to BPF_OBJ_NAME_LEN - 1

# Spec ids in use, by map id of the __bpf_usdt_specs they index (one per object).
_spec_ids = {}
_lock = threading.Lock()


class UsdtLink(LinkSet):
    """The uprobes of one USDT probe (one per site, in ``links``), acting as one link;
    closing it also releases the argument specs the attach wrote."""

    def __init__(self, links, program, description, sites, maps):
        super().__init__(links, program, description)
        self.sites = sites   # (UsdtNote, file offset, semaphore file offset), per link
        self._maps = maps

    def close(self):
        try:
            super().close()
        finally:
            maps, self._maps = self._maps, None
            if maps is not None:
                maps.release()


class _SpecMaps:
    """The program's __bpf_usdt_specs and __bpf_usdt_ip_to_spec_id, and what one
    attach wrote into them."""

    def __init__(self, specs, ips):
        self.specs, self.ips = specs, ips
        self.specs_id = specs.id
        self.ids, self.ip_keys = [], []

    def allocate(self, what):
        with _lock:
            used = _spec_ids.setdefault(self.specs_id, set())
            free = next((i for i in range(self.specs.max_entries) if i not in used), None)
            if free is None:
                raise AttachError(
                    f"{what}: all {self.specs.max_entries} USDT argument specs of this "
                    f"object ({SPECS_MAP}) are in use; build the program with a larger "
                    f"BPF_USDT_MAX_SPEC_CNT, or close other USDT links of the object")
            used.add(free)
        self.ids.append(free)
        return free

    def write_spec(self, spec_id, spec):
        self.specs[struct.pack("=i", spec_id)] = spec

    def add_ip(self, ip, spec_id, what):
        if self.ips is None:
            raise AttachError(f"{what}: without BPF cookies the program finds a site's "
                              f"arguments by its address, but it uses no {IP_MAP} map")
        try:
            self.ips.update(struct.pack("=q", ip), struct.pack("=I", spec_id), BPF_NOEXIST)
        except BPFError as e:
            raise AttachError(f"{what}: site {ip:#x} is already in {IP_MAP} (attached "
                              f"twice from this object?): {e}") from None
        self.ip_keys.append(ip)

    def release(self):
        try:
            for ip in self.ip_keys:
                self.ips.pop(struct.pack("=q", ip), None)
        finally:
            with _lock:
                used = _spec_ids.get(self.specs_id, set())
                used.difference_update(self.ids)
                if not used:
                    _spec_ids.pop(self.specs_id, None)
            self.ids, self.ip_keys = [], []
            self.close()

    def close(self):
        for m in (self.specs, self.ips):
            if m is not None:
                m.close()


def _spec_maps(program, what):
    """The usdt.bpf.h maps program uses, or None when it uses neither."""
    found = {}
    try:
        for map_id in program.info().map_ids:
            m = Map.from_id(map_id)
            for wanted in (SPECS_MAP, IP_MAP):
                if m.name == wanted[:_NAME_LEN] and wanted not in found:
                    found[wanted] = m
                    break
            else:
                m.close()
        if not found:
            return None
        specs = found.get(SPECS_MAP)
        ips = found.get(IP_MAP)
        if specs is None:
            raise AttachError(f"{what}: the program uses {IP_MAP} but not {SPECS_MAP}: "
                              f"it was not built against libbpf's usdt.bpf.h")
        _check_map(specs, 4, usdtnotes.SPEC_LAYOUTS, what)
        if ips is not None:
            _check_map(ips, 8, (4,), what)
        maps = _SpecMaps(specs, ips)
        found = {}
        return maps
    finally:
        for m in found.values():
            m.close()


def _check_map(m, key_size, value_sizes, what):
    if m.key_size != key_size or m.value_size not in value_sizes:
        raise AttachError(
            f"{what}: map {m.name!r} has {m.key_size}-byte keys and {m.value_size}-byte "
            f"values, not the {key_size} and {' or '.join(map(str, value_sizes))} of "
            f"the versions of libbpf's usdt.bpf.h that pybpf knows")


def _sites(image, path, provider, name):
    """[(note, file offset, semaphore file offset or 0)] of provider:name in image."""
    try:
        notes = usdtnotes.probes(image)
    except usdtnotes.UsdtError as e:
        raise AttachError(f"{path}: {e}") from None
    found = [n for n in notes if n.provider == provider and n.name == name]
    if not found:
        if not notes:
            raise AttachError(f"{path} has no USDT probes (no {usdtnotes.NOTE_SECTION} "
                              f"section)")
        have = sorted({n.full_name for n in notes})
        raise AttachError(f"{path} has no USDT probe {provider}:{name}; it has "
                          f"{', '.join(have[:10])}" + (" ..." if len(have) > 10 else ""))
    out = []
    for note in found:
        where = f"USDT probe {provider}:{name} in {path} (site {note.address:#x})"
        offset = _offset(image, note.address, True, f"{where}: its address")
        sema = _offset(image, note.semaphore, False, f"{where}: its semaphore "
                       f"{note.semaphore:#x}") if note.semaphore else 0
        out.append((note, offset, sema))
    return out


def _offset(image, vaddr, executable, what):
    try:
        offset = image.vaddr_to_offset(vaddr)
    except elf.ElfError as e:
        raise AttachError(f"{what}: {e}") from None
    seg = next(s for s in image.segments if s.type == elf.PT_LOAD
               and s.vaddr <= vaddr < s.vaddr + s.filesz)
    if bool(seg.flags & elf.PF_X) != executable:
        raise AttachError(f"{what} is in {'a data' if executable else 'an executable'} "
                          f"segment (program header {seg.index})")
    return offset


def _absolute_ip(image, path, pid, note, offset, what):
    """The site's address in process pid, for __bpf_usdt_ip_to_spec_id."""
    if image.elf_type == elf.ET_EXEC:
        return note.address
    if pid is None:
        raise AttachError(f"{what}: on a kernel without BPF cookies, a USDT probe of a "
                          f"shared library or position-independent executable needs pid=, "
                          f"where its address is known")
    for start, end, file_offset in procs.executable_mappings(pid, path):
        if file_offset <= offset < file_offset + end - start:
            return start - file_offset + offset
    raise AttachError(f"{what}: process {pid} has no executable mapping of {path} at "
                      f"file offset {offset:#x}")


def attach_usdt(program, binary, provider, name, *, pid=None, cookie=0, legacy=None,
                use_link=None):
    """Run a kprobe-type program at every site of USDT probe provider:name of binary
    (a path, a library name or an executable on PATH, as for attach_uprobe), in
    process pid or in every process.

    cookie: what bpf_usdt_cookie() returns in the program (libbpf's usdt_cookie);
    for a program that does not use usdt.bpf.h, the BPF cookie. legacy/use_link as
    for attach_uprobe; without a BPF perf link (use_link=False, or kernels before
    5.15) the program finds its arguments by address, so it must be loaded with
    kconfig={"LINUX_HAS_BPF_COOKIE": 0}.
    """
    check_type(program, (ProgType.KPROBE,), "USDT probes", "usdt/BINARY:PROVIDER:NAME")
    for what, value in (("provider", provider), ("name", name)):
        if not isinstance(value, str) or not value or ":" in value:
            raise AttachError(f"USDT {what} must be a non-empty name without ':', "
                              f"got {value!r}")
    if not isinstance(cookie, int) or not 0 <= cookie < 2 ** 64:
        raise AttachError(f"cookie must be an integer in [0, 2**64), got {cookie!r}")
    if pid is not None:
        check_pid(pid)
    path = resolve_binary(binary, pid)
    what = description("usdt", f"{path}:{provider}:{name}")
    try:
        image = elf.ElfFile.from_path(path)
    except elf.ElfError as e:
        raise AttachError(f"{path} is not an ELF file with USDT probes: {e}") from None
    sites = _sites(image, path, provider, name)
    maps = _spec_maps(program, what)
    links = []
    try:
        cookies = [cookie] * len(sites)
        if maps is not None:
            by_cookie = use_link is not False and (use_link or features.have("bpf_perf_link"))
            specs = {}
            for i, (note, offset, _) in enumerate(sites):
                try:
                    args = usdtnotes.parse_args(note.args, image.machine)
                except usdtnotes.UsdtError as e:
                    raise AttachError(f"{what}: {e}") from None
                if note.args not in specs:
                    spec_id = specs[note.args] = maps.allocate(what)
                    try:
                        spec = usdtnotes.spec_bytes(args, cookie, maps.specs.value_size)
                    except usdtnotes.UsdtError as e:
                        raise AttachError(f"{what}: {e}") from None
                    maps.write_spec(spec_id, spec)
                spec_id = specs[note.args]
                if by_cookie:
                    cookies[i] = spec_id
                else:
                    cookies[i] = None
                    maps.add_ip(_absolute_ip(image, path, pid, note, offset, what), spec_id,
                                what)
        for (note, offset, sema), site_cookie in zip(sites, cookies):
            links.append(attach_uprobe(program, path, offset=offset, pid=pid,
                                       cookie=site_cookie or None, ref_ctr_offset=sema,
                                       legacy=legacy, use_link=use_link))
        link = UsdtLink(links, program, what, sites, maps)
    except BaseException:
        for link in links:
            link.close()
        if maps is not None:
            maps.release()
        raise
    return link


def attach_section(program, sd, pid=None):
    """usdt/PATH:PROVIDER:NAME (and usdt.s/...)"""
    target = need_target(sd, "PATH:PROVIDER:NAME")
    parts = target.rsplit(":", 2)
    if len(parts) != 3 or not all(parts):
        raise AttachError(f"usdt section target {target!r} is not PATH:PROVIDER:NAME")
    return attach_usdt(program, *parts, pid=pid)
