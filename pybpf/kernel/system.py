"""The former home of pybpf's system facts, kept so ``pybpf.kernel.system.NAME`` still
works. Each fact now lives in a module named for what it holds; new code imports from
there:

- release: kernel_release, kernel_version, kernel_version_code
- cpus: page_size, parse_cpu_list, possible_cpus, online_cpus
- security: capabilities, lockdown, tracing_refusal_hint
- sysctl: read_sysctl; kconfig: kernel_config, config_enabled
- files: read_regular_file, fdinfo, file_lists_symbol
- mounts: bpffs, tracefs, cgroup2 and the statfs magic that tells them apart; mount
- kallsyms: kallsyms_types, kallsyms_addresses, kprobe_blacklisted
- pmu: pmu_type, pmu_format; btffiles: VMLINUX_BTF, vmlinux_btf_size
- memlock: raise_memlock_rlimit; procs: set_parent_death_signal
- tracefs: tracepoint_exists
"""
from .btffiles import VMLINUX_BTF, vmlinux_btf_size
from .cpus import online_cpus, page_size, parse_cpu_list, possible_cpus
from .files import fdinfo, file_lists_symbol, read_regular_file
from .kallsyms import kallsyms_addresses, kallsyms_types, kprobe_blacklisted
from .kconfig import KERNEL_CONFIG_PATHS, config_enabled, kernel_config
from .memlock import memlock_accounting_is_rlimit, raise_memlock_rlimit
from .mounts import (BPF_FS_MAGIC, BPFFS_DEFAULT, CGROUP2_SUPER_MAGIC, TRACEFS_MAGIC,
                     TRACEFS_PATHS, check_pin_path, filesystem_supported, find_tracefs,
                     fs_type, is_bpffs, mount, mount_point)
from .pmu import PMU_DIR, pmu_format, pmu_type
from .procs import PR_SET_PDEATHSIG, set_parent_death_signal
from .release import kernel_release, kernel_version, kernel_version_code
from .security import (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON, CAP_SYS_ADMIN, LOCKDOWN_MODES,
                       effective_capabilities, has_bpf_privilege, lockdown_mode,
                       lockdown_status, tracing_refusal_hint)
from .sysctl import read_sysctl
from .tracefs import tracepoint_exists

__all__ = [
    "BPFFS_DEFAULT", "BPF_FS_MAGIC", "CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON",
    "CAP_SYS_ADMIN", "CGROUP2_SUPER_MAGIC", "KERNEL_CONFIG_PATHS", "LOCKDOWN_MODES",
    "PMU_DIR", "PR_SET_PDEATHSIG", "TRACEFS_MAGIC", "TRACEFS_PATHS", "VMLINUX_BTF",
    "check_pin_path", "config_enabled", "effective_capabilities", "fdinfo",
    "file_lists_symbol", "filesystem_supported", "find_tracefs", "fs_type",
    "has_bpf_privilege", "is_bpffs", "kallsyms_addresses", "kallsyms_types",
    "kernel_config", "kernel_release", "kernel_version", "kernel_version_code",
    "kprobe_blacklisted", "lockdown_mode", "lockdown_status",
    "memlock_accounting_is_rlimit", "mount", "mount_point", "online_cpus", "page_size",
    "parse_cpu_list", "pmu_format", "pmu_type", "possible_cpus", "raise_memlock_rlimit",
    "read_regular_file", "read_sysctl", "set_parent_death_signal", "tracepoint_exists",
    "tracing_refusal_hint", "vmlinux_btf_size",
]
