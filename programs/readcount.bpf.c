// SPDX-License-Identifier: GPL-2.0
/* Bytes returned by read(2), per process: the simplest member of the read-path family
 * the filter-reduce pipeline builds on. Shipped compiled, so an installed pybpf can
 * load it without clang:  python -m pybpf load $(python -m pybpf.shipped readcount)
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* The fixed part of the syscalls:sys_exit_read record (see its tracefs format). */
struct sys_exit_args {
	__u64 common;
	__s32 syscall_nr;
	__s64 ret;
};

struct read_totals {
	__u64 calls;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);                /* tgid */
	__type(value, struct read_totals);
} totals SEC(".maps");

const volatile __u32 only_tgid;        /* 0: every process */

SEC("tracepoint/syscalls/sys_exit_read")
int count_read(struct sys_exit_args *args)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct read_totals *t, zero = {};

	if (args->ret < 0 || (only_tgid && tgid != only_tgid))
		return 0;
	t = bpf_map_lookup_elem(&totals, &tgid);
	if (!t) {
		bpf_map_update_elem(&totals, &tgid, &zero, BPF_NOEXIST);
		t = bpf_map_lookup_elem(&totals, &tgid);
		if (!t)
			return 0;
	}
	__sync_fetch_and_add(&t->calls, 1);
	__sync_fetch_and_add(&t->bytes, args->ret);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
