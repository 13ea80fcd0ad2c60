"""pybpf/filterreduce/layout.py mirrors programs/filterreduce.h: the compiler says so.

The header is the pipeline's contract with the BPF programs and with readers in
other languages; the ctypes mirror is how Python reads the maps. A C program built
from the header prints every struct's size, every mirrored field's offset and size,
and every FR_* constant; each must equal the Python side's.
"""
import ctypes
import json
import os
import re
import shutil
import subprocess

import pytest

from pybpf.filterreduce import layout as L
from toolbox import setup_missing

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEADER = os.path.join(ROOT, "programs", "filterreduce.h")
STRUCTS = {"fr_key": L.Key, "fr_result": L.Result, "fr_tenant": L.Tenant,
           "fr_inflight": L.Inflight, "fr_work": L.Work, "fr_scratch": L.Scratch,
           "fr_slot": L.Slot, "fr_info": L.Info, "fr_state": L.State}


def header_constants():
    with open(HEADER) as f:
        text = f.read()
    return re.findall(r"^#define (FR_\w+)\s+(\S.*?)\s*(?:/\*.*)?$", text, re.M)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    gcc = shutil.which("gcc")
    if gcc is None:
        setup_missing("gcc is not installed: run the test set-up (bash tools/run-tests)")
    lines = ['#include <stdio.h>', '#include <stddef.h>', f'#include "{HEADER}"',
             'int main(void) {', 'printf("{");']
    for cname, struct in STRUCTS.items():
        lines.append(f'printf("\\"{cname}\\": %zu, ", sizeof(struct {cname}));')
        for field, _ in struct._fields_:
            key = f"{cname}.{field}"
            lines.append(f'printf("\\"{key}\\": [%zu, %zu], ", offsetof(struct {cname}, '
                         f'{field}), sizeof(((struct {cname} *)0)->{field}));')
    for name, _ in header_constants():
        if name not in ("PYBPF_FILTERREDUCE_H",):
            lines.append(f'printf("\\"{name}\\": %lld, ", (long long)({name}));')
    lines += ['printf("\\"end\\": 0}\\n");', 'return 0; }']
    tmp = tmp_path_factory.mktemp("layout")
    src, exe = tmp / "layout.c", tmp / "layout"
    src.write_text("\n".join(lines))
    subprocess.run([gcc, "-Wall", "-Werror", "-o", str(exe), str(src)], check=True)
    return json.loads(subprocess.run([str(exe)], capture_output=True, text=True,
                                     check=True).stdout)


@pytest.mark.parametrize("cname", sorted(STRUCTS))
def test_struct_sizes_and_fields(compiled, cname):
    struct = STRUCTS[cname]
    assert ctypes.sizeof(struct) == compiled[cname]
    for field, ftype in struct._fields_:
        assert [getattr(struct, field).offset, ctypes.sizeof(ftype)] == \
            compiled[f"{cname}.{field}"], field


def test_constants(compiled):
    checked = 0
    for name, _ in header_constants():
        python = name[len("FR_"):]
        assert hasattr(L, python), f"layout.py does not mirror {name}"
        assert getattr(L, python) == compiled[name], name
        checked += 1
    assert checked >= 15


def test_offset_walks_nested_fields():
    assert L.offset(L.Tenant, "res.seen") == L.Tenant.res.offset + L.Result.seen.offset
    assert L.offset(L.Scratch, "work.stage") == L.Work.stage.offset
