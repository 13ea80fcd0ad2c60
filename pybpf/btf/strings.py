"""The BTF string section: NUL-terminated names addressed by byte offset.

A split BTF (a kernel module's, on top of vmlinux) continues its base's offsets: an
offset below the base's string length names a base string, the rest index the split's
own section. Writing keeps the parsed section as is and appends new strings after it,
so every offset that .BTF.ext line info (or anything else) holds stays valid.
"""
from .types import BtfError

# Names are bytes in the file; surrogateescape keeps any byte sequence round-trippable.
_ENC = ("utf-8", "surrogateescape")
MAX_OFFSET = (1 << 24) - 1  # the kernel's BTF_MAX_NAME_OFFSET


def encode(name):
    raw = name.encode(*_ENC)
    if b"\0" in raw:
        raise BtfError(f"BTF name {name!r} contains a NUL byte")
    return raw


class StringTable:
    """One string section (``data``), continuing ``base``'s offsets when it has one."""

    def __init__(self, data=b"\0", base=None, lo=0, hi=None):
        """The section is data[lo:hi]; the whole BTF blob can be passed with bounds so
        that the (2+ MB for vmlinux) string section is not copied."""
        buf = data if isinstance(data, bytes) else bytes(data)
        hi = len(buf) if hi is None else hi
        if base is None and buf[lo:lo + 1] != b"\0":
            raise BtfError("BTF string section must start with a NUL byte (offset 0 is "
                           "the empty name)")
        if hi > lo and buf[hi - 1:hi] != b"\0":
            raise BtfError("BTF string section does not end with a NUL byte")
        self.base = base
        self.start = len(base) if base is not None else 0
        self._buf, self._lo, self._size = buf, lo, hi - lo
        self._cache = {}
        self._index = None   # str -> first offset, built when writing needs it
        self._added = []     # encoded strings appended since parsing
        self._added_size = 0

    @property
    def data(self):
        """The parsed section's bytes (a copy)."""
        return self._buf[self._lo:self._lo + self._size]

    def __len__(self):
        """The end offset: base strings plus this section (including added strings)."""
        return self.start + self._size + self._added_size

    def get(self, offset):
        """The string at offset (which may point into the middle of a string)."""
        if offset < self.start:
            return self.base.get(offset)
        try:
            return self._cache[offset]
        except KeyError:
            pass
        rel = offset - self.start
        if rel >= self._size:
            return self._added_at(offset)
        pos = self._lo + rel
        end = self._buf.index(b"\0", pos)  # the section ends with NUL: always found
        text = self._cache[offset] = self._buf[pos:end].decode(*_ENC)
        return text

    __getitem__ = get

    def _added_at(self, offset):
        pos = self.start + self._size
        for raw in self._added:
            if pos <= offset <= pos + len(raw):
                return raw[offset - pos:].decode(*_ENC)
            pos += len(raw) + 1
        raise BtfError(f"BTF string offset {offset} is past the end of the string section "
                       f"({len(self)} bytes)")

    def offsets_of(self, name):
        """Every offset (base first) where exactly ``name`` starts, the tails of longer
        strings included (a name offset may point into one); a search of the raw
        bytes, so looking up one name decodes no other."""
        found = list(self.base.offsets_of(name)) if self.base is not None else []
        needle = encode(name) + b"\0"
        lo, hi = self._lo, self._lo + self._size
        pos = self._buf.find(needle, lo, hi)
        while pos >= 0:
            found.append(self.start + pos - lo)
            pos = self._buf.find(needle, pos + 1, hi)
        pos = self.start + self._size
        for added in self._added:
            if (added + b"\0").endswith(needle):
                found.append(pos + len(added) + 1 - len(needle))
            pos += len(added) + 1
        return found

    def offset(self, name):
        """The offset of name, appending it when absent (base strings are reused)."""
        if self.base is not None:
            off = self.base.find(name)
            if off is not None:
                return off
        off = self.find(name)
        if off is None:
            off = len(self)
            if off + len(encode(name)) > MAX_OFFSET:
                raise BtfError(f"BTF string section would exceed the kernel's limit of "
                               f"{MAX_OFFSET} bytes")
            raw = encode(name)
            self._added.append(raw)
            self._added_size += len(raw) + 1
            self._index[name] = off
        return off

    def find(self, name):
        """The first offset of name in this section (not the base), or None."""
        if self._index is None:
            index, pos = {}, self.start
            for raw in self.data.split(b"\0")[:-1]:
                index.setdefault(raw.decode(*_ENC), pos)
                pos += len(raw) + 1
            self._index = index
        return self._index.get(name)

    def section(self):
        """This table's own bytes as written to a BTF file."""
        return self.data + b"".join(raw + b"\0" for raw in self._added)

    def copy(self):
        new = StringTable.__new__(StringTable)
        new.__dict__.update(self.__dict__)
        new._cache, new._added = {}, list(self._added)
        new._index = dict(self._index) if self._index is not None else None
        return new
