"""The spec layer without a kernel: clang-built test objects parsed into specs.

Parsing asks the kernel nothing, so what each object yields (programs linked with
their subprograms, relocations by name, maps, global data, externs) is checked here,
without privileges, against what the C sources say. The objects are the loader's
(tests/progs/loader) and one of externs only the kernel could resolve
(tests/progs/specs), compiled as the kernel tests compile them.
"""
import ast
import copy
import os
import pathlib
import subprocess

import pytest

import pybpf
from pybpf import asm
from pybpf.elf import STT_FUNC, ElfFile
from pybpf.kernel.constants import (BPF_F_MMAPABLE, BPF_F_RDONLY_PROG, BPF_PSEUDO_CALL,
                                    BPF_PSEUDO_FUNC, MapType, ProgType)
from pybpf.objfile import ObjectFile

PROGS = pathlib.Path(__file__).parent.parent / "progs"
SOURCES = {"globals": "loader", "externs": "loader", "legacy": "loader",
           "mapinmap": "loader", "pinned": "loader", "tailcalls": "loader",
           "ksyms": "specs"}
DATA = BPF_F_MMAPABLE
RODATA = BPF_F_MMAPABLE | BPF_F_RDONLY_PROG


@pytest.fixture(scope="module")
def built(clang, tmp_path_factory):
    out = tmp_path_factory.mktemp("specs")
    paths = {}
    for name, where in SOURCES.items():
        path = out / f"{name}.o"
        subprocess.run([clang, "-O2", "-g", "-target", "bpf", "-c",
                        str(PROGS / where / f"{name}.bpf.c"), "-o", str(path),
                        f"-I/usr/include/{os.uname().machine}-linux-gnu"], check=True)
        paths[name] = str(path)
    return paths


@pytest.fixture(scope="module")
def spec(built):
    return {name: ObjectFile.from_path(path) for name, path in built.items()}


def test_programs_and_their_sections(spec):
    seen = {(obj, p.name, p.section_def.section, p.section_def.prog_type)
            for obj, s in spec.items() for p in s.programs.values()}
    assert seen == {
        ("globals", "measure", "xdp", ProgType.XDP),
        ("externs", "read_config", "socket", ProgType.SOCKET_FILTER),
        ("legacy", "count", "socket", ProgType.SOCKET_FILTER),
        ("mapinmap", "read_inner", "xdp", ProgType.XDP),
        ("pinned", "bump", "socket", ProgType.SOCKET_FILTER),
        ("tailcalls", "a", "tc", ProgType.SCHED_CLS),
        ("tailcalls", "b", "tc", ProgType.SCHED_CLS),
        ("tailcalls", "c", "tc", ProgType.SCHED_CLS),
        ("ksyms", "use_ksyms", "tp_btf/sys_enter", ProgType.TRACING),
    }
    assert all(p.license == "GPL" for s in spec.values() for p in s.programs.values())
    assert spec["ksyms"].programs["use_ksyms"].section_def.target == "sys_enter"


def test_a_program_holds_itself_and_the_subprograms_it_reaches(spec, built):
    measure = spec["globals"].programs["measure"]
    # measure calls classify, which passes add_one to bpf_loop and calls scale.
    assert measure.subprograms == ["classify", "add_one", "scale"]
    sizes = {sym.name: sym.size // 8 for sym in ElfFile(open(built["globals"], "rb").read())
             .symbols() if sym.type == STT_FUNC}
    bases = [0]
    for fn, base in measure.layout:
        assert base == bases[-1] and fn.end - fn.start == sizes[fn.name]
        bases.append(base + sizes[fn.name])
    assert len(measure.insns) // 8 == bases[-1] == sum(sizes[n] for n in sizes)
    for other in ("externs", "legacy", "mapinmap", "pinned", "tailcalls", "ksyms"):
        for p in spec[other].programs.values():
            assert p.subprograms == [] and len(p.insns) // 8 == sizes_of(built[other])[p.name]


def sizes_of(path):
    return {s.name: s.size // 8 for s in ElfFile(open(path, "rb").read()).symbols()
            if s.type == STT_FUNC}


