"""Making an object's BTF loadable: ELF fix-ups, and rewriting for older kernels.

Two separate steps, in this order:

1. :func:`fixup_datasecs` (in place, on the loader's own Btf): clang leaves every
   DATASEC's size and every variable's offset in it at 0; the real values are the ELF
   section sizes and symbol values, which only the loader has.

2. :func:`sanitize` (returns a copy; the loader keeps the original for its own use,
   e.g. reading ``.maps`` definitions): rewrites what this kernel's BTF loader does not
   know into known kinds of the same shape, keeping every type id (map and program
   BTF ids, func_info and CO-RE records refer to them), and neutralises what no
   kernel accepts from user space.

What no kernel accepts, and what sanitize does with it:

* extern VARs (``.kconfig`` / ``.ksyms`` externs): a VAR inside a DATASEC that
  fixup_datasecs sized (the loader laid out a ``.kconfig`` map and passed its size and
  the externs' offsets) becomes a global VAR, so the map's value type describes the
  externs; any other extern VAR becomes a placeholder INT.
* extern FUNCs (kfunc declarations): a placeholder INT. The kernel refuses their
  linkage, and their unnamed parameters; kfunc calls carry kernel BTF ids, so nothing
  in the program's BTF needs them.
* a DATASEC still of size 0 (``.ksyms`` and ``.kconfig``, which have no ELF section,
  or one the loader did not size): an empty STRUCT (name with '.' -> '_') of size 0.
  Entries of a sized DATASEC that are not VARs are dropped.
* a DECL_TAG whose target was rewritten into a kind it cannot tag: a placeholder.

For the loader: without "func" FUNCs become TYPEDEFs, so programs must then be loaded
without func_info/line_info; without "datasec" a DATASEC becomes a STRUCT of the same
size, still usable as a global-data map's BTF value type; a DATASEC left unsized
(size 0 placeholder) is not.
"""
from ..errors import InputError
from . import types as T
from .types import BtfError

# Feature name -> (first kernel with it, what it adds). probe.py tests each one.
FEATURES = {
    "func": ("5.0", "FUNC and FUNC_PROTO"),
    "datasec": ("5.2", "VAR and DATASEC (global data)"),
    "func_global": ("5.6", "FUNC with global linkage"),
    "float": ("5.13", "FLOAT"),
    "decl_tag": ("5.16", "DECL_TAG"),
    "type_tag": ("5.17", "TYPE_TAG"),
    "enum64": ("6.0", "ENUM64, and signed ENUM (kflag)"),
    "tag_kflag": ("6.14", "DECL_TAG/TYPE_TAG with kflag (plain __attribute__ tags)"),
}
ALL_FEATURES = frozenset(FEATURES)

_TAGGABLE = (T.Struct, T.Union, T.Var, T.Func, T.Typedef)  # component_idx -1
_TAGGABLE_PARTS = (T.Struct, T.Union, T.Func)  # component_idx of a member/parameter


def placeholder(name=""):
    """A 4-byte INT standing in for a type the kernel must not see."""
    return T.Int(name if name.isidentifier() else "", 4, 0, 0, 32)


def _struct_name(name):
    safe = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return safe if safe.isidentifier() else ""


def fixup_datasecs(btf, section_sizes, symbol_offsets):
    """Set DATASEC sizes and VAR offsets from the ELF, in place.

    ``section_sizes`` maps section names (".data", ".rodata", ".bss", ".maps",
    "license", and ".kconfig" when the loader lays out a kconfig map) to sizes.
    ``symbol_offsets`` maps a variable's symbol name, or (section, name), to its
    offset in that section (the ELF symbol's st_value). A DATASEC whose section is
    not in section_sizes is left alone (sanitize turns it into a placeholder). An
    entry without a symbol keeps its offset only if the DATASEC already had a size
    (BTF that a linker already fixed); otherwise that is an error.
    Returns the ids of the DATASECs changed.
    """
    btf._check_mutable()
    changed = []
    for type_id in btf.own_ids():
        sec = btf.type(type_id)
        if not isinstance(sec, T.Datasec) or sec.name not in section_sizes:
            continue
        size = section_sizes[sec.name]
        entries = []
        for v in sec.vars:
            name = btf.type(v.type).name
            offset = symbol_offsets.get((sec.name, name), symbol_offsets.get(name))
            if offset is None:
                if not sec.size:
                    raise BtfError(f"DATASEC {sec.name!r}: no symbol offset for {name!r} "
                                   f"(pass it in symbol_offsets)")
                offset = v.offset
            if offset + v.size > size:
                raise BtfError(f"DATASEC {sec.name!r}: {name!r} at {offset} (+{v.size}) "
                               f"is past the section's end ({size} bytes)")
            entries.append(v._replace(offset=offset))
        entries.sort(key=lambda v: v.offset)
        btf.replace(type_id, sec._replace(size=size, vars=tuple(entries)))
        changed.append(type_id)
    return changed


