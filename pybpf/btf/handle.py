"""A BTF object loaded into the kernel (BPF_BTF_LOAD), owned like every other fd."""
from ..fd import FdObject
from ..kernel import bpf as kbpf


class KernelBtf(FdObject):
    """The kernel's copy of some BTF: programs and maps refer to it by fd at load."""

    @classmethod
    def load(cls, btf, log_level=0):
        """Load a Btf (or raw BTF bytes); VerifierError carries the kernel's BTF log."""
        raw = btf if isinstance(btf, (bytes, bytearray)) else btf.to_bytes()
        return cls(kbpf.btf_load(raw, log_level))

    @property
    def id(self):
        return kbpf.btf_info(self.fd)[0].id
