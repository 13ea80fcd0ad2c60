// SPDX-License-Identifier: GPL-2.0
/* A kprobe and a uprobe that count the calls of one process and sum one argument of
 * each, read from the architecture's pt_regs (PT_REGS_PARM*): what the arm64 VM tier
 * (tests/kernel/test_arm64_tier.py) checks, since pt_regs differ per architecture.
 * Built for the guest's architecture with tools/build_programs.py's flags. */
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

struct totals {
	__u64 calls;
	__u64 sum;
};

/* Slot 0: the kprobe's, slot 1: the uprobe's. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct totals);
} totals SEC(".maps");

const volatile __u32 tgid;
/* Only arguments in [lo, hi) count: the caller picks values no other call of its own
 * process passes. */
const volatile __u64 lo, hi;

static __always_inline int add(__u32 slot, __u64 arg)
{
	struct totals *t;

	if ((bpf_get_current_pid_tgid() >> 32) != tgid || arg < lo || arg >= hi)
		return 0;
	t = bpf_map_lookup_elem(&totals, &slot);
	if (!t)
		return 0;
	__sync_fetch_and_add(&t->calls, 1);
	__sync_fetch_and_add(&t->sum, arg);
	return 0;
}

/* vfs_read(file, buf, count, pos): the count of each read(2). */
SEC("kprobe/vfs_read")
int BPF_KPROBE(sum_vfs_read, void *file, void *buf, __u64 count)
{
	return add(0, count);
}

/* umask(mask) in the C library, attached by the test. */
SEC("uprobe")
int BPF_KPROBE(sum_umask, __u64 mask)
{
	return add(1, mask);
}
