"""``run``'s events: every ring buffer and perf event array of the object, read while
the programs are attached, each record decoded and printed.

Tools such as bcc's opensnoop report what happened through these maps, not through
maps a dump could show afterwards: a run that only dumped maps would show nothing.
Readers are opened before any program is attached (so no record is missed), polled
while the command runs, and drained after detaching.

A record is decoded through ``--event-type [MAP=]TYPE``: TYPE a struct, union or
typedef of the object's BTF, or ``HEADER.h:NAME`` from a C header
(:mod:`pybpf.btf.cdecl`; clang leaves out a type only a local variable uses, like
the libbpf-tools' ``struct event``). Without a type a record shows its size, hex and
printable runs (:func:`pybpf.btf.values.raw`), so a file name in it is readable.
"""
import json
import sys

from ..btf import values
from ..btf.cdecl import load_header
from ..errors import Error, InputError, MissingError
from ..events import PerfBuffer, RingBuffer
from ..kernel.constants import MapType

EVENT_MAPS = (MapType.RINGBUF, MapType.PERF_EVENT_ARRAY)
_TYPE_KINDS = ("struct", "union", "typedef")


def event_types(obj, specs):
    """{map name or None (every map): (btf, type id)} for the --event-type values."""
    found = {}
    for text in specs:
        map_name, sep, type_spec = text.partition("=")
        if not sep:
            map_name, type_spec = None, text
        elif map_name not in obj.spec.maps:
            raise MissingError(f"--event-type {text!r}: no map {map_name!r} in "
                               f"{obj.spec.name} (has {', '.join(obj.spec.maps)})")
        found[map_name] = _find_type(obj, type_spec.strip(), text)
    return found


def _find_type(obj, type_spec, text):
    header, sep, name = type_spec.rpartition(":")
    if sep and header:
        btf, where = load_header(header), header
        notes = btf.header_errors
    else:
        btf, where, notes, name = obj.spec.btf, f"the BTF of {obj.spec.name}", [], type_spec
        if btf is None:
            raise MissingError(f"--event-type {text!r}: {obj.spec.name} has no BTF; name "
                               f"a C header that declares it: --event-type HEADER.h:{name}")
    word, _, bare = name.partition(" ")
    kinds = [word] if bare and word in _TYPE_KINDS else list(_TYPE_KINDS)
    name = bare if bare and word in _TYPE_KINDS else name
    for kind in kinds:
        ids = btf.find(name, kind)
        if ids:
            return btf, ids[-1]
    hint = "" if sep else (f"; clang leaves out types only local variables use, so name "
                           f"the C header that declares it: --event-type HEADER.h:{name}")
    why = f" (skipped: {'; '.join(notes)})" if notes else ""
    raise MissingError(f"--event-type {text!r}: no struct, union or typedef {name!r} in "
                       f"{where}{hint}{why}")


class Events:
    """The readers of one run, the records they delivered, their printing."""

    def __init__(self, obj, types, json_lines=False, collect=False):
        self.obj, self.types = obj, types
        self.json_lines, self.collect = json_lines, collect
        self.records, self.counts, self.readers = [], {}, {}
        self.lost = {}

    def open(self):
        """A reader for every event map of the object."""
        try:
            for name, m in self.obj.maps.items():
                if m.type == MapType.RINGBUF:
                    self.readers[name] = RingBuffer(m, callback=self._ring_callback(name))
                elif m.type == MapType.PERF_EVENT_ARRAY:
                    self.readers[name] = PerfBuffer(m, callback=self._perf_callback(name))
                else:
                    continue
                self.counts[name] = 0
        except BaseException:
            self.close()
            raise
        return self

    def _ring_callback(self, name):
        return lambda data: self._record(name, None, data)

    def _perf_callback(self, name):
        return lambda cpu, data: self._record(name, cpu, data)

    def _record(self, name, cpu, data):
        self.counts[name] += 1
        event = {"map": name}
        if cpu is not None:
            event["cpu"] = cpu
        event.update(decode_record(self.types.get(name) or self.types.get(None), data))
        if self.collect:
            self.records.append(event)
        elif self.json_lines:
            print(json.dumps(event), flush=True)
        else:
            print(f"event {name}: {_text(event)}", flush=True)

    def poll(self, timeout):
        """Deliver what has come, waiting up to timeout seconds in all."""
        if not self.readers:
            return False
        share = timeout / len(self.readers)
        for reader in self.readers.values():
            reader.poll(share)
        return True

    def drain(self):
        for name, reader in self.readers.items():
            reader.consume()
            if isinstance(reader, PerfBuffer) and reader.lost:
                self.lost[name] = reader.lost

    def close(self):
        for reader in self.readers.values():
            reader.close()

    def summary(self):
        """The report's part: {"events": [...] (--json), "event_counts", "lost_events"}."""
        out = {"event_counts": dict(self.counts), "lost_events": dict(self.lost)}
        if self.collect:
            out["events"] = self.records
        return out


def decode_record(typed, data):
    """A record's JSON part: {"size", "value"} through (btf, type id), or the raw view
    (size, hex, printable runs) without a type or when it does not decode."""
    data = bytes(data)
    if typed is not None:
        btf, type_id = typed
        try:
            return {"size": len(data), "value": values.decode(btf, type_id, data,
                                                              partial=True)}
        except Error as e:
            return dict(values.raw(data), error=str(e))
    return values.raw(data)


def _text(event):
    if "value" in event:
        return json.dumps(event["value"], ensure_ascii=False)
    runs = " ".join(json.dumps(t) for t in event["text"])
    return f"{event['size']} bytes {event['hex'][:64]}{'...' if len(event['hex']) > 64 else ''}" \
        + (f" text {runs}" if runs else "")


def check_event_options(args):
    if args.json_lines and args.json:
        raise InputError("--json prints one document and --json-lines one line per "
                         "event: give one of them")


def warn(message):
    print(f"pybpf run: warning: {message}", file=sys.stderr)
