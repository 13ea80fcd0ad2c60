"""Object files that are not what they claim, refused or loaded within their means.

A device or a FIFO given as the object (``load /dev/zero`` used to read forever), a
``.bss`` whose header claims more than the kernel's array maps hold (a 2**57-byte one
was a MemoryError traceback), a large ``.bss`` the kernel can hold (256 MiB used to
cost 1 GiB of this process's memory in copies), and a legacy map symbol pointing
past its section (a struct.error traceback). The command-line cases run with their
address space capped, so code that runs away fails fast instead of taking the
machine's memory.
"""
import os
import resource
import struct
import subprocess
import sys

import pytest

import pybpf
from pybpf.elf import ElfFile
from pybpf.loader import BpfObject
from pybpf.objfile import ObjectError, ObjectFile

from test_loader import build  # noqa: F401 (the fixture)

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
CAP = 2 << 30  # bytes of address space the command-line runs get


def _capped():
    resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP))


def pybpf_capped(*argv, code=None):
    cmd = [sys.executable, "-c", code, *argv] if code else [sys.executable, "-m", "pybpf", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=ENV,
                          preexec_fn=_capped)


@pytest.fixture
def not_files(tmp_path):
    fifo = tmp_path / "fifo.o"
    os.mkfifo(fifo)
    return {"character device": "/dev/zero", "FIFO": str(fifo), "directory": str(tmp_path)}


@pytest.mark.parametrize("kind", ["character device", "FIFO", "directory"])
def test_load_refuses_what_is_not_a_regular_file(not_files, kind):
    out = pybpf_capped("load", not_files[kind])
    assert out.returncode == 1, out.stderr
    assert f"is a {kind}, not a regular file" in out.stderr and "Traceback" not in out.stderr


def test_open_refuses_them_in_process_too(not_files):
    for kind, path in not_files.items():
        with pytest.raises(pybpf.InputError, match=f"is a {kind}, not a regular file"):
            BpfObject.open(path)


def _with_section_size(data, name, size):
    """The object with section name's sh_size set to size."""
    out = bytearray(data)
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    struct.pack_into("<Q", out, shoff + ElfFile(data).section(name).index * 64 + 32, size)
    return bytes(out)


@pytest.fixture
def globals_o(build):  # noqa: F811
    with open(build("globals"), "rb") as f:
        return f.read()


@pytest.mark.parametrize("size", [2**57, 2**31])
def test_a_bss_larger_than_an_array_value_is_refused_before_allocating(globals_o, size):
    with pytest.raises(ObjectError, match=rf"\.bss is {size} bytes.*2147483647"):
        BpfObject.open(_with_section_size(globals_o, ".bss", size))


LARGE_BSS = 256 << 20
# Prints the peak RSS of open and load. Reading variables afterwards maps the map
# itself (the kernel's pages, shared, no copy), which RSS would count as well.
LOAD_LARGE = """
import sys
from pybpf.loader import BpfObject
with BpfObject.open(sys.argv[1]) as obj:
    obj.variables["last_class"] = 7  # in .bss, set before load
    obj.load()
    with open("/proc/self/status") as f:
        print(f.read().split("VmHWM:")[1].split()[0])
    assert obj.maps[".bss"].value_size == int(sys.argv[2])
    assert obj.variables["last_class"] == 7 and obj.variables["last_len"] == 0
"""


def test_a_large_bss_loads_without_copies_of_its_size(globals_o, tmp_path):
    path = tmp_path / "large_bss.o"
    path.write_bytes(_with_section_size(globals_o, ".bss", LARGE_BSS))
    out = pybpf_capped(str(path), str(LARGE_BSS), code=LOAD_LARGE)
    assert out.returncode == 0, out.stderr
    peak = int(out.stdout) * 1024
    assert peak < LARGE_BSS // 2, f"peak RSS {peak >> 20} MiB for a {LARGE_BSS >> 20} MiB .bss"


def test_a_legacy_map_symbol_past_its_section_is_refused(build):  # noqa: F811
    with open(build("legacy"), "rb") as f:
        data = f.read()
    elf = ElfFile(data)
    sym = next(s for s in elf.symbols() if s.name == "old_counts")
    symtab = next(s for s in elf.sections if s.index == sym.table)
    for value in (4096, 4):  # past the section; inside, but its record runs past it
        bad = bytearray(data)
        struct.pack_into("<Q", bad, symtab.offset + sym.index * 24 + 8, value)
        with pytest.raises(ObjectError, match="legacy map 'old_counts'.*outside section 'maps'"):
            ObjectFile.parse(bytes(bad))
