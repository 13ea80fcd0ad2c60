"""pybpf.kernel.perf agrees with the installed <linux/perf_event.h>.

A wrong offset in perf_event_attr makes the kernel read some other field (a kprobe
opened on the wrong name, a sampling period of zero) or refuse with a bare EINVAL; a
wrong ioctl number attaches nothing. So the C compiler is asked: a generated program
prints offsetof/sizeof of every field, the bytes of every bitfield set to 1, and the
ioctl numbers, and the test compares them with ctypes.
"""
import ctypes
import shutil
import subprocess

import pytest

from pybpf.kernel import perf
from toolbox import setup_missing

SETUP_HINT = ("run the test set-up first: `bash tools/run-tests` installs gcc and "
              "linux-libc-dev (or `apt-get install gcc libc6-dev linux-libc-dev`)")

# ctypes names that the header spells differently (reserved members start with "__").
C_NAME = {"_reserved_1": "__reserved_1", "_reserved_2": "__reserved_2",
          "_reserved_3": "__reserved_3"}
# Union alternatives: each must sit exactly where the ctypes field standing for its
# union does.
ALIASES = {"sample_freq": "sample_period", "wakeup_watermark": "wakeup_events",
           "bp_addr": "config1", "kprobe_func": "config1", "uprobe_path": "config1",
           "bp_len": "config2", "kprobe_addr": "config2", "probe_offset": "config2"}
CONSTANTS = ["PERF_TYPE_HARDWARE", "PERF_TYPE_SOFTWARE", "PERF_TYPE_TRACEPOINT",
             "PERF_TYPE_HW_CACHE", "PERF_TYPE_RAW", "PERF_TYPE_BREAKPOINT",
             "PERF_COUNT_SW_CPU_CLOCK", "PERF_COUNT_SW_TASK_CLOCK",
             "PERF_COUNT_SW_PAGE_FAULTS", "PERF_COUNT_SW_CONTEXT_SWITCHES",
             "PERF_COUNT_SW_CPU_MIGRATIONS", "PERF_COUNT_SW_BPF_OUTPUT",
             "PERF_COUNT_HW_CPU_CYCLES", "PERF_COUNT_HW_INSTRUCTIONS", "PERF_SAMPLE_RAW",
             "PERF_FLAG_FD_CLOEXEC", "PERF_ATTR_SIZE_VER7", "PERF_EVENT_IOC_ENABLE",
             "PERF_EVENT_IOC_DISABLE", "PERF_EVENT_IOC_ID", "PERF_EVENT_IOC_SET_BPF"]

PRELUDE = r"""#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <linux/perf_event.h>

typedef struct perf_event_attr A;

static void bits(const char *name, const A *v)
{
  printf("bits %s ", name);
  for (size_t i = 0; i < sizeof *v; i++)
    printf("%02x", ((const unsigned char *)v)[i]);
  printf("\n");
}

int main(void)
{
  printf("size struct %zu\n", sizeof(A));
"""


def _is_bitfield(field):
    return len(field) == 3


