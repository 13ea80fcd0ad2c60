"""One function per bpf(2) command, taking plain fds, ints and buffers.

The layer above (maps, programs, links) holds objects; this layer only fills
``union bpf_attr`` and translates errno into exceptions (or, where absence is an
ordinary answer, such as ENOENT from a lookup, into a return value).
"""
import ctypes
import errno
import mmap as _mmap
import _thread
import os

from ..errors import ENOTSUPP, BPFError, InputError
from . import attr as A
from . import cpus, files, memlock, mounts, security
from .constants import (BPF_F_NUMA_NODE, BPF_F_REPLACE, BPF_OBJ_NAME_LEN, Cmd, MapType,
                        ProgType)
from .syscall import bpf, bpf_errno, bpf_failed, make_error, prebuilt_args, raw_call

LOG_BUF_START = 64 * 1024
_TRACING_TYPES = (ProgType.TRACING, ProgType.LSM, ProgType.EXT)
LOG_BUF_MAX = (1 << 30) - 1  # the kernel's limit (UINT_MAX >> 2)


def address(buf):
    """Address of a ctypes object, a bytearray or a bytes object (0 for None).

    The caller keeps buf alive for the duration of the syscall.
    """
    if buf is None:
        return 0
    if isinstance(buf, bytes):
        return ctypes.cast(ctypes.c_char_p(buf), ctypes.c_void_p).value or 0
    if isinstance(buf, bytearray):
        return ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf)) if buf else 0
    return ctypes.addressof(buf)


# The bytes bpf_obj_name_cpy() accepts in a map or program name: '_', '.' and what the
# kernel's isalnum() calls alphanumeric. Its ctype table (lib/ctype.c) is Latin-1, so
# besides ASCII letters and digits it takes 0xC0-0xFF except 0xD7 and 0xF7 (but never
# a UTF-8 continuation byte, 0x80-0xBF: any non-ASCII character of a str is refused).
NAME_BYTES = frozenset(b"_.0123456789" + bytes(range(ord("A"), ord("Z") + 1)) +
                       bytes(range(ord("a"), ord("z") + 1)) +
                       bytes(b for b in range(0xC0, 0x100) if b not in (0xD7, 0xF7)))
NAME_MAX = BPF_OBJ_NAME_LEN - 1  # the kernel wants a NUL within the 16-byte field


def obj_name(name):
    """The bytes of an object name, checked exactly as the kernel checks them.

    A str is encoded as UTF-8 with surrogateescape, so a name read from an ELF file
    (decoded that way) goes back as its own bytes. A name the kernel would refuse with
    a bare EINVAL, or one longer than NAME_MAX bytes (which it refuses too), is an
    InputError naming the offending byte: nothing is truncated or replaced here (the
    object loader shortens names from ELF files, as libbpf does).
    """
    if isinstance(name, str):
        try:
            raw = name.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError as e:
            raise InputError(f"object name {name!r} cannot be encoded: {e.reason}") from None
    elif isinstance(name, (bytes, bytearray)):
        raw = bytes(name)
    else:
        raise InputError(f"an object name is a str or bytes, not {type(name).__name__}")
    if len(raw) > NAME_MAX:
        raise InputError(f"object name {name!r} is {len(raw)} bytes; the kernel takes at "
                         f"most {NAME_MAX}")
    for at, byte in enumerate(raw):
        if byte not in NAME_BYTES:
            raise InputError(f"object name {name!r} has byte {byte:#04x}{_within(name, at)}, "
                             f"which the kernel refuses; use ASCII letters, digits, '_' "
                             f"and '.'")
    return raw


def _within(name, at):
    """" (in 'é', UTF-8 c3 a9)" for byte offset at of a str name's UTF-8 encoding."""
    if not isinstance(name, str):
        return f" at offset {at}"
    start = 0
    for char in name:
        raw = char.encode("utf-8", "surrogateescape")
        if start <= at < start + len(raw):
            if len(raw) == 1:
                return f" ({char!r})" if char.isprintable() else ""
            return f" (in {char!r}, UTF-8 {raw.hex(' ')})"
        start += len(raw)
    return ""


