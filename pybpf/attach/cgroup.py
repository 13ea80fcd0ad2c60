"""cgroup programs: cgroup_skb, cgroup/sock_create and the other cgroup/ sections,
sockops, lsm_cgroup; attached to a cgroup v2 directory for one attach type, where
they run for every process in that cgroup and its descendants.

A kernel BPF link where the kernel has cgroup links (5.7), else BPF_PROG_ATTACH with
BPF_F_ALLOW_MULTI (a :class:`CgroupAttachment`, detached with BPF_PROG_DETACH).
"""
import errno
import os

from ..errors import BPFError, NotSupportedError
from ..kernel import bpf as kbpf
from ..kernel import features, mounts
from ..kernel.constants import BPF_F_ALLOW_MULTI, AttachType, ProgType
from ..links import BpfLink, Link
from .common import AttachError, check_type, outlives, type_name

OPTIONS = ("cgroup",)


class CgroupAttachment(Link):
    """A program attached to a cgroup with BPF_PROG_ATTACH (BPF_F_ALLOW_MULTI): the
    pre-5.7 way, which the kernel does not tie to any fd. ``close()`` detaches with
    BPF_PROG_DETACH. The fd is the cgroup directory's; a duplicate of the program fd
    is kept so the program can be named at detach time even if the caller closed it.
    """

    def __init__(self, cgroup_fd, program, attach_type, description):
        super().__init__(cgroup_fd, program, description)
        self.attach_type = attach_type
        self._prog_fd = os.dup(program.fd)
        outlives(self)

    def close(self):
        if self.closed:
            return
        try:
            kbpf.prog_detach(self._fd, self._prog_fd, self.attach_type)
        except BPFError as e:
            if e.errno != errno.ENOENT:  # already detached (cgroup removed, ...)
                raise
        finally:
            kbpf.close(self._prog_fd)
            super().close()


A = AttachType
_CGROUP_HOOKS = {
    ProgType.CGROUP_SKB: (A.CGROUP_INET_INGRESS, A.CGROUP_INET_EGRESS),
    ProgType.CGROUP_SOCK: (A.CGROUP_INET_SOCK_CREATE, A.CGROUP_INET_SOCK_RELEASE,
                           A.CGROUP_INET4_POST_BIND, A.CGROUP_INET6_POST_BIND),
    ProgType.CGROUP_SOCK_ADDR: tuple(t for t in A if t.name.startswith(
        ("CGROUP_INET4_", "CGROUP_INET6_", "CGROUP_UDP4_", "CGROUP_UDP6_", "CGROUP_UNIX_"))
        and "POST_BIND" not in t.name),
    ProgType.SOCK_OPS: (A.CGROUP_SOCK_OPS,),
    ProgType.CGROUP_DEVICE: (A.CGROUP_DEVICE,),
    ProgType.CGROUP_SYSCTL: (A.CGROUP_SYSCTL,),
    ProgType.CGROUP_SOCKOPT: (A.CGROUP_GETSOCKOPT, A.CGROUP_SETSOCKOPT),
    ProgType.LSM: tuple(t for t in A if t.name == "LSM_CGROUP"),
}
# Where one attach type is the obvious one for a program type.
_CGROUP_DEFAULT = {ProgType.CGROUP_SOCK: A.CGROUP_INET_SOCK_CREATE,
                   ProgType.SOCK_OPS: A.CGROUP_SOCK_OPS,
                   ProgType.CGROUP_DEVICE: A.CGROUP_DEVICE,
                   ProgType.CGROUP_SYSCTL: A.CGROUP_SYSCTL}


