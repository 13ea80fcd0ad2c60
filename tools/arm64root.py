"""The cached arm64 Debian root that tools/vm-arm64 boots: made once by debootstrap and
kept outside the repository, in KEY/ of $PYBPF_ARM64_CACHE or ~/.cache/pybpf/arm64.

KEY hashes the recipe (its version, suite, packages, initramfs settings, the guest's
init), so changing any of them makes a new root and the old one is removed. The
directory holds root.ext4 (the root filesystem, booted with QEMU's snapshot=on, so it
never changes), the kernel and the initramfs of the root's own linux-image-arm64
(Debian builds virtio-blk, ext4 and 9p as modules; its initramfs-tools loads the first
two, the init below the last), and manifest.json (release, package versions, how long
the build took), written last: without it the directory is not a finished root.

debootstrap runs the root's second stage (dpkg's maintainer scripts) as arm64 programs,
so while it runs the kernel's binfmt_misc hands arm64 executables to qemu-user-static;
the registration (and the binfmt_misc mount) is undone afterwards if this made it.
"""
import glob
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time

CACHE = os.environ.get("PYBPF_ARM64_CACHE") or os.path.expanduser("~/.cache/pybpf/arm64")
# Bumped when the steps below change what a root holds, so cached roots are rebuilt.
RECIPE = 2
SUITE = "bookworm"
PACKAGES = ("python3", "initramfs-tools")
KERNEL = "linux-image-arm64"
# The initramfs holds only what mounting the root takes (the default, MODULES=most,
# packs every driver and takes many minutes to make under qemu-user). mkinitramfs adds
# their dependencies (jbd2, mbcache, crc16); ext4 asks for crc32c at mount time.
INITRAMFS_CONF = "MODULES=list\nCOMPRESS=gzip\n"
INITRAMFS_MODULES = "virtio_pci\nvirtio_blk\next4\ncrc32c_generic\n"
IMAGE, MANIFEST = "root.ext4", "manifest.json"
INIT_PATH = "/sbin/pybpf-init"
BINFMT = "/proc/sys/fs/binfmt_misc"
QEMU_BINFMT = "/usr/lib/binfmt.d/qemu-aarch64.conf"

# PID 1 of the guest (the kernel's init=): what the tests need mounted, then the run's
# own script from the results share (tools/vm-arm64 writes it), then power-off.
INIT = """#!/bin/sh
# Made by tools/arm64root.py: PID 1 of tools/vm-arm64's guest.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mountpoint -q /run || mount -t tmpfs tmpfs /run
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing
modprobe -a 9pnet_virtio 9p
mkdir -p /run/pybpf
if mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 pybpfresults /run/pybpf
then
    sh /run/pybpf/guest.sh
else
    echo "pybpf-init: the results share (tag pybpfresults) did not mount" > /dev/console
fi
umount /run/pybpf
sync
echo o > /proc/sysrq-trigger
sleep 60
"""


def key():
    recipe = json.dumps([RECIPE, SUITE, PACKAGES, KERNEL, INITRAMFS_CONF,
                         INITRAMFS_MODULES, INIT])
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def read_manifest(image):
    with open(os.path.join(image, MANIFEST)) as f:
        return json.load(f)


def mirror(suite=SUITE):
    """The Debian mirror this machine's apt uses for suite (so the guest's packages come
    from where the host's do), from /etc/apt/sources.list and sources.list.d."""
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        with open(path) as f:
            for stanza in f.read().split("\n\n"):
                fields = dict(line.split(":", 1) for line in stanza.splitlines()
                              if ":" in line and not line.startswith(("#", " ")))
                if suite in fields.get("Suites", "").split():
                    return fields["URIs"].split()[0]
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
        try:
            with open(path) as f:
                for words in (line.split() for line in f):
                    words = [w for w in words if not w.startswith("[")]
                    if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
                        return words[1]
        except FileNotFoundError:
            continue
    raise SystemExit(f"arm64root: no apt source for Debian {suite} in /etc/apt: the "
                     f"arm64 root is fetched from the mirror the host's apt uses")


class QemuBinfmt:
    """binfmt_misc running arm64 ELF executables through qemu-user-static while in the
    with block; what this registered (and mounted) is removed again on exit."""

    def __enter__(self):
        self.mounted = not os.path.exists(os.path.join(BINFMT, "register"))
        if self.mounted:
            subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", BINFMT], check=True)
        self.entry = os.path.join(BINFMT, "qemu-aarch64")
        self.registered = not os.path.exists(self.entry)
        if self.registered:
            with open(QEMU_BINFMT) as f:
                rule = f.read().strip()
            with open(os.path.join(BINFMT, "register"), "w") as f:
                f.write(rule)
        return self

    def __exit__(self, *exc):
        if self.registered:
            with open(self.entry, "w") as f:
                f.write("-1")
        if self.mounted:
            subprocess.run(["umount", BINFMT], check=True)


def missing_tools():
    problems = []
    if os.geteuid() != 0:
        problems.append("building the arm64 root needs root (debootstrap, binfmt_misc)")
    for tool, package in (("debootstrap", "debootstrap"), ("mke2fs", "e2fsprogs")):
        if shutil.which(tool) is None:
            problems.append(f"{tool} is not installed (Debian package {package})")
    if not os.path.exists(QEMU_BINFMT):
        problems.append(f"{QEMU_BINFMT} is missing (Debian package qemu-user-static)")
    return problems


