"""The objects the wheel ships: one set per architecture (tools/build_programs.py),
each with its architecture's byte order, syscall numbers and pt_regs, and
pybpf.shipped picking the running CPU's.

The objects are the source tree's pybpf/bpf/ (the test set-up, bash tools/run-tests,
builds them with tools/build_programs.py --inplace, as setup.py does for a wheel).
Parsing needs no kernel, so a big-endian (s390x) object is read here, on a
little-endian machine, with pybpf's own ELF and BTF readers.
"""
import glob
import os
import struct
import sys

import pytest

from pybpf import shipped
from pybpf.errors import MissingError
from pybpf.objfile import ObjectFile, iter_insns

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import build_programs  # noqa: E402

EM_BPF = 247
PROGRAMS = sorted(os.path.basename(p)[:-len(".bpf.c")]
                  for p in glob.glob(os.path.join(ROOT, "programs", "*.bpf.c")))
BUILD_HINT = "run python tools/build_programs.py --inplace (bash tools/run-tests does)"

# (__NR_read, __NR_pread64) of each architecture's <asm/unistd.h>: what fr_sys_enter must
# compare the syscall number with. A set built with another architecture's headers (the
# build machine's, say) would compare with the wrong ones and never arm a read.
READ_SYSCALLS = {"x86_64": (0, 17), "aarch64": (63, 67), "riscv64": (63, 67),
                 "ppc64le": (3, 179), "s390x": (3, 180)}

JEQ_K, JNE_K = 0x15, 0x55


def object_path(machine, name):
    path = os.path.join(shipped.DIRECTORY, machine, f"{name}.bpf.o")
    if not os.path.exists(path):
        pytest.fail(f"{path} is not built: {BUILD_HINT}")
    return path


def test_every_architecture_of_the_build_is_shipped():
    assert shipped.architectures() == sorted(build_programs.TARGETS), BUILD_HINT
    assert {"x86_64", "aarch64", "s390x"} <= set(build_programs.TARGETS)
    assert set(READ_SYSCALLS) == set(build_programs.TARGETS)
    for machine in build_programs.TARGETS:
        assert shipped.names(machine) == PROGRAMS


@pytest.mark.parametrize("machine", sorted(build_programs.TARGETS))
def test_objects_are_bpf_relocatables_in_the_architectures_byte_order(machine):
    big = build_programs.TARGETS[machine].clang_target == "bpfeb"
    assert big == (machine == "s390x")  # the one big-endian target among them
    for name in PROGRAMS:
        with open(object_path(machine, name), "rb") as f:
            header = f.read(20)
        assert header[:4] == b"\x7fELF" and header[4] == 2  # ELF64
        assert header[5] == (2 if big else 1)  # EI_DATA: ELFDATA2MSB / ELFDATA2LSB
        e_type, e_machine = struct.unpack_from(">HH" if big else "<HH", header, 16)
        assert (e_type, e_machine) == (1, EM_BPF)  # ET_REL, EM_BPF


@pytest.mark.parametrize("machine", sorted(build_programs.TARGETS))
def test_syscall_backend_compares_with_the_architectures_syscall_numbers(machine):
    obj = ObjectFile.from_path(object_path(machine, "filterreduce"))
    insns = obj.programs["fr_sys_enter"].insns
    compared = {imm for _, op, _, imm in iter_insns(insns, obj.byteorder)
                if op in (JEQ_K, JNE_K)}
    assert set(READ_SYSCALLS[machine]) <= compared, (machine, sorted(compared))


def _map_shape(m):
    return (m.type, m.key_size, m.value_size, m.max_entries, m.flags, m.section)


def _program_shape(p):
    return (p.section_def.section, len(p.insns), sorted(p.relocs.items()),
            [(s.slot, s.relo.kind, s.relo.access_str) for s in p.core_sites])


@pytest.mark.parametrize("name", PROGRAMS)
def test_big_endian_object_parses_to_the_little_endian_ones_programs_and_maps(name):
    little = ObjectFile.from_path(object_path("aarch64", name))
    big = ObjectFile.from_path(object_path("s390x", name))
    assert (little.byteorder, big.byteorder) == ("little", "big")
    assert big.license == little.license == "GPL"
    assert list(big.programs) == list(little.programs) and big.programs
    for prog in little.programs:
        assert _program_shape(big.programs[prog]) == _program_shape(little.programs[prog])
    assert list(big.maps) == list(little.maps) and big.maps
    for m in little.maps:
        assert _map_shape(big.maps[m]) == _map_shape(little.maps[m]), m
    assert list(big.variables) == list(little.variables)
    # The BTF is read in the object's order: the maps' key and value types have the
    # sizes of the map definitions (the data sections' DATASECs have none until load).
    assert big.btf.byteorder == "big"
    defined = [m for m in big.maps.values() if m.section == ".maps" and m.btf_key_type_id]
    assert defined
    for m in defined:
        assert big.btf.size_of(m.btf_key_type_id) == m.key_size, m.name
        assert big.btf.size_of(m.btf_value_type_id) == m.value_size, m.name


def test_path_picks_the_running_machines_objects(monkeypatch):
    for machine in ("x86_64", "aarch64", "s390x"):
        monkeypatch.setattr(shipped, "machine", lambda m=machine: m)
        assert shipped.path("readcount") == os.path.join(shipped.DIRECTORY, machine,
                                                         "readcount.bpf.o")
        assert shipped.names() == PROGRAMS


def test_an_architecture_without_objects_is_named_with_those_shipped(monkeypatch):
    monkeypatch.setattr(shipped, "machine", lambda: "mips64")
    with pytest.raises(MissingError, match=r"'mips64' architecture \(pybpf ships them "
                                           r"for aarch64, .*s390x, x86_64\)"):
        shipped.path("filterreduce")
    assert shipped.names() == []


def test_unknown_name_and_unbuilt_tree_are_named(monkeypatch, tmp_path):
    with pytest.raises(MissingError, match=r"no shipped BPF object 'nosuch' \(shipped for "
                                           r"s390x: filterreduce, readcount\)"):
        shipped.path("nosuch", "s390x")
    monkeypatch.setattr(shipped, "DIRECTORY", str(tmp_path))
    with pytest.raises(MissingError, match="none are built.*build_programs.py --inplace"):
        shipped.path("readcount")
    assert shipped.architectures() == []
