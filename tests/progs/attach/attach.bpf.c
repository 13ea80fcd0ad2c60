/* Programs for tests/kernel/test_attach.py: one per kind of hook, each counting its
 * runs in a slot of `counts` (the slot numbers are the SLOT_* names of the test). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define SLOT_TRACEPOINT 0
#define SLOT_RAW_TP 1
#define SLOT_UPROBE 2
#define SLOT_URETPROBE 3
#define SLOT_KPROBE 4
#define SLOT_KRETPROBE 5
#define SLOT_PERF_EVENT 6
#define SLOT_SOCK_CREATE 7
#define SLOT_COOKIE 8
#define SLOT_RETVAL 9
#define SLOT_CGROUP_SKB 10
#define NR_GETPID 39 /* x86_64; the tests run on x86_64 */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

/* The process whose events count (0: every process); set before load. */
volatile const __u32 target_tgid = 0;

static __always_inline int mine(void)
{
	return !target_tgid || (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

static __always_inline void add(__u32 slot, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&counts, &slot);

	if (v)
		__sync_fetch_and_add(v, n);
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int tp_getpid(void *ctx)
{
	if (mine())
		add(SLOT_TRACEPOINT, 1);
	return 0;
}

SEC("raw_tracepoint/sys_enter")
int raw_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	if (mine() && ctx->args[1] == NR_GETPID)
		add(SLOT_RAW_TP, 1);
	return 0;
}

/* The uprobe programs count every hit (the pid filter is the kernel's, under test);
 * the uretprobe also sums the probed function's return values (rax on x86_64). */
SEC("uprobe")
int on_uprobe(struct pt_regs *ctx)
{
	add(SLOT_UPROBE, 1);
	add(SLOT_COOKIE, bpf_get_attach_cookie(ctx));
	return 0;
}

SEC("uretprobe")
int on_uretprobe(struct pt_regs *ctx)
{
	add(SLOT_URETPROBE, 1);
	add(SLOT_RETVAL, *(__u64 *)((char *)ctx + 80)); /* pt_regs.ax on x86_64 */
	return 0;
}

SEC("kprobe/__x64_sys_getpid")
int on_kprobe(struct pt_regs *ctx)
{
	if (mine())
		add(SLOT_KPROBE, 1);
	add(SLOT_COOKIE, bpf_get_attach_cookie(ctx));
	return 0;
}

SEC("kretprobe/__x64_sys_getpid")
int on_kretprobe(struct pt_regs *ctx)
{
	if (mine())
		add(SLOT_KRETPROBE, 1);
	return 0;
}

SEC("perf_event")
int on_sample(void *ctx)
{
	add(SLOT_PERF_EVENT, 1);
	return 0;
}

SEC("cgroup/sock_create")
int on_sock_create(struct bpf_sock *sk)
{
	add(SLOT_SOCK_CREATE, 1);
	return 1; /* allow */
}

SEC("cgroup_skb/egress")
int on_egress(struct __sk_buff *skb)
{
	add(SLOT_CGROUP_SKB, 1);
	return 1; /* allow */
}

SEC("xdp")
int pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("socket")
int sock_filter(struct __sk_buff *skb)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
