"""Kernel sysctls (/proc/sys), read as integers."""


def read_sysctl(name):
    """An integer sysctl such as ``kernel.unprivileged_bpf_disabled``, or None."""
    try:
        with open("/proc/sys/" + name.replace(".", "/")) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