def name_text(raw):
    """A name the kernel reports (bpf_*_info.name) as text. Latin-1, as the kernel's
    own ctype table reads names: it never fails, and keeps every byte."""
    return bytes(raw).decode("latin-1")


def close(fd):
    os.close(fd)


# ---- maps -------------------------------------------------------------------

def map_create(map_type, key_size, value_size, max_entries, flags=0, name="",
               inner_map_fd=0, numa_node=None, ifindex=0, btf_fd=0, btf_key_type_id=0,
               btf_value_type_id=0, btf_vmlinux_value_type_id=0, map_extra=0, hints=None):
    memlock.raise_memlock_rlimit()
    attr = A.MapCreateAttr(
        map_type=map_type, key_size=key_size, value_size=value_size,
        max_entries=max_entries, map_flags=flags | (BPF_F_NUMA_NODE if numa_node is not None else 0),
        inner_map_fd=inner_map_fd, numa_node=numa_node or 0, map_name=obj_name(name),
        map_ifindex=ifindex, btf_fd=btf_fd, btf_key_type_id=btf_key_type_id,
        btf_value_type_id=btf_value_type_id,
        btf_vmlinux_value_type_id=btf_vmlinux_value_type_id, map_extra=map_extra)
    return bpf(Cmd.MAP_CREATE, attr, hints)


# Map types whose values user space sees per CPU: round_up(value_size, 8) bytes for
# every possible CPU (kernel/bpf/syscall.c, bpf_map_value_size()).
PERCPU_MAP_TYPES = frozenset({MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH,
                              MapType.PERCPU_ARRAY, MapType.PERCPU_CGROUP_STORAGE})
# Map types that take fds on update and give u32 ids on lookup (IS_FD_MAP()).
FD_MAP_TYPES = frozenset({MapType.PROG_ARRAY, MapType.PERF_EVENT_ARRAY,
                          MapType.CGROUP_ARRAY, MapType.ARRAY_OF_MAPS,
                          MapType.HASH_OF_MAPS})


def value_buffer_size(map_type, value_size):
    """Bytes the kernel copies in and out of a value buffer of an element command (per
    element of a batch), for a map of map_type with the given value_size.

    This, not value_size, is what a buffer must hold: a per-CPU map copies every
    possible CPU's value (pybpf counts CPUs as the highest possible one plus 1, never
    fewer than the kernel's num_possible_cpus()). A type newer than pybpf's constants
    may be per-CPU, so it is sized as if it were.
    """
    if map_type in PERCPU_MAP_TYPES or map_type > max(MapType):
        return (value_size + 7) // 8 * 8 * cpus.possible_cpus()
    if map_type in FD_MAP_TYPES:
        return 4
    return value_size


_MMAP_BUFFER = 1 << 20  # bytes from which element buffers come from an anonymous mmap


def _zeroed(size):
    """A zeroed, writable buffer of size bytes. A large one is an anonymous mmap, whose
    pages take no memory until a copy touches them: the buffer of a data map is as large
    as its section (hundreds of MiB for a large .bss) and rarely used, since globals
    are read through a mapping of the map itself. Both kinds slice and export alike."""
    return bytearray(size) if size < _MMAP_BUFFER else _mmap.mmap(-1, size)


