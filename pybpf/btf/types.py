"""BTF type kinds as small immutable Python objects, and the one BTF exception.

Each kind of ``struct btf_type`` record is a class built on a namedtuple: cheap to
create (the kernel's BTF has ~100k types, so materialising one must cost little),
immutable, and printed readably. Unlike plain namedtuples, two types of different
kinds with equal fields (a ``Const`` and a ``Volatile`` of the same type) are not
equal: equality includes the class.

Types refer to other types by id (an ``int``), never by object, so a type can be
materialised without its neighbours and a type table can hold reference loops
(``struct list_head { struct list_head *next; }``) without Python cycles.

Kind-flag ("kflag") semantics are spelled out as fields: ``Struct``/``Union`` members
carry ``bitfield_size`` (the writer sets kflag when any member has one), ``Enum``/
``Enum64`` have ``signed``, ``Fwd`` has ``union``.
"""
import enum
from collections import namedtuple

from ..errors import InputError


class BtfError(InputError):
    """BTF data is malformed or a type query makes no sense (a type loop, a size asked
    of a function, a name that is not there). Parsing never raises anything else."""


class Kind(enum.IntEnum):
    """BTF_KIND_* (``info`` bits 24-28). UNKN is void, type id 0."""
    UNKN = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


# INT encoding bits (BTF_INT_SIGNED, BTF_INT_CHAR, BTF_INT_BOOL).
INT_SIGNED, INT_CHAR, INT_BOOL = 1, 2, 4
# FUNC linkage (the record's vlen) and VAR linkage.
FUNC_STATIC, FUNC_GLOBAL, FUNC_EXTERN = 0, 1, 2
VAR_STATIC, VAR_GLOBAL, VAR_EXTERN = 0, 1, 2


class BtfType:
    """Mixin of every type class. ``KIND`` is the BTF kind; ``REFS`` names the fields
    holding a type id and ``REF_LISTS`` the tuple fields whose items have ``.type``."""
    __slots__ = ()
    KIND = Kind.UNKN
    REFS = ()
    REF_LISTS = ()

    def __eq__(self, other):
        return type(self) is type(other) and tuple.__eq__(self, other)

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash((type(self).__name__, tuple(self)))

    @property
    def kind(self):
        return self.KIND

    def refs(self):
        """Every type id this type refers to, in record order."""
        out = [getattr(self, f) for f in self.REFS]
        for f in self.REF_LISTS:
            out.extend(item.type for item in getattr(self, f))
        return tuple(out)

    def map_refs(self, fn):
        """A copy with every referenced type id replaced by fn(id)."""
        changes = {f: fn(getattr(self, f)) for f in self.REFS}
        for f in self.REF_LISTS:
            changes[f] = tuple(item._replace(type=fn(item.type)) for item in getattr(self, f))
        return self._replace(**changes)


def _record(name, fields, defaults=None):
    return namedtuple(name, fields, defaults=defaults)


Member = _record("Member", "name type bit_offset bitfield_size", (0,))
Member.__doc__ = ("A struct/union member. ``bit_offset`` counts from the start of the "
                  "enclosing type; ``bitfield_size`` is 0 for a plain member.")
EnumValue = _record("EnumValue", "name value")
Param = _record("Param", "name type")
Param.__doc__ = "A FUNC_PROTO parameter; a trailing Param('', 0) marks a variadic function."
VarSecinfo = _record("VarSecinfo", "type offset size")
VarSecinfo.__doc__ = "A DATASEC entry: the VAR (or extern FUNC) id, its byte offset and size."


class Void(BtfType, _record("Void", "name", ("",))):
    """Type id 0."""
    __slots__ = ()


class Int(BtfType, _record("Int", "name size encoding offset bits")):
    """An integer of ``size`` bytes whose value is ``bits`` bits at bit ``offset``;
    ``encoding`` is a mask of INT_SIGNED, INT_CHAR, INT_BOOL."""
    __slots__ = ()
    KIND = Kind.INT

    @property
    def signed(self):
        return bool(self.encoding & INT_SIGNED)


def _kind(name, kind, fields, doc, defaults=None, refs=(), ref_lists=()):
    """A type class: a namedtuple of ``fields`` with the BtfType behaviour."""
    return type(name, (BtfType, _record(name, fields, defaults)),
                {"__slots__": (), "KIND": kind, "REFS": refs, "REF_LISTS": ref_lists,
                 "__doc__": doc})


