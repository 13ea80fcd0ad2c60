"""libbpf's rules for an object's data maps and map attributes, where the kernel
would refuse anything else: a data section of only static-linkage variables (special
fields such as a bpf_spin_lock live there) is not BPF_F_MMAPABLE, and __ulong()
attributes (libbpf 1.4+) are read from their enum. Hidden globals count as static by
their ELF visibility, as libbpf counts them: clang (14 and 19) gives them global
linkage in BTF."""
from pybpf.kernel.constants import BPF_F_MMAPABLE, MapType
from pybpf.loader import BpfObject


def test_a_section_of_hidden_variables_is_not_mapped_and_still_works(bpf_object):
    with BpfObject.open(bpf_object("data/special")) as o:
        flags = {name: m.flags for name, m in o.spec.maps.items()}
        assert not flags[".data.locked"] & BPF_F_MMAPABLE
        assert flags[".data"] & BPF_F_MMAPABLE and flags[".bss"] & BPF_F_MMAPABLE
        o.variables["plain"] = 5             # before load: the initial image
        o.load()                             # the kernel refuses mmapable spin locks
        for _ in range(3):
            assert o.programs["bump"].test_run(b"").retval == 0
        assert o.variables["zeroed"] == 15   # mapped sections, read through mmap
        count = int.from_bytes(o.maps[".data.locked"][0][8:16], "little")
        assert count == 3                     # the unmapped one, read by lookup


def test_ulong_attributes_come_from_their_enum(bpf_object):
    with BpfObject.open(bpf_object("data/special")) as o:
        assert o.spec.maps["bloom"].type == MapType.BLOOM_FILTER
        assert o.spec.maps["bloom"].map_extra == 3
        o.load()
        assert o.maps["bloom"].info().map_extra == 3
