"""CO-RE candidates: which target (kernel) types a local type may stand for, and the
compatibility rules that decide whether a candidate really fits.

A BPF object describes kernel types as its author saw them; the running kernel may lay
them out differently. A local type ``struct task_struct___v1`` stands for every target
type of a compatible kind whose *essential name* is ``task_struct``: the name without
its last ``___flavor`` suffix (a flavor lets one object carry several local
definitions of the same kernel type). Which of those candidates fit is decided per
relocation by the rules below; the relocation logic itself is in core.py.

Why a search of our own: the kernel's BTF has ~130k types and a 2+ MB string section.
Comparing essential names type by type would decode them all (most of a second);
instead a name is found by searching the raw string bytes for it and then the types'
name offsets for the offset found (~3 ms per name for vmlinux, remembered per frozen
BTF), so relocating a program decodes only the types its relocations touch.
"""
import sys
import weakref
from collections import namedtuple

from ..errors import InputError, UnsupportedError
from . import types as T
from .types import BtfError

MAX_DEPTH = 32  # how deep the compatibility checks recurse (libbpf's limit too)

Candidate = namedtuple("Candidate", "btf type_id source")
Candidate.__doc__ = ("A target type a local type may stand for: its ``type_id`` in "
                     "``btf``; ``source`` names that BTF ('vmlinux', a module name).")


class CoreError(BtfError):
    """A CO-RE relocation cannot be applied at all: the object's relocation records
    are malformed, an instruction does not hold what its record says, or several
    target types fit and disagree. (A type or field that is merely missing from the
    kernel is not an error: that instruction is poisoned instead, see core.py.)"""


def essential_name(name):
    """``name`` without its flavor: the text before the last ``X___Y`` separator whose
    X and Y are not underscores (``task_struct___v2`` -> ``task_struct``; names such
    as ``___GFP_DMA`` or ``a____b`` have no flavor)."""
    i = name.rfind("___")
    while i > 0:
        if name[i - 1] != "_" and i + 3 < len(name) and name[i + 3] != "_":
            return name[:i]
        i = name.rfind("___", 0, i + 2)
    return name


def _kind_group(t):
    """Kinds a candidate may have: the same kind, any enum for an enum."""
    return T.Enum if isinstance(t, (T.Enum, T.Enum64)) else type(t)


def kinds_compatible(a, b):
    return _kind_group(a) is _kind_group(b)


# ---- the name index of one target BTF --------------------------------------------------

