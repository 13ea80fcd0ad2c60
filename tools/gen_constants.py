#!/usr/bin/env python3
"""Generate pybpf/kernel/constants.py from the kernel's UAPI headers.

Nothing in that module is typed by hand: the names come from the headers and the
values from the C compiler itself (a generated C program prints every constant), so
implicit enum counters and expressions such as ``(1U << 3)`` are evaluated exactly as
the kernel's own build evaluates them.

Usage: python tools/gen_constants.py [--cc gcc] [--source TARBALL] [--output FILE]

The headers are taken from a kernel source tarball (Debian's linux-source-6.12 by
default), not from the installed linux-libc-dev (6.1 here): pybpf must name the map,
program, attach and link types of kernels newer than the build machine's libc
headers (cgroup storage, arenas, netfilter, tcx, uprobe_multi), and a hand-typed
table of those is what this generator exists to avoid. Only the headers named in
HEADERS (and bpf_common.h, which bpf.h includes) come from the tarball; everything
they include (linux/types.h, asm/*) is the system's, since those define C types,
not BPF numbers. tools/kernel_source.py extracts and caches them. Re-run it when moving to a newer source; the version used is
recorded at the top of the output.
"""
import argparse
import keyword
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kernel_source  # noqa: E402

HEADERS = ["linux/bpf.h", "linux/perf_event.h", "linux/if_link.h"]
FROM_SOURCE = HEADERS + ["linux/bpf_common.h"]

# C enum name -> (Python class name, prefix stripped from member names).
# Only the enums a user names in pybpf's API get a class; every enum member is also
# exported at module level under its kernel name.
ENUM_CLASSES = {
    "bpf_cmd": ("Cmd", "BPF_"),
    "bpf_map_type": ("MapType", "BPF_MAP_TYPE_"),
    "bpf_prog_type": ("ProgType", "BPF_PROG_TYPE_"),
    "bpf_attach_type": ("AttachType", "BPF_"),
    "bpf_link_type": ("LinkType", "BPF_LINK_TYPE_"),
    "bpf_func_id": ("HelperId", "BPF_FUNC_"),
    "bpf_stats_type": ("StatsType", "BPF_STATS_"),
    "perf_type_id": ("PerfType", "PERF_TYPE_"),
    "perf_event_sample_format": ("PerfSample", "PERF_SAMPLE_"),
    "perf_sw_ids": ("PerfSwId", "PERF_COUNT_SW_"),
    "perf_event_type": ("PerfRecord", "PERF_RECORD_"),
    "xdp_action": ("XdpAction", "XDP_"),
    "bpf_ret_code": ("RetCode", "BPF_"),
}

# Object-like macros worth exporting: instruction encoding, flags, sizes.
DEFINE_PREFIXES = ("BPF_", "XDP_FLAGS_", "PERF_EVENT_IOC_", "PERF_FLAG_", "PERF_ATTR_SIZE_",
                   "MAX_BPF_")
# A macro whose body uses only these tokens is an integer constant expression.
CONST_BODY = re.compile(r"^[\s()<>|&~+\-*xXa-fA-F0-9uUlL_A-Z]*$")


def uapi_headers(source=kernel_source.SOURCE, cache=kernel_source.CACHE):
    """-I directory of the FROM_SOURCE headers (as linux/NAME.h) and VERSION."""
    return os.path.join(kernel_source.extract([f"include/uapi/{h}" for h in FROM_SOURCE],
                                              source, cache), "include", "uapi")


def preprocess(cc, flags):
    src = "".join(f"#include <{h}>\n" for h in HEADERS)
    return subprocess.run([*cc, "-E", *flags, "-x", "c", "-"], input=src, text=True,
                          capture_output=True, check=True).stdout


def parse_enums(text):
    """Return [(enum name or None, [member names])] in header order."""
    enums = []
    for m in re.finditer(r"\benum\s+(\w+)?\s*\{([^}]*)\}", text):
        members = []
        for item in m.group(2).split(","):
            name = item.split("=")[0].strip()
            if re.fullmatch(r"[A-Za-z_]\w*", name):
                members.append(name)
        enums.append((m.group(1), members))
    return enums


def parse_defines(text, known):
    names = []
    for line in text.splitlines():
        m = re.match(r"#define\s+(\w+)\s+(.+)$", line)
        if not m or not m.group(1).startswith(DEFINE_PREFIXES) or m.group(1) in known:
            continue
        body = m.group(2)
        # Function-like macros and macros calling them are not constants, except
        # the ioctl numbers, which the compiler evaluates for us.
        ioctl = re.match(r"_IO[RW]*\s*\(", body)
        if ioctl or (CONST_BODY.match(body) and not re.search(r"\w\s*\(", body)):
            names.append(m.group(1))
    return names


