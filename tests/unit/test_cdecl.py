"""pybpf.btf.cdecl: C headers as BTF, laid out as gcc lays them out.

The layouts are checked against gcc itself: a C program generated from the parsed
BTF prints sizeof, _Alignof and offsetof of every member path, and for each bitfield
the bytes of a zeroed struct with only that field set to all ones, which must be the
bytes pybpf.btf.values.encode writes for the same value.
"""
import os
import shutil
import subprocess

import pytest

from pybpf.btf import types as T
from pybpf.btf import values
from pybpf.btf.cdecl import HeaderError, load_header, parse_header

HEADERS = os.path.join(os.path.dirname(__file__), "..", "data", "headers")
CASES = {
    "opensnoop.h": ["args_t", "event"],
    "execsnoop.h": ["event"],
    "layouts.h": ["bits", "with_union", "packed_one", "aligned_member", "nested"],
}
PRELUDE = ("#include <stddef.h>\n#include <stdio.h>\n#include <string.h>\n"
           "#include <stdbool.h>\n#include <sys/types.h>\n#include <linux/types.h>\n")


def _paths(btf, type_id, prefix=""):
    """(C member path, Member with bit_offset from the outer struct) of every member
    a C expression can name, nested structs and unions included."""
    for m in btf.walk_members(type_id):
        path = f"{prefix}{m.name}"
        yield path, m
        inner = btf.type(btf.resolve(m.type))
        if isinstance(inner, T.COMPOSITES) and not m.bitfield_size:
            for sub, sm in _paths(btf, m.type, path + "."):
                yield sub, sm._replace(bit_offset=sm.bit_offset + m.bit_offset)


def _ones(btf, m):
    signed = getattr(btf.type(btf.resolve(m.type)), "signed", False)
    return -1 if signed else (1 << m.bitfield_size) - 1


def _program(header, btf, structs):
    lines = [PRELUDE, f'#include "{os.path.abspath(os.path.join(HEADERS, header))}"',
             "int main(void) {"]
    for name in structs:
        sid = btf.find_one(name, "struct") if btf.find(name, "struct") else \
            btf.find_one(name, "typedef")
        ctype = f"struct {name}" if btf.find(name, "struct") else name
        lines.append(f'printf("{name} size %zu align %zu\\n", sizeof({ctype}), '
                     f'_Alignof({ctype}));')
        for path, m in _paths(btf, sid):
            if not m.name:
                continue
            if m.bitfield_size:
                lines.append(
                    f"{{ union {{ {ctype} s; unsigned char b[sizeof({ctype})]; }} u; "
                    f"memset(&u, 0, sizeof u); u.s.{path} = {_ones(btf, m)}; "
                    f'printf("{name}.{path} bits "); for (size_t i = 0; i < sizeof u.b; '
                    f'i++) printf("%02x", u.b[i]); printf("\\n"); }}')
            else:
                lines.append(f'printf("{name}.{path} at %zu\\n", offsetof({ctype}, {path}));')
    lines.append("return 0; }")
    return "\n".join(lines)


def _expected(btf, structs):
    out = []
    for name in structs:
        sid = btf.find_one(name, "struct") if btf.find(name, "struct") else \
            btf.find_one(name, "typedef")
        align = _align(btf, sid)
        out.append(f"{name} size {btf.size_of(sid)} align {align}")
        for path, m in _paths(btf, sid):
            if not m.name:
                continue
            if m.bitfield_size:
                value = _set(path.split("."), _ones(btf, m))
                out.append(f"{name}.{path} bits {values.encode(btf, sid, value).hex()}")
            else:
                out.append(f"{name}.{path} at {m.bit_offset // 8}")
    return out


def _set(parts, value):
    return {parts[0]: value} if len(parts) == 1 else {parts[0]: _set(parts[1:], value)}


def _align(btf, type_id):
    """The alignment the parser gave type_id, recovered from BTF: the largest
    alignment of its members (or its own size for a scalar), as gcc computes it.
    Packed structs and aligned() members are checked through their offsets."""
    t = btf.type(btf.resolve(type_id))
    if isinstance(t, T.Array):
        return _align(btf, t.type)
    if isinstance(t, T.COMPOSITES):
        if t.name == "packed_one":
            return 1
        if t.name == "aligned_member":
            return 16
        return max([_align(btf, m.type) for m in t.members if m.name or
                    isinstance(btf.type(btf.resolve(m.type)), T.COMPOSITES)] or [1])
    if isinstance(t, T.Ptr):
        return 8
    return t.size


@pytest.mark.parametrize("header", sorted(CASES))
def test_layouts_match_gcc(tmp_path, header):
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed (the test set-up installs it)")
    btf = load_header(os.path.join(HEADERS, header))
    assert btf.header_errors == []
    source = tmp_path / "layout.c"
    source.write_text(_program(header, btf, CASES[header]))
    exe = tmp_path / "layout"
    subprocess.run([gcc, "-Wall", "-Wno-overflow", "-o", str(exe), str(source)],
                   check=True, capture_output=True)
    got = subprocess.run([str(exe)], check=True, capture_output=True,
                         text=True).stdout.splitlines()
    assert got == _expected(btf, CASES[header])
    assert len(got) > 5


