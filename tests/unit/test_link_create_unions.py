"""The members of link_create's union that pybpf fills field by field
(attr.LINK_CREATE_UNIONS: kprobe_multi, uprobe_multi, netfilter, tcx) agree with the
6.12 UAPI header, and fit the words LinkCreateAttr passes.

The installed <linux/bpf.h> is 6.1's and has only kprobe_multi (test_attr_layout.py
checks the attr against it), so this compiles offsetof() of each field against
linux-source-6.12's include/uapi/linux/bpf.h, the header pybpf's constants come from.
"""
import ctypes
import os
import shutil
import subprocess

import pytest
from toolbox import load_tool, setup_missing

from pybpf.kernel import attr

kernel_source = load_tool("kernel_source")
HEADERS = ["include/uapi/linux/bpf.h", "include/uapi/linux/bpf_common.h"]


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory):
    """{(member, field): (offset within the member, size)} and {member: size}."""
    gcc = shutil.which("gcc")
    if gcc is None:
        setup_missing("gcc not found: `bash tools/run-tests` installs it")
    try:
        tree = kernel_source.extract(HEADERS)
    except kernel_source.SourceError as e:
        setup_missing(f"{e} (`bash tools/run-tests` installs it)")
    tmp = tmp_path_factory.mktemp("link_create")
    os.makedirs(tmp / "inc" / "linux")
    for h in HEADERS:
        shutil.copy(os.path.join(tree, h), tmp / "inc" / "linux" / os.path.basename(h))
    lines = []
    for cls, member in attr.LINK_CREATE_UNIONS.items():
        m = f"link_create.{member}"
        lines.append(f'printf("size {member} - %zu\\n", sizeof(((union bpf_attr *)0)->{m}));')
        for name, *_ in cls._fields_:
            lines.append(f'printf("field {member} {name} %zu %zu\\n", '
                         f'offsetof(union bpf_attr, {m}.{name}) - '
                         f'offsetof(union bpf_attr, {m}), '
                         f'sizeof(((union bpf_attr *)0)->{m}.{name}));')
    lines.append('printf("size link_create - %zu\\n", '
                 'sizeof(((union bpf_attr *)0)->link_create));')
    src = tmp / "u.c"
    src.write_text("#include <stddef.h>\n#include <stdio.h>\n#include <linux/bpf.h>\n"
                   "int main(void) {\n" + "\n".join(lines) + "\nreturn 0;\n}\n")
    subprocess.run([gcc, "-I", str(tmp / "inc"), "-o", str(tmp / "u"), str(src)], check=True)
    out = subprocess.run([str(tmp / "u")], capture_output=True, text=True, check=True).stdout
    fields, sizes = {}, {}
    for line in out.splitlines():
        what, member, name, *nums = line.split()
        if what == "size":
            sizes[member] = int(nums[0]) if nums else int(name)
        else:
            fields[(member, name)] = (int(nums[0]), int(nums[1]))
    return fields, sizes


@pytest.mark.parametrize("cls", list(attr.LINK_CREATE_UNIONS), ids=lambda c: c.__name__)
def test_union_member_matches_the_6_12_header(cls, c_layout):
    fields, sizes = c_layout
    member = attr.LINK_CREATE_UNIONS[cls]
    for name, *_ in cls._fields_:
        f = getattr(cls, name)
        assert (f.offset, f.size) == fields[(member, name)], f"{member}.{name}"
    assert ctypes.sizeof(cls) == sizes[member]


def test_the_attr_holds_every_member(c_layout):
    _, sizes = c_layout
    assert ctypes.sizeof(attr.LinkCreateAttr) == sizes["link_create"]
    words = attr.union_words(attr.UprobeMultiOpts(cnt=3, flags=1, pid=7))
    assert len(words) == 6 and words[4] == 3 | 1 << 32 and words[5] == 7
