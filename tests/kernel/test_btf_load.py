"""BPF_BTF_LOAD of pybpf-written BTF: an object's fixed and sanitized BTF loads, each
feature-stripped variant loads, broken BTF fails with the kernel's BTF log, and
func_info/line_info built from .BTF.ext are accepted by BPF_PROG_LOAD."""
import os
import re
import subprocess

import pytest

from pybpf.btf import Btf, Ptr, Struct
from pybpf.btf import sanitize as S
from pybpf.btf.ext import (
    FUNC_INFO_SIZE, LINE_INFO_SIZE, BtfExt, encode_func_info, encode_line_info,
)
from pybpf.btf.probe import probe_blob, probe_btf_features
from pybpf.errors import VerifierError
from pybpf.kernel import bpf, system
from pybpf.kernel.constants import ProgType

SOURCE = r"""
#define SEC(n) __attribute__((section(n), used))
struct pair { int a; unsigned b:4; float f; };
struct pair pairs[2] SEC(".bss");
int counter SEC(".data") = 1;
const int limit = 10;
extern int CONFIG_HZ __attribute__((section(".kconfig"), weak));
extern int bpf_kfunc_y(int) __attribute__((section(".ksyms")));
struct { int (*type)[2]; int (*max_entries)[4]; } arr SEC(".maps");
int __attribute__((btf_decl_tag("tagged"))) *__attribute__((btf_type_tag("user"))) up;

SEC("socket") int filter(void *ctx)
{
  unsigned int len = *(volatile unsigned int *)ctx;  /* skb->len */
  int x = len * 7;
  if (len > 10)
    x += 1;
  return x;
}
SEC("tracepoint/a") int uses_globals(void *ctx)
{
  counter += limit + pairs[1].b + CONFIG_HZ;
  return bpf_kfunc_y(counter);
}
char _license[] SEC("license") = "GPL";
"""


