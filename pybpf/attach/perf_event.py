"""Sampling events: a perf_event program run on every sample of a perf event (a CPU
clock, a hardware counter), on every online CPU or in one process. SEC("perf_event")
names no event, so attach() cannot attach it: attach_perf_event() says which.
"""
import errno

from ..kernel import perf
from ..kernel.constants import ProgType
from ..kernel.cpus import online_cpus
from ..kernel.sysctl import read_sysctl
from .common import AttachError, LinkSet, check_pid, check_type
from .perflink import attach_perf

OPTIONS = ()


def attach_perf_event(program, *, sample_period=None, sample_freq=None,
                      event_type=perf.PERF_TYPE_SOFTWARE,
                      config=perf.PERF_COUNT_SW_CPU_CLOCK, cpu=None, pid=None,
                      cookie=None, use_link=None):
    """Run a perf_event program on every sample of a sampling event: every
    sample_period events (nanoseconds for the cpu-clock default), or sample_freq
    times a second. event_type/config choose the event (perf.PERF_TYPE_* and
    perf.PERF_COUNT_*). On every online CPU unless cpu= or pid= narrows it; several
    CPUs give a :class:`LinkSet`."""
    check_type(program, (ProgType.PERF_EVENT,), "sampling events", "perf_event")
    if (sample_period is None) == (sample_freq is None):
        raise AttachError("a sampling event needs exactly one of sample_period= (events "
                          "between samples) or sample_freq= (samples per second)")
    rate = sample_period if sample_freq is None else sample_freq
    if not isinstance(rate, int) or rate <= 0:
        raise AttachError(f"sample_period/sample_freq must be a positive int, got {rate!r}")
    limit = read_sysctl("kernel.perf_event_max_sample_rate")
    if sample_freq is not None and limit and sample_freq > limit:
        raise AttachError(f"sample_freq={sample_freq} is above "
                          f"kernel.perf_event_max_sample_rate={limit}")
    if pid is not None:
        check_pid(pid)
        targets = [(pid, -1 if cpu is None else cpu)]
    else:
        targets = [(-1, c) for c in ([cpu] if cpu is not None else online_cpus())]
    hints = {
        errno.ENOENT: f"this machine has no perf event type={event_type} config={config} "
                      f"(virtual machines often lack hardware counters: use the "
                      f"default software cpu-clock)",
        errno.EOPNOTSUPP: "this event cannot sample (its PMU has no overflow interrupt)",
        errno.EINVAL: "the kernel refused the sampling event (a bad type/config, or a "
                      "frequency above kernel.perf_event_max_sample_rate)",
        errno.ENODEV: f"there is no CPU {cpu}",
    }
    links = []
    try:
        for target_pid, target_cpu in targets:
            attr = perf.PerfEventAttr(type=event_type, config=config, disabled=1,
                                      sample_period=rate, freq=int(sample_freq is not None))
            description = f"perf_event/cpu{target_cpu}" if target_pid < 0 else \
                f"perf_event/pid{target_pid}"
            pfd = perf.open_event(attr, target_pid, target_cpu, hints=hints,
                                  detail=description)
            links.append(attach_perf(program, pfd, description, cookie=cookie,
                                     use_link=use_link))
    except BaseException:
        for link in links:
            link.close()
        raise
    if len(links) == 1:
        return links[0]
    return LinkSet(links, program, f"perf_event on {len(links)} CPUs")


def attach_section(program, sd):
    raise AttachError("perf_event programs need a sampling event: call pybpf.attach."
                      "attach_perf_event(program, sample_period=N or sample_freq=HZ)")
