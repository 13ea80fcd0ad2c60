"""Extract the BPF objects embedded in binaries (libbpf skeletons, Debian's libbpf-tools).

A libbpf skeleton keeps its object's ELF bytes in the binary's .rodata. Each one starts
with an ELF header whose e_machine is EM_BPF, and (clang puts the section header table
last) ends where its section headers end: e_shoff + e_shnum * e_shentsize. Scanning for
the ELF magic and checking that header finds every object, several per binary too.

    python tools/extract_bpf_objects.py OUTDIR /usr/sbin/opensnoop /usr/sbin/execsnoop

writes OUTDIR/opensnoop.bpf.o (a second object of the same binary: NAME.1.bpf.o, ...).
"""
import os
import struct
import sys

EM_BPF = 247
_MAGIC = b"\x7fELF"
_ELFCLASS64 = 2
_ORDERS = {1: "<", 2: ">"}  # e_ident[EI_DATA]
_EHDR64 = "HHIQQQIHHHHHH"   # e_type .. e_shstrndx, after e_ident
_EHDR_SIZE = 64


def find_objects(data):
    """The embedded BPF ELF objects of data (a binary's bytes), in file order, as bytes.
    Candidates whose header is not a 64-bit EM_BPF ELF, or whose section headers would
    end past the data, are not objects and are skipped."""
    found, at = [], data.find(_MAGIC)
    while at >= 0:
        obj = _object_at(data, at)
        if obj is not None:
            found.append(obj)
        at = data.find(_MAGIC, at + (len(obj) if obj else 1))
    return found


def _object_at(data, at):
    header = data[at:at + _EHDR_SIZE]
    if len(header) < _EHDR_SIZE or header[4] != _ELFCLASS64 or header[5] not in _ORDERS:
        return None
    fields = struct.unpack(_ORDERS[header[5]] + _EHDR64, header[16:])
    machine, shoff, shentsize, shnum = fields[1], fields[5], fields[10], fields[11]
    if machine != EM_BPF or not shoff or shentsize != 64 or not shnum:
        return None
    end = at + shoff + shnum * shentsize
    return data[at:end] if end <= len(data) else None


def extract(binary, outdir):
    """Write each BPF object of the file binary to outdir as TOOL.bpf.o (TOOL.N.bpf.o
    for the N-th further one); the paths written (none for a binary without objects)."""
    with open(binary, "rb") as f:
        objects = find_objects(f.read())
    tool = os.path.basename(binary)
    paths = []
    for i, obj in enumerate(objects):
        path = os.path.join(outdir, f"{tool}.bpf.o" if i == 0 else f"{tool}.{i}.bpf.o")
        with open(path, "wb") as f:
            f.write(obj)
        paths.append(path)
    return paths


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    outdir = argv[0]
    os.makedirs(outdir, exist_ok=True)
    status = 0
    for binary in argv[1:]:
        paths = extract(binary, outdir)
        if not paths:
            print(f"{binary}: no embedded BPF object", file=sys.stderr)
            status = 1
        for path in paths:
            print(path)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
