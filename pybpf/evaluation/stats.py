"""Samples and what the report says about them: mean, spread, and the machine's noise.

Every number in the report is computed here from samples taken in this run, and the
samples are kept (results.json), so a reader can check any cell against its samples.
"""
import math
import os
import platform
import statistics
import time

from ..kernel import machine as machine_facts
from ..kernel.machine import cpu_model


def summary(samples):
    """{n, mean, stdev, median, min, max} of a list of numbers (stdev 0 for one)."""
    if not samples:
        return {"n": 0, "mean": None, "stdev": None, "median": None, "min": None,
                "max": None}
    return {"n": len(samples), "mean": statistics.fmean(samples),
            "stdev": statistics.stdev(samples) if len(samples) > 1 else 0.0,
            "median": statistics.median(samples), "min": min(samples),
            "max": max(samples)}


def timed(fn, runs):
    """(seconds of each of runs calls of fn, fn's last value)."""
    samples, value = [], None
    for _ in range(runs):
        started = time.perf_counter()
        value = fn()
        samples.append(time.perf_counter() - started)
    return samples, value


_busy_jiffies = machine_facts.cpu_ticks     # (busy, total) ticks; tests replace it


class Noise:
    """How much of the machine others used while a block ran: the CPU time of all
    processes but this one and its children, as a share of all CPUs' time. None for a
    block shorter than a second of all CPUs' time: at the clock's 100 ticks a second
    one stray tick would read as several percent. (In a VM this sees the guest only.)"""

    def __init__(self):
        self._busy, self._total = _busy_jiffies()
        self._ours = _our_seconds()
        self._wall = time.monotonic()

    def share(self):
        busy, total = _busy_jiffies()
        hz = os.sysconf("SC_CLK_TCK")
        elapsed = (total - self._total) / hz
        if elapsed < 1.0:
            return None
        others = (busy - self._busy) / hz - (_our_seconds() - self._ours)
        return max(0.0, others / elapsed)


def _our_seconds():
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def machine(environment):
    """What the report says about where it ran."""
    return {"kernel": platform.release(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version(),
            "environment": environment, "memory_gb": _memory_gb()}


def _memory_gb():
    kib = machine_facts.memory_kib()
    return math.nan if kib is None else round(kib / (1 << 20), 1)