def test_the_libbpf_tools_events():
    btf = load_header(os.path.join(HEADERS, "opensnoop.h"))
    event = btf.find_one("event", "struct")
    assert btf.size_of(event) == 312  # what opensnoop.bpf.o sends (r5 = 312)
    record = bytearray(312)
    record[8:12] = (1234).to_bytes(4, "little")
    record[40:44] = b"cat\0"
    record[56:67] = b"/etc/passwd"
    decoded = values.decode(btf, event, record)
    assert decoded["pid"] == 1234 and decoded["comm"] == "cat"
    assert decoded["fname"] == "/etc/passwd" and decoded["callers"] == [0, 0]
    exec_btf = load_header(os.path.join(HEADERS, "execsnoop.h"))
    exec_event = exec_btf.find_one("event", "struct")
    assert exec_btf.size_of(exec_event) == 24 + 16 + 60 * 128
    short = bytes(40) + b"true\0"   # execsnoop sends only the used part of args
    assert values.decode(exec_btf, exec_event, short, partial=True)["args"] == "true"
    with pytest.raises(values.InputError, match="cannot hold"):
        values.decode(exec_btf, exec_event, short)


def test_enums_and_constants():
    btf = load_header(os.path.join(HEADERS, "layouts.h"))
    small = btf.type(btf.find_one("small", "enum"))
    assert [(v.name, v.value) for v in small.values] == [("S_A", 0), ("S_B", 5), ("S_C", 6)]
    assert small.size == 4 and not small.signed
    assert btf.type(btf.find_one("negative", "enum")).signed
    assert btf.type(btf.find_one("big", "enum64")).size == 8
    nested = btf.find_one("nested", "struct")
    name = btf.member(nested, "name")
    assert btf.size_of(name.type) == 7  # SLOTS: (2 * 3 + 1)
    assert btf.size_of(btf.member(nested, "counts").type) == 8 * 8 * 2  # [1 << 3][WIDE + 1]
    assert btf.size_of(btf.member(nested, "flex").type) == 0


@pytest.mark.parametrize("text,expected", [
    ("#define N (10 / 3 - -7 % 4)\nstruct s { char c[N]; };", 6),     # C division
    ("#define N 010\nstruct s { char c[N]; };", 8),                     # octal
    ("#define A 4\n#define B A##1\n#ifdef A\nstruct s { char c[A]; };\n#endif", 4),
    ("#if 0\nstruct s { char c[1]; };\n#elif 1\nstruct s { char c[2]; };\n#endif", 2),
    ("#ifndef X\n#if 1\n#else\n#endif\nstruct s { char c[3]; };\n#else\nbroken(\n#endif", 3),
    ("#define LONG 1 + \\\n 2\nstruct s { char c[LONG * 2]; };", 5),  # 1 + 2 * 2
    ("struct s { char c[sizeof(__u64) * 2 + sizeof(struct t *)]; };", 24),
    ("enum { A = 3, B = A << 2 };\nstruct s { char c[B]; };", 12),
    ("typedef int (*fn)(int);\nstruct s { fn f; char c; };", 16),
])
def test_preprocessor_and_constants(text, expected):
    btf = parse_header(text)
    assert btf.size_of(btf.find_one("s", "struct")) == expected


def test_what_it_cannot_read_is_skipped_with_the_reason():
    btf = parse_header("struct bad { FILE *f; };\nstruct good { int a; };\n", "x.h")
    assert btf.find("bad", "struct") == [] and btf.find("good", "struct")
    assert "x.h:1" in btf.header_errors[0] and "'FILE' is no type" in btf.header_errors[0]
    with pytest.raises(HeaderError, match="x.h:2: #endif without #if"):
        parse_header("struct s { int a; };\n#endif\n", "x.h")
    [reason] = parse_header("struct s { char c[N + ]; };").header_errors
    assert "'N +' is not an integer constant" in reason


def test_forward_declarations_complete_and_predefined_typedefs():
    btf = parse_header("struct later;\nstruct user { struct later *p; };\n"
                       "struct later { u32 a; s16 b; };\n")
    later = btf.find("later", "struct")
    assert later and btf.size_of(later[0]) == 8
    assert btf.type_name(btf.member(btf.find_one("user", "struct"), "p").type) == \
        "struct later *"
    for name, size in [("__u8", 1), ("__s16", 2), ("u32", 4), ("__u64", 8), ("pid_t", 4),
                       ("bool", 1), ("size_t", 8), ("uint64_t", 8), ("__be32", 4)]:
        assert btf.size_of(btf.find_one(name, "typedef")) == size, name
