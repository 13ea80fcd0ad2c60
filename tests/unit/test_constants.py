"""pybpf/kernel/constants.py is what tools/gen_constants.py makes of the kernel's UAPI
headers (linux-source-6.12's), and what it makes is right.

Three kinds of check: the committed file is byte for byte what the generator writes
now (so nobody edited it by hand and nobody forgot to re-run it after a header
upgrade); spot values that are kernel ABI and can never change (a wrong one means the
generator evaluates constants wrongly, whatever the header); and completeness against
the headers' own text, parsed here independently of the generator, so that an enum
the generator's parser skipped shows up as missing names.
"""
import enum
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from toolbox import load_tool, setup_missing

from pybpf.kernel import constants as C

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "tools" / "gen_constants.py"
COMMITTED = ROOT / "pybpf" / "kernel" / "constants.py"
SETUP_HINT = ("run the test set-up first: `bash tools/run-tests` installs gcc, libc6-dev, "
              "linux-libc-dev and linux-source-6.12 (the headers the constants come from)")


gen = load_tool("gen_constants")


def _gcc():
    cc = shutil.which("gcc")
    if cc is None:
        setup_missing(f"gcc not found on PATH: the generator needs it; {SETUP_HINT}")
    return cc


def test_committed_file_is_what_the_generator_writes(tmp_path):
    out = tmp_path / "constants.py"
    proc = subprocess.run([sys.executable, str(GENERATOR), "--cc", _gcc(), "--output", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"tools/gen_constants.py failed:\n{proc.stderr}\n{SETUP_HINT}"
    assert out.read_bytes() == COMMITTED.read_bytes(), (
        "pybpf/kernel/constants.py differs from what the installed headers give: "
        "re-run tools/gen_constants.py (and never edit constants.py by hand)")


# Values fixed by the kernel ABI: they hold for every header version.
KERNEL_FACTS = [
    ("BPF_MAP_TYPE_HASH", 1), ("BPF_MAP_TYPE_PERCPU_ARRAY", 6), ("BPF_PROG_TYPE_XDP", 6),
    ("BPF_FUNC_override_return", 58), ("BPF_FUNC_strtol", 105), ("BPF_ALU64", 7),
    ("BPF_PSEUDO_MAP_FD", 1), ("BPF_F_MMAPABLE", 1024), ("BPF_PROG_LOAD", 5),
    ("BPF_OBJ_NAME_LEN", 16), ("BPF_TAG_SIZE", 8), ("BPF_F_CURRENT_NETNS", -1),
    # ioctl numbers: _IO('$', 0) and _IOW('$', 4, __u32), evaluated by the compiler.
    ("PERF_EVENT_IOC_ENABLE", 0x2400), ("PERF_EVENT_IOC_SET_BPF", 0x40042408),
    # u64 in the sample stream, not -128: the generator must not sign them.
    ("PERF_CONTEXT_KERNEL", 2**64 - 128), ("XDP_PASS", 2), ("PERF_TYPE_TRACEPOINT", 2),
]


@pytest.mark.parametrize("name, value", KERNEL_FACTS, ids=[n for n, _ in KERNEL_FACTS])
def test_kernel_fact(name, value):
    assert getattr(C, name) == value


def test_enum_class_naming():
    """Classes drop the kernel's prefix; module-level names are the class members."""
    assert C.MapType.PERCPU_ARRAY == 6 and C.MapType.PERCPU_ARRAY.name == "PERCPU_ARRAY"
    assert C.HelperId.map_lookup_elem == 1
    assert C.BPF_FUNC_map_lookup_elem is C.HelperId.map_lookup_elem
    assert C.BPF_MAP_TYPE_PERCPU_ARRAY is C.MapType.PERCPU_ARRAY
    assert C.ProgType["XDP"] is C.BPF_PROG_TYPE_XDP
    assert C.Cmd.PROG_LOAD == C.BPF_PROG_LOAD == 5
    assert C.AttachType.CGROUP_INET_INGRESS == 0
    assert isinstance(C.BPF_ALU64, int) and not isinstance(C.BPF_ALU64, enum.Enum)


@pytest.mark.parametrize("cname", list(gen.ENUM_CLASSES))
def test_every_enum_class_exists(cname):
    """An ENUM_CLASSES entry naming no enum in the headers would silently produce no
    class; each one must exist with its members also exported under kernel names."""
    cls_name, prefix = gen.ENUM_CLASSES[cname]
    cls = getattr(C, cls_name, None)
    assert isinstance(cls, type) and issubclass(cls, enum.IntEnum), (
        f"constants.{cls_name} (enum {cname}) missing: re-run tools/gen_constants.py")
    assert cls.__doc__ == f"enum {cname}"
    assert cls.__members__, f"constants.{cls_name} has no members"
    for member in cls:
        # A member keeps its full kernel name when the prefix is absent or stripping
        # it would not leave an identifier (MAX_BPF_LINK_TYPE).
        kernel_names = [prefix + member.name, member.name]
        assert any(getattr(C, k, None) is member for k in kernel_names), (
            f"neither constants.{' nor constants.'.join(kernel_names)} is {member!r}")


# ---- completeness against the headers' text ------------------------------------

def _header_text(header):
    """The header as the generator takes it from the kernel source, comments removed."""
    try:
        uapi = gen.uapi_headers()
    except gen.kernel_source.SourceError as e:
        setup_missing(f"{e}; {SETUP_HINT}")
    text = (Path(uapi) / header).read_text()
    return re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", "", text, flags=re.S))


def _header_enums(text):
    """{enum name or '(anonymous N)': [member names]} read from the raw text."""
    enums = {}
    for n, m in enumerate(re.finditer(r"\benum\s+(\w+)?\s*\{([^}]*)\}", text)):
        members = []
        for line in m.group(2).splitlines():
            if line.strip().startswith("#"):  # a #define between members
                continue
            for item in line.split(","):
                name = item.split("=")[0].strip()
                # Skips `__MAX_...` sentinels and mapper macro calls, e.g.
                # __BPF_FUNC_MAPPER(__BPF_ENUM_FN), checked separately below.
                if re.fullmatch(r"[A-Za-z_]\w*", name) and not name.startswith("__"):
                    members.append(name)
        enums[m.group(1) or f"(anonymous {n})"] = members
    return enums


@pytest.mark.parametrize("header", gen.HEADERS)
def test_every_enum_member_exported(header):
    enums = _header_enums(_header_text(header))
    assert enums, f"no enums found in <{header}>"
    missing = {name: [m for m in members if not hasattr(C, m)]
               for name, members in enums.items()}
    missing = {name: ms for name, ms in missing.items() if ms}
    assert not missing, (f"enum members of <{header}> absent from constants.py "
                         f"(fix tools/gen_constants.py, then re-run it): {missing}")


@pytest.mark.parametrize("prefix, cls_name", [
    ("BPF_MAP_TYPE_", "MapType"), ("BPF_PROG_TYPE_", "ProgType"),
    ("BPF_LINK_TYPE_", "LinkType"), ("BPF_STATS_", "StatsType"),
])
def test_every_prefixed_name_in_class(prefix, cls_name):
    """Every ``BPF_MAP_TYPE_*`` etc. the header mentions is a member of the class."""
    cls = getattr(C, cls_name)
    names = set(re.findall(rf"\b{prefix}(\w+)", _header_text("linux/bpf.h")))
    assert names, f"no {prefix}* names in <linux/bpf.h>"
    assert sorted(names - set(cls.__members__)) == []


def test_every_helper_in_helper_id():
    """The helpers come from the __BPF_FUNC_MAPPER(FN) list, not a plain enum body."""
    # Entries are FN(name) before 6.2 and FN(name, id, ##ctx) since; a macro
    # parameter spelled FN(name) is not an entry.
    helpers = re.findall(r"^\s*FN\((\w+)", _header_text("linux/bpf.h"), re.M)
    assert len(helpers) > 200, "__BPF_FUNC_MAPPER list not found in <linux/bpf.h>"
    assert sorted(set(helpers) - set(C.HelperId.__members__)) == []
    # The mapper lists them in id order starting at 0.
    assert [C.HelperId[h].value for h in helpers] == list(range(len(helpers)))


def test_a_missing_source_names_the_package(tmp_path):
    with pytest.raises(gen.kernel_source.SourceError,
                       match=r"install it \(apt-get install linux-source-9.9\)"):
        gen.uapi_headers(str(tmp_path / "linux-source-9.9.tar.xz"), cache=str(tmp_path))


def test_the_newer_kernels_types_are_named():
    """What the 6.1 header lacked and pybpf uses: 6.2's cgroup storage, 6.4's netfilter,
    6.6's tcx and uprobe_multi, 6.9's arena."""
    assert (C.MapType.CGRP_STORAGE, C.MapType.ARENA) == (32, 33)
    assert C.ProgType.NETFILTER == 32
    assert (C.AttachType.TCX_INGRESS, C.AttachType.TCX_EGRESS) == (46, 47)
    assert (C.LinkType.TCX, C.LinkType.UPROBE_MULTI) == (11, 12)


def test_deprecated_aliases_do_not_rename_a_type():
    assert C.MapType(19).name == "CGROUP_STORAGE"
    assert C.MapType(21).name == "PERCPU_CGROUP_STORAGE"
    assert C.MapType.CGROUP_STORAGE_DEPRECATED is C.MapType.CGROUP_STORAGE
