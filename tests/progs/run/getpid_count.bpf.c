#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Counts getpid() calls per process (tgid) at the raw sys_enter tracepoint.
 * GETPID_NR (the architecture's syscall number) comes from the build: -DGETPID_NR=39. */
__u64 total;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} calls SEC(".maps");

SEC("raw_tracepoint/sys_enter")
int count_getpid(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 one = 1, *n;

	if (ctx->args[1] != GETPID_NR)
		return 0;
	__sync_fetch_and_add(&total, 1);
	n = bpf_map_lookup_elem(&calls, &tgid);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&calls, &tgid, &one, BPF_NOEXIST);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