def test_calls_and_callbacks_point_at_their_callees_in_the_image(spec):
    measure = spec["globals"].programs["measure"]
    bases = {base: fn.name for fn, base in measure.layout}
    targets = []
    slot = 0
    for insn in asm.decode(measure.insns):
        if (insn.code == 0x85 and insn.src == BPF_PSEUDO_CALL) or \
                (insn.code == 0x18 and insn.src == BPF_PSEUDO_FUNC):
            targets.append(bases[slot + insn.imm + 1])
        slot += insn.slots
    assert sorted(targets) == ["add_one", "classify", "scale"]


def test_relocations_name_maps_globals_and_externs(spec):
    def relocs(obj, prog):
        p = spec[obj].programs[prog]
        for slot, r in p.relocs.items():
            assert r.slot == slot
            assert p.insns[slot * 8] == (0x85 if r.kind == "kfunc" else 0x18)
        return sorted((r.kind, r.target, r.offset) for r in p.relocs.values())
    # lengths: looked up and updated; .rodata: threshold (greeting[1] is folded).
    assert relocs("globals", "measure") == [
        ("map", "lengths", 0), ("map", "lengths", 0), ("map_value", ".bss", 0), ("map_value", ".bss", 8),
        ("map_value", ".data", 0), ("map_value", ".rodata", 0)]
    assert relocs("externs", "read_config") == [
        ("extern_var", "CONFIG_BPF_SYSCALL", 0), ("extern_var", "CONFIG_PYBPF_NO_SUCH_OPTION", 0),
        ("extern_var", "LINUX_KERNEL_VERSION", 0), ("map_value", ".bss", 0),
        ("map_value", ".bss", 8), ("map_value", ".data", 0)]
    assert relocs("ksyms", "use_ksyms") == [
        ("extern_var", "bpf_prog_active", 0), ("extern_var", "pybpf_no_such_symbol", 0),
        ("kfunc", "bpf_rcu_read_lock", 0), ("kfunc", "bpf_rcu_read_unlock", 0),
        ("map_value", ".bss", 0), ("map_value", ".bss", 8)]
    assert relocs("tailcalls", "c") == [("map_value", ".bss", 0)]
    assert relocs("legacy", "count") == [("map", "old_counts", 0)]


def _maps(obj):
    return {name: (m.type, m.key_size, m.value_size, m.max_entries, m.flags, m.section)
            for name, m in obj.maps.items()}


def test_map_definitions(spec):
    assert _maps(spec["globals"])["lengths"] == (MapType.HASH, 4, 8, 16, 0, ".maps")
    lengths = spec["globals"].maps["lengths"]
    assert (lengths.key_format, lengths.value_format, lengths.kernel_name) == ("I", "Q",
                                                                              "lengths")
    assert _maps(spec["legacy"]) == {"old_counts": (MapType.ARRAY, 4, 8, 2, 0, "maps")}
    assert _maps(spec["pinned"]) == {"shared_count": (MapType.ARRAY, 4, 8, 1, 0, ".maps")}
    assert spec["pinned"].maps["shared_count"].pinning == 1      # LIBBPF_PIN_BY_NAME
    assert spec["globals"].maps["lengths"].pinning == 0


def test_map_in_map_and_prog_array_initialisers(spec):
    outer = spec["mapinmap"].maps["outer"]
    assert (outer.type, outer.key_size, outer.value_size, outer.max_entries) == \
        (MapType.ARRAY_OF_MAPS, 4, 4, 2)
    assert outer.init_values == {0: "first"}
    inner = outer.inner
    assert (inner.name, inner.type, inner.key_size, inner.value_size, inner.max_entries) \
        == ("outer.inner", MapType.ARRAY, 4, 4, 1)
    jumps = spec["tailcalls"].maps["jumps"]
    assert (jumps.type, jumps.key_size, jumps.value_size, jumps.max_entries) == \
        (MapType.PROG_ARRAY, 4, 4, 4)
    assert jumps.init_values == {1: "b", 2: "c"}


