"""Which BTF kinds this kernel's BTF loader knows, found by loading a tiny BTF for each.

A kernel version says little (distributions backport BTF features), so each feature
in sanitize.FEATURES is tested the way it will be used: one BPF_BTF_LOAD of a blob
that needs it. The answer is cached for the life of the process (the kernel does not
change under us).
"""
import errno
import functools

from ..errors import BPFError, InputError
from . import types as T
from .model import Btf
from .sanitize import FEATURES

_INT = T.Int("int", 4, T.INT_SIGNED, 0, 32)  # type id 1 of every probe


def _probe_types(feature):
    """The types (after the int at id 1) of the blob testing feature."""
    if feature == "func":
        return [T.FuncProto("", 1, (T.Param("a", 1),)), T.Func("f", 2, T.FUNC_STATIC)]
    if feature == "func_global":
        return [T.FuncProto("", 1, (T.Param("a", 1),)), T.Func("f", 2, T.FUNC_GLOBAL)]
    if feature == "datasec":
        return [T.Var("v", 1, T.VAR_GLOBAL), T.Datasec(".data", 4, (T.VarSecinfo(2, 0, 4),))]
    if feature == "float":
        return [T.Float("float", 4)]
    if feature == "decl_tag":
        return [T.Struct("s", 4, (T.Member("m", 1, 0),)), T.DeclTag("tag", 2, -1)]
    if feature == "type_tag":
        return [T.TypeTag("tag", 1), T.Ptr("", 2)]
    if feature == "enum64":
        return [T.Enum64("e", 8, (T.EnumValue("big", 1 << 40),))]
    if feature == "tag_kflag":
        return [T.Struct("s", 4, (T.Member("m", 1, 0),)), T.DeclTag("tag", 2, -1, True)]
    raise InputError(f"no probe for BTF feature {feature!r}")


def probe_blob(feature):
    """Raw BTF that loads only on a kernel with feature."""
    btf = Btf()
    btf.add(_INT)
    for t in _probe_types(feature):
        btf.add(t)
    return btf.to_bytes()


def loads(data):
    """True if BPF_BTF_LOAD accepts data, False if it refuses it as invalid."""
    from ..kernel import bpf
    try:
        fd = bpf.btf_load(data)
    except BPFError as e:
        if e.errno in (errno.EINVAL, errno.E2BIG, errno.ENOTSUP, 524):
            return False
        raise
    bpf.close(fd)
    return True


@functools.lru_cache(maxsize=None)
def probe_btf_features():
    """frozenset of the FEATURES names this kernel accepts; empty if it has no BTF
    loader at all (before 4.18). Raises BPFError when bpf(2) itself is refused
    (no privilege), since then nothing can be told."""
    if not loads(probe_blob_base()):
        return frozenset()
    return frozenset(f for f in FEATURES if loads(probe_blob(f)))


def probe_blob_base():
    btf = Btf()
    btf.add(_INT)
    return btf.to_bytes()
