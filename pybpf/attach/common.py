"""What every hook module of pybpf.attach shares: the errors, the program-type check,
links that act as one, and the release at exit of attachments that outlive the
process."""
import atexit
import os
import weakref

from .. import typenames
from ..errors import InputError, NotSupportedError
from ..kernel import procs, tracefs
from ..kernel.constants import ProgType
from ..links import Link


class AttachError(InputError):
    """The attach request cannot work as given; the message names what to change."""


class HookNotSupportedError(NotSupportedError, AttachError):
    """This kernel lacks the hook asked for (no kprobes, no uprobe PMU, ...): a
    NotSupportedError, and an AttachError as every refusal of an attach request
    before any kernel object is made."""


def type_name(ptype):
    return typenames.type_name(ptype, ProgType)


def check_type(program, allowed, hook, section):
    """AttachError unless program.type is one of allowed."""
    if program.type in allowed:
        return
    name = f" {program.name!r}" if getattr(program, "name", "") else ""
    want = " or ".join(type_name(t) for t in allowed)
    raise AttachError(
        f"program{name} has type {type_name(program.type)}, but {hook} run {want} "
        f"programs: load it from a SEC(\"{section}\") section (or as ProgType."
        f"{allowed[0].name}) to attach it there")


def description(kind, target):
    return f"{kind}/{target}" if target else kind


def need_target(sd, form):
    """The target a section names after its prefix; AttachError when it names none."""
    if not sd.target:
        raise AttachError(f"section {sd.section!r} does not say where to attach "
                          f"({sd.prefix}/{form}); call the attach_* function with the "
                          f"target instead")
    return sd.target


def check_pid(pid):
    if not isinstance(pid, int) or pid <= 0:
        raise AttachError(f"pid must be a positive process id, got {pid!r}")
    if not procs.process_exists(pid):
        raise AttachError(f"there is no process {pid}")


class LinkSet(Link):
    """Several links that act as one, e.g. a sampling program on every CPU. ``links``
    are the members (pin those one by one); ``fd`` is the first member's."""

    def __init__(self, links, program, description):
        super().__init__(links[0].fd, program, description)
        self.links = list(links)

    def close(self):
        self._fd = -1  # borrowed from the first member, which closes it
        links, self.links = self.links, []
        for link in links:
            link.close()


# Links whose kernel state outlives the process (tracefs entries, BPF_PROG_ATTACH
# attachments): closed at interpreter exit if the program did not close them.
_outliving = weakref.WeakSet()


def outlives(link):
    """Close link at interpreter exit unless the program closes it first."""
    _outliving.add(link)


def _at_exit():
    for link in list(_outliving):
        try:
            link.close()
        except Exception:  # noqa: BLE001 - exiting: release what can be released
            pass
    tracefs.remove_all_created()


def _forget_after_fork():
    """A forked child shares the parent's links but does not own them: its exit must
    not detach them or remove the parent's tracefs entries."""
    global _outliving
    _outliving = weakref.WeakSet()
    tracefs.forget_created()


atexit.register(_at_exit)
os.register_at_fork(after_in_child=_forget_after_fork)