class ElemOps:
    """Prebuilt attr and buffers for the BPF_MAP_*_ELEM commands on one map.

    Single-element operations are the hot path of a map from Python; building the attr
    and buffers once makes one lookup a copy in, a syscall and a copy out (about
    1.3 us of the ~2 us a lookup costs is ctypes' call and the kernel). Buffers are
    bytearrays, whose slice assignment is the cheapest copy Python has. A lock keeps
    threads from sharing the buffers mid-call (ctypes releases the GIL in syscall()).

    The buffers are checked once, here, against the map as the kernel reports it: the
    kernel copies key_size and value_buffer_size() bytes through the pointers without
    knowing how large the buffers behind them are, so a smaller one would be a heap
    overflow in this process (InputError instead). Batches check theirs in batch().
    """

    def __init__(self, fd, key_size, value_size):
        info = obj_get_info(fd, "map")
        self.need_key = info.key_size
        self.need_value = value_buffer_size(info.type, info.value_size)
        if key_size < self.need_key or value_size < self.need_value:
            raise InputError(
                f"map {info.id} (type {info.type}) has {self.need_key}-byte keys and "
                f"{self.need_value}-byte values as the kernel copies them, but the "
                f"buffers for it would be {key_size} and {value_size} bytes; give the map "
                f"key and value types of those sizes (per-CPU values are lists)")
        self.fd = fd
        self.key_size, self.value_size = key_size, value_size
        self.key = _zeroed(max(key_size, 1))
        self.value = _zeroed(max(value_size, 1))
        self.next = _zeroed(max(key_size, 1))
        # ctypes views export the bytearrays, which makes any resize (the one way a
        # slice assignment could move them under the kernel's pointer) a BufferError.
        self._views = [(ctypes.c_char * len(b)).from_buffer(b)
                       for b in (self.key, self.value, self.next)]
        self._key_addr, self._value_addr, self._next_addr = map(ctypes.addressof, self._views)
        self.attr = A.MapElemAttr(map_fd=fd)
        self._args = {cmd: prebuilt_args(cmd, self.attr) for cmd in _ELEM_CMDS}
        self.lock = _thread.allocate_lock()

    def _call(self, cmd, key, value_addr, flags):
        """Returns 0 or -errno; the caller holds the lock."""
        attr = self.attr
        if key is None:
            attr.key = 0
        else:
            self.key[:] = key
            attr.key = self._key_addr
        attr.value = value_addr
        attr.flags = flags
        if raw_call(*self._args[cmd]) >= 0:
            return 0
        return -ctypes.get_errno()

    def _check(self, cmd, ret, missing_ok=True):
        """True on success, False for ENOENT (when that is an answer), else raise."""
        if ret >= 0:
            return True
        if missing_ok and ret == -errno.ENOENT:
            return False
        bpf_failed(cmd, self.attr, -ret)  # retries EINTR, raises otherwise
        return True

    def lookup(self, key, flags=0, cmd=int(Cmd.MAP_LOOKUP_ELEM)):
        """Value bytes for key (None for keyless maps), or None when absent."""
        with self.lock:
            ret = self._call(cmd, key, self._value_addr, flags)
            if ret >= 0 or self._check(cmd, ret):
                return bytes(self.value) if self.value_size else b""
            return None

    def update(self, key, value, flags=0):
        if flags:  # set on the prebuilt attr, past the constructor's range check
            A.check(A.MapElemAttr, "flags", flags)
        with self.lock:
            self.value[:] = value
            self._check(_UPDATE, self._call(_UPDATE, key, self._value_addr, flags), False)

    def delete(self, key):
        """True when key was present."""
        with self.lock:
            return self._check(_DELETE, self._call(_DELETE, key, 0, 0))

    def next_key(self, key):
        """The key after key (the first key for None), or None at the end."""
        with self.lock:
            if self._check(_NEXT_KEY, self._call(_NEXT_KEY, key, self._next_addr, 0)):
                return bytes(self.next) if self.key_size else b""
            return None

    def batch(self, cmd, in_batch, out_batch, keys, values, count, elem_flags=0):
        """One BPF_MAP_*_BATCH call. Returns (count processed, finished).

        ``finished`` is True when a lookup batch got ENOENT: the map has no more
        entries after this batch (which may still hold some). For update and delete
        batches ENOENT is an error (a missing key), raised with ``batch_count``, the
        number of elements processed before it, like every other error.

        Every buffer must hold what the kernel copies for count elements: keys and
        values for each, and a resume token (a u32 bucket of a hash map, a key of
        the others) in in_batch and out_batch.
        """
        token = max(self.need_key, 4)
        for name, buf, size in (("keys", keys, count * self.need_key),
                                ("values", values, count * self.need_value),
                                ("in_batch", in_batch, token), ("out_batch", out_batch, token)):
            if buf is not None and len(buf) < size:
                raise InputError(f"a batch of {count} elements needs {size} bytes of "
                                 f"{name}, got a {len(buf)}-byte buffer")
        attr = A.MapBatchAttr(in_batch=address(in_batch), out_batch=address(out_batch),
                              keys=address(keys), values=address(values), count=count,
                              map_fd=self.fd, elem_flags=elem_flags)
        try:
            bpf(cmd, attr)
        except BPFError as e:
            if e.errno != errno.ENOENT or cmd not in _LOOKUP_BATCHES:
                e.batch_count = attr.count
                raise
            return attr.count, True
        return attr.count, False


