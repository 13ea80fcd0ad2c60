"""pybpf's exceptions: one family, each carrying what failed and how to fix it.

Every exception pybpf raises on purpose derives from :class:`Error`, so ``except
pybpf.Error`` catches anything pybpf or the kernel refused; each also keeps the builtin
base Python code expects (``ValueError`` for bad input, ``OSError`` for a failed system
call, ``KeyError``/``IndexError`` for absence, ``TypeError`` for an operation an object
does not have), so ``except ValueError`` and friends keep working. Anything else
escaping from the API on bad input is a bug (the fuzz tests assert exactly that).

Every failed bpf(2) call becomes a :class:`BPFError` (an :class:`OSError`, so
``e.errno`` works) that also names the command and, where the cause is known, a hint
naming the fix. The kernel's errno alone ("Operation not permitted") rarely says which
of half a dozen settings refused the call.
"""
import errno as _errno
import os

# The kernel-internal "not supported" errno that bpf(2) leaks to user space; neither
# Python's errno module nor strerror() knows it.
ENOTSUPP = 524


class Error(Exception):
    """The base of every exception pybpf raises on purpose."""


class InputError(Error, ValueError):
    """pybpf refuses an argument, a file or an object; the message names the problem and
    the fix. Raised before anything reaches the kernel."""


class UnsupportedError(Error, TypeError):
    """The object has no such operation (a map type without keys), or an argument is of
    a kind that cannot work (a bytes key for a typed map is fine, a dict is not)."""


class MissingError(Error, KeyError):
    """A key, name or id that is not there (``m[k]`` for an absent key, an unknown
    program name): ``KeyError``, as Python's own containers raise."""

    def __str__(self):
        # KeyError's str() is the repr of its argument; a sentence should read as one.
        arg = self.args[0] if len(self.args) == 1 else self.args
        return arg if isinstance(arg, str) else repr(arg)


class EmptyError(Error, IndexError):
    """Nothing to take: popping an empty queue or stack."""


class DependencyError(Error, ImportError):
    """An optional dependency a feature needs is not installed (pyroute2 for netlink:
    ``pip install pybpf[net]``)."""


class BPFError(Error, OSError):
    """A bpf(2) (or perf_event_open(2), tracefs, bpffs, netlink, mount(2)) operation
    failed.

    ``cmd`` is the command's kernel name (``"BPF_MAP_CREATE"``), ``errno`` the error
    number and ``hint`` a sentence naming the likely fix, or ``None``.
    """

    def __init__(self, cmd, err, detail="", hint=None):
        self.cmd = cmd
        self.hint = hint
        self.detail = detail
        super().__init__(err, self._text(err))

    def _text(self, err):
        text = f"{self.cmd}: {errno_text(err)}"
        if self.detail:
            text += f": {self.detail}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

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


class NotSupportedError(BPFError):
    """The running kernel lacks a feature the call needs.

    ``feature`` names it (as :mod:`pybpf.kernel.features` does, e.g.
    ``"bpf_perf_link"``), ``minimum`` is the first Linux release that has it (a string
    such as ``"5.15"``; None where no release does, for a build option). pybpf learns
    it from a feature test, before any call (``cmd`` is then None and ``errno``
    EOPNOTSUPP), or from the kernel's refusal of a call (its ``cmd`` and ``errno``).
    An OSError like every refusal by the kernel, so ``except BPFError`` sees it too.
    """

    def __init__(self, feature, minimum=None, detail="", hint=None, cmd=None, err=None):
        self.feature, self.minimum = feature, minimum
        super().__init__(cmd, _errno.EOPNOTSUPP if err is None else err,
                         detail or f"this kernel does not support {feature}", hint)

    def _text(self, err):
        since = f" (Linux {self.minimum}+)" if self.minimum else ""
        text = f"{self.detail}{since}"
        if self.cmd is not None:
            text = f"{self.cmd}: {errno_text(err)}: {text}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def __reduce__(self):
        return (type(self), (self.feature, self.minimum, self.detail, self.hint, self.cmd,
                             self.errno))


class PipelineError(InputError):
    """The filter-reduce pipeline refused a request: a filter it cannot run, a file it
    cannot read through the kernel, a backend this kernel lacks. The message names the
    problem and what to do instead."""


class MeasurementError(Error):
    """A benchmark's result disagreed with its check (a wrong answer, a count that does
    not add up): the numbers of that run would be meaningless, so none are reported."""


class MapFullError(BPFError):
    """An update needed a new entry but the map already holds max_entries (E2BIG)."""


class ClosedError(InputError):
    """An operation on a pybpf object whose file descriptor was already closed."""


def errno_text(err):
    """"EPERM (Operation not permitted)", including the kernel-only ENOTSUPP."""
    if err == ENOTSUPP:
        return "ENOTSUPP (not supported by this kernel or object type)"
    return f"{_errno.errorcode.get(err, err)} ({os.strerror(err)})"