def package_versions(root, names):
    """{package: version} from the root's dpkg status, for the installed names."""
    versions = {}
    with open(os.path.join(root, "var", "lib", "dpkg", "status")) as f:
        for stanza in f.read().split("\n\n"):
            fields = dict(line.split(": ", 1) for line in stanza.splitlines()
                          if ": " in line and not line.startswith(" "))
            if fields.get("Package") in names and "installed" in fields.get("Status", ""):
                versions[fields["Package"]] = fields["Version"]
    return versions


def install_kernel(root):
    """The kernel, after the initramfs configuration its install hook reads."""
    conf = os.path.join(root, "etc", "initramfs-tools")
    with open(os.path.join(conf, "conf.d", "pybpf"), "w") as f:
        f.write(INITRAMFS_CONF)
    with open(os.path.join(conf, "modules"), "w") as f:
        f.write(INITRAMFS_MODULES)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive",
           "HOME": "/root", "LC_ALL": "C"}
    proc = os.path.join(root, "proc")
    subprocess.run(["mount", "-t", "proc", "proc", proc], check=True)
    try:
        for argv in (["apt-get", "update", "-q"],
                     ["apt-get", "install", "-y", "-q", "--no-install-recommends", KERNEL],
                     ["apt-get", "clean"]):
            subprocess.run(["chroot", root, *argv], check=True, env=env,
                           stdout=subprocess.DEVNULL)
    finally:
        subprocess.run(["umount", proc], check=True)


def tree_bytes(root):
    total = 0
    for top, _dirs, files in os.walk(root):
        for name in files:
            total += os.lstat(os.path.join(top, name)).st_size
    return total


def _finish(work, root, started, source):
    """Move the kernel out of the root, pack the root into an ext4 image, write the
    manifest."""
    (kernel,) = glob.glob(os.path.join(root, "boot", "vmlinuz-*"))
    release = os.path.basename(kernel)[len("vmlinuz-"):]
    for name in (f"vmlinuz-{release}", f"initrd.img-{release}"):
        shutil.move(os.path.join(root, "boot", name), os.path.join(work, name))
    # The config stays in the root too: pybpf's probe reads /boot/config-<release>.
    shutil.copyfile(os.path.join(root, "boot", f"config-{release}"),
                    os.path.join(work, f"config-{release}"))
    with open(os.path.join(root, INIT_PATH.lstrip("/")), "w") as f:
        f.write(INIT)
    os.chmod(os.path.join(root, INIT_PATH.lstrip("/")), 0o755)
    versions = package_versions(root, {*PACKAGES, KERNEL, f"linux-image-{release}",
                                       "python3.11"})
    # Room for the tests' files (a few MB) on top of what is there, and ext4's own.
    size_k = (tree_bytes(root) * 13 // 10 + (256 << 20)) >> 10
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-L", "pybpfroot", "-d", root,
                    os.path.join(work, IMAGE), f"{size_k}k"], check=True)
    shutil.rmtree(root)
    manifest = {"release": release, "kernel": f"vmlinuz-{release}",
                "initrd": f"initrd.img-{release}", "config": f"config-{release}",
                "suite": SUITE, "mirror": source, "packages": versions,
                "build_seconds": round(time.monotonic() - started)}
    with open(os.path.join(work, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest


def build():
    """Make the cached root unless it is there; remove roots of other recipes. Returns
    an exit status."""
    final = os.path.join(CACHE, key())
    if os.path.exists(os.path.join(final, MANIFEST)):
        print(f"arm64root: cached: {final} ({read_manifest(final)['release']})")
        return 0
    problems = missing_tools()
    if problems:
        for problem in problems:
            print(f"arm64root: {problem}")
        return 121
    os.makedirs(CACHE, exist_ok=True)
    started = time.monotonic()
    source = mirror()
    work = tempfile.mkdtemp(dir=CACHE, prefix=".building-")
    try:
        root = os.path.join(work, "root")
        print(f"arm64root: debootstrap of Debian {SUITE} arm64 with {', '.join(PACKAGES)} "
              f"and {KERNEL} into {work} (minutes: dpkg runs under qemu-user)", flush=True)
        with QemuBinfmt():
            subprocess.run(["debootstrap", "--arch=arm64", "--variant=minbase",
                            "--include=" + ",".join(PACKAGES), SUITE, root, source],
                           check=True, stdout=subprocess.DEVNULL)
            install_kernel(root)
        manifest = _finish(work, root, started, source)
        shutil.rmtree(final, ignore_errors=True)   # a half-made one of an older run
        os.rename(work, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # Roots of other recipes, and what an interrupted build left.
    for other in glob.glob(os.path.join(CACHE, "*")) + glob.glob(os.path.join(CACHE, ".b*")):
        if other != final and (os.path.exists(os.path.join(other, MANIFEST))
                               or os.path.basename(other).startswith(".building-")):
            shutil.rmtree(other)
    print(f"arm64root: built {final} ({manifest['release']}, python3 "
          f"{manifest['packages'].get('python3.11')}) in {manifest['build_seconds']} s")
    return 0
