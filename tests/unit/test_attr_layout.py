"""The ctypes layouts in pybpf.kernel.attr agree with the installed <linux/bpf.h>.

A wrong offset in a bpf(2) attribute does not fail loudly: the kernel reads some other
field, or rejects the command with a bare EINVAL because a byte it expects to be zero is
not. So this test asks the C compiler itself. It reads the field names of every struct
in ``attr.C_LAYOUTS`` from the preprocessed header, compiles a program printing
``offsetof`` and ``sizeof`` of each of them, and compares with ctypes both ways: every
ctypes field is where the header has it, and every header field is mirrored by a ctypes
field of the same offset and size (a union alternative such as ``next_key`` is
mirrored by ``value``), so a field the ctypes side forgot is caught too.
"""
import ctypes
import re
import shutil
import subprocess

import pytest

from pybpf.kernel import attr
from toolbox import setup_missing

SETUP_HINT = ("run the test set-up first: `bash tools/run-tests` installs gcc, libc6-dev "
              "and linux-libc-dev (or `apt-get install gcc libc6-dev linux-libc-dev`)")

# ctypes fields standing for a whole C union, named by the union's first member. The
# kernel's union in link_create has per-attach-type alternatives (target_btf_id,
# iter_info, perf_event, kprobe_multi, tracing); pybpf passes it as raw words.
OVERLAYS = {("LinkCreateAttr", "extra"): "target_btf_id",
            ("BpfLinkInfo", "extra"): "raw_tracepoint"}


# ---- reading field names from the header ---------------------------------------
#
# A member is (name, kind, children): kind is "field", "bitfield" or "aggregate"; an
# anonymous struct/union has name None and its members belong to the enclosing scope,
# which is why offsetof(union bpf_attr, map_type) works.

def _tokens(text):
    return re.findall(r"[A-Za-z_]\w*|\d\w*|\S", text)


def _declaration(toks, i):
    """Tokens up to the next ';', without ``__attribute__((...))`` groups (the
    preprocessed ``__aligned_u64`` puts one between type and name), and the index
    after the ';'."""
    decl = []
    while toks[i] != ";":
        if toks[i] == "__attribute__":
            depth, i = 0, i + 1
            while True:
                depth += {"(": 1, ")": -1}.get(toks[i], 0)
                i += 1
                if not depth:
                    break
            continue
        decl.append(toks[i])
        i += 1
    return decl, i + 1


def _members(toks, i):
    """Parse member declarations from toks[i] to the matching '}'; return
    (members, index after the '}')."""
    members = []
    while toks[i] != "}":
        if toks[i] in ("struct", "union") and "{" in toks[i + 1:i + 3]:
            children, i = _members(toks, toks.index("{", i) + 1)
            decl, i = _declaration(toks, i)
            names = [t for t in decl if t.isidentifier()]
            members.append((names[0] if names else None, "aggregate", children))
            continue
        decl, i = _declaration(toks, i)
        assert "," not in decl, f"cannot parse multi-name declaration {' '.join(decl)}"
        if ":" in decl:
            idents = [t for t in decl[:decl.index(":")] if t.isidentifier()]
            if len(idents) > 1:  # `__u32 :31;` is an unnamed pad: not a field
                members.append((idents[-1], "bitfield", None))
            continue
        name = (decl[:decl.index("[")] if "[" in decl else decl)[-1]
        assert name.isidentifier(), f"cannot parse declaration {' '.join(decl)}"
        members.append((name, "field", None))
    return members, i + 1


def _flatten(members):
    """(name, kind) of every member reachable by name from this scope."""
    for name, kind, children in members:
        if kind == "aggregate" and name is None:
            yield from _flatten(children)
        else:
            yield name, kind


def _definition(text, keyword, tag):
    m = re.search(rf"\b{keyword}\s+{tag}\s*\{{", text)
    assert m, f"{keyword} {tag} not found in <linux/bpf.h>"
    return _members(_tokens(text[m.end():]), 0)[0]


def _union_containing(members, name):
    """Flattened members of the anonymous union whose direct member is ``name``."""
    for member, kind, children in members:
        if kind != "aggregate":
            continue
        if member is None and name in {n for n, _, _ in children}:
            return list(_flatten(children))
        found = _union_containing(children, name)
        if found:
            return found
    return None


