"""Files out of a Debian linux-source tarball, extracted once and cached.

The generators and tests read a few files of a kernel tree newer than the machine's
installed headers: the UAPI headers pybpf's constants come from, and libbpf's
section table (tools/lib/bpf/libbpf.c), which pybpf's own is held to. Reading any
member of the tarball costs a full xz decompression (~10 s), so what was extracted
is kept under ~/.cache/pybpf/kernel-source, keyed by the tarball's name, size and
mtime and by the paths asked for.
"""
import hashlib
import os
import re
import shutil
import tarfile
import tempfile

SOURCE = "/usr/src/linux-source-6.12.tar.xz"
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "pybpf", "kernel-source")


class SourceError(Exception):
    """The kernel source tarball is missing or lacks a file."""


def extract(paths, source=SOURCE, cache=CACHE):
    """A directory holding each of paths (relative to the tree's top) and VERSION
    (e.g. "6.12.117", from the top Makefile)."""
    try:
        st = os.stat(source)
    except OSError as e:
        raise SourceError(f"{source}: {e.strerror}: install it (apt-get install "
                          f"{_package(source)}) or name another tarball") from None
    key = hashlib.sha256("\0".join(sorted(paths)).encode()).hexdigest()[:12]
    out = os.path.join(cache, f"{os.path.basename(source)}-{st.st_size}-{int(st.st_mtime)}"
                              f"-{key}")
    if os.path.exists(os.path.join(out, "VERSION")):
        return out
    found, version = _read(source, set(paths))
    os.makedirs(cache, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=cache)
    for path, data in found.items():
        os.makedirs(os.path.dirname(os.path.join(tmp, path)), exist_ok=True)
        with open(os.path.join(tmp, path), "wb") as f:
            f.write(data)
    with open(os.path.join(tmp, "VERSION"), "w") as f:
        f.write(version + "\n")
    try:
        os.rename(tmp, out)
    except OSError:  # another run got there first; its copy is the same
        shutil.rmtree(tmp)
    return out


def _read(source, wanted):
    """{path: bytes} of the wanted members and the tree's version, in one pass."""
    found, version = {}, {}
    with tarfile.open(source) as tar:
        for member in tar:
            _, _, inner = member.name.partition("/")  # below linux-source-X.Y/
            if inner in wanted:
                found[inner] = tar.extractfile(member).read()
            elif inner == "Makefile":
                text = tar.extractfile(member).read().decode()
                version = dict(re.findall(r"^(VERSION|PATCHLEVEL|SUBLEVEL) = (\d+)$",
                                          text, re.M))
            if len(found) == len(wanted) and len(version) == 3:
                break
    missing = sorted(wanted - set(found))
    if missing or len(version) != 3:
        raise SourceError(f"{source} lacks {', '.join(missing) or 'a versioned Makefile'}")
    return found, "{VERSION}.{PATCHLEVEL}.{SUBLEVEL}".format(**version)


def _package(source):
    m = re.match(r"(linux-source-[\d.]+?)\.tar", os.path.basename(source))
    return m.group(1) if m else "linux-source-6.12"
