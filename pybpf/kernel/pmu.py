"""Dynamic perf PMUs (kprobe, uprobe, tracepoint) as sysfs describes them.

Their perf_event_attr.type numbers are assigned at boot, and what each config bit
means (the kprobe PMU's "retprobe", the uprobe PMU's "ref_ctr_offset") is written
in their format/ directories.
"""
import os
import re

from .files import read_lines

PMU_DIR = "/sys/bus/event_source/devices"


def pmu_type(name):
    """The perf_event_attr.type number of a dynamic PMU such as "kprobe", "uprobe" or
    "tracepoint" (from sysfs), or None when this kernel has no such PMU."""
    lines = read_lines(os.path.join(PMU_DIR, name, "type"))
    try:
        return int(lines[0]) if lines else None
    except ValueError:
        return None


def pmu_format(pmu, field):
    """Where a dynamic PMU wants field (e.g. the kprobe PMU's "retprobe") in
    perf_event_attr: (attr member, first bit, last bit) from sysfs ``format/FIELD``
    ("config:0" -> ("config", 0, 0), "config:32-63" -> ("config", 32, 63)), or None
    when the PMU or the field does not exist."""
    lines = read_lines(os.path.join(PMU_DIR, pmu, "format", field))
    m = re.match(r"(\w+):(\d+)(?:-(\d+))?$", lines[0].strip()) if lines else None
    if not m:
        return None
    return m.group(1), int(m.group(2)), int(m.group(3) or m.group(2))