# Plain ints: passing an IntEnum through ctypes costs more than the syscall's own work.
_UPDATE, _DELETE, _NEXT_KEY = (int(Cmd.MAP_UPDATE_ELEM), int(Cmd.MAP_DELETE_ELEM),
                               int(Cmd.MAP_GET_NEXT_KEY))
_ELEM_CMDS = (int(Cmd.MAP_LOOKUP_ELEM), _UPDATE, _DELETE, _NEXT_KEY,
              int(Cmd.MAP_LOOKUP_AND_DELETE_ELEM))
_LOOKUP_BATCHES = (Cmd.MAP_LOOKUP_BATCH, Cmd.MAP_LOOKUP_AND_DELETE_BATCH)


def map_freeze(fd):
    bpf(Cmd.MAP_FREEZE, A.MapElemAttr(map_fd=fd), {
        errno.EBUSY: "the map is mmap()ed writable; close the writable mapping first"})




def mmap(fd, length, writable, offset=0):
    """mmap(2) a BPF_F_MMAPABLE map's value area (shared with the kernel), or the part
    of it from offset (a multiple of the page size) on."""
    prot = _mmap.PROT_READ | (_mmap.PROT_WRITE if writable else 0)
    try:
        return _mmap.mmap(fd, length, _mmap.MAP_SHARED, prot, offset=offset)
    except OSError as e:
        hint = ("the map is frozen or was created with BPF_F_RDONLY_PROG; map it read-only"
                if e.errno == errno.EPERM else
                "only array maps created with BPF_F_MMAPABLE can be mmap()ed")
        raise BPFError("mmap", e.errno, hint=hint) from None


# ---- programs ---------------------------------------------------------------

