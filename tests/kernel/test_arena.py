"""Arena maps (6.9+) and __arena globals: the object's .addr_space.1 goes into its
one arena map, at the arena's last pages as libbpf puts it, before programs load."""
import struct
import subprocess

import pytest

from pybpf.kernel.constants import MapType
from pybpf.kernel.release import kernel_version
from pybpf.loader import BpfObject
from pybpf.objfile import ObjectError
from toolbox import tool_path



@pytest.fixture(scope="module")
def arena_object(bpf_object):
    # address_space(1) casts need clang 18+.
    return bpf_object("arena/counter", compiler="clang-19", flags=("-mcpu=v3",))


def test_the_arena_globals_belong_to_the_arena_map(arena_object):
    with BpfObject.open(arena_object) as o:
        spec = o.spec
    assert spec.arena_map == "arena" and spec.maps["arena"].type == MapType.ARENA
    assert spec.maps["arena"].arena_data == struct.pack("<ii", 5, 0)
    kinds = {r.kind for r in spec.programs["add"].relocs.values()}
    assert kinds == {"arena"}


def test_the_program_sees_the_initial_values_and_keeps_what_it_writes(arena_object):
    if kernel_version() < (6, 9):
        pytest.skip("arena maps are 6.9+ (this host's 6.18 has them)")
    with BpfObject.open(arena_object) as o:
        o.load()
        runs = [o.programs["add"].test_run(b"").retval for _ in range(3)]
    assert runs == [6002, 7004, 8006]


def test_arena_globals_without_an_arena_map_are_refused(tmp_path):
    src, obj = tmp_path / "no_arena.bpf.c", tmp_path / "no_arena.o"
    src.write_text('int __attribute__((address_space(1))) lonely = 1;\n'
                   '__attribute__((section("syscall"), used)) int f(void *c) '
                   '{ return lonely; }\nchar LICENSE[] __attribute__((section("license"), '
                   'used)) = "GPL";\n')
    subprocess.run([tool_path("clang-19"), "-O2", "-g", "-target", "bpf",
                    "-c", str(src), "-o", str(obj)], check=True)
    with pytest.raises(ObjectError, match=r"__arena globals \(.addr_space.1\) but no arena map"):
        BpfObject.open(str(obj))