def run(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def obj(tmp_path_factory, clang):
    d = tmp_path_factory.mktemp("btfload")
    src, path = d / "load.bpf.c", str(d / "load.o")
    src.write_text(SOURCE)
    run(clang, "-g", "-O2", "-target", "bpf", "-c", str(src), "-o", path)
    parts = {".BTF": "btf", ".BTF.ext": "ext", "socket": "socket"}
    run("llvm-objcopy", *(f"--dump-section={sec}={path}.{suffix}"
                          for sec, suffix in parts.items()), path)
    out = {suffix: open(f"{path}.{suffix}", "rb").read() for suffix in parts.values()}
    elf = run("llvm-readelf", "-S", "-s", "--wide", path)
    sizes = {m.group(1): int(m.group(2), 16) for m in re.finditer(
        r"\]\s+(\S+)\s+\S+\s+[0-9a-f]+\s+[0-9a-f]+\s+([0-9a-f]+)", elf)}
    offsets = {m.group(2): int(m.group(1), 16) for m in re.finditer(
        r"^\s*\d+:\s+([0-9a-f]+)\s+\d+\s+OBJECT\s+\w+\s+\w+\s+\w+\s+(\S+)$", elf, re.M)}
    out["sizes"], out["offsets"] = sizes, offsets
    return out


def fixed_btf(obj):
    btf = Btf.from_bytes(obj["btf"])
    btf.fixup_datasecs({k: v for k, v in obj["sizes"].items()
                        if k in (".data", ".rodata", ".bss", ".maps", "license")},
                       obj["offsets"])
    return btf


def load(data):
    fd = bpf.btf_load(data)
    try:
        info, name, raw = bpf.btf_info(fd, with_data=True)
    finally:
        bpf.close(fd)
    return info, name, raw


def test_probe_finds_what_this_kernel_has():
    features = probe_btf_features()
    assert features <= S.ALL_FEATURES and probe_btf_features() is features
    running = system.kernel_version()
    for name, (version, _what) in S.FEATURES.items():
        if running >= tuple(int(x) for x in version.split(".")) + (0,):
            assert name in features, f"{name} is in every kernel since {version}"
    # Each probe blob is valid BTF apart from its feature: it loads here when present.
    for name in features:
        assert load(probe_blob(name))[0].btf_size == len(probe_blob(name))


def test_fixed_and_sanitized_object_btf_loads(obj):
    data = fixed_btf(obj).sanitize(probe_btf_features()).to_bytes()
    info, name, raw = load(data)
    assert info.btf_size == len(data) and raw == data and name == "" and not info.kernel_btf


@pytest.mark.parametrize("missing", sorted(S.FEATURES) + ["all"])
def test_variants_for_older_kernels_load(obj, missing):
    """What sanitize writes for a kernel without a feature is still valid BTF here."""
    features = frozenset() if missing == "all" else S.ALL_FEATURES - {missing}
    data = fixed_btf(obj).sanitize(features).to_bytes()
    assert load(data)[0].btf_size == len(data)


def test_kconfig_laid_out_by_the_loader_loads(obj):
    btf = fixed_btf(obj)
    btf.fixup_datasecs({".kconfig": 4}, {"CONFIG_HZ": 0})
    out = btf.sanitize(probe_btf_features())
    assert out.type(out.find_one(".kconfig")).size == 4
    assert load(out.to_bytes())[0].btf_size > 0


def test_unfixed_object_btf_is_refused_with_the_kernel_log(obj):
    with pytest.raises(VerifierError) as e:
        bpf.btf_load(obj["btf"])
    # clang's raw output: an extern VAR/FUNC or a DATASEC of size 0, named by the kernel.
    assert re.search(r"Linkage not supported|Invalid func linkage|size == 0", e.value.log)
    assert "BPF_BTF_LOAD" in str(e.value) and "EINVAL" in str(e.value)


def test_broken_btf_names_the_bad_type():
    btf = Btf()
    btf.add(Ptr("", 42))
    with pytest.raises(VerifierError) as e:
        bpf.btf_load(btf.to_bytes())
    assert "[1] PTR" in e.value.log and "Invalid type_id" in str(e.value)


def test_prog_load_accepts_encoded_func_and_line_info(obj):
    btf = fixed_btf(obj).sanitize(probe_btf_features())
    ext = BtfExt.from_bytes(obj["ext"], btf)
    funcs, lines = ext.func_info["socket"], ext.line_info["socket"]
    assert len(lines) >= 2
    btf_fd = bpf.btf_load(btf.to_bytes())
    try:
        fi, li = encode_func_info(funcs), encode_line_info(lines)
        prog_fd, _log = bpf.prog_load(
            ProgType.SOCKET_FILTER, obj["socket"], "GPL", name="filter", prog_btf_fd=btf_fd,
            func_info=fi, func_info_rec_size=FUNC_INFO_SIZE, func_info_cnt=len(funcs),
            line_info=li, line_info_rec_size=LINE_INFO_SIZE, line_info_cnt=len(lines))
        try:
            info = bpf.obj_get_info(prog_fd, "prog")
            assert (info.nr_func_info, info.nr_line_info) == (len(funcs), len(lines))
            # skb->len excludes the 14-byte Ethernet header test_run pulls
            assert bpf.prog_test_run(prog_fd, data_in=b"\0" * 64)[0] == (64 - 14) * 7 + 1
        finally:
            bpf.close(prog_fd)
    finally:
        bpf.close(btf_fd)


@pytest.mark.skipif(not os.path.exists("/sys/kernel/btf/vmlinux"),
                    reason="no /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF, 5.4+)")
def test_kernel_btf_by_id_is_the_sysfs_file():
    btf_id = bpf.btf_get_next_id(0)
    while btf_id is not None:
        fd = bpf.btf_get_fd_by_id(btf_id)
        try:
            info, name, raw = bpf.btf_info(fd, with_data=True)
        finally:
            bpf.close(fd)
        if info.kernel_btf and name == "vmlinux":
            break
        btf_id = bpf.btf_get_next_id(btf_id)
    else:
        pytest.fail("no kernel BTF object named vmlinux among the loaded BTF ids")
    with open("/sys/kernel/btf/vmlinux", "rb") as f:
        assert raw == f.read()
    vm = Btf.from_bytes(raw)
    assert isinstance(vm.type(vm.find_one("task_struct", Struct)), Struct)
