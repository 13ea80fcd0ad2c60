"""Tracepoints: a program run on a trace event the kernel defines (its id is read in
tracefs, which is mounted when it is not). SEC("tracepoint/CATEGORY/NAME") and
"tp/CATEGORY/NAME" attach here."""
from ..kernel import tracefs
from ..kernel.constants import ProgType
from .common import AttachError, check_type, need_target
from .perflink import attach_perf, open_trace_event

OPTIONS = ()


def attach_tracepoint(program, category, name=None, *, cookie=None, use_link=None):
    """Run a tracepoint program on trace event category/name (or "category:name"),
    e.g. attach_tracepoint(prog, "syscalls/sys_enter_getpid"). Mounts tracefs if
    needed: the event's id is read there."""
    if name is None:
        category, _, name = str(category).replace(":", "/").partition("/")
    if not category or not name or "/" in name:
        raise AttachError(f"a tracepoint is named CATEGORY/NAME, e.g. "
                          f"syscalls/sys_enter_getpid; got {category}/{name}")
    check_type(program, (ProgType.TRACEPOINT,), "tracepoints", f"tracepoint/{category}/{name}")
    try:
        event_id = tracefs.tracepoint_id(category, name)
    except LookupError as e:
        raise AttachError(str(e.args[0])) from None
    description = f"tracepoint/{category}/{name}"
    pfd = open_trace_event(event_id, description)
    return attach_perf(program, pfd, description, cookie=cookie, use_link=use_link)


def attach_section(program, sd):
    """tracepoint/CATEGORY/NAME, tp/CATEGORY/NAME."""
    return attach_tracepoint(program, need_target(sd, "CATEGORY/NAME"))