def test_global_data_sections_and_variables(spec):
    g = spec["globals"]
    assert {n: v for n, v in _maps(g).items() if n.startswith(".")} == {
        ".data": (MapType.ARRAY, 4, 4, 1, DATA, ".data"),
        ".rodata": (MapType.ARRAY, 4, 10, 1, RODATA, ".rodata"),
        ".bss": (MapType.ARRAY, 4, 12, 1, DATA, ".bss")}
    assert {n: (v.section, v.offset, v.size) for n, v in g.variables.items()} == {
        "counter": (".data", 0, 4), "threshold": (".rodata", 0, 4),
        "greeting": (".rodata", 4, 6), "last_len": (".bss", 0, 8),
        "last_class": (".bss", 8, 4)}
    assert bytes(g.maps[".data"].data) == (5).to_bytes(4, "little")
    assert bytes(g.maps[".rodata"].data[4:10]) == b"hello\0"
    assert g.maps[".bss"].data[0:12] == bytes(12)
    assert [g.maps[s].kernel_name for s in (".data", ".rodata", ".bss")] == \
        ["globals.data", "globals.rodata", "globals.bss"]


def test_kconfig_externs_and_their_map(spec):
    e = spec["externs"]
    assert {n: (x.section, x.weak, x.size, x.offset) for n, x in e.externs.items()} == {
        "CONFIG_BPF_SYSCALL": (".kconfig", False, 1, 0),
        "CONFIG_PYBPF_NO_SUCH_OPTION": (".kconfig", True, 4, 4),
        "LINUX_KERNEL_VERSION": (".kconfig", False, 4, 8)}
    assert _maps(e)[".kconfig"] == (MapType.ARRAY, 4, 12, 1, RODATA, ".kconfig")
    assert e.maps[".kconfig"].data == bytearray(12)   # filled at load, on a copy


def test_ksym_externs(spec):
    k = spec["ksyms"]
    assert {n: (x.section, x.weak) for n, x in k.externs.items()} == {
        "bpf_prog_active": (".ksyms", False), "pybpf_no_such_symbol": (".ksyms", True),
        "bpf_rcu_read_lock": (".ksyms", False), "bpf_rcu_read_unlock": (".ksyms", False)}
    assert ".kconfig" not in k.maps


def test_parsing_twice_gives_equal_specs(built):
    one, two = (ObjectFile.from_path(built["globals"]) for _ in range(2))
    assert one.programs == two.programs and one.maps == two.maps
    assert copy.deepcopy(one.programs) == one.programs
    assert copy.deepcopy(one.maps) == one.maps


# The spec layer: what parsing an object runs, none of which may enter the kernel.
SPEC_LAYER = ("objfile", "objmaps", "objglobals", "specs", "linker", "sections", "elf",
              "dataimage", "btf.model", "btf.ext")
# Kernel modules the spec layer may import: constants, and the readers of the files a
# user names (an object, a BTF file); none makes a system call of BPF's.
KERNEL_ALLOWED = {"kernel.constants", "kernel.files", "kernel.btffiles"}
DIRECT = {"ctypes", "mmap", "fcntl"}   # standard modules that reach the kernel


def _imports(module):
    """The pybpf modules (dotted, without 'pybpf.') that module's source imports, and
    the standard modules that reach the kernel directly."""
    root = pathlib.Path(pybpf.__file__).parent
    path = root / (module.replace(".", "/") + ".py")
    package = module.split(".")[:-1]
    if not path.exists():
        path, package = root / module.replace(".", "/") / "__init__.py", module.split(".")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            target = ".".join(package[:len(package) - (node.level - 1)] +
                              ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{target}.{alias.name}".lstrip(".")
                found.add(sub if (root / (sub.replace(".", "/") + ".py")).exists()
                          else target)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in DIRECT}
    return found - {""}


def _closure(modules):
    seen, todo = set(), list(modules)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            if module not in DIRECT and not module.startswith("kernel."):
                todo.extend(_imports(module))
    return seen


def test_the_spec_layer_imports_nothing_that_enters_the_kernel():
    seen = _closure(SPEC_LAYER)
    assert not DIRECT & seen
    kernel = {m for m in seen if m.startswith("kernel")}
    assert kernel <= KERNEL_ALLOWED, f"the spec layer reaches {sorted(kernel - KERNEL_ALLOWED)}"
    assert {"objmaps", "objglobals", "specs", "linker", "errors"} <= seen
    # The check sees what it looks for: the loader does enter the kernel.
    assert "kernel.bpf" in _closure(["loader"])
