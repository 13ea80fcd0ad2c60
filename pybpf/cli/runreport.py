"""``run``'s report: programs, the command, then every map and global, decoded.

Keys, values and globals read through the object's BTF (:mod:`pybpf.btf.values`):
structs as objects, arrays as lists, char arrays as strings, enums by name; hex
strings only where the object has no BTF for them. A map that cannot be dumped
(its elements are fds the kernel does not read back, records read as events, values
only a pop returns...) is listed with the reason, and never stops the report: one
CGROUP_ARRAY must not hide every other map of the tool.
"""
import sys

from ..btf import types as T
from ..btf import values
from ..errors import Error
from ..kernel.constants import MapType
from ..maps import KeyedMap, PerfEventArrayMap
from ..typenames import type_name

# Map types whose elements run cannot show, and why.
NOT_DUMPED = {
    MapType.RINGBUF: "a ring buffer: its records are read as events while the programs run",
    MapType.PERF_EVENT_ARRAY: "perf event fds (write-only for user space); its records "
                              "are read as events while the programs run",
    MapType.CGROUP_ARRAY: "cgroup fds, which the kernel does not read back",
    MapType.QUEUE: "a queue: reading an element removes it",
    MapType.STACK: "a stack: reading an element removes it",
    MapType.BLOOM_FILTER: "a bloom filter answers membership questions only",
    MapType.SK_STORAGE: "keyed by socket fds: it cannot be walked",
    MapType.TASK_STORAGE: "keyed by pidfds: it cannot be walked",
    MapType.INODE_STORAGE: "keyed by file fds: it cannot be walked",
    MapType.CGRP_STORAGE: "keyed by cgroup fds: it cannot be walked",
    MapType.USER_RINGBUF: "a user ring buffer: user space writes it, nothing to read",
    MapType.ARENA: "an arena: memory pages, not elements",
    MapType.XSKMAP: "AF_XDP socket fds, which the kernel does not read back",
}


class Report:
    """The run's JSON document, built as things happen."""

    def __init__(self, obj):
        self.obj = obj
        self.doc = {"object": obj.spec.name, "programs": [], "command": None,
                    "seconds": 0.0, "pinned": None, "maps": {}, "unreadable_maps": [],
                    "warnings": []}

    def attached(self, name, link):
        sd = self.obj.spec.programs[name].section_def
        self.doc["programs"].append({"name": name, "section": sd.section,
                                     "id": self.obj.programs[name].id,
                                     "attached": link.description or type(link).__name__})

    def skipped(self, name, reason):
        sd = self.obj.spec.programs[name].section_def
        self.doc["programs"].append({"name": name, "section": sd.section,
                                     "id": self.obj.programs[name].id,
                                     "attached": None, "skipped": reason})

    def left_attached(self, name, how_to_remove):
        for p in self.doc["programs"]:
            if p["name"] == name:
                p["left_attached"] = how_to_remove

    def warnings(self, messages):
        for message in messages:
            if message not in self.doc["warnings"]:
                self.doc["warnings"].append(message)
                print(f"pybpf run: warning: {message}", file=sys.stderr)

    def maps(self):
        obj = self.obj
        for name, m in obj.maps.items():
            mspec = obj.spec.maps.get(name)
            if mspec is not None and mspec.is_data:
                self.doc["maps"][name] = {
                    var: self._global(var) for var in obj.variables
                    if obj.spec.variables[var].section == name}
                continue
            reason = NOT_DUMPED.get(m.type)
            if reason is None and (not isinstance(m, KeyedMap)
                                   or isinstance(m, PerfEventArrayMap)):
                reason = "its elements cannot be read by key"
            if reason is None:
                try:
                    self.doc["maps"][name] = self._entries(m, mspec)
                    continue
                except (Error, OSError) as e:
                    reason = str(e)
            self.doc["unreadable_maps"].append(
                {"name": name, "type": type_name(m.type, MapType), "reason": reason})

    def _global(self, name):
        var = self.obj.spec.variables[name]
        btf = self.obj.spec.btf
        raw = self.obj.variables.raw(name)
        return _typed(btf, var.btf_type_id, raw)

    def _entries(self, m, mspec):
        btf = self.obj.spec.btf
        key_id = mspec.btf_key_type_id if mspec is not None else 0
        value_id = mspec.btf_value_type_id if mspec is not None else 0
        if m.type in (MapType.PROG_ARRAY, MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
            value_id = 0  # ids of programs and maps, not what the BTF value type says
        return [{"key": _typed(btf, key_id, k), "value": _typed(btf, value_id, v)}
                for k, v in sorted(m.items(), key=_by_key)]

    def print_attached(self):
        for p in self.doc["programs"]:
            what = p["attached"] or f"not attached: {p['skipped']}"
            print(f"pybpf run: {p['name']} ({p['section']}): {what}", file=sys.stderr)
            if p.get("left_attached"):
                print(f"  left attached; remove with: {p['left_attached']}", file=sys.stderr)

    def print_maps(self):
        cmd = self.doc["command"]
        if cmd is not None:
            print(f"command {' '.join(cmd['argv'])} (pid {cmd['pid']}) exited with "
                  f"{cmd['exit_status']} after {self.doc['seconds']} s")
        for name, count in self.doc.get("event_counts", {}).items():
            lost = self.doc.get("lost_events", {}).get(name)
            print(f"events {name}: {count} records" + (f", {lost} lost" if lost else ""))
        for name, content in self.doc["maps"].items():
            print(f"map {name}:")
            rows = content.items() if isinstance(content, dict) else \
                ((e["key"], e["value"]) for e in content)
            sep = " =" if isinstance(content, dict) else ":"
            for key, value in rows:
                print(f"  {key}{sep} {value}")
        for entry in self.doc["unreadable_maps"]:
            print(f"map {entry['name']} ({entry['type']}): not shown: {entry['reason']}")
        if self.doc["pinned"]:
            print(f"pinned under {self.doc['pinned']}")


def _typed(btf, type_id, value):
    """A key, value or global for JSON: through its BTF type where the object has one
    (per-CPU values: each CPU's), else numbers as they are and bytes as hex."""
    if isinstance(value, list):
        return [_typed(btf, type_id, v) for v in value]
    if btf is None or not type_id:
        return _hex(value)
    try:
        if isinstance(value, (bytes, bytearray)):
            return values.decode(btf, type_id, value)
        target = btf.type(btf.resolve(btf.type(type_id).type
                                      if isinstance(btf.type(type_id), T.Var) else type_id))
        if isinstance(value, int) and isinstance(target, (T.Enum, T.Enum64)):
            return values.decode(btf, type_id, value.to_bytes(target.size, btf.byteorder,
                                                              signed=value < 0))
        if isinstance(value, int) and isinstance(target, T.Int) and \
                target.encoding & T.INT_BOOL:
            return bool(value)
    except Error:
        pass  # BTF that does not fit the bytes: show them as they are
    return _hex(value)


def _hex(value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, (list, tuple)):
        return [_hex(v) for v in value]
    return value


def _by_key(item):
    """Hash maps come in hash order; show them by key (numbers before bytes)."""
    key = item[0]
    return (0, key, b"") if isinstance(key, int) else (1, 0, bytes(key))
