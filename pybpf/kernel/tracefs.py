"""tracefs: tracepoint ids, and the legacy kprobe_events/uprobe_events interface.

A tracepoint's perf event is opened by the id in ``events/CATEGORY/NAME/id``. Kernels
without the kprobe/uprobe perf PMUs (before 4.17), or a caller asking for kretprobe
``maxactive`` (which the PMU cannot express), create probes by writing a line to
``kprobe_events``/``uprobe_events`` instead; the probe then shows up as a trace event
with an id like any tracepoint.

Those entries are global and outlive the process that wrote them, so pybpf names each
one ``pybpf_<pid>_<counter>_<target>``: :class:`ProbeEvent` removes its entry when
released, and :func:`cleanup_stale_probes` removes entries whose pid is no longer
running (left by a process that was killed before it could clean up).

tracefs is not always mounted; :func:`root` mounts it at /sys/kernel/tracing when
no mount exists (as root).
"""
import errno
import itertools
import os
import re
import threading
import time

from ..errors import BPFError, MissingError
from . import mounts

MOUNT_POINT = mounts.TRACEFS_PATHS[0]
NAME_PREFIX = "pybpf_"
MAX_EVENT_NAME = 63          # MAX_EVENT_NAME_LEN (64) including the NUL
KINDS = {"kprobe": ("kprobe_events", "kprobes"), "uprobe": ("uprobe_events", "uprobes")}
_STALE = re.compile(r"^pybpf_(\d+)_\d+_")
_counter = itertools.count(1)
_lock = threading.Lock()
_created = {}   # (kind, name) -> ProbeEvent, entries this process made and still owns


def root(mount=True):
    """The tracefs mount path; mounts tracefs at /sys/kernel/tracing when none is
    mounted (and mount is true). Raises BPFError naming the fix when that fails."""
    path = mounts.find_tracefs()
    if path is not None or not mount:
        return path
    try:
        mounts.mount("nodev", MOUNT_POINT, "tracefs")
    except OSError as e:
        raise BPFError("mount tracefs", e.errno or errno.EPERM, str(e),
                       "tracepoints and probe events are named in tracefs; mount it as "
                       f"root: `mount -t tracefs nodev {MOUNT_POINT}` (the kernel needs "
                       f"CONFIG_TRACING)") from None
    return MOUNT_POINT


def tracepoint_exists(tracefs, category, name):
    """Whether tracefs (a mount path) has the trace event category:name."""
    return os.path.isfile(os.path.join(tracefs, "events", category, name, "id"))


def event_dir(category, name):
    return os.path.join(root(), "events", category, name)


def tracepoint_id(category, name):
    """The id of trace event category:name, for a PERF_TYPE_TRACEPOINT perf event."""
    path = os.path.join(event_dir(category, name), "id")
    try:
        with open(path) as f:
            return int(f.read())
    except FileNotFoundError:
        raise MissingError(_missing_tracepoint(category, name)) from None


def _missing_tracepoint(category, name):
    events = os.path.join(root(), "events")
    if not os.path.isdir(os.path.join(events, category)):
        near = _near(category, _listdir(events))
        return (f"no tracepoint category {category!r} in this kernel "
                f"({events} has no such directory){near}")
    near = _near(name, _listdir(os.path.join(events, category)))
    return (f"no tracepoint {category}/{name} in this kernel (see "
            f"{os.path.join(events, category)}){near}")


def _listdir(path):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _near(word, names, limit=5):
    """", similar: a, b" for names that contain word or share its start."""
    key = word.lower()
    near = [n for n in names if key in n.lower() or n.lower().startswith(key[:4])]
    return f"; similar: {', '.join(near[:limit])}" if near and key else ""


# ---- probe events ------------------------------------------------------------

def has_probe_events(kind):
    """Whether the kernel offers kind ("kprobe"/"uprobe") through tracefs."""
    path = root(mount=True)
    return os.path.exists(os.path.join(path, KINDS[kind][0]))


def event_name(target):
    """A fresh, unique event name for a probe on target, in the pybpf_<pid>_<n>_
    form that cleanup_stale_probes recognises. Characters the kernel refuses in event
    names become "_" and the result fits the kernel's 63-character limit."""
    prefix = f"{NAME_PREFIX}{os.getpid()}_{next(_counter)}_"
    tail = re.sub(r"[^A-Za-z0-9_]", "_", target) or "probe"
    return (prefix + tail)[:MAX_EVENT_NAME]


class ProbeEvent:
    """A kprobe_events/uprobe_events entry this process created.

    ``id`` is its trace event id. ``remove()`` deletes the entry; the kernel refuses
    (EBUSY) while a perf event is still open on it, so close that first.
    """

    def __init__(self, kind, name, definition, event_id):
        self.kind, self.name, self.definition, self.id = kind, name, definition, event_id
        self.removed = False

    def remove(self):
        """Delete the entry; returns False when the kernel still holds it (busy), in
        which case cleanup_stale_probes() retries once this process has exited."""
        if self.removed:
            return True
        if remove_probe_event(self.kind, self.name):
            self.removed = True
            with _lock:
                _created.pop((self.kind, self.name), None)
        return self.removed

    def __repr__(self):
        return f"<ProbeEvent {self.kind} {self.name}: {self.definition}>"