def prog_load(prog_type, insns, license, name="", expected_attach_type=0, kern_version=0,
              prog_flags=0, log_level=0, log_size=None, prog_btf_fd=0, func_info=None,
              func_info_rec_size=0, func_info_cnt=0, line_info=None, line_info_rec_size=0,
              line_info_cnt=0, attach_btf_id=0, attach_prog_fd=0, fd_array=None,
              prog_ifindex=0, hints=None):
    """BPF_PROG_LOAD; returns (fd, log text).

    Without log_level, the first attempt runs with no log (cheap). If it fails, the load
    is repeated with log level 1 so the error carries the verifier's reason; a log
    that does not fit (ENOSPC) is retried with the size the kernel reports needing
    (6.4+) or a doubled buffer.
    """
    memlock.raise_memlock_rlimit()
    missing = _missing_capabilities(prog_type)
    if hints is None and missing:
        hints = {errno.EPERM: f"loading {getattr(prog_type, 'name', prog_type)} programs needs "
                              f"{' and '.join(missing)} besides CAP_BPF (or CAP_SYS_ADMIN)"}
    elif hints is None and prog_type in _TRACING_TYPES and security.has_bpf_privilege():
        # A privileged EPERM for these types is the kernel refusing tracing itself.
        hints = {errno.EPERM: security.tracing_refusal_hint()}
    try:
        lic = license.encode() + b"\0"
    except UnicodeEncodeError as e:
        raise InputError(f"license {license!r} cannot be encoded: {e.reason}") from None
    attr = A.ProgLoadAttr(
        prog_type=prog_type, insn_cnt=len(insns) // 8, insns=address(insns),
        license=address(lic), kern_version=kern_version, prog_flags=prog_flags,
        prog_name=obj_name(name), prog_ifindex=prog_ifindex,
        expected_attach_type=expected_attach_type, prog_btf_fd=prog_btf_fd,
        func_info_rec_size=func_info_rec_size, func_info=address(func_info),
        func_info_cnt=func_info_cnt, line_info_rec_size=line_info_rec_size,
        line_info=address(line_info), line_info_cnt=line_info_cnt,
        attach_btf_id=attach_btf_id, attach_prog_fd=attach_prog_fd,
        fd_array=address(fd_array))
    return load_with_log(Cmd.PROG_LOAD, attr, "log_", log_level, log_size, hints)


# Program types bpf_prog_load() refuses without CAP_NET_ADMIN or CAP_PERFMON besides
# CAP_BPF (is_net_admin_prog_type(), is_perfmon_prog_type() in kernel/bpf/syscall.c).
_NET_ADMIN_TYPES = frozenset({
    ProgType.SCHED_CLS, ProgType.SCHED_ACT, ProgType.XDP, ProgType.LWT_IN, ProgType.LWT_OUT,
    ProgType.LWT_XMIT, ProgType.LWT_SEG6LOCAL, ProgType.SK_SKB, ProgType.SK_MSG,
    ProgType.FLOW_DISSECTOR, ProgType.CGROUP_DEVICE, ProgType.CGROUP_SOCK,
    ProgType.CGROUP_SOCK_ADDR, ProgType.CGROUP_SOCKOPT, ProgType.CGROUP_SYSCTL,
    ProgType.SOCK_OPS, ProgType.EXT, ProgType.NETFILTER})
_PERFMON_TYPES = frozenset({
    ProgType.KPROBE, ProgType.TRACEPOINT, ProgType.PERF_EVENT, ProgType.RAW_TRACEPOINT,
    ProgType.RAW_TRACEPOINT_WRITABLE, ProgType.TRACING, ProgType.LSM, ProgType.STRUCT_OPS,
    ProgType.EXT})


def _missing_capabilities(prog_type):
    """The capabilities a process with CAP_BPF (and without CAP_SYS_ADMIN, which covers
    them all) lacks for loading prog_type: the kernel's EPERM names none of them."""
    caps = security.effective_capabilities()
    if security.CAP_BPF not in caps or security.CAP_SYS_ADMIN in caps:
        return []
    return [name for cap, name, types in (
        (security.CAP_NET_ADMIN, "CAP_NET_ADMIN", _NET_ADMIN_TYPES),
        (security.CAP_PERFMON, "CAP_PERFMON", _PERFMON_TYPES))
        if prog_type in types and cap not in caps]


def _log_text(buf):
    return buf.value.decode("utf-8", "replace") if buf is not None else ""


