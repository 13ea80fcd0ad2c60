"""Arguments checked where they enter the API.

A wrong argument should be an InputError that names it, not a TypeError from deep
inside (``'<=' not supported between 'str' and 'int'``), and never a value quietly
turned into another (a float variable stored truncated, a flags string formatted
into a crash). Integers refuse bool and float: 1.5 is not a count.
"""
import operator
import os

from .errors import InputError


def integer(value, what, minimum=None):
    """value, an int (or anything with __index__), at least minimum when given."""
    if isinstance(value, bool):
        raise InputError(f"{what} is an integer, not {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise InputError(f"{what} is an integer, not {type(value).__name__} "
                         f"{value!r}") from None
    if minimum is not None and value < minimum:
        raise InputError(f"{what} must be at least {minimum}, got {value}")
    return value


def path(value, what):
    """value as a str or bytes path (os.PathLike accepted)."""
    try:
        return os.fspath(value)
    except TypeError:
        raise InputError(f"{what} is a path (str or os.PathLike), not "
                         f"{type(value).__name__} {value!r}") from None


def fd_of(value, cls, what):
    """The fd of value, which must be a cls (a pybpf Map, Program, KernelBtf...)."""
    if not isinstance(value, cls):
        raise InputError(f"{what} must be a {cls.__name__}, not {type(value).__name__} "
                         f"{value!r}")
    return value.fd


def names(value, what):
    """A list of str from an iterable of them (a str itself is refused: it would be
    taken for its characters)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise InputError(f"{what} is a list of names, not {type(value).__name__} {value!r}")
    found = list(value)
    wrong = [v for v in found if not isinstance(v, str)]
    if wrong:
        raise InputError(f"{what} holds names (str), not {wrong[0]!r}")
    return found
