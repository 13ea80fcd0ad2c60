"""The enum classes of constants.py, made when first used.

Building an IntEnum costs ~5 us a member (HelperId alone has over 200), and most
processes use a few of constants.py's thirteen classes, so the generated module holds
their members as data (_ENUMS, _MEMBERS) and gets its __getattr__ (PEP 562) from
:func:`lazy_enums`, which makes a class, and the kernel names of its members
(BPF_MAP_TYPE_HASH is MapType.HASH), on first access.
"""
import enum


def lazy_enums(namespace, enums, members):
    """(__getattr__, __dir__, plain) for the module whose globals are namespace.
    enums: {class: (C enum, [(member, value)])}; members: {kernel name: (class,
    member)}."""
    module = namespace["__name__"]

    def build(cls):
        cname, values = enums[cls]
        made = enum.IntEnum(cls, values, module=module, qualname=cls)
        made.__doc__ = f"enum {cname}"
        namespace[cls] = made
        return made

    def __getattr__(name):
        if name in enums:
            return build(name)
        if name in members:
            cls, member = members[name]
            value = namespace[name] = getattr(namespace.get(cls) or build(cls), member)
            return value
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(namespace) | set(enums) | set(members))

    def plain(name):
        """The value of a kernel name as a plain int, without building its enum class
        (for code on every command's path, e.g. a feature probe's helper number)."""
        if name in members:
            cls, member = members[name]
            return dict(enums[cls][1])[member]
        return namespace[name]
    return __getattr__, __dir__, plain