def prog_test_run(fd, data_in=None, data_size_out=0, ctx_in=None, ctx_size_out=0,
                  repeat=1, flags=0, cpu=0, batch_size=0, ctx_in_place=False):
    """BPF_PROG_TEST_RUN; returns (retval, duration_ns, data_out, ctx_out).

    The context goes in through a buffer of its own: syscall programs write it back
    into ctx_in (the kernel copies the context back there, not to ctx_out), which must
    never be the caller's bytes object; with ctx_in_place, that buffer is the
    returned ctx_out."""
    A.check(A.TestRunAttr, "data_size_out", data_size_out)  # before sizing buffers by them
    A.check(A.TestRunAttr, "ctx_size_out", ctx_size_out)
    data_out = ctypes.create_string_buffer(data_size_out) if data_size_out else None
    ctx_out = ctypes.create_string_buffer(ctx_size_out) if ctx_size_out else None
    ctx_buf = ctypes.create_string_buffer(bytes(ctx_in), len(ctx_in)) if ctx_in else None
    attr = A.TestRunAttr(
        prog_fd=fd, data_size_in=len(data_in or b""), data_in=address(data_in),
        data_size_out=data_size_out, data_out=address(data_out),
        ctx_size_in=len(ctx_in or b""), ctx_in=address(ctx_buf),
        ctx_size_out=ctx_size_out, ctx_out=address(ctx_out),
        repeat=repeat, flags=flags, cpu=cpu, batch_size=batch_size)
    bpf(Cmd.PROG_TEST_RUN, attr, {
        ENOTSUPP: "this program type has no BPF_PROG_TEST_RUN support in this kernel",
        errno.ENOSPC: "data_out/ctx_out is smaller than what the program produced"})
    data = data_out.raw[:attr.data_size_out] if data_out is not None else b""
    ctx = ctx_out.raw[:attr.ctx_size_out] if ctx_out is not None else b""
    if ctx_in_place and ctx_buf is not None:
        ctx = ctx_buf.raw
    return attr.retval, attr.duration, data, ctx


def enable_stats(stats_type):
    """BPF_ENABLE_STATS; the returned fd keeps run_cnt/run_time_ns counting until closed."""
    return bpf(Cmd.ENABLE_STATS, A.EnableStatsAttr(type=stats_type))


# ---- objects by path and by id ----------------------------------------------

def obj_pin(fd, path):
    mounts.check_pin_path(path)
    raw = os.fsencode(path) + b"\0"
    bpf(Cmd.OBJ_PIN, A.ObjAttr(pathname=address(raw), bpf_fd=fd), {
        errno.EEXIST: f"{path} is already pinned; unpin it (os.unlink) or choose another path"})


def obj_get(path, file_flags=0):
    raw = os.fsencode(path) + b"\0"
    return bpf(Cmd.OBJ_GET, A.ObjAttr(pathname=address(raw), file_flags=file_flags), {
        errno.ENOENT: f"nothing is pinned at {path}",
        errno.EINVAL: f"{path} is not a pinned BPF object (is it on a bpffs mount?)"})


_INFO_STRUCTS = {"prog": A.BpfProgInfo, "map": A.BpfMapInfo, "btf": A.BpfBtfInfo,
                 "link": A.BpfLinkInfo}


def obj_get_info(fd, kind, **arrays):
    """BPF_OBJ_GET_INFO_BY_FD for kind "prog", "map" or "btf".

    ``arrays`` sets pointer fields (e.g. ``map_ids=(buffer, count_field, count)``) so
    the kernel fills variable-length data in the same call.
    """
    info = _INFO_STRUCTS[kind]()
    keep = []
    for field, (buf, count_field, count) in arrays.items():
        keep.append(buf)
        setattr(info, field, address(buf))
        setattr(info, count_field, count)
    attr = A.InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
    bpf(Cmd.OBJ_GET_INFO_BY_FD, attr)
    return info


def next_id(cmd, start_id):
    """The next id after start_id for a *_GET_NEXT_ID command, or None at the end."""
    attr = A.GetIdAttr(start_id=start_id)
    try:
        bpf(cmd, attr)
    except BPFError as e:
        if e.errno == errno.ENOENT:
            return None
        raise
    return attr.next_id


def fd_by_id(cmd, obj_id, open_flags=0):
    return bpf(cmd, A.GetIdAttr(start_id=obj_id, open_flags=open_flags), {
        errno.ENOENT: f"no object with id {obj_id} (it may have been unloaded)"})


