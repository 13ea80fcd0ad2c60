"""The running kernel's build configuration (/proc/config.gz or /boot/config-RELEASE).

Many answers about kprobes and error injection exist only here. Functions answer
None where no configuration can be read, so callers can tell "no" from "unknown".
"""
import functools
import re

from .files import read_lines
from .release import kernel_release

KERNEL_CONFIG_PATHS = ("/proc/config.gz", "/boot/config-{release}")


@functools.lru_cache(maxsize=None)
def kernel_config():
    """(options, path): the running kernel's build configuration and where it was read.

    ``options`` maps ``"CONFIG_X"`` to its value (``"y"``, ``"m"``, a number or a quoted
    string), and options the file lists as "is not set" to ``"n"``. Both are ``None``
    when neither /proc/config.gz (CONFIG_IKCONFIG_PROC) nor /boot/config-RELEASE exists.
    """
    import gzip  # only needed here; most of pybpf never reads the config
    for template in KERNEL_CONFIG_PATHS:
        path = template.format(release=kernel_release())
        lines = read_lines(path, gzip.open if path.endswith(".gz") else open)
        if lines is None:
            continue
        options = {}
        for line in lines:
            unset = re.match(r"# (CONFIG_\w+) is not set", line)
            if unset:
                options[unset.group(1)] = "n"
            elif line.startswith("CONFIG_"):
                name, _, value = line.partition("=")
                options[name] = value
        return options, path
    return None, None


def config_enabled(name):
    """True when CONFIG option name is y or m, False when the config says otherwise or
    does not list it (the option does not exist for this kernel), None without a config."""
    options, _ = kernel_config()
    if options is None:
        return None
    return options.get(name, "n") in ("y", "m")
