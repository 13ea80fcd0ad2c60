"""The BPF objects that come compiled inside the package (built from programs/).

The wheel carries one set per architecture, in bpf/<machine>/ (machine as os.uname()
names it: x86_64, aarch64, s390x, ...): the objects differ in byte order (s390x's are
big-endian), in the pt_regs layout kprobe programs read arguments from and in the
syscall numbers they compare with. path() picks the running CPU's.

    python -m pybpf.shipped            # list them
    python -m pybpf.shipped readcount  # print the path of one
"""
import os
import sys

from .errors import MissingError

DIRECTORY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bpf")
BUILD_HINT = "in a source tree, run python tools/build_programs.py --inplace"


def machine():
    """The running CPU's architecture, which names the directory of its objects."""
    return os.uname().machine


def architectures():
    """The architectures with shipped objects, sorted."""
    try:
        entries = os.listdir(DIRECTORY)
    except FileNotFoundError:
        return []
    return sorted(e for e in entries if _objects(os.path.join(DIRECTORY, e)))


def _objects(directory):
    try:
        return sorted(f[:-len(".bpf.o")] for f in os.listdir(directory)
                      if f.endswith(".bpf.o"))
    except (FileNotFoundError, NotADirectoryError):
        return []


def names(arch=None):
    """The shipped objects for arch (default: the running CPU's)."""
    return _objects(os.path.join(DIRECTORY, arch or machine()))


def path(name, arch=None):
    """Path of the shipped object called name (e.g. "readcount") for arch (default:
    the running CPU's)."""
    arch = arch or machine()
    p = os.path.join(DIRECTORY, arch, f"{name}.bpf.o")
    if os.path.exists(p):
        return p
    shipped = architectures()
    if not shipped:
        raise MissingError(f"no shipped BPF object {name!r}: none are built ({BUILD_HINT})")
    if arch not in shipped:
        raise MissingError(f"no shipped BPF objects for the {arch!r} architecture "
                           f"(pybpf ships them for {', '.join(shipped)}): add it to TARGETS in "
                           f"tools/build_programs.py and rebuild the package")
    raise MissingError(f"no shipped BPF object {name!r} (shipped for {arch}: "
                       f"{', '.join(names(arch))})")


def main(argv):
    if not argv:
        print("\n".join(names()))
        return 0
    try:
        print(path(argv[0]))
    except MissingError as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