class _NameIndex:
    """Type ids of one BTF's own types by essential name (see the module docstring).

    A name is found by searching the raw string sections for NUL + name (the start of
    a string), keeping the hits followed by NUL or by a flavor; each string offset
    found is then searched for among the types' name offsets (~1 ms each for
    vmlinux). A name offset could also point into the middle of a string, if a
    producer shared suffixes (pahole, libbpf, clang and gcc share whole strings
    only); when the fast search finds nothing, :meth:`Btf.find` (which handles that)
    has the last word."""

    def __init__(self, btf):
        self.btf = btf
        self._packed = None
        self._found = {}  # essential name -> ids, kept while the BTF is frozen
        self._chunks = []  # (first string offset, raw bytes) for this BTF and its bases
        strings = btf.strings
        while strings is not None:
            self._chunks.append((strings.start, strings.data))
            strings = strings.base

    def ids(self, essential):
        """Own type ids whose essential name is ``essential`` (any kind)."""
        found = self._found.get(essential)
        if found is None:
            found = self._search(essential)
            if getattr(self.btf, "frozen", False):  # the kernel's: it cannot change
                self._found[essential] = found
        return found

    def _search(self, essential):
        btf = self.btf
        offs = getattr(btf, "_name_offs", None)
        indexes = set(i - btf.start_id for i in getattr(btf, "_changed", ()))
        if offs is not None:
            if self._packed is None:
                self._packed = offs.tobytes()
            needle = b"\0" + essential.encode("utf-8", "surrogateescape")
            for start, data in self._chunks:
                pos = data.find(needle)
                while pos >= 0:
                    after = pos + len(needle)
                    if data[after:after + 1] == b"\0" or data[after:after + 3] == b"___":
                        indexes.update(self._indexes_at(start + pos + 1))
                    pos = data.find(needle, after)
        out = [btf.start_id + i for i in sorted(indexes)
               if essential_name(btf.type(btf.start_id + i).name) == essential]
        if not out:
            out = [i for i in btf.find(essential) if i >= btf.start_id]
        return out

    def _indexes_at(self, offset):
        """Indexes (not ids) of the own types whose name offset is ``offset``."""
        needle = offset.to_bytes(4, sys.byteorder)  # the array holds native words
        out, packed = [], self._packed
        pos = packed.find(needle)
        while pos >= 0:
            if pos % 4 == 0:
                out.append(pos // 4)
            pos = packed.find(needle, pos + 1)
        return out


_INDEXES = weakref.WeakKeyDictionary()  # Btf -> _NameIndex, shared by every CoreCache


def _index_of(btf):
    try:
        return _INDEXES[btf]
    except KeyError:
        index = _INDEXES[btf] = _NameIndex(btf)
        return index
    except TypeError:  # not weak-referenceable
        return _NameIndex(btf)


# ---- the cache a loader keeps per object (or longer) ----------------------------------

class CoreCache:
    """Target BTFs and the candidates found in them, so each local type is looked up
    once across all the programs of an object.

    ``targets``: a Btf (the kernel's: ``Btf.vmlinux()``), or a sequence of them with
    vmlinux first and module BTFs after, or a mapping ``{"vmlinux": vm, "nf_tables":
    mod}``. As libbpf does, modules are searched only for types vmlinux lacks.
    ``what`` names the targets in messages ("kernel BTF").

    The cache also narrows candidates as relocations are applied: once a relocation
    of local type X matched only some of X's candidates, later relocations of X
    consider only those (libbpf's rule; it lets an object pick one of several
    same-named kernel types by using a field only that one has). Narrowing is per
    local Btf object, so one cache can serve several objects.
    """

    def __init__(self, targets, what="kernel BTF"):
        if isinstance(targets, CoreCache):
            raise UnsupportedError("CoreCache(targets) takes BTFs; pass the CoreCache itself "
                                   "where a cache is wanted")
        if hasattr(targets, "items"):
            named = list(targets.items())
        elif hasattr(targets, "find") and hasattr(targets, "type"):
            named = [("vmlinux", targets)]
        else:
            named = [("vmlinux" if i == 0 else f"module #{i}", btf)
                     for i, btf in enumerate(targets)]
        if not named:
            raise InputError("CoreCache needs at least one target BTF (the kernel's)")
        self.targets = named
        self.what = what
        self._found = {}
        self._narrowed = weakref.WeakKeyDictionary()

    def candidates(self, local_btf, local_id):
        """The candidates of local type local_id (narrowed by earlier relocations)."""
        narrowed = self._narrowed.get(local_btf)
        if narrowed is not None and local_id in narrowed:
            return narrowed[local_id]
        return self.lookup(local_btf.type(local_id))

    def narrow(self, local_btf, local_id, kept):
        """Remember that only ``kept`` of local_id's candidates fit a relocation."""
        if kept:
            self._narrowed.setdefault(local_btf, {})[local_id] = tuple(kept)

    def lookup(self, local_type):
        """Every target type with local_type's essential name and a compatible kind:
        from vmlinux, or when it has none, from the modules."""
        essential = essential_name(local_type.name)
        key = (essential, _kind_group(local_type))
        try:
            return self._found[key]
        except KeyError:
            pass
        found = ()
        for source, btf in self.targets:
            found = tuple(Candidate(btf, type_id, source)
                          for type_id in _index_of(btf).ids(essential)
                          if kinds_compatible(btf.type(type_id), local_type))
            if found:
                break
        self._found[key] = found
        return found


# ---- compatibility rules ---------------------------------------------------------------

def _names_match(local_name, targ_name):
    """Names equal up to flavors; an anonymous target matches only an anonymous local."""
    if not targ_name:
        return not local_name
    return essential_name(local_name) == essential_name(targ_name)


def _int_ok(t):
    """INTs that are not old-style bitfield integers (a non-zero bit offset)."""
    return t.offset == 0


def fields_compatible(local_btf, local_id, targ_btf, targ_id):
    """Whether a local field's type may be relocated to a target field's type: any two
    structs/unions; pointers (to anything); floats; ints of any size or sign; enums or
    forward declarations with the same essential name (or one anonymous); arrays of
    compatible elements (any length)."""
    for _ in range(MAX_DEPTH):
        lt = local_btf.type(local_btf.resolve(local_id))
        tt = targ_btf.type(targ_btf.resolve(targ_id))
        if isinstance(lt, T.COMPOSITES) and isinstance(tt, T.COMPOSITES):
            return True
        if not kinds_compatible(lt, tt):
            return False
        if isinstance(lt, (T.Ptr, T.Float)):
            return True
        if isinstance(lt, (T.Fwd, T.Enum, T.Enum64)):
            le, te = essential_name(lt.name), essential_name(tt.name)
            return not le or not te or le == te
        if isinstance(lt, T.Int):
            return _int_ok(lt) and _int_ok(tt)
        if not isinstance(lt, T.Array):
            return False
        local_id, targ_id = lt.type, tt.type
    raise CoreError(f"type nesting deeper than {MAX_DEPTH} levels comparing field types "
                    f"(local id {local_id}, target id {targ_id})")


def types_compatible(local_btf, local_id, targ_btf, targ_id, level=MAX_DEPTH):
    """Whether a whole type may stand for a target type (TYPE_EXISTS, TYPE_SIZE,
    TYPE_ID_TARGET): the same kind after typedefs/modifiers; structs, unions, enums and
    forward declarations match on name alone (the candidate search did that); ints
    of any size; pointers and arrays by their targets; function prototypes by
    parameter count and each parameter's and the return type's compatibility."""
    if not kinds_compatible(local_btf.type(local_id), targ_btf.type(targ_id)):
        return False
    for _ in range(MAX_DEPTH):
        local_id, targ_id = local_btf.resolve(local_id), targ_btf.resolve(targ_id)
        lt, tt = local_btf.type(local_id), targ_btf.type(targ_id)
        if not kinds_compatible(lt, tt):
            return False
        if isinstance(lt, (T.Void, T.Struct, T.Union, T.Enum, T.Enum64, T.Fwd)):
            return True
        if isinstance(lt, T.Int):
            return _int_ok(lt) and _int_ok(tt)
        if isinstance(lt, (T.Ptr, T.Array)):
            local_id, targ_id = lt.type, tt.type
        elif isinstance(lt, T.FuncProto):
            if len(lt.params) != len(tt.params):
                return False
            if level <= 0:
                raise CoreError("function prototypes nest too deep to compare")
            if not all(types_compatible(local_btf, lp.type, targ_btf, tp.type, level - 1)
                       for lp, tp in zip(lt.params, tt.params)):
                return False
            local_id, targ_id = lt.type, tt.type
        else:
            return False
    raise CoreError(f"type nesting deeper than {MAX_DEPTH} levels comparing local type "
                    f"{local_id} with target type {targ_id}")


def types_match(local_btf, local_id, targ_btf, targ_id, behind_ptr=False, level=MAX_DEPTH):
    """TYPE_MATCHES, stricter than :func:`types_compatible`: names must match (up to
    flavors) at every level; ints must agree in size and signedness; enums must have
    the same size and every local enumerator name in the target; structs/unions
    must have every local member (by name) in the target, of a matching type --
    except behind a pointer, where a struct matches any struct (or forward
    declaration) of its name; arrays must agree in length."""
    if level <= 0:
        raise CoreError("types nest too deep to match")
    for _ in range(MAX_DEPTH):
        local_id, targ_id = local_btf.resolve(local_id), targ_btf.resolve(targ_id)
        lt, tt = local_btf.type(local_id), targ_btf.type(targ_id)
        if not _names_match(lt.name, tt.name):
            return False
        if isinstance(lt, T.Void):
            return isinstance(tt, T.Void)
        if isinstance(lt, T.Fwd):
            return _fwd_matches(lt, tt, behind_ptr)
        if isinstance(lt, (T.Enum, T.Enum64)):
            return isinstance(tt, (T.Enum, T.Enum64)) and _enums_match(lt, tt)
        if isinstance(lt, T.COMPOSITES):
            return _composite_matches(local_btf, lt, targ_btf, tt, behind_ptr, level)
        if type(lt) is not type(tt):
            return False
        if isinstance(lt, T.Int):
            return lt.size == tt.size and lt.signed == tt.signed
        if isinstance(lt, T.Ptr):
            behind_ptr = True
        elif isinstance(lt, T.Array):
            if lt.nelems != tt.nelems:
                return False
        elif isinstance(lt, T.FuncProto):
            if len(lt.params) != len(tt.params):
                return False
            for lp, tp in zip(lt.params, tt.params):
                if not types_match(local_btf, lp.type, targ_btf, tp.type, behind_ptr,
                                   level - 1):
                    return False
        else:
            return False
        local_id, targ_id = lt.type, tt.type
    raise CoreError(f"type nesting deeper than {MAX_DEPTH} levels matching local type "
                    f"{local_id} with target type {targ_id}")


def _fwd_matches(lt, tt, behind_ptr):
    if isinstance(tt, T.Fwd):
        return lt.union == tt.union
    if not behind_ptr:
        return False
    return isinstance(tt, T.Union) if lt.union else isinstance(tt, T.Struct)


def _enums_match(lt, tt):
    if lt.size != tt.size or len(lt.values) > len(tt.values):
        return False
    return all(any(_names_match(lv.name, tv.name) for tv in tt.values) for lv in lt.values)


def _composite_matches(local_btf, lt, targ_btf, tt, behind_ptr, level):
    if behind_ptr:
        if type(lt) is type(tt):
            return True
        return isinstance(tt, T.Fwd) and tt.union == isinstance(lt, T.Union)
    if type(lt) is not type(tt) or len(lt.members) > len(tt.members):
        return False
    for lm in lt.members:
        if not any(_names_match(lm.name, tm.name)
                   and types_match(local_btf, lm.type, targ_btf, tm.type, behind_ptr,
                                   level - 1)
                   for tm in tt.members):
            return False
    return True