def add_probe_event(kind, name, line_kind, definition):
    """Write "LINE_KIND:GROUP/NAME DEFINITION" to kind's events file (line_kind is "p",
    "r" or "rN" for a kretprobe with N instances) and return the ProbeEvent.

    Raises BPFError with the kernel's own explanation from tracefs error_log (5.6+)
    when the line is refused.
    """
    filename, group = KINDS[kind]
    path = os.path.join(root(), filename)
    if not os.path.exists(path):
        raise BPFError(f"write {filename}", errno.ENOENT, path,
                       f"this kernel has no {kind} events (CONFIG_{kind.upper()}_EVENTS)")
    line = f"{line_kind}:{group}/{name} {definition}"
    try:
        _append(path, line)
    except OSError as e:
        raise BPFError(f"write {filename}", e.errno, repr(line),
                       _error_log_tail() or _probe_hint(kind, e.errno)) from None
    event = ProbeEvent(kind, name, definition, None)
    with _lock:
        _created[(kind, name)] = event
    try:
        event.id = tracepoint_id(group, name)
    except (LookupError, ValueError, OSError):
        event.remove()
        raise
    return event


def _append(path, line):
    # O_APPEND matters: opening the events file for writing without it (O_TRUNC)
    # deletes every probe on the system.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _error_log_tail():
    """The kernel's explanation of the last refused probe definition (tracefs
    error_log, 5.6+), e.g. "Failed to parse address or file.", or None."""
    try:
        with open(os.path.join(root(), "error_log")) as f:
            lines = [ln.rstrip() for ln in f.read().splitlines() if ln.strip()]
    except OSError:
        return None
    return "the kernel says: " + " / ".join(lines[-3:]) if lines else None


def _probe_hint(kind, err):
    if err == errno.ENOENT:
        return ("the kernel found no such function or file" if kind == "kprobe"
                else "the binary does not exist")
    if err == errno.EINVAL:
        return (f"the kernel refused the {kind} definition: the function cannot be probed "
                f"(blacklisted or notrace) or the offset is not on an instruction boundary"
                if kind == "kprobe" else "the kernel refused the uprobe definition")
    return None


def probe_events(kind):
    """[(line_kind, group, name, definition)] of every kind entry on the system."""
    path = os.path.join(root(), KINDS[kind][0])
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        head, _, definition = line.partition(" ")
        line_kind, _, event = head.partition(":")
        group, _, name = event.partition("/")
        if name:
            out.append((line_kind, group, name, definition.strip()))
    return out


def remove_probe_event(kind, name, attempts=20):
    """Delete entry name; True when gone. EBUSY (a perf event still open on it; the
    kernel drops one a moment after its last user closes) is retried briefly, then
    answered False. A missing entry counts as removed."""
    filename, group = KINDS[kind]
    path = os.path.join(root(), filename)
    for attempt in range(attempts):
        try:
            _append(path, f"-:{group}/{name}")
            return True
        except FileNotFoundError:
            return True
        except OSError as e:
            if e.errno == errno.ENOENT:
                return True
            if e.errno != errno.EBUSY:
                raise BPFError(f"write {filename}", e.errno, f"removing {group}/{name}") \
                    from None
            time.sleep(0.005 * (attempt + 1))
    return False


def remove_all_created():
    """Remove every entry this process created and still holds (the atexit hook)."""
    with _lock:
        events = list(_created.values())
    for event in events:
        try:
            event.remove()
        except OSError:
            pass


def forget_created():
    """Drop this process's claim on its entries (a forked child: the parent owns them)."""
    with _lock:
        _created.clear()


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale_probes():
    """Remove pybpf entries of processes that no longer exist; returns their names.

    An entry a process created is removed when its link closes or the interpreter
    exits; one killed first (SIGKILL, a crash) leaves its entries behind, and they
    keep the probe armed in the kernel. Entries still in use are left alone, and so
    are those whose pid is alive (including ones from another pid namespace that
    happens to reuse a live pid here).
    """
    removed = []
    if root(mount=True) is None:
        return removed
    for kind in KINDS:
        for _line_kind, _group, name, _definition in probe_events(kind):
            m = _STALE.match(name)
            if not m or _pid_alive(int(m.group(1))):
                continue
            try:
                if remove_probe_event(kind, name, attempts=1):
                    removed.append(name)
            except OSError:
                continue
    return removed


def pybpf_probe_events():
    """Names of every pybpf-created entry on the system, all processes (for tests
    and `doctor`-style checks)."""
    if mounts.find_tracefs() is None:
        return []
    return [name for kind in KINDS for _, _, name, _ in probe_events(kind)
            if name.startswith(NAME_PREFIX)]