def _is_pad(name):
    # `_pad*` mirror the header's unnamed bitfields (`__u32 :31;`, `__u32 :32;`): they
    # have no name to offsetof. Their bytes are checked indirectly: the next field's
    # offset and the total size both have to agree.
    return name.startswith("_pad")


def _checked_names(cls):
    """ctypes fields that must exist in the header under the same name."""
    return {n for n, *_ in cls._fields_ if not _is_pad(n)
            and (cls.__name__, n) not in attr.NEWER_FIELDS
            and (cls.__name__, n) not in OVERLAYS}


class CAggregate:
    """One C struct the layouts are checked against, and what the compiler said about
    it. ``base`` is the type offsetof is applied to; ``member`` the named member of
    union bpf_attr (None for a whole struct or an anonymous member); ``label`` names
    it in the C program's output. After the program has run, ``offsets[field]`` is
    (offset, size), ``bits[field]`` the bytes with that bitfield set to 1, and ``size``
    sizeof where C can name the type (None for an anonymous member)."""

    def __init__(self, label, base, member, tree):
        self.label, self.base, self.member, self.tree = label, base, member, tree
        self.fields = list(_flatten(tree))
        self.offsets, self.bits, self.size = {}, {}, None

    def c_source(self):
        """printf() calls reporting this aggregate's offsets, sizes and bitfield bits."""
        path = (lambda f: f"{self.member}.{f}") if self.member else (lambda f: f)
        start = f"offsetof({self.base}, {self.member})" if self.member else "0"
        lines = []
        if self.member:
            lines.append(f'  printf("size {self.label} %zu\\n", '
                         f'sizeof((({self.base} *)0)->{self.member}));')
        elif self.base.startswith("struct"):
            lines.append(f'  printf("size {self.label} %zu\\n", sizeof({self.base}));')
        for name, kind in self.fields:
            if kind == "bitfield":
                # No offsetof for a bitfield: set it to 1 in a zeroed object and show
                # the bytes, which the test compares with the ctypes object's.
                lines.append(f"  {{ {self.base} v; memset(&v, 0, sizeof v); "
                             f"v.{path(name)} = 1; dump(\"{self.label}\", \"{name}\", "
                             f"(unsigned char *)&v + {start}, sizeof v - {start}); }}")
            else:
                lines.append(
                    f'  printf("field {self.label} {name} %zu %zu\\n", '
                    f"offsetof({self.base}, {path(name)}) - {start}, "
                    f"sizeof((({self.base} *)0)->{path(name)}));")
        return "\n".join(lines)

    def describe(self):
        if self.member:
            return f"{self.base}.{self.member}"
        return self.base if self.base.startswith("struct") else f"{self.base} (anonymous member)"

    def record(self, what, rest):
        if what == "size":
            self.size = int(rest[0])
        elif what == "field":
            self.offsets[rest[0]] = (int(rest[1]), int(rest[2]))
        else:
            self.bits[rest[0]] = bytes.fromhex(rest[1])


def _aggregates(text):
    """Every C aggregate C_LAYOUTS may refer to, by label: the info structs it names
    and every member of union bpf_attr (anonymous ones as ``bpf_attr.#<index>``)."""
    found = {}
    for index, (name, _, tree) in enumerate(_definition(text, "union", "bpf_attr")):
        label = f"bpf_attr.{name or f'#{index}'}"
        found[label] = CAggregate(label, "union bpf_attr", name, tree)
    for spec in set(attr.C_LAYOUTS.values()):
        keyword, tag = spec.split()
        if keyword == "struct":
            found[tag] = CAggregate(tag, spec, None, _definition(text, keyword, tag))
    return found


def _counterpart(cls, aggregates):
    """The C aggregate ``cls`` mirrors, or a string saying why there is none."""
    spec = attr.C_LAYOUTS[cls]
    if spec.startswith("struct "):
        return aggregates[spec.split()[1]]
    if spec.startswith("union bpf_attr."):
        label = "bpf_attr." + spec.split(".", 1)[1]
        return aggregates.get(label, f"union bpf_attr has no member {spec.split('.', 1)[1]}")
    # An anonymous member has no name: pick the one declaring every field the ctypes
    # struct has (C makes the names unique across the anonymous members).
    wanted = _checked_names(cls)
    candidates = [a for label, a in aggregates.items() if label.startswith("bpf_attr.#")
                  and wanted <= {f for f, _ in a.fields}]
    if len(candidates) != 1:
        return (f"{len(candidates)} anonymous members of union bpf_attr declare all of "
                f"{sorted(wanted)}")
    return candidates[0]


