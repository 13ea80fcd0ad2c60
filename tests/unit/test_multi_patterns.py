"""The glob patterns of uprobe.multi and kprobe.multi sections choose what libbpf's
would, without a kernel: glob_match() against a transcription of libbpf's C function,
symbol selection in an ELF file built here by gcc (.symtab first, .dynsym only when
.symtab has no match, aliases once), and kprobe_multi's choice among tracefs entries."""
import shutil
import subprocess

import pytest

from pybpf.attach import AttachError
from pybpf.attach.kprobe_multi import select_functions
from pybpf.attach.uprobe_multi import glob_match, matching_functions
from toolbox import setup_missing


def libbpf_glob_match(s, pat):
    """libbpf.c's glob_match(), line by line."""
    i = j = 0
    while i < len(s) and j < len(pat) and pat[j] != "*":
        if pat[j] != "?" and s[i] != pat[j]:
            return False
        i, j = i + 1, j + 1
    if j < len(pat) and pat[j] == "*":
        while j < len(pat) and pat[j] == "*":
            j += 1
        if j == len(pat):
            return True
        return any(libbpf_glob_match(s[k:], pat[j:]) for k in range(i, len(s)))
    return i == len(s) and j == len(pat)


NAMES = ["malloc", "__libc_malloc", "malloc_usable_size", "free", "a.b", "a*b", "", "x?y",
         "[ab]", "a"]
PATTERNS = ["malloc", "*malloc", "malloc*", "*", "?", "??ee", "*_*", "a.b", "a?b", "a*b",
            "[ab]", "m*l*c", "**", "*a", "x\\?y", "f?ee*"]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_glob_match_is_libbpfs(pattern):
    for name in NAMES:
        assert glob_match(name, pattern) == libbpf_glob_match(name, pattern), (name, pattern)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    gcc = shutil.which("gcc")
    if gcc is None:
        setup_missing("gcc not found: `bash tools/run-tests` installs it")
    out = tmp_path_factory.mktemp("lib")
    src = out / "lib.c"
    src.write_text("int hit_one(int x) { return x + 1; }\n"
                   "int hit_two(int x) { return x + 2; }\n"
                   "int alias_of_one(int x) __attribute__((alias(\"hit_one\")));\n"
                   "static int hidden_hit(int x) { return x * 3; }\n"
                   "int (*keep)(int) = hidden_hit;\n"
                   "int data_hit = 3;\n")
    full, stripped = out / "libfull.so", out / "libstripped.so"
    subprocess.run([gcc, "-O2", "-shared", "-fPIC", "-o", str(full), str(src)], check=True)
    subprocess.run(["strip", "-o", str(stripped), str(full)], check=True)
    return str(full), str(stripped)


def test_functions_of_symtab_by_pattern(library):
    full, _ = library
    found = dict(matching_functions(full, "*hit*"))
    # hidden_hit is only in .symtab; data_hit is no function; alias_of_one is hit_one
    assert set(found) == {"hit_one", "hit_two", "hidden_hit"}
    assert len(set(found.values())) == 3
    assert dict(matching_functions(full, "alias_*")) == {"alias_of_one": found["hit_one"]}


def test_dynsym_when_stripped(library):
    full, stripped = library
    assert {n for n, _ in matching_functions(stripped, "hit_*")} == {"hit_one", "hit_two"}
    with pytest.raises(AttachError, match=r"no function of .* matches 'hidden_\*' in "
                                          r"\.symtab or \.dynsym \(it is stripped"):
        matching_functions(stripped, "hidden_*")


def test_no_match_names_similar_functions(library):
    with pytest.raises(AttachError, match=r"similar: hit_one"):
        matching_functions(library[0], "hit_on")
    with pytest.raises(AttachError, match=r"patterns take \* and \?"):
        matching_functions(library[0], "zzz*")


def test_not_an_elf_file(tmp_path):
    path = tmp_path / "text"
    path.write_text("hello")
    with pytest.raises(AttachError, match="is not an ELF file"):
        matching_functions(str(path), "*")


def test_kprobe_multi_selection():
    entries = [("vfs_read", 0x10), ("vfs_readv", 0x20), ("vfs_read", 0x30),
               ("__ftrace_invalid_address___64", 0), ("ksys_read", 0x40)]
    assert select_functions(entries, "vfs_read*") == [("vfs_read", 0x10), ("vfs_readv", 0x20),
                                                      ("vfs_read", 0x30)]
    by_name = [(n, None) for n, _ in entries]
    assert select_functions(by_name, "vfs_read*") == [("vfs_read", None), ("vfs_readv", None)]
    assert select_functions(by_name, "*") == [("vfs_read", None), ("vfs_readv", None),
                                              ("ksys_read", None)]
    assert select_functions(entries, "nothing*") == []
    with pytest.raises(AttachError, match="is empty"):
        select_functions(entries, "")
