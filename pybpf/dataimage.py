"""The initial image of a ``.bss`` section, which takes no room in the file.

An ELF section header of type SHT_NOBITS may declare any size without the file
holding a byte of it, so allocating that many zeros at open would let a small file
take gigabytes (and a ``.bss`` of 2**57 bytes was a MemoryError). This image holds
only what is written into it before load (variables set through ``obj.variables``),
page by page; everything else reads as zero, and the loader copies only the written
pages into the map, whose memory the kernel hands out zeroed.
"""
from .errors import InputError

PAGE = 4096


class ZeroImage:
    """``size`` zero bytes, sliceable like a bytearray (contiguous slices only)."""

    def __init__(self, size):
        self.size = size
        self._pages = {}  # page number -> bytearray(PAGE), for pages written to

    def __len__(self):
        return self.size

    def _span(self, key):
        if not isinstance(key, slice):
            raise InputError("a data image is read and written in slices")
        start, stop, step = key.indices(self.size)
        if step != 1:
            raise InputError("a data image is read and written in contiguous slices")
        return start, max(start, stop)

    def __getitem__(self, key):
        start, stop = self._span(key)
        out = bytearray(stop - start)
        for page in range(start // PAGE, (stop + PAGE - 1) // PAGE):
            data = self._pages.get(page)
            if data is not None:
                lo, hi = max(start, page * PAGE), min(stop, (page + 1) * PAGE)
                out[lo - start:hi - start] = data[lo - page * PAGE:hi - page * PAGE]
        return bytes(out)

    def __setitem__(self, key, raw):
        start, stop = self._span(key)
        raw = memoryview(raw).cast("B")
        if len(raw) != stop - start:
            raise InputError(f"{len(raw)} bytes cannot replace {stop - start}")
        for page in range(start // PAGE, (stop + PAGE - 1) // PAGE):
            lo, hi = max(start, page * PAGE), min(stop, (page + 1) * PAGE)
            data = self._pages.setdefault(page, bytearray(PAGE))
            data[lo - page * PAGE:hi - page * PAGE] = raw[lo - start:hi - start]

    def __eq__(self, other):
        """Equal to an image of the same size with the same bytes written (a spec
        compared with its copy, before and after a load)."""
        if not isinstance(other, ZeroImage):
            return NotImplemented
        return self.size == other.size and list(self.written()) == list(other.written())

    __hash__ = None

    def written(self):
        """(offset, bytes) of every page written to, in order: all that is not zero."""
        for page in sorted(self._pages):
            end = min(PAGE, self.size - page * PAGE)
            yield page * PAGE, bytes(self._pages[page][:end])
