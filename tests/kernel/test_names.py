"""Names reach the kernel exactly as given, or are refused first with the reason.

The kernel refuses a map or program name with a bare EINVAL when a byte is not
alphanumeric to its Latin-1 ctype table, '_' or '.', or when the name fills its
16-byte field: pybpf checks the same bytes before the call, refuses rather than
truncates a name given to the API, and, like libbpf, cuts names taken from an ELF
object to 15 bytes.
"""
import os

import pytest

import pybpf
from pybpf import Map, Program, asm
from pybpf.elf import ElfFile
from pybpf.kernel import bpf as kbpf
from pybpf.kernel import attr as A
from pybpf.kernel.constants import Cmd, MapType
from pybpf.kernel.syscall import bpf_errno
from pybpf.loader import BpfObject



def _kernel_accepts(raw):
    """Whether BPF_MAP_CREATE takes raw as a map name (asked without pybpf's check)."""
    attr = A.MapCreateAttr(map_type=MapType.ARRAY, key_size=4, value_size=4, max_entries=1,
                           map_name=raw)
    fd = bpf_errno(Cmd.MAP_CREATE, attr)
    if fd >= 0:
        os.close(fd)
    return fd >= 0


def test_pybpf_accepts_exactly_the_bytes_the_kernel_accepts():
    disagree = []
    for byte in range(1, 256):
        raw = b"a" + bytes([byte])
        try:
            kbpf.obj_name(raw)
            ours = True
        except pybpf.InputError:
            ours = False
        if ours != _kernel_accepts(raw):
            disagree.append(hex(byte))
    assert not disagree, f"pybpf and the kernel disagree on bytes {disagree}"
    assert _kernel_accepts(b"x" * 15) and not _kernel_accepts(b"x" * 16)


def test_api_names_are_refused_not_truncated():
    with pytest.raises(pybpf.InputError, match="16 bytes; the kernel takes at most 15"):
        Map.create("array", value="I", max_entries=1, name="sixteen_bytes_xx")
    with pytest.raises(pybpf.InputError, match=r"byte 0xa9 \(in 'é'"):
        Program.load("socket_filter", [asm.mov64(asm.R0, 0), asm.exit()], name="café")
    with Map.create("array", value="I", max_entries=1, name="fifteen_bytes_x") as m:
        assert m.info().name == "fifteen_bytes_x"


@pytest.fixture(scope="module")
def xdp_object(run_object):
    with open(run_object("xdp_count"), "rb") as f:
        return f.read()


def _renamed(data, old, new):
    """The object with symbol name old replaced by new (same length) in .strtab."""
    strtab = ElfFile(data).section(".strtab")
    start = data.index(b"\0" + old + b"\0", strtab.offset, strtab.offset + strtab.size) + 1
    return data[:start] + new + data[start + len(new):]


def test_a_non_utf8_program_name_from_an_elf_loads_as_its_bytes(xdp_object):
    data = _renamed(xdp_object, b"xdp_filter", b"xdp_filt\xe9r")
    with BpfObject.open(data, name="xdp_count") as obj:
        [name] = obj.spec.programs
        assert name == "xdp_filt\udce9r"
        obj.load()
        assert obj.programs[name].info().name == "xdp_filt\xe9r"  # read back as Latin-1


def test_long_names_from_an_elf_are_cut_to_15_bytes_as_libbpf_does(xdp_object):
    long_name = "a_program_name_longer_than_15"
    with BpfObject.open(xdp_object) as obj:
        spec = obj.spec.programs.pop("xdp_filter")
        spec.name = long_name  # as if the object had called it that
        obj.spec.programs[long_name] = spec
        obj.load()
        assert obj.programs[long_name].info().name == long_name[:15]
