"""Kernel constants newer than the UAPI header constants.py is generated from (6.1).

TYPED BY HAND, from include/uapi/linux/bpf.h of the kernel named beside each one; the
kernel ABI never renumbers them. Everything here moves into the generated
constants.py when the generator runs against a newer header, and this module then
goes away: nothing else may add hand-typed kernel numbers.
"""

# enum bpf_map_type
BPF_MAP_TYPE_CGRP_STORAGE = 32  # 6.2
BPF_MAP_TYPE_ARENA = 33  # 6.9
# The last map type these constants name: a larger number is a type pybpf cannot
# know anything about (not even whether its values are per-CPU).
LAST_MAP_TYPE = BPF_MAP_TYPE_ARENA

# enum bpf_prog_type
BPF_PROG_TYPE_NETFILTER = 32  # 6.4

# Names of the newer types, as the kernel spells them (bpftool, listings).
MAP_TYPE_NAMES = {BPF_MAP_TYPE_CGRP_STORAGE: "cgrp_storage", BPF_MAP_TYPE_ARENA: "arena"}
PROG_TYPE_NAMES = {BPF_PROG_TYPE_NETFILTER: "netfilter"}

# enum bpf_attach_type
BPF_TCX_INGRESS = 46  # 6.6
BPF_TCX_EGRESS = 47  # 6.6
TCX_KERNEL = (6, 6)  # the first kernel with tcx links

# enum bpf_link_type
BPF_LINK_TYPE_NETFILTER = 10  # 6.4
BPF_LINK_TYPE_TCX = 11  # 6.6
BPF_LINK_TYPE_UPROBE_MULTI = 12  # 6.6
BPF_LINK_TYPE_NETKIT = 13  # 6.7
LINK_TYPE_NAMES = {BPF_LINK_TYPE_NETFILTER: "netfilter", BPF_LINK_TYPE_TCX: "tcx",
                   BPF_LINK_TYPE_UPROBE_MULTI: "uprobe_multi", BPF_LINK_TYPE_NETKIT: "netkit"}
ATTACH_TYPE_NAMES = {BPF_TCX_INGRESS: "tcx_ingress", BPF_TCX_EGRESS: "tcx_egress"}