def attach_cgroup(program, cgroup, attach_type=None, *, use_link=None):
    """Attach a cgroup program (cgroup_skb, cgroup/sock_create, sockops, ...) to a
    cgroup v2 directory (a path or an open directory fd) for attach_type; the
    program runs for every process in that cgroup and its descendants.

    use_link None: BPF_LINK_CREATE where the kernel has cgroup links (features:
    bpf_link, 5.7), else BPF_PROG_ATTACH with BPF_F_ALLOW_MULTI; True/False force one.
    """
    hooks = _CGROUP_HOOKS.get(program.type)
    if not hooks:
        check_type(program, tuple(_CGROUP_HOOKS), "cgroup hooks", "cgroup_skb/egress")
    if attach_type is None:
        attach_type = _CGROUP_DEFAULT.get(program.type)
        if attach_type is None:
            raise AttachError(
                f"a {type_name(program.type)} program can attach at "
                f"{', '.join(t.name.lower() for t in hooks)}: say which with attach_type= "
                f"(or use a section naming it, e.g. cgroup_skb/egress)")
    attach_type = AttachType(attach_type)
    if attach_type not in hooks:
        raise AttachError(f"a {type_name(program.type)} program cannot attach at "
                          f"{attach_type.name.lower()}; it attaches at "
                          f"{', '.join(t.name.lower() for t in hooks)}")
    cg_fd, label = _open_cgroup(cgroup)
    description = f"cgroup/{attach_type.name.lower()} on {label}"
    try:
        if use_link is None:
            use_link = features.have("bpf_link")
        elif use_link:
            features.require("bpf_link", description)
        if use_link:
            fd = kbpf.link_create(program.fd, cg_fd, attach_type, hints=_CGROUP_HINTS)
            kbpf.close(cg_fd)  # the link holds the cgroup
            return BpfLink(fd, program, description)
        kbpf.prog_attach(cg_fd, program.fd, attach_type, BPF_F_ALLOW_MULTI)
    except NotSupportedError:
        kbpf.close(cg_fd)
        raise
    except BPFError as e:
        kbpf.close(cg_fd)
        raise BPFError(e.cmd, e.errno, description,
                       _CGROUP_HINTS.get(e.errno, e.hint)) from None
    except BaseException:
        kbpf.close(cg_fd)
        raise
    return CgroupAttachment(cg_fd, program, attach_type, description)


_CGROUP_HINTS = {
    errno.EINVAL: "the kernel refused this attach type for the program: a program is "
                  "loaded for one attach type (its section, e.g. cgroup/sock_create) "
                  "and attaches only there",
    errno.EPERM: "the cgroup already has a program attached without BPF_F_ALLOW_MULTI "
                 "(by another tool); detach that first",
}


def _open_cgroup(cgroup):
    """(fd, label) of a cgroup v2 directory; AttachError for anything else."""
    if isinstance(cgroup, int):
        return os.dup(cgroup), f"fd {cgroup}"
    path = os.fspath(cgroup)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise AttachError(f"cgroup {path!r} does not exist; create it with mkdir inside "
                          f"the cgroup v2 mount ({cgroup2_mount()})") from None
    except NotADirectoryError:
        raise AttachError(f"cgroup {path!r} is not a directory") from None
    try:
        fstype = mounts.fs_type(path)
    except OSError:
        fstype = None
    if fstype != mounts.CGROUP2_SUPER_MAGIC:
        os.close(fd)
        what = "a cgroup v1 hierarchy" if fstype == mounts.CGROUP1_SUPER_MAGIC else \
            "not on a cgroup filesystem"
        raise AttachError(f"{path!r} is {what}: BPF programs attach to cgroup v2 "
                          f"directories ({cgroup2_mount()})")
    return fd, path


def cgroup2_mount():
    where = mounts.mount_point("cgroup2")
    return f"mounted at {where}" if where else \
        f"not mounted here: `mount -t cgroup2 none {mounts.CGROUP2_DEFAULT}`"


def attach_section(program, sd, cgroup=None):
    """cgroup_skb/ingress|egress, cgroup/HOOK, sockops, lsm_cgroup/HOOK."""
    if cgroup is None:
        raise AttachError(f"{sd.section!r} programs attach to a cgroup: pass cgroup= "
                          f"(a cgroup v2 directory, {cgroup2_mount()})")
    if sd.expected_attach_type is None and program.type == ProgType.CGROUP_SKB:
        raise AttachError(f"section {sd.section!r} does not say ingress or egress: use "
                          f"cgroup_skb/ingress or cgroup_skb/egress, or attach_cgroup("
                          f"program, cgroup, attach_type=...)")
    return attach_cgroup(program, cgroup, sd.expected_attach_type)
