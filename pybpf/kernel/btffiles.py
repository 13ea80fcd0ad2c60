"""Where the kernel publishes its own BTF: vmlinux and one file per module."""
import os

BTF_DIR = "/sys/kernel/btf"
VMLINUX_BTF = os.path.join(BTF_DIR, "vmlinux")


def vmlinux_btf_size():
    """Size in bytes of the kernel's own BTF (CONFIG_DEBUG_INFO_BTF), or None without it."""
    try:
        return os.stat(VMLINUX_BTF).st_size
    except OSError:
        return None


def module_names():
    """Names of the loaded modules that publish BTF (CONFIG_DEBUG_INFO_BTF_MODULES),
    sorted; [] on kernels without module BTF."""
    try:
        return sorted(n for n in os.listdir(BTF_DIR) if n != "vmlinux")
    except OSError:
        return []
