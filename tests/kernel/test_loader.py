"""The object loader on objects clang builds from tests/progs/loader/*.bpf.c."""
import copy
import os
import subprocess
import sys

import pytest

import pybpf
from pybpf.errors import BPFError, VerifierError
from pybpf.kernel import system
from pybpf.loader import BpfObject
from pybpf.objfile import ObjectError, ObjectFile
from pybpf.sections import UnknownSectionError

PROGS = os.path.join(os.path.dirname(__file__), "..", "progs", "loader")
PACKET = bytes(64)


@pytest.fixture(scope="module")
def build(clang, tmp_path_factory):
    """Compile a test program once per module: build("globals") -> path of the .o."""
    out = tmp_path_factory.mktemp("loader")
    built = {}

    def compile_(name, target="bpf"):
        key = (name, target)
        if key not in built:
            obj = out / f"{name}.{target}.o"
            subprocess.run([clang, "-O2", "-g", "-target", target, "-c",
                            os.path.join(PROGS, f"{name}.bpf.c"), "-o", str(obj),
                            "-I/usr/include/x86_64-linux-gnu"], check=True)
            built[key] = str(obj)
        return built[key]
    return compile_


def test_globals_subprograms_callbacks_and_maps(build):
    with BpfObject.open(build("globals")) as obj:
        assert obj.variables["counter"] == 5 and obj.variables["threshold"] == 10
        assert obj.variables["greeting"] == b"hello\0"
        obj.load()
        prog = obj.programs["measure"]
        assert prog.test_run(PACKET).retval == 2  # XDP_PASS
        prog.test_run(PACKET)
        # classify(): scale(64) = 133 > threshold (+1), bpf_loop callback ran 3 times
        # (+30), greeting[1] == 'e' read from .rodata (+100).
        assert obj.variables["last_class"] == 131
        assert obj.variables["last_len"] == 64
        assert obj.maps["lengths"][64] == 2  # BTF says u32 -> u64, so ints
        assert obj.stats["measure"].verified_insns > 0


def test_rodata_set_before_load_is_seen_by_the_verified_program(build):
    with BpfObject.open(build("globals")) as obj:
        obj.variables["threshold"] = 1000
        obj.load()
        obj.programs["measure"].test_run(PACKET)
        assert obj.variables["last_class"] == 130  # 133 is not > 1000 now
        assert obj.maps[".rodata"].info().frozen
        with pytest.raises(BPFError):
            obj.variables["threshold"] = 5  # frozen: user space may not write it


def test_variables_refuse_bad_values(build):
    with BpfObject.open(build("globals")) as obj:
        with pytest.raises(KeyError, match="no global variable 'nope'"):
            obj.variables["nope"]
        with pytest.raises(ValueError, match="does not fit"):
            obj.variables["counter"] = 1 << 40
        with pytest.raises(ValueError, match="6 bytes"):
            obj.variables["greeting"] = b"hi"


def test_prog_array_filled_from_values_initialiser(build):
    with BpfObject.open(build("tailcalls")) as obj:
        obj.load()
        run = obj.programs["a"].test_run(bytes(64))
        assert run.retval == 3  # a -> b -> c, c returns 3
        assert obj.variables["result"] == 111
        assert obj.maps["jumps"][1] == obj.programs["b"].id
        assert obj.maps["jumps"][2] == obj.programs["c"].id


def test_map_in_map_filled_from_values_initialiser(build):
    with BpfObject.open(build("mapinmap")) as obj:
        obj.load()
        obj.maps["first"][0] = 42
        assert obj.maps["outer"][0] == obj.maps["first"].id
        assert obj.programs["read_inner"].test_run(PACKET).retval == 42


def test_kconfig_externs(build):
    with BpfObject.open(build("externs")) as obj:
        obj.load()
        obj.programs["read_config"].test_run(PACKET)
        assert obj.variables["version"] == system.kernel_version_code()
        assert obj.variables["syscall_on"] == 1
        assert obj.variables["missing"] == 0  # __weak and absent: zero, not 77


def test_kconfig_override(build):
    with BpfObject.open(build("externs")) as obj:
        obj.load(kconfig={"LINUX_KERNEL_VERSION": 0x050a00})
        obj.programs["read_config"].test_run(PACKET)
        assert obj.variables["version"] == 0x050a00


def test_legacy_maps_section(build):
    with BpfObject.open(build("legacy")) as obj:
        obj.load()
        obj.programs["count"].test_run(PACKET)
        obj.programs["count"].test_run(PACKET)
        assert obj.maps["old_counts"][1] == (6).to_bytes(8, "little")


def test_pinned_by_name_map_is_shared_between_loads(build, bpffs):
    with BpfObject.open(build("pinned")) as first:
        first.load(pin_maps=bpffs)
        first.programs["bump"].test_run(PACKET)
        map_id = first.maps["shared_count"].id
    assert os.listdir(bpffs) == ["shared_count"]  # outlived the first object
    with BpfObject.open(build("pinned")) as second:
        second.load(pin_maps=bpffs)
        assert second.maps["shared_count"].id == map_id
        second.programs["bump"].test_run(PACKET)
        assert second.maps["shared_count"][0] == 2
    pybpf.unpin(os.path.join(bpffs, "shared_count"))


