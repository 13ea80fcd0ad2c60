"""pybpf.kernel is the only code that enters the kernel: docs/architecture.md promises
it, and a reader looking for side effects relies on it.

The check reads the source of every module outside pybpf/kernel/ (the filter-reduce
pipeline included) and refuses what enters the kernel directly:

- loading a C library (``ctypes.CDLL`` and friends): syscall(2), ioctl(2), setns(2),
  mount(2) and the like are reached only through one;
- a system call by name (``.syscall(...)``, ``os.setns``, ``fcntl.ioctl``; a
  pybpf.kernel function of that name, such as ``namespaces.setns``, is the way in);
- a path into procfs or sysfs (a string that starts with ``/proc`` or ``/sys``): those
  files are kernel facts, read by a pybpf.kernel module that names what it reads.

Docstrings may name such paths; messages may mention them (a path inside a sentence
does not start the string).
"""
import ast
import pathlib

import pybpf

PACKAGE = pathlib.Path(pybpf.__file__).parent
KERNEL = PACKAGE / "kernel"
LIBRARY_LOADERS = {"CDLL", "PyDLL", "cdll", "pydll", "LibraryLoader", "find_library"}
# System calls Python itself offers, and syscall() of a library handle got elsewhere.
SYSTEM_CALLS = {("os", "setns"), ("os", "unshare"), ("fcntl", "ioctl")}
KERNEL_PATHS = ("/proc", "/sys")


def _docstrings(tree):
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def violations(path):
    """[(line, what)] of the kernel entries in one module's source."""
    tree = ast.parse(path.read_text(), str(path))
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in LIBRARY_LOADERS:
            found.append((node.lineno, f"loads a C library ({node.attr})"))
        elif isinstance(node, ast.Name) and node.id in LIBRARY_LOADERS:
            found.append((node.lineno, f"loads a C library ({node.id})"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
                node.func.attr == "syscall" or (isinstance(node.func.value, ast.Name) and (
                    node.func.value.id, node.func.attr) in SYSTEM_CALLS)):
            found.append((node.lineno, f"calls {node.func.attr}()"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                id(node) not in docs and node.value.startswith(KERNEL_PATHS):
            found.append((node.lineno, f"names {node.value.split()[0]!r}"))
    return found


def _outside_kernel():
    return [p for p in sorted(PACKAGE.rglob("*.py")) if KERNEL not in p.parents]


def test_no_module_outside_kernel_enters_the_kernel():
    found = [f"{path.relative_to(PACKAGE.parent)}:{line}: {what}"
             for path in _outside_kernel() for line, what in violations(path)]
    assert not found, ("only pybpf/kernel/ may enter the kernel; move these into a "
                       "kernel/ module:\n" + "\n".join(found))


def test_the_check_sees_what_it_looks_for(tmp_path):
    """The scanner itself: each kind of entry is found, docstrings and messages pass."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""Reads /proc/kallsyms (a docstring may say so)."""\n'
        "import ctypes\n"
        "libc = ctypes.CDLL(None)\n"
        "libc.syscall(321, 0, 0, 0)\n"
        "os.setns(fd, 0)\n"
        "open('/proc/kallsyms')\n"
        "open(f'/sys/bus/event_source/devices/{name}/type')\n"
        "message = f'not in /proc/kallsyms: {name}'\n")
    assert sorted(line for line, _ in violations(sample)) == [3, 4, 5, 6, 7]


def test_the_kernel_package_is_where_those_entries_are():
    """The reverse, so the check cannot pass by scanning nothing: kernel/ does load
    the C library and read procfs and sysfs."""
    inside = [v for p in sorted(KERNEL.glob("*.py")) for v in violations(p)]
    whats = " ".join(what for _, what in inside)
    assert "loads a C library" in whats and "'/proc" in whats and "'/sys" in whats