def sanitize(btf, features=ALL_FEATURES):
    """A copy of btf that a kernel with ``features`` (names from FEATURES, e.g. from
    probe.probe_btf_features()) accepts; type ids are unchanged."""
    unknown = set(features) - ALL_FEATURES
    if unknown:
        raise InputError(f"unknown BTF features {sorted(unknown)}; known: "
                         f"{sorted(ALL_FEATURES)}")
    out = btf.copy()
    for type_id in out.own_ids():
        t = out.type(type_id)
        new = _rewrite(t, features)
        if new is not t:
            out.replace(type_id, new)
    _fix_references(out, features)
    return out


def _rewrite(t, features):
    """t as a kernel with features accepts it (same id, same size where it has one)."""
    if isinstance(t, T.Func):
        if t.linkage == T.FUNC_EXTERN:
            return placeholder(t.name)
        if "func" not in features:
            return T.Typedef(t.name, t.type)
        if t.linkage == T.FUNC_GLOBAL and "func_global" not in features:
            return t._replace(linkage=T.FUNC_STATIC)
    elif isinstance(t, T.FuncProto) and "func" not in features:
        return T.Struct("", 0, ())
    elif isinstance(t, T.Var) and "datasec" not in features:
        return placeholder(t.name)
    elif isinstance(t, T.Datasec) and "datasec" not in features:
        return T.Struct(_struct_name(t.name), t.size, ())
    elif isinstance(t, T.Float) and "float" not in features:
        return T.Struct(_struct_name(t.name), t.size, ())
    elif isinstance(t, T.DeclTag):
        if "decl_tag" not in features:
            return placeholder()
        if t.kflag and "tag_kflag" not in features:
            return t._replace(kflag=False)
    elif isinstance(t, T.TypeTag):
        if "type_tag" not in features:
            return T.Const("", t.type)
        if t.kflag and "tag_kflag" not in features:
            return t._replace(kflag=False)
    elif isinstance(t, T.Enum64) and "enum64" not in features:
        return T.Union(t.name, t.size, ())
    elif isinstance(t, T.Enum) and t.signed and "enum64" not in features:
        return t._replace(signed=False)
    return t


def _fix_references(btf, features):
    """The rules that look at more than one type: DATASECs and their VARs, and tags
    whose target was replaced."""
    for type_id in btf.own_ids():
        t = btf.type(type_id)
        if not isinstance(t, T.Datasec):
            continue
        if not t.size:
            btf.replace(type_id, T.Struct(_struct_name(t.name), 0, ()))
            continue
        kept = []
        for v in t.vars:
            var = btf.type(v.type)
            if isinstance(var, T.Var):
                kept.append(v)
                if var.linkage == T.VAR_EXTERN:
                    btf.replace(v.type, var._replace(linkage=T.VAR_GLOBAL))
        if len(kept) != len(t.vars):
            btf.replace(type_id, t._replace(vars=tuple(kept)))
    for type_id in btf.own_ids():
        t = btf.type(type_id)
        if isinstance(t, T.Var) and t.linkage == T.VAR_EXTERN:
            btf.replace(type_id, placeholder(t.name))
    for type_id in btf.own_ids():
        t = btf.type(type_id)
        if isinstance(t, T.DeclTag) and not isinstance(
                btf.type(t.type), _TAGGABLE if t.component_idx < 0 else _TAGGABLE_PARTS):
            btf.replace(type_id, placeholder())
