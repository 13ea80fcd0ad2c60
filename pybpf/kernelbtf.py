"""The running kernel's BTF as a loader needs it: vmlinux and every loaded module's.

A kfunc, a kernel variable or a CO-RE target type may live in a module (nf_conntrack's
bpf_xdp_ct_lookup, a driver's structs). As libbpf does, vmlinux is searched first and
the modules only for what it lacks, each module's BTF split on vmlinux's. A program
names a module's BTF by fd: a kfunc call by its index in the program's fd_array (0
means vmlinux), a kernel variable's ld_imm64 by the fd itself; those fds are found
among the kernel's BTF objects by the module's name, once, and owned here.
"""
from .btf import Btf, BtfError
from .btf.handle import KernelBtf
from .errors import BPFError
from .kernel import bpf as kbpf
from .kernel import btffiles


class KernelBtfs:
    """vmlinux (or a stand-in given by the user, which has no modules) and modules."""

    def __init__(self, vmlinux, with_modules=True):
        self.vmlinux = vmlinux
        self._with_modules = with_modules
        self._modules = None
        self._fds = {}

    def modules(self):
        """{module name: its Btf}, read on first use."""
        if self._modules is None:
            self._modules = {}
            for name in btffiles.module_names() if self._with_modules else ():
                try:
                    self._modules[name] = Btf.module(name, base=self.vmlinux)
                except (BtfError, OSError):
                    continue  # unloaded since it was listed, or unreadable: not a target
        return self._modules

    def targets(self):
        """{"vmlinux": Btf, module: Btf, ...}, vmlinux first (for CO-RE candidates)."""
        return {"vmlinux": self.vmlinux, **self.modules()}

    def find(self, name, kind):
        """(module name or None for vmlinux, type id) of the first type named name of
        kind, or None."""
        ids = self.vmlinux.find(name, kind)
        if ids:
            return None, ids[0]
        for module, btf in self.modules().items():
            own = [i for i in btf.find(name, kind) if i >= btf.start_id]
            if own:
                return module, own[0]
        return None

    def fd(self, module):
        """The fd of module's BTF object in the kernel (owned here until close())."""
        if module not in self._fds:
            self._fds[module] = _module_btf(module)
        return self._fds[module].fd

    def close(self):
        for handle in self._fds.values():
            handle.close()
        self._fds.clear()


def _module_btf(module):
    """A KernelBtf of the kernel's BTF object named module (BTF_GET_NEXT_ID walk)."""
    btf_id = 0
    while True:
        btf_id = kbpf.btf_get_next_id(btf_id)
        if btf_id is None:
            raise BtfError(f"module {module!r} has BTF in {btffiles.BTF_DIR} but no BTF "
                           f"object of that name is loaded (was it just unloaded?)")
        try:
            handle = KernelBtf(kbpf.btf_get_fd_by_id(btf_id))
        except BPFError:
            continue  # gone between the two calls
        info, name, _ = kbpf.btf_info(handle.fd)
        if name == module and info.kernel_btf:
            return handle
        handle.close()
