"""What the kernel says about its own functions: /proc/kallsyms and the kprobe
blacklist.

A function the compiler inlined everywhere has no symbol, so it cannot be probed;
that is the first thing to check about a kprobe target. One reader serves every
question (types, addresses, similar names), each answered in one pass over the file.
"""
import os

from .files import file_lists_symbol, symbol_lines
from .mounts import mount_point

KALLSYMS = "/proc/kallsyms"


def _scan(keep):
    """Call keep(address, type letter, name) for every /proc/kallsyms line; False when
    the file cannot be read."""
    try:
        with open(KALLSYMS) as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 3:
                    keep(fields[0], fields[1], fields[2])
    except OSError:
        return False
    return True


def _first_of(names):
    """{name: (type letter, address)} from the first line of each of names, or None
    when /proc/kallsyms cannot be read."""
    lines = symbol_lines(KALLSYMS, list(dict.fromkeys(names)), 2)
    if lines is None:
        return None
    return {name: (fields[1], int(fields[0], 16)) for name, fields in lines.items()}


def kallsyms_types(names):
    """{name: symbol type letter} for those of names that /proc/kallsyms lists (module
    symbols count too); None when /proc/kallsyms cannot be read."""
    found = _first_of(names)
    return None if found is None else {name: kind for name, (kind, _) in found.items()}


def kallsyms_addresses(names):
    """{name: address} of those of names that /proc/kallsyms lists (typeless __ksym
    externs want them), {} when it cannot be read (or kptr_restrict hides them: 0)."""
    return {name: addr for name, (_, addr) in (_first_of(names) or {}).items()}


def functions_like(function, limit=5):
    """Up to limit text symbols whose names contain function, shortest first (for
    "similar:" in a message); [] when /proc/kallsyms cannot be read."""
    near = set()

    def keep(addr, kind, name):
        if function in name and kind in "tT":
            near.add(name)
    _scan(keep)
    return sorted(near, key=len)[:limit]


def kprobe_blacklisted(function):
    """Whether function is on the kernel's kprobe blacklist (debugfs
    kprobes/blacklist), or None when debugfs is not mounted (it is not mounted here:
    debugfs exposes much more than this list)."""
    debugfs = mount_point("debugfs")
    if debugfs is None:
        return None
    return file_lists_symbol(os.path.join(debugfs, "kprobes", "blacklist"), function, 1)


def traceable_functions():
    """[(name, address or None)] of the functions ftrace can attach to (what
    kprobe_multi links take), in the order tracefs lists them: from
    available_filter_functions_addrs (6.5+, with addresses), else from
    available_filter_functions (names only; module functions' " [module]" dropped).
    None when tracefs has neither (no CONFIG_FUNCTION_TRACER, or tracefs cannot be
    mounted)."""
    from . import tracefs  # tracefs mounts through mounts, which this module imports
    root = tracefs.root()
    if root is None:
        return None
    for name, with_addr in (("available_filter_functions_addrs", True),
                            ("available_filter_functions", False)):
        try:
            with open(os.path.join(root, name)) as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        found = []
        for line in lines:
            fields = line.split()
            if not fields:
                continue
            if with_addr:
                if len(fields) >= 2:
                    found.append((fields[1], int(fields[0], 16) or None))
            else:
                found.append((fields[0], None))
        return found
    return None
