"""What a tool's user space does to its object before loading it, as options of
``load`` and ``run``: ``--set NAME=VALUE`` (globals, ``const volatile`` .rodata too),
``--only PROG`` / ``--no-autoload PROG`` (the variants the kernel can run: fentry or
kprobe), ``--max-entries MAP=N`` (maps the source leaves unsized).

bcc's libbpf-tools set ``targ_pid`` and friends, turn off the fentry programs where
the kernel lacks them, and size their maps from the command line, all between
opening the skeleton and loading it; without the same steps their objects do not run
as the tools do. Values are read through the variable's BTF type
(:func:`pybpf.btf.values.parse_text`): ints in any base, bools, enum names, char
arrays from the string, JSON for arrays and structs.
"""
from ..btf import values
from ..errors import InputError, MissingError

_EXAMPLES = {"--set": "targ_pid=1234", "--max-entries": "counts=10240"}


def add_arguments(parser):
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="set global variable NAME before load (.rodata, .data, "
                             ".bss; the value is read through its BTF type: numbers, "
                             "true/false, enum names, strings for char arrays, JSON for "
                             "arrays and structs); repeatable")
    parser.add_argument("--only", action="append", default=[], metavar="PROG",
                        help="load only this program (repeatable)")
    parser.add_argument("--no-autoload", action="append", default=[], metavar="PROG",
                        help="do not load this program (repeatable)")
    parser.add_argument("--max-entries", action="append", default=[], metavar="MAP=N",
                        help="create map MAP with N entries (repeatable)")


def _pair(option, text):
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise InputError(f"{option} {text!r}: write NAME=VALUE, e.g. {option} "
                         f"{_EXAMPLES.get(option, 'name=1')}")
    return name.strip(), value


def apply(obj, args):
    """Set globals and map sizes of the opened (not loaded) BpfObject obj from args;
    the programs to load (None: the object's own autoload choice)."""
    spec = obj.spec
    for text in args.max_entries:
        name, value = _pair("--max-entries", text)
        if name not in spec.maps:
            raise MissingError(f"--max-entries: no map {name!r} in {spec.name} (has "
                               f"{', '.join(spec.maps) or 'none'})")
        try:
            n = int(value, 0)
        except ValueError:
            n = -1
        if n < 0:
            raise InputError(f"--max-entries {text!r}: N is a number of entries, 0 or more")
        spec.maps[name].max_entries = n
    for text in args.set:
        name, value = _pair("--set", text)
        set_variable(obj, name, value)
    return programs_to_load(spec, args.only, args.no_autoload)


def set_variable(obj, name, text):
    """obj.variables[name] = text read through the variable's BTF type."""
    spec = obj.spec
    var = spec.variables.get(name)
    if var is None:
        raise MissingError(f"--set: no global variable {name!r} in {spec.name} (has "
                           f"{', '.join(spec.variables) or 'none'})")
    if spec.btf is None or not var.btf_type_id:
        raise InputError(f"--set {name}: the object has no BTF for it; pybpf cannot "
                         f"tell how to write {text!r} into its {var.size} bytes")
    try:
        value = values.parse_text(spec.btf, var.btf_type_id, text)
        obj.variables[name] = values.encode(spec.btf, var.btf_type_id, value)
    except InputError as e:
        raise InputError(f"--set {name}={text}: {e}") from None


def programs_to_load(spec, only, no_autoload):
    """The names of --only, else the autoloaded programs less --no-autoload; None
    when neither is given."""
    for option, names in (("--only", only), ("--no-autoload", no_autoload)):
        unknown = [n for n in names if n not in spec.programs]
        if unknown:
            raise MissingError(f"{option}: no program {', '.join(map(repr, unknown))} in "
                               f"{spec.name} (has {', '.join(spec.programs)})")
    if only:
        return [n for n in spec.programs if n in only and n not in no_autoload]
    if no_autoload:
        return [n for n, p in spec.programs.items()
                if p.section_def.autoload and n not in no_autoload]
    return None
