"""pybpf's section table means what libbpf's does.

The oracle is libbpf's own table, section_defs[] in tools/lib/bpf/libbpf.c of the
6.12 kernel tree (linux-source-6.12, libbpf 1.5), parsed here, with libbpf's
matching rule (sec_def_matches(): first row in table order; a prefix ending in "+"
matches itself or itself followed by "/..."; other rows the whole name) applied to
names built from every row. For each name both tables resolve, the program type,
expected attach type and load flags must agree; a name only libbpf resolves must be
in NOT_YET, the conventions pybpf does not know yet, and one only pybpf resolves is
an error. No kernel is needed.
"""
import re

import pytest
from toolbox import load_tool, setup_missing

from pybpf import sections
from pybpf.kernel.constants import AttachType, ProgType

kernel_source = load_tool("kernel_source")
LIBBPF_C = "tools/lib/bpf/libbpf.c"

# Conventions of libbpf 1.5 that pybpf's table lacks. Each is refused as an unknown
# section today; adding one to sections.py means removing it here.
NOT_YET = set()  # every libbpf 1.5 convention has a row
FLAGS = {"SEC_SLEEPABLE": sections.SLEEPABLE, "SEC_ATTACH_BTF": sections.ATTACH_BTF,
         "SEC_XDP_FRAGS": sections.XDP_FRAGS}


@pytest.fixture(scope="module")
def libbpf_rows():
    try:
        tree = kernel_source.extract([LIBBPF_C])
    except kernel_source.SourceError as e:
        setup_missing(f"{e} (`bash tools/run-tests` installs it)")
    with open(f"{tree}/{LIBBPF_C}") as f:
        text = f.read()
    table = text[text.index("static const struct bpf_sec_def section_defs[]"):]
    table = table[:table.index("};")]
    rows = []
    for prefix, ptype, atype, flags in re.findall(
            r'SEC_DEF\("([^"]+)",\s*(\w+),\s*(\w+),\s*([\w |]+?)\s*[,)]', table):
        eat = None if atype == "0" else AttachType[atype[len("BPF_"):]]
        bits = 0
        for flag in flags.split("|"):
            bits |= FLAGS.get(flag.strip(), 0)
        rows.append((prefix, ProgType[ptype], eat, bits))
    assert len(rows) > 90, f"section_defs[] not found in {LIBBPF_C}"
    return rows


def _libbpf_match(rows, name):
    for prefix, *meaning in rows:
        if prefix.endswith("+"):
            base = prefix[:-1]
            if name == base or name.startswith(base + "/"):
                return prefix, meaning
        elif name == prefix:
            return prefix, meaning
    return None, None


def _names(rows):
    """A bare and a targeted name for every row's prefix, and unknown neighbours."""
    names = set()
    for prefix, *_ in rows:
        base = prefix.rstrip("+")
        names |= {base, base + "/do_sys_openat2", base + "x", base + ".s"}
    return sorted(names)


def test_every_name_means_the_same_to_both_tables(libbpf_rows):
    wrong, unexpected = [], []
    for name in _names(libbpf_rows):
        row, meaning = _libbpf_match(libbpf_rows, name)
        try:
            sd = sections.parse(name)
        except sections.UnknownSectionError:
            if row is not None and row not in NOT_YET:
                wrong.append(f"{name}: pybpf knows no convention, libbpf's {row!r}")
            continue
        if row is None or row in NOT_YET:
            unexpected.append(f"{name}: pybpf matches {sd.prefix!r}, libbpf "
                              f"{'nothing' if row is None else repr(row)}")
            continue
        ours = [sd.prog_type, sd.expected_attach_type, sd.flags]
        if ours != meaning:
            wrong.append(f"{name}: pybpf {ours}, libbpf {meaning}")
    assert not wrong and not unexpected, "\n".join(wrong + unexpected)


def test_every_row_of_pybpf_is_one_of_libbpfs(libbpf_rows):
    theirs = {prefix for prefix, *_ in libbpf_rows}
    assert sorted(set(sections.known_prefixes()) - theirs) == []


def test_not_yet_lists_only_rows_libbpf_has(libbpf_rows):
    theirs = {prefix for prefix, *_ in libbpf_rows}
    assert sorted(NOT_YET - theirs) == []
    assert sorted(NOT_YET & set(sections.known_prefixes())) == []


def test_a_leading_question_mark_only_turns_autoload_off():
    sd = sections.parse("?kprobe/do_sys_openat2")
    assert (sd.prefix, sd.target, sd.autoload) == ("kprobe", "do_sys_openat2", False)
    assert sections.parse("kprobe/do_sys_openat2").autoload
