"""Compiling the corpus, and (for trees newer than bpftool's libbpf) the tree's libbpf
and the small loader linked with it."""
import concurrent.futures
import hashlib
import os
import platform
import subprocess
import sys

from .corpus import TOOLS, SetupError, _run

LOADER_SOURCE = os.path.join(TOOLS, "conformance", "libbpf_load.c")


def _system_includes(clang="clang"):
    """clang's own include search list as -idirafter flags (the Makefile's
    get_sys_includes): -target bpf alone does not find asm/ and sys/ headers."""
    out = _run([clang, "-v", "-E", "-"], stdin=subprocess.DEVNULL).stderr
    flags, inside = [], False
    for line in out.splitlines():
        if line.startswith("#include <...> search starts here:"):
            inside = True
        elif line.startswith("End of search list."):
            break
        elif inside and line.strip().startswith("/"):
            flags += ["-idirafter", line.strip()]
    return flags


def compile_command(ws, name, sys_includes=None):
    """The selftests Makefile's CLANG_BPF_BUILD_RULE with BPF_CFLAGS + CLANG_CFLAGS
    (the test_progs flavour: -mcpu=v3, ENABLE_ATOMICS_TESTS)."""
    tree = ws.tree_def
    if sys_includes is None:
        sys_includes = _system_includes(tree.clang)
    endian = "-mlittle-endian" if sys.byteorder == "little" else "-mbig-endian"
    arch = {"x86_64": "x86", "aarch64": "arm64", "s390x": "s390", "ppc64le": "powerpc",
            "riscv64": "riscv"}.get(platform.machine(), platform.machine())
    return ([tree.clang, "-g", *tree.warnings, "-Werror", f"-D__TARGET_ARCH_{arch}", endian,
             "-I", ws.include, "-I", ws.selftests,
             "-I", os.path.join(ws.tree, "tools/include/uapi")]
            + sys_includes + ["-Wno-compare-distinct-pointer-types", "-DENABLE_ATOMICS_TESTS"]
            + tree.extra_cflags.get(name, [])
            + ["-O2", "-target", "bpf", "-c", os.path.join(ws.progs, name + ".c"),
               "-mcpu=v3", "-o"])


def _first_error(text):
    for line in text.splitlines():
        if "error:" in line:
            return line.split("error:", 1)[1].strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0].strip() if lines else "unknown error"


def compile_one(ws, name, sys_includes=None):
    """(ok, first error line). Results, failures included, are cached in the workspace."""
    obj, err_file = ws.obj_path(name), os.path.join(ws.objdir, name + ".err")
    if os.path.exists(obj):
        return True, ""
    if os.path.exists(err_file):
        with open(err_file) as f:
            return False, f.read().strip()
    tmp = f"{obj}.{os.getpid()}.tmp"
    res = _run(compile_command(ws, name, sys_includes) + [tmp])
    if res.returncode == 0:
        os.replace(tmp, obj)
        return True, ""
    if os.path.exists(tmp):
        os.unlink(tmp)
    err = _first_error(res.stderr)
    with open(err_file, "w") as f:
        f.write(err + "\n")
    return False, err


def compile_all(ws, names, jobs=2):
    """{name: (ok, error)}; clang runs `jobs` at a time (each compile is a process of
    its own, so a thread pool that waits on them is the process pool)."""
    sys_includes = _system_includes(ws.tree_def.clang)
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        futures = {n: pool.submit(compile_one, ws, n, sys_includes) for n in names}
        return {n: f.result() for n, f in futures.items()}


def libbpf_version(ws):
    """The tree's libbpf version ("1.5"), from its tools/lib/bpf/libbpf_version.h."""
    parts = {}
    with open(os.path.join(ws.tree, "tools/lib/bpf/libbpf_version.h")) as f:
        for line in f:
            bits = line.split()
            if len(bits) == 3 and bits[0] == "#define" and bits[1].startswith("LIBBPF_M"):
                parts[bits[1]] = bits[2]
    return f"{parts.get('LIBBPF_MAJOR_VERSION', '?')}.{parts.get('LIBBPF_MINOR_VERSION', '?')}"


def build_loader(ws):
    """The tree's libbpf as a static library and tools/conformance/libbpf_load.c linked
    with it, in the workspace (built once; the loader again when its source changes).
    Returns the loader's path."""
    with open(LOADER_SOURCE, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    out = ws.libbpf_dir
    loader = os.path.join(out, f"libbpf_load-{digest}")
    if os.path.exists(loader):
        return loader
    lib = os.path.join(out, "libbpf.a")
    inc = os.path.join(out, "include")
    if not (os.path.exists(lib) and os.path.isdir(os.path.join(inc, "bpf"))):
        os.makedirs(out, exist_ok=True)
        make = ["make", "-s", "-C", os.path.join(ws.tree, "tools/lib/bpf"),
                f"OUTPUT={out}/", "BUILD_STATIC_ONLY=1", f"DESTDIR={out}", "prefix=",
                "INCLUDEDIR=/include", "-j2"]
        for target in ([f"{out}/libbpf.a"], ["install_headers"]):
            try:
                res = _run(make + target)
            except FileNotFoundError:
                raise SetupError("make is not installed: apt-get install make") from None
            if res.returncode != 0:
                raise SetupError(
                    f"building the tree's libbpf failed (it needs libelf-dev and "
                    f"zlib1g-dev: apt-get install libelf-dev zlib1g-dev):\n"
                    + "\n".join((res.stdout + res.stderr).strip().splitlines()[-8:]))
    tmp = f"{loader}.{os.getpid()}.tmp"
    try:
        res = _run(["cc", "-O2", "-Wall", "-I", inc, LOADER_SOURCE, lib, "-lelf", "-lz",
                    "-o", tmp])
    except FileNotFoundError:
        raise SetupError("cc is not installed: apt-get install gcc") from None
    if res.returncode != 0:
        raise SetupError(f"linking {LOADER_SOURCE} failed: {res.stderr.strip()[-500:]}")
    os.replace(tmp, loader)
    return loader
