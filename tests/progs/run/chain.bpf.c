#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* a tail-calls b tail-calls c through `jumps`, which user space fills; each adds to
 * result. Only getpid() calls (GETPID_NR, from the build) count: of target_pid, or of
 * every process while target_pid is 0. */
__u32 target_pid;
__u64 result;

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} jumps SEC(".maps");

static __always_inline int wanted(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	return ctx->args[1] == GETPID_NR && (!target_pid || tgid == target_pid);
}

SEC("raw_tracepoint/sys_enter")
int c(struct bpf_raw_tracepoint_args *ctx)
{
	__sync_fetch_and_add(&result, 100);
	return 3;
}

SEC("raw_tracepoint/sys_enter")
int b(struct bpf_raw_tracepoint_args *ctx)
{
	__sync_fetch_and_add(&result, 10);
	bpf_tail_call(ctx, &jumps, 2);
	return 2;
}

SEC("raw_tracepoint/sys_enter")
int a(struct bpf_raw_tracepoint_args *ctx)
{
	if (!wanted(ctx))
		return 0;
	__sync_fetch_and_add(&result, 1);
	bpf_tail_call(ctx, &jumps, 1);
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
