"""pybpf's exceptions: one family, each carrying what failed and how to fix it.

Every failed bpf(2) call becomes a :class:`BPFError` (an :class:`OSError`, so
``except OSError`` and ``e.errno`` keep working) that also names the command and, where
the cause is known, a hint naming the fix. The kernel's errno alone ("Operation not
permitted") rarely says which of half a dozen settings refused the call.
"""
import errno as _errno
import os

# The kernel-internal "not supported" errno that bpf(2) leaks to user space; neither
# Python's errno module nor strerror() knows it.
ENOTSUPP = 524


class BPFError(OSError):
    """A bpf(2) (or perf_event_open(2), tracefs, bpffs) operation failed.

    ``cmd`` is the command's kernel name (``"BPF_MAP_CREATE"``), ``errno`` the error
    number and ``hint`` a sentence naming the likely fix, or ``None``.
    """

    def __init__(self, cmd, err, detail="", hint=None):
        self.cmd = cmd
        self.hint = hint
        self.detail = detail
        text = f"{cmd}: {errno_text(err)}"
        if detail:
            text += f": {detail}"
        if hint:
            text += f"\n  hint: {hint}"
        super().__init__(err, text)

    def __str__(self):
        return self.strerror

    def __reduce__(self):
        return (type(self), (self.cmd, self.errno, self.detail, self.hint))


class VerifierError(BPFError):
    """The verifier rejected a program. ``log`` holds the whole verifier log."""

    TAIL_LINES = 20

    def __init__(self, cmd, err, detail="", hint=None, log=""):
        self.log = log
        tail = "\n".join(log.rstrip("\n").splitlines()[-self.TAIL_LINES:])
        shown = detail
        if tail:
            shown = (detail + "\n" if detail else "") + "verifier log (last lines):\n" + tail
        super().__init__(cmd, err, shown, hint)
        self.detail = detail  # without the log tail, so pickling round-trips

    def __reduce__(self):
        return (type(self), (self.cmd, self.errno, self.detail, self.hint, self.log))


class MapFullError(BPFError):
    """An update needed a new entry but the map already holds max_entries (E2BIG)."""


class ClosedError(ValueError):
    """An operation on a pybpf object whose file descriptor was already closed."""


def errno_text(err):
    """"EPERM (Operation not permitted)", including the kernel-only ENOTSUPP."""
    if err == ENOTSUPP:
        return "ENOTSUPP (not supported by this kernel or object type)"
    return f"{_errno.errorcode.get(err, err)} ({os.strerror(err)})"


class PipelineError(ValueError):
    """The filter-reduce pipeline refused a request: a filter it cannot run, a file it
    cannot read through the kernel, a backend this kernel lacks. The message names the
    problem and what to do instead."""