def unlink(path):
    """Remove a pin: pins are files in bpffs."""
    os.unlink(path)


def check_kind(fd, kind):
    """Refuse fd unless it is an open fd of a BPF object of kind ("map", "prog" or
    "link"): the kernel would answer BPF_OBJ_GET_INFO_BY_FD about a program in a map's
    info structure, and its fields would read as gigabyte key and value sizes."""
    if isinstance(fd, bool) or not isinstance(fd, int) or fd < 0:
        raise InputError(f"{fd!r} is not a file descriptor")
    try:
        found = object_kind(fd)
    except FileNotFoundError:
        raise InputError(f"fd {fd} is not open") from None
    if found != kind:
        what = f"a BPF {found}" if found else "not a BPF map, program or link"
        raise InputError(f"fd {fd} is {what}, not a BPF {kind}")


def object_kind(fd):
    """"map", "prog", "link" or None: which BPF object an fd refers to (fdinfo tells
    these three apart; a BTF fd and non-BPF fds give None)."""
    info = files.fdinfo(fd)
    for key, kind in (("map_type", "map"), ("prog_type", "prog"), ("link_type", "link")):
        if key in info:
            return kind
    return None


# ---- BTF --------------------------------------------------------------------

def btf_load(data, log_level=0, log_size=None, hints=None):
    """BPF_BTF_LOAD of raw BTF bytes; returns the new BTF object's fd.

    The first attempt runs without a log unless log_level asks for one; a refused BTF
    is loaded again with log level 1 so the error (a VerifierError) carries the
    kernel's BTF log, which names the bad type id and why ("[12] VAR x type_id=3
    Invalid type"): the errno alone is only EINVAL.
    """
    memlock.raise_memlock_rlimit()
    raw = bytes(data)
    attr = A.BtfLoadAttr(btf=address(raw), btf_size=len(raw))
    hints = dict(hints or {})
    hints.setdefault(errno.E2BIG, f"the BTF ({len(raw)} bytes) is larger than this "
                                  f"kernel accepts")
    return load_with_log(Cmd.BTF_LOAD, attr, "btf_log_", log_level, log_size, hints)[0]


def load_with_log(cmd, attr, prefix, log_level, log_size, hints):
    """Issue a load command (PROG_LOAD, BTF_LOAD) whose attr has the fields
    {prefix}level/size/buf/true_size; returns (fd, log text).

    Without log_level, the first attempt runs with no log (cheap). If it fails, the
    load is repeated with log level 1 so the error carries the verifier's reason; a
    log that does not fit (ENOSPC) is retried with the size the kernel reports needing
    (6.4+) or a doubled buffer. Attempts return -errno, so only the final failure
    builds an exception.
    """
    size, level = log_size or LOG_BUF_START, log_level
    A.check(type(attr), prefix + "size", size)  # before sizing the log buffer by it
    while True:
        log = ctypes.create_string_buffer(size) if level else None
        setattr(attr, prefix + "level", level)
        setattr(attr, prefix + "size", size if level else 0)
        setattr(attr, prefix + "buf", address(log))
        setattr(attr, prefix + "true_size", 0)
        ret = bpf_errno(cmd, attr)
        if ret >= 0:
            return ret, _log_text(log)
        if level == 0:
            level = 1
        elif ret == -errno.ENOSPC and size < LOG_BUF_MAX:
            size = min(max(getattr(attr, prefix + "true_size"), size * 2), LOG_BUF_MAX)
        else:
            raise make_error(cmd, -ret, hints, log=_log_text(log))


def btf_get_fd_by_id(btf_id):
    """An fd for the loaded BTF object btf_id (the kernel's, a module's, or a program's)."""
    return fd_by_id(Cmd.BTF_GET_FD_BY_ID, btf_id)


def btf_get_next_id(start_id=0):
    """The id of the next loaded BTF object after start_id, or None."""
    return next_id(Cmd.BTF_GET_NEXT_ID, start_id)


