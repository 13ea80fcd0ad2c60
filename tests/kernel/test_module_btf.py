"""Kfuncs and CO-RE types that live in a module's BTF (nf_conntrack's), not vmlinux's.

The host's 6.18 has no modules, so this runs in the VM tier: Debian's 6.1 builds
nf_conntrack as a module with BTF (CONFIG_DEBUG_INFO_BTF_MODULES)."""
import os
import subprocess

import pytest

from pybpf.kernel import btffiles
from pybpf.loader import BpfObject

ENOENT = 2


@pytest.fixture(scope="module")
def conntrack_btf():
    if "nf_conntrack" not in btffiles.module_names():
        subprocess.run(["modprobe", "nf_conntrack"], capture_output=True)
    if "nf_conntrack" not in btffiles.module_names():
        pytest.skip("needs nf_conntrack as a module with BTF (CONFIG_DEBUG_INFO_BTF_MODULES):"
                    " Debian's stock 6.1 in the VM tier (tools/vm-run) has it")


@pytest.fixture(scope="module")
def conntrack_object(bpf_object):
    return bpf_object("modules/conntrack")


@pytest.mark.vm
def test_a_module_kfunc_is_called_and_a_module_type_relocated(conntrack_btf,
                                                               conntrack_object):
    with BpfObject.open(conntrack_object) as o:
        o.load()
        assert o.programs["lookup"].test_run(b"\0" * 64).retval == 2  # XDP_PASS
        # No such connection: the module's kfunc ran and said so.
        assert o.variables["lookup_error"] == -ENOENT
        # nf_conn_tstamp exists only in the module; its stop field is at 8 there.
        assert o.variables["stop_offset"] == 8


@pytest.mark.vm
def test_module_btf_fds_are_not_kept_after_load(conntrack_btf, conntrack_object):
    def btf_fds():
        own = set()
        for fd in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:btf":
                    own.add(fd)
            except OSError:
                pass
        return own
    before = btf_fds()
    with BpfObject.open(conntrack_object) as o:
        o.load()
        # What stays is the object's own BTF; the module's fd went after the load.
        assert len(btf_fds() - before) == 1
    assert btf_fds() == before