C_PRELUDE = r"""#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <linux/bpf.h>

static void dump(const char *label, const char *name, const unsigned char *p, size_t n)
{
  printf("bits %s %s ", label, name);
  for (size_t i = 0; i < n; i++)
    printf("%02x", p[i]);
  printf("\n");
}

int main(void)
{
"""


def _run(cmd, what, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode:
        pytest.fail(f"{what} failed ({' '.join(cmd)}):\n{proc.stderr}\n{SETUP_HINT}")
    return proc.stdout


@pytest.fixture(scope="module")
def aggregates(tmp_path_factory):
    """Compile and run the generated C program once; return {label: CAggregate}."""
    gcc = shutil.which("gcc")
    if gcc is None:
        setup_missing(f"gcc not found on PATH: the layout check needs a C compiler; {SETUP_HINT}")
    text = _run([gcc, "-E", "-P", "-x", "c", "-"], "preprocessing <linux/bpf.h>",
                input="#include <linux/bpf.h>\n")
    found = _aggregates(text)
    tmp = tmp_path_factory.mktemp("attr_layout")
    src, exe = tmp / "layout.c", tmp / "layout"
    src.write_text(C_PRELUDE + "\n".join(a.c_source() for a in found.values())
                   + "\n  return 0;\n}\n")
    _run([gcc, "-Wall", "-o", str(exe), str(src)], f"compiling {src}")
    for line in _run([str(exe)], f"running {exe}").splitlines():
        what, label, *rest = line.split()
        found[label].record(what, rest)
    return found


def _round_up(n, align):
    return -(-n // align) * align


def _overlay_problems(cls, name, c):
    """An overlay must start where its C union starts and span all of it."""
    first, c_fields = OVERLAYS[(cls.__name__, name)], c.offsets
    f = getattr(cls, name)
    members = _union_containing(c.tree, first)
    if members is None:
        return [f"{name}: no anonymous union with member {first} in the header"]
    start = c_fields[first][0]
    extent = max(c_fields[m][0] + c_fields[m][1] for m, _ in members) - start
    if (f.offset, f.size) != (start, extent):
        return [f"{name}: ctypes offset {f.offset} size {f.size}, header union starting "
                f"at {first}: offset {start} size {extent}"]
    return []


def _bitfield_problems(cls, name, c_bits):
    """A bitfield set to 1 must light the same bit in ctypes as in C."""
    if name not in c_bits:
        return [f"{name}: ctypes bitfield, but not a bitfield in the header"]
    obj = cls()
    setattr(obj, name, 1)
    # Compare at equal length: the total sizes are checked on their own.
    mine, theirs = bytes(obj), c_bits[name]
    n = max(len(mine), len(theirs))
    mine, theirs = mine.ljust(n, b"\0"), theirs.ljust(n, b"\0")
    if mine != theirs:
        where = [i for i in range(n) if mine[i] != theirs[i]]
        return [f"{name}: set to 1, ctypes and C differ at byte(s) {where}: "
                f"ctypes {[mine[i] for i in where]}, C {[theirs[i] for i in where]}"]
    return []


def _field_problems(cls, c, header_end):
    problems, c_fields, c_bits = [], c.offsets, c.bits
    for name, _ctype, *bits in cls._fields_:
        f = getattr(cls, name)
        key = (cls.__name__, name)
        if _is_pad(name):
            continue
        if key in attr.NEWER_FIELDS:
            # The installed header predates the field. Placing it at or past the end
            # of the header's last field is what makes it safe on older kernels: they
            # accept a longer attr only when every byte past the fields they know is
            # zero, and an input-zero/output-only field is exactly that.
            if name in c_fields or name in c_bits:
                problems.append(f"{name}: now in the installed header, "
                                f"drop it from attr.NEWER_FIELDS")
            elif f.offset < header_end:
                problems.append(f"{name}: newer field at offset {f.offset} overlaps the "
                                f"header's fields, which end at {header_end}")
        elif key in OVERLAYS:
            problems += _overlay_problems(cls, name, c)
        elif bits:
            problems += _bitfield_problems(cls, name, c_bits)
        elif name not in c_fields:
            problems.append(f"{name}: no such field in {c.describe()}")
        elif (f.offset, f.size) != c_fields[name]:
            problems.append(f"{name}: ctypes offset {f.offset} size {f.size}, header "
                            f"offset {c_fields[name][0]} size {c_fields[name][1]}")
    return problems


def _coverage_problems(cls, c_fields):
    """Every header field has a ctypes field at the same offset with the same size (any
    name: union alternatives share one), or lies inside an overlay."""
    spans = {(getattr(cls, n).offset, getattr(cls, n).size)
             for n, _ctype, *bits in cls._fields_ if not _is_pad(n) and not bits}
    overlays = [(getattr(cls, n).offset, getattr(cls, n).offset + getattr(cls, n).size)
                for n, *_ in cls._fields_ if (cls.__name__, n) in OVERLAYS]
    return [f"{name}: header field at offset {off} size {size} has no ctypes counterpart"
            for name, (off, size) in c_fields.items()
            if (off, size) not in spans
            and not any(lo <= off and off + size <= hi for lo, hi in overlays)]


def _size_problems(cls, c_size, header_end):
    size = ctypes.sizeof(cls)
    newer_end = max([getattr(cls, n).offset + getattr(cls, n).size for n, *_ in cls._fields_
                     if (cls.__name__, n) in attr.NEWER_FIELDS], default=0)
    if c_size is not None:
        # A named member or struct: C's sizeof is the truth (the kernel copies exactly
        # that many bytes of an info struct), extended only by fields newer than it.
        expected = _round_up(max(c_size, newer_end), ctypes.alignment(cls))
        return [] if size == expected else [f"sizeof: ctypes {size}, expected {expected} "
                                            f"(header {c_size})"]
    # An anonymous member of union bpf_attr has no sizeof in C. The kernel reads any
    # attr size and treats the bytes we do not pass as zero, so the only hard rule is
    # to reach the end of the header's last field (so output fields the kernel writes
    # back are inside our buffer). Beyond that the size must be what C would give the
    # same struct: the last field's end rounded up to the struct's alignment. That is
    # what ctypes produces for matching fields; neither "always a multiple of 8" (a
    # struct of u32s, like BPF_PROG_ATTACH's, is 4-aligned) nor "exactly the end of
    # the last field" (ctypes pads a u64-aligned struct ending in a u32) would hold.
    # Newer fields only extend the struct, so they count towards the end.
    expected = _round_up(max(header_end, newer_end), ctypes.alignment(cls))
    if size != expected:
        return [f"sizeof: ctypes {size}, expected {expected} (header fields end at "
                f"{header_end}, alignment {ctypes.alignment(cls)})"]
    return []


@pytest.mark.parametrize("cls", list(attr.C_LAYOUTS), ids=lambda cls: cls.__name__)
def test_layout_matches_header(cls, aggregates):
    c = _counterpart(cls, aggregates)
    if isinstance(c, str):
        pytest.fail(f"{cls.__name__} ({attr.C_LAYOUTS[cls]}): {c}")
    assert c.offsets, f"no header fields found for {cls.__name__} in {c.label}"
    header_end = max(off + size for off, size in c.offsets.values())
    problems = (_field_problems(cls, c, header_end)
                + _coverage_problems(cls, c.offsets)
                + _size_problems(cls, c.size, header_end))
    assert not problems, (f"{cls.__name__} disagrees with {attr.C_LAYOUTS[cls]} in "
                          f"<linux/bpf.h>:\n  " + "\n  ".join(problems))


def test_every_attr_struct_is_checked():
    """A struct added to attr.py but not to C_LAYOUTS would escape the test above."""
    structs = {getattr(attr, name) for name in attr.__all__}
    assert structs == set(attr.C_LAYOUTS), (
        f"not in attr.C_LAYOUTS: {sorted(c.__name__ for c in structs - set(attr.C_LAYOUTS))}")


def test_newer_fields_exist():
    """NEWER_FIELDS entries name real fields (a typo would exempt nothing)."""
    names = {cls.__name__: {n for n, *_ in cls._fields_} for cls in attr.C_LAYOUTS}
    assert {(c, f) for c, f in attr.NEWER_FIELDS if f not in names.get(c, ())} == set()
