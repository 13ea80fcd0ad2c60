"""The data files the end-to-end experiments read, generated once and cached outside
the repository (~/.cache/pybpf/bench-filterreduce, or $PYBPF_BENCH_CACHE), keyed by
what they hold, and the tmpfs the experiments read them from."""
import os
import shutil
import tempfile

from ..filterreduce import sample
from ..kernel import mounts

FILTER = "x >= 500000"
THRESHOLD = 500000
GEN_VERSION = 2  # bump when sample.generate changes what it writes


def cache_dir():
    return os.path.expanduser(os.environ.get("PYBPF_BENCH_CACHE",
                                             "~/.cache/pybpf/bench-filterreduce"))


def data_file(cache, size_mb, factor, into=None):
    """The file of size_mb MB whose numbers the filter drops factor % of, generated
    once into cache; with into (a directory), a copy there, the only file in it."""
    name = f"v{GEN_VERSION}-{size_mb}MB-ff{factor}-{FILTER.replace(' ', '')}.txt"
    path = os.path.join(cache, name)
    if not os.path.exists(path):
        os.makedirs(cache, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        sample.generate(tmp, size_mb << 20, filter=FILTER, filter_factor=factor / 100,
                        negatives=0.0, seed=size_mb * 1000 + factor)
        os.rename(tmp, path)
    if into is None:
        return path
    copy = os.path.join(into, name)
    if not os.path.exists(copy):
        for old in os.listdir(into):       # one file at a time: a VM has little memory
            os.unlink(os.path.join(into, old))
        shutil.copyfile(path, copy)
    return copy


class Tmpfs:
    """A private tmpfs in a temporary directory: files read from it come from memory
    the same way on the host and in a VM (whose cache directory is a 9p share)."""

    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="pybpf-eval-")
        try:
            mounts.mount("tmpfs", self.path, "tmpfs")
        except BaseException:
            os.rmdir(self.path)
            raise
        return self.path

    def __exit__(self, *exc):
        mounts.umount(self.path)
        os.rmdir(self.path)