def btf_info(fd, with_data=False):
    """(bpf_btf_info, name, raw BTF bytes or None) of a BTF fd. The name is the
    module's ("vmlinux", "nf_tables") for kernel BTF and empty for loaded BTF."""
    name = ctypes.create_string_buffer(64)
    info = obj_get_info(fd, "btf", name=(name, "name_len", len(name)))
    if not with_data:
        return info, name.value.decode(), None
    data = ctypes.create_string_buffer(max(info.btf_size, 1))
    info = obj_get_info(fd, "btf", name=(name, "name_len", len(name)),
                        btf=(data, "btf_size", info.btf_size))
    return info, name.value.decode(), data.raw[:info.btf_size]


# ---- links and attachment -----------------------------------------------------

def link_create(prog_fd, target_fd, attach_type, flags=0, extra=(), hints=None):
    """BPF_LINK_CREATE; ``extra`` fills the per-attach-type union as u64 words (e.g.
    (bpf_cookie,) for perf events, (target_btf_id,) for tracing), or is one of
    attr.LINK_CREATE_UNIONS (a KprobeMultiOpts, ...). Returns the link fd."""
    if isinstance(extra, tuple(A.LINK_CREATE_UNIONS)):
        extra = A.union_words(extra)
    words = tuple(extra)
    attr = A.LinkCreateAttr(prog_fd=prog_fd, target_fd=target_fd, attach_type=attach_type,
                            flags=flags, extra=words[:4], extra_newer=words[4:])
    return bpf(Cmd.LINK_CREATE, attr, hints)


def link_update(link_fd, new_prog_fd, old_prog_fd=0, flags=0):
    attr = A.LinkUpdateAttr(link_fd=link_fd, new_prog_fd=new_prog_fd,
                            old_prog_fd=old_prog_fd,
                            flags=flags | (BPF_F_REPLACE if old_prog_fd else 0))
    bpf(Cmd.LINK_UPDATE, attr)


def link_detach(link_fd):
    """Detach the link's program now, even while other fds or a pin keep the link."""
    bpf(Cmd.LINK_DETACH, A.LinkDetachAttr(link_fd=link_fd))


def raw_tracepoint_open(name, prog_fd):
    """BPF_RAW_TRACEPOINT_OPEN: attach to raw tracepoint name; returns the link fd."""
    raw = name.encode() + b"\0" if name is not None else None
    return bpf(Cmd.RAW_TRACEPOINT_OPEN,
               A.RawTracepointAttr(name=address(raw), prog_fd=prog_fd),
               {errno.ENOENT: f"there is no raw tracepoint {name!r} in this kernel "
                              f"(see /sys/kernel/tracing/available_events)"})


def prog_attach(target_fd, prog_fd, attach_type, flags=0, replace_fd=0):
    """BPF_PROG_ATTACH: the pre-link way to attach (cgroups, sockmaps, flow dissector)."""
    bpf(Cmd.PROG_ATTACH, A.ProgAttachAttr(target_fd=target_fd, attach_bpf_fd=prog_fd,
                                          attach_type=attach_type, attach_flags=flags,
                                          replace_bpf_fd=replace_fd))


def prog_detach(target_fd, prog_fd, attach_type):
    bpf(Cmd.PROG_DETACH, A.ProgAttachAttr(target_fd=target_fd, attach_bpf_fd=prog_fd,
                                          attach_type=attach_type))


def prog_query(target_fd, attach_type, max_progs=64):
    """BPF_PROG_QUERY: (attach_flags, [prog ids]) attached to target_fd."""
    ids = (ctypes.c_uint32 * max_progs)()
    attr = A.ProgQueryAttr(target_fd=target_fd, attach_type=attach_type,
                           prog_ids=ctypes.addressof(ids), prog_cnt=max_progs)
    bpf(Cmd.PROG_QUERY, attr)
    return attr.attach_flags, list(ids[:attr.prog_cnt])