_TYPE = ("type",)
Ptr = _kind("Ptr", Kind.PTR, "name type", "A pointer to ``type``.", refs=_TYPE)
Array = _kind("Array", Kind.ARRAY, "name type index_type nelems",
              "``type[nelems]``; ``index_type`` is an INT (clang: __ARRAY_SIZE_TYPE__).",
              refs=("type", "index_type"))
Struct = _kind("Struct", Kind.STRUCT, "name size members",
               "``members`` is a tuple of :class:`Member`.", ref_lists=("members",))
Union = _kind("Union", Kind.UNION, "name size members",
              "``members`` is a tuple of :class:`Member`, usually all at bit 0.",
              ref_lists=("members",))
Enum = _kind("Enum", Kind.ENUM, "name size values signed",
             "``values`` is a tuple of :class:`EnumValue`, each a 32-bit value (signed "
             "when ``signed``, the kflag).", defaults=(False,))
Fwd = _kind("Fwd", Kind.FWD, "name union",
            "A forward declaration: ``struct name;`` or, with ``union`` (the kflag), "
            "``union name;``.", defaults=(False,))
Typedef = _kind("Typedef", Kind.TYPEDEF, "name type", "``typedef type name;``", refs=_TYPE)
Volatile = _kind("Volatile", Kind.VOLATILE, "name type", "``volatile type``.", refs=_TYPE)
Const = _kind("Const", Kind.CONST, "name type", "``const type``.", refs=_TYPE)
Restrict = _kind("Restrict", Kind.RESTRICT, "name type", "``restrict type``.", refs=_TYPE)
Func = _kind("Func", Kind.FUNC, "name type linkage",
             "A function: ``type`` is its FUNC_PROTO; ``linkage`` FUNC_STATIC/GLOBAL/EXTERN "
             "(the record's vlen).", defaults=(FUNC_STATIC,), refs=_TYPE)
FuncProto = _kind("FuncProto", Kind.FUNC_PROTO, "name type params",
                  "A function signature: ``type`` is the return type, ``params`` "
                  ":class:`Param`s.", refs=_TYPE, ref_lists=("params",))
Var = _kind("Var", Kind.VAR, "name type linkage",
            "A global variable; ``linkage`` VAR_STATIC/GLOBAL/EXTERN.",
            defaults=(VAR_GLOBAL,), refs=_TYPE)
Datasec = _kind("Datasec", Kind.DATASEC, "name size vars",
                "An ELF data section (``.data``, ``.maps``...): ``vars`` are "
                ":class:`VarSecinfo`.", ref_lists=("vars",))
Float = _kind("Float", Kind.FLOAT, "name size", "A floating-point type of ``size`` bytes.")
DeclTag = _kind("DeclTag", Kind.DECL_TAG, "name type component_idx kflag",
                "``btf_decl_tag(name)`` on ``type``: the whole of it (component_idx -1) or "
                "one member/parameter (its index).", defaults=(False,), refs=_TYPE)
TypeTag = _kind("TypeTag", Kind.TYPE_TAG, "name type kflag",
                "``btf_type_tag(name)`` on ``type`` (e.g. ``__user`` on a pointee).",
                defaults=(False,), refs=_TYPE)
Enum64 = _kind("Enum64", Kind.ENUM64, "name size values signed",
               "An enum with 64-bit values (kernel 6.0+, clang 15+).", defaults=(False,))


VOID = Void()
CLASSES = {cls.KIND: cls for cls in (
    Int, Ptr, Array, Struct, Union, Enum, Fwd, Typedef, Volatile, Const, Restrict, Func,
    FuncProto, Var, Datasec, Float, DeclTag, TypeTag, Enum64)}
# Kinds that only qualify or rename another type: resolve() looks through them.
MODIFIERS = (Typedef, Volatile, Const, Restrict, TypeTag)
COMPOSITES = (Struct, Union)


def kind_of(spec):
    """A Kind from a Kind/int, a type class (``Struct``) or a name (``"struct"``)."""
    if isinstance(spec, type) and issubclass(spec, BtfType):
        return spec.KIND
    if isinstance(spec, str):
        try:
            return Kind[spec.upper()]
        except KeyError:
            raise BtfError(f"unknown BTF kind name {spec!r} (known: "
                           f"{', '.join(k.name.lower() for k in Kind)})") from None
    return Kind(spec)