def test_verifier_error_names_program_and_source_line(build):
    with BpfObject.open(build("rejected")) as obj:
        with pytest.raises(VerifierError) as exc:
            obj.load()
    err = exc.value
    assert err.program == "unchecked"
    assert "data[40]" in err.source_line and "rejected.bpf.c:9" in err.source_line
    assert "invalid access to packet" in err.log
    assert "program 'unchecked' (section 'xdp')" in str(err)


def test_failed_load_releases_everything(build):
    before = set(os.listdir("/proc/self/fd"))
    obj = BpfObject.open(build("rejected"))
    with pytest.raises(VerifierError):
        obj.load()
    assert set(os.listdir("/proc/self/fd")) == before
    assert obj.maps == {} and obj.programs == {}


def test_open_refuses_what_is_neither_a_path_nor_bytes_and_leaves_fds_alone(build):
    fd = os.open(build("legacy"), os.O_RDONLY)
    try:
        with pytest.raises(pybpf.InputError, match="a path or the object's bytes, not int"):
            BpfObject.open(fd)
        os.fstat(fd)  # still open: it is the caller's
    finally:
        os.close(fd)


def test_unknown_section_is_named(build):
    with pytest.raises(UnknownSectionError, match="'bogus/name'"):
        BpfObject.open(build("bogus"))


def test_other_endianness_parses_but_is_refused_at_load(build):
    other = "bpfeb" if sys.byteorder == "little" else "bpfel"
    obj = BpfObject.open(build("legacy", other))
    assert obj.spec.byteorder != sys.byteorder and obj.spec.programs
    with pytest.raises(ObjectError, match="endian.*rebuild"):
        obj.load()
    assert obj.maps == {} and obj.programs == {}  # refused before any kernel object


def test_truncated_object_is_refused(build):
    with open(build("globals"), "rb") as f:
        data = f.read()
    for cut in (0, 10, 63, len(data) // 2):
        with pytest.raises(ObjectError):
            ObjectFile.parse(data[:cut])


def test_cli_load_reports_programs_and_maps(build):
    out = subprocess.run([sys.executable, "-m", "pybpf", "load", build("globals"), "--json"],
                         capture_output=True, text=True, check=True).stdout
    import json
    doc = json.loads(out)
    assert [p["name"] for p in doc["programs"]] == ["measure"]
    assert doc["programs"][0]["verified_insns"] > 0
    assert {m["name"] for m in doc["maps"]} == {".data", ".rodata", ".bss", "lengths"}


def test_cli_load_failure_shows_reason_and_source_line(build):
    proc = subprocess.run([sys.executable, "-m", "pybpf", "load", build("rejected")],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "rejected.bpf.c:9" in proc.stderr and "invalid access to packet" in proc.stderr


def test_cli_load_pins(build, bpffs):
    subprocess.run([sys.executable, "-m", "pybpf", "load", build("legacy"), "--pin", bpffs],
                   check=True, capture_output=True)
    assert sorted(os.listdir(bpffs)) == ["count", "maps"]
    with pybpf.Program.from_pin(os.path.join(bpffs, "count")) as prog:
        assert prog.type == pybpf.ProgType.SOCKET_FILTER
    pybpf.unpin(os.path.join(bpffs, "count"))
    pybpf.unpin(os.path.join(bpffs, "maps", "old_counts"))
    os.rmdir(os.path.join(bpffs, "maps"))


def test_variables_after_load_go_through_the_shared_mapping(build, monkeypatch):
    """After load, globals are read and written through an mmap of the data map (no
    syscall), and the kernel's copy is what changed."""
    from pybpf.kernel import bpf as kbpf
    with BpfObject.open(build("globals")) as obj:
        obj.load()
        obj.programs["measure"].test_run(PACKET)
        with monkeypatch.context() as patch:
            def no_syscall(*args, **kwargs):
                raise AssertionError("a map syscall was made")
            patch.setattr(kbpf.ElemOps, "update", no_syscall)
            patch.setattr(kbpf.ElemOps, "lookup", no_syscall)
            assert obj.variables["last_len"] == 64  # written by the program
            obj.variables["counter"] = 77
        assert obj.maps[".data"][0] == (77).to_bytes(4, sys.byteorder)


def test_one_parsed_spec_loads_twice_and_stays_as_parsed(build):
    """Loading works on copies (issue 15): CO-RE, kconfig values and map fds never
    reach the spec, so one parse serves two loads and compares equal afterwards."""
    spec = ObjectFile.from_path(build("globals"))
    kspec = ObjectFile.from_path(build("externs"))
    before = [copy.deepcopy(s.programs) for s in (spec, kspec)]
    maps_before = [copy.deepcopy(s.maps) for s in (spec, kspec)]
    with BpfObject(spec).load() as one, BpfObject(spec).load() as two:
        assert one.programs["measure"].test_run(PACKET).retval == 2
        assert two.programs["measure"].test_run(PACKET).retval == 2
        assert one.maps["lengths"].info().id != two.maps["lengths"].info().id
    with BpfObject(kspec).load(kconfig={"CONFIG_PYBPF_NO_SUCH_OPTION": 3}) as obj:
        obj.programs["read_config"].test_run(PACKET)
        assert obj.variables["missing"] == 3
    assert [s.programs for s in (spec, kspec)] == before
    assert [s.maps for s in (spec, kspec)] == maps_before