def evaluate(cc, names):
    """Compile a program printing every name's value; return {name: int}.

    A negative value is printed signed and anything else unsigned: an unsigned
    64-bit constant such as ``PERF_CONTEXT_KERNEL = (__u64)-128`` must come out as
    the u64 the kernel writes into a sample, not as -128; a signed one such as
    ``BPF_F_CURRENT_NETNS = (-1L)`` stays -1."""
    body = "".join(f'  if (({n}) < 0) printf("%s %lld\\n", "{n}", (long long)({n}));\n'
                   f'  else printf("%s %llu\\n", "{n}", (unsigned long long)({n}));\n'
                   for n in names)
    src = ("#include <stdio.h>\n" + "".join(f"#include <{h}>\n" for h in HEADERS) +
           "#include <linux/ioctl.h>\nint main(void) {\n" + body + "  return 0;\n}\n")
    with tempfile.TemporaryDirectory() as tmp:
        c_file, exe = os.path.join(tmp, "c.c"), os.path.join(tmp, "c")
        with open(c_file, "w") as f:
            f.write(src)
        subprocess.run([*cc, "-w", "-o", exe, c_file], check=True)
        out = subprocess.run([exe], capture_output=True, text=True, check=True).stdout
    return {k: int(v) for k, v in (line.split() for line in out.splitlines())}


def member_name(full, prefix):
    short = full[len(prefix):] if full.startswith(prefix) else full
    if not short.isidentifier() or keyword.iskeyword(short) or short[0].isdigit():
        return full
    return short


# The tail of the generated module: the enum classes are built when first used
# (pybpf/kernel/enums.py says why); every other constant is a plain assignment.
LAZY_ENUMS = """
__getattr__, __dir__, plain = lazy_enums(globals(), _ENUMS, _MEMBERS)
"""


def render(version, enums, values, defines):
    lines = [
        '"""Kernel UAPI constants, under the kernel\'s own names.',
        "",
        "GENERATED by tools/gen_constants.py from " + ", ".join(HEADERS),
        f"(linux-source {version}). Do not edit; re-run the generator.",
        "",
        "The enum classes (MapType, ProgType, ...) and the kernel names of their members",
        "(BPF_MAP_TYPE_HASH is MapType.HASH) are made on first use: see enums.py.",
        '"""',
        "from .enums import lazy_enums",
    ]
    exported, classes, members_of = set(), [], []
    for cname, members in enums:
        members = [m for m in members if not m.startswith("__")]
        if cname in ENUM_CLASSES and members:
            cls, prefix = ENUM_CLASSES[cname]
            # An enum member's first name is the one it prints under: since 6.2 the
            # header defines CGROUP_STORAGE_DEPRECATED first and CGROUP_STORAGE as an
            # alias of it, and the types are still called cgroup_storage everywhere.
            members.sort(key=lambda m: m.endswith("_DEPRECATED"))
            classes.append(f"    {cls!r}: ({cname!r}, [")
            for m in members:
                classes.append(f"        ({member_name(m, prefix)!r}, {values[m]}),")
                members_of.append(f"    {m!r}: ({cls!r}, {member_name(m, prefix)!r}),")
                exported.add(m)
            classes.append("    ]),")
        else:
            lines += ["", f"# enum {cname or '(anonymous)'}"]
            for m in members:
                if m not in exported:
                    lines.append(f"{m} = {values[m]}")
                    exported.add(m)
    lines += ["", "# object-like macros"]
    for d in defines:
        if d not in exported:
            lines.append(f"{d} = {values[d]}")
    lines += ["", "# class name -> (C enum, [(member, value)]), in the header's order",
              "_ENUMS = {"] + classes + ["}", "",
              "# kernel name of a member -> (class name, member name)",
              "_MEMBERS = {"] + members_of + ["}"]
    return "\n".join(lines) + "\n" + LAZY_ENUMS


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cc", default="gcc")
    ap.add_argument("--source", default=kernel_source.SOURCE, help="a kernel source tarball")
    ap.add_argument("--output", default=os.path.join(
        os.path.dirname(__file__), "..", "pybpf", "kernel", "constants.py"))
    args = ap.parse_args(argv)
    try:
        uapi = uapi_headers(args.source)
    except kernel_source.SourceError as e:
        sys.exit(f"gen_constants: {e}")
    with open(os.path.join(uapi, "..", "..", "VERSION")) as f:
        version = f.read().strip()
    cc = [args.cc, "-I", uapi]
    enums = parse_enums(preprocess(cc, ["-P"]))
    enum_names = {m for _, ms in enums for m in ms}
    defines = parse_defines(preprocess(cc, ["-dM"]), enum_names)
    defines.sort()
    names = [m for _, ms in enums for m in ms if not m.startswith("__")] + defines
    values = evaluate(cc, sorted(set(names)))
    with open(args.output, "w") as f:
        f.write(render(version, enums, values, defines))
    print(f"wrote {args.output}: {len(values)} constants", file=sys.stderr)


if __name__ == "__main__":
    main()
