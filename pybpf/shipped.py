"""The BPF objects that come compiled inside the package (built from programs/).

    python -m pybpf.shipped            # list them
    python -m pybpf.shipped readcount  # print the path of one
"""
import os
import sys

from .errors import MissingError

DIRECTORY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bpf")


def names():
    try:
        return sorted(f[:-len(".bpf.o")] for f in os.listdir(DIRECTORY) if f.endswith(".bpf.o"))
    except FileNotFoundError:
        return []


def path(name):
    """Path of the shipped object called name (e.g. "readcount")."""
    p = os.path.join(DIRECTORY, f"{name}.bpf.o")
    if not os.path.exists(p):
        have = ", ".join(names()) or "none: in a source tree, run " \
                                     "python tools/build_programs.py --inplace"
        raise MissingError(f"no shipped BPF object {name!r} (shipped: {have})")
    return p


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
