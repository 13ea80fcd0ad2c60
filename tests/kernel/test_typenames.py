"""Numbers the generated constants lack are named by the running kernel's BTF.

The constants come from 6.12's header; this host runs 6.18, whose
``enum bpf_attach_type`` has trace_uprobe_session (57) beyond them."""
import os
import subprocess

import pytest

import pybpf
from pybpf import typenames
from pybpf.btf import Btf, BtfError
from pybpf.kernel.constants import AttachType, LinkType, MapType, ProgType
from pybpf.loader import BpfObject

KINDS = (MapType, ProgType, AttachType, LinkType)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_the_constants_and_the_kernels_btf_agree_on_every_name(kind):
    names = typenames.kernel_names(kind)
    assert names, f"no enum for {kind.__name__} in the kernel's BTF"
    for member in kind:
        if member.value in names:
            assert names[member.value] == member.name.lower() or \
                names[member.value].endswith("_deprecated"), member


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_a_number_the_constants_lack_gets_the_kernels_name(kind):
    beyond = {v: n for v, n in typenames.kernel_names(kind).items()
              if v not in {int(m) for m in kind}}
    for value, name in beyond.items():
        assert typenames.type_name(value, kind) == name
    assert typenames.type_name(10_000, kind).endswith(" 10000")


def test_6_18_names_attach_type_57():
    from pybpf.kernel.release import kernel_version
    if kernel_version() < (6, 18):
        pytest.skip("trace_uprobe_session is attach type 57 from 6.18 (this host's kernel)")
    assert 57 not in {int(a) for a in AttachType}
    assert typenames.type_name(57, AttachType) == "trace_uprobe_session"


def test_without_kernel_btf_a_number_is_said_as_one(monkeypatch):
    def no_btf(*a, **k):
        raise BtfError("no BTF")
    monkeypatch.setattr(Btf, "vmlinux", no_btf)
    typenames.kernel_names.cache_clear()
    try:
        assert typenames.type_name(57, AttachType) == "attach type 57"
        assert typenames.type_name(1, MapType) == "hash"
    finally:
        typenames.kernel_names.cache_clear()


FUTURE_MAP = r'''
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct { __uint(type, 99); __uint(key_size, 4); __uint(value_size, 4);
         __uint(max_entries, 1); } future SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __type(key, int); __type(value, int);
         __uint(max_entries, 1); } known SEC(".maps");
SEC("socket") int prog(void *ctx) { return 0; }
char LICENSE[] SEC("license") = "GPL";
'''


def test_a_map_type_no_one_knows_yet_is_passed_to_the_kernel_which_judges(clang, tmp_path):
    """Type 99 is in no header: pybpf parses it as a number and creates the map as
    defined, so a kernel that has the type would load the object; this one refuses,
    and the error names the number."""
    src, obj = tmp_path / "future.bpf.c", tmp_path / "future.o"
    src.write_text(FUTURE_MAP)
    subprocess.run([clang, "-O2", "-g", "-target", "bpf", "-c", str(src), "-o", str(obj),
                    f"-I/usr/include/{os.uname().machine}-linux-gnu"], check=True)
    with BpfObject.open(str(obj)) as o:
        assert o.spec.maps["future"].type == 99 and o.spec.maps["known"].type == MapType.ARRAY
        with pytest.raises(pybpf.BPFError, match=r"map 'future' as defined \(map type 99,"):
            o.load()
