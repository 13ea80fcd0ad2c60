"""What procfs says about the machine as a whole: the CPUs' busy time, their model and
the memory, which benchmarks report beside their numbers (pybpf.evaluation)."""
import platform


def cpu_ticks():
    """(busy, total) clock ticks of all CPUs since boot, from /proc/stat's first line
    (idle and iowait are the not-busy ones)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def cpu_model():
    """The first "model name" of /proc/cpuinfo, else the processor or machine name."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_kib():
    """MemTotal of /proc/meminfo in KiB, or None if it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            return int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        return None
