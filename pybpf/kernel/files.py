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
    found = symbol_lines(path, [symbol], column)
    return None if found is None else symbol in found


def symbol_lines(path, symbols, column):
    """{symbol: its first line's fields} for those of symbols that a whitespace-
    separated text file has in the given column; None when it cannot be read.

    These files are large (/proc/kallsyms: ~120,000 lines, which the kernel takes
    ~40 ms to produce) and a question is about a few names, so the file is read in
    chunks, each searched with bytes.find (only lines containing a name are split),
    and reading stops as soon as every name has been found.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    wanted = {s.encode(): s for s in symbols}
    found, tail = {}, b""
    try:
        while wanted:
            chunk = os.read(fd, 65536)
            data = tail + chunk
            cut = len(data) if not chunk else data.rfind(b"\n") + 1
            data, tail = data[:cut], data[cut:]
            for needle in list(wanted):
                fields = _line_with(data, needle, column)
                if fields is not None:
                    found[wanted.pop(needle)] = [f.decode(errors="replace") for f in fields]
            if not chunk:
                break
    except OSError:
        return None
    finally:
        os.close(fd)
    return found


def _line_with(data, needle, column):
    """The fields of the first complete line of data with needle in that column."""
    at = 0
    while True:
        at = data.find(needle, at)
        if at < 0:
            return None
        start = data.rfind(b"\n", 0, at) + 1
        end = data.find(b"\n", at)
        end = len(data) if end < 0 else end
        fields = data[start:end].split()
        if len(fields) > column and fields[column] == needle:
            return fields
        at = end