def _c_program():
    lines = []
    for field in perf.PerfEventAttr._fields_:
        c = C_NAME.get(field[0], field[0])
        if _is_bitfield(field):
            lines.append(f'  {{ A v; memset(&v, 0, sizeof v); v.{c} = 1; bits("{field[0]}", &v); }}')
        else:
            lines.append(f'  printf("field {field[0]} %zu %zu\\n", offsetof(A, {c}), '
                         f'sizeof(((A *)0)->{c}));')
    for alias in ALIASES:
        lines.append(f'  printf("field {alias} %zu %zu\\n", offsetof(A, {alias}), '
                     f'sizeof(((A *)0)->{alias}));')
    for name in CONSTANTS:
        lines.append(f'  printf("const {name} %llu\\n", (unsigned long long)({name}));')
    return PRELUDE + "\n".join(lines) + "\n  return 0;\n}\n"


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory):
    gcc = shutil.which("gcc")
    if gcc is None:
        setup_missing(f"gcc not found on PATH: the layout check needs a C compiler; {SETUP_HINT}")
    tmp = tmp_path_factory.mktemp("perf_layout")
    src, exe = tmp / "layout.c", tmp / "layout"
    src.write_text(_c_program())
    built = subprocess.run([gcc, "-Wall", "-o", str(exe), str(src)], capture_output=True,
                           text=True)
    if built.returncode:
        pytest.fail(f"compiling {src} failed (a ctypes field the header does not have?):\n"
                    f"{built.stderr}\n{SETUP_HINT}")
    out = {"field": {}, "bits": {}, "const": {}, "size": {}}
    for line in subprocess.run([str(exe)], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        what, name, *rest = line.split()
        out[what][name] = rest
    return out


def test_struct_size_matches_the_header(c_layout):
    assert ctypes.sizeof(perf.PerfEventAttr) == int(c_layout["size"]["struct"][0])
    assert perf.PerfEventAttr().size == ctypes.sizeof(perf.PerfEventAttr)


def test_every_field_is_where_the_header_has_it(c_layout):
    wrong = []
    for field in perf.PerfEventAttr._fields_:
        if _is_bitfield(field):
            continue
        f = getattr(perf.PerfEventAttr, field[0])
        c_offset, c_size = map(int, c_layout["field"][field[0]])
        if (f.offset, f.size) != (c_offset, c_size):
            wrong.append(f"{field[0]}: ctypes {f.offset}+{f.size}, C {c_offset}+{c_size}")
    assert not wrong, "\n".join(wrong)


def test_union_alternatives_share_the_ctypes_field(c_layout):
    for alias, name in ALIASES.items():
        f = getattr(perf.PerfEventAttr, name)
        assert tuple(map(int, c_layout["field"][alias])) == (f.offset, f.size), alias


def test_every_bitfield_sets_the_same_bit_as_c(c_layout):
    wrong = []
    for field in perf.PerfEventAttr._fields_:
        if not _is_bitfield(field):
            continue
        attr = perf.PerfEventAttr()
        attr.size = 0  # compare the bitfield alone
        setattr(attr, field[0], 1)
        if bytes(attr).hex() != c_layout["bits"][field[0]][0]:
            wrong.append(field[0])
    assert not wrong, f"bitfields set differently from C: {wrong}"


def test_fields_tile_the_struct_without_gaps():
    """A header field the ctypes side forgot would leave a gap between two fields."""
    spans = sorted({(getattr(perf.PerfEventAttr, f[0]).offset,
                     ctypes.sizeof(f[1])) for f in perf.PerfEventAttr._fields_})
    end = 0
    for offset, size in spans:
        assert offset == end, f"gap or overlap at byte {end} (next field at {offset})"
        end = offset + size
    assert end == ctypes.sizeof(perf.PerfEventAttr)


def test_constants_and_ioctl_numbers_match_the_header(c_layout):
    wrong = {name: (getattr(perf, name), int(c_layout["const"][name][0]))
             for name in CONSTANTS if getattr(perf, name) != int(c_layout["const"][name][0])}
    assert not wrong, f"(pybpf, header) differ: {wrong}"


@pytest.mark.parametrize("machine, set_bpf, enable", [
    ("x86_64", 0x40042408, 0x2400), ("aarch64", 0x40042408, 0x2400),
    ("ppc64le", 0x80042408, 0x20002400)])
def test_ioctl_encoding_per_architecture(machine, set_bpf, enable):
    """powerpc's _IOC has 3 direction bits with other values (_IOC_NONE is 1 there):
    the numbers are the ones its headers give."""
    assert perf.ioctl_numbers(machine)["SET_BPF"] == set_bpf
    assert perf.ioctl_numbers(machine)["ENABLE"] == enable
