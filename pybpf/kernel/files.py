"""Reading files the way kernel facts and user-given objects need.

Object and BTF files may be anything a user names (a device, a FIFO), so they are
read by :func:`read_regular_file`; kernel facts in text files (procfs, sysfs,
debugfs lists) by :func:`read_lines` and :func:`file_lists_symbol`, which answer
None when a file cannot be read, so callers can tell "no" from "unknown".
"""
import os
import stat

from ..errors import InputError

_FILE_KINDS = {stat.S_IFCHR: "character device", stat.S_IFBLK: "block device",
               stat.S_IFIFO: "FIFO", stat.S_IFSOCK: "socket", stat.S_IFDIR: "directory"}


def read_regular_file(path):
    """The bytes of the regular file at path, no more than its size says.

    An object or BTF file handed to pybpf may be anything: reading /dev/zero never
    ends, opening a FIFO blocks until someone writes. The file is opened without
    blocking and refused (InputError) unless it is a regular file; then exactly its
    st_size bytes are read, so a file that grows meanwhile cannot make the read
    longer. OSError (a missing file, no permission) passes through as Python's own.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = _FILE_KINDS.get(stat.S_IFMT(st.st_mode), "special file")
            raise InputError(f"{os.fspath(path)} is a {kind}, not a regular file; give "
                             f"the path of a file")
        with open(fd, "rb", closefd=False) as f:
            return f.read(st.st_size)
    except (MemoryError, OverflowError):
        raise InputError(f"{os.fspath(path)} is {st.st_size} bytes, more than this "
                         f"process can read into memory") from None
    finally:
        os.close(fd)


def read_lines(path, opener=open):
    """The lines of a text file, or None when it cannot be read."""
    try:
        with opener(path, "rt") as f:
            return f.read().splitlines()
    except (OSError, EOFError, UnicodeDecodeError):
        return None


def fdinfo(fd):
    """/proc/self/fdinfo/FD as a dict: the kernel reports there what BPF_OBJ_GET_INFO
    does not, e.g. whether a map is frozen, and which kind of object an fd is."""
    out = {}
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key.strip()] = value.strip()
    return out


def file_lists_symbol(path, symbol, column):
    """Whether a whitespace-separated text file has symbol in the given column (lines
    with fewer columns are skipped); None when the file cannot be read.

    Serves tracefs available_filter_functions (column 0: the functions ftrace can hook),
    debugfs kprobes/blacklist (column 1: "ADDR-ADDR<TAB>symbol") and
    error_injection/list (column 0: the functions bpf_override_return may override).
    """
    try:
        with open(path) as f:
            for line in f:
                fields = line.split()
                if len(fields) > column and fields[column] == symbol:
                    return True
    except OSError:
        return None
    return False
