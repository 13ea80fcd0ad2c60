/* USDT programs for tests/kernel/test_usdt.py: the arguments of pybpf:tick and
 * pybpf:bytes (tests/progs/attach/usdt_target.c), read with libbpf's bpf_usdt_arg(),
 * summed into `sums`. USDT_TARGET, the target's path, comes from the compiler's
 * command line. */
#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/usdt.bpf.h>

/* Slots of sums. */
enum { TICK_X, TICK_Y, TICK_HITS, TICK_ARGC, TICK_COOKIE, BYTES_C, BYTES_S, BYTES_K,
       BYTES_HITS, SLEEPABLE_HITS, NSLOTS };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NSLOTS);
	__type(key, __u32);
	__type(value, __s64);
} sums SEC(".maps");

static void add(__u32 slot, long value)
{
	__s64 *sum = bpf_map_lookup_elem(&sums, &slot);

	if (sum)
		__sync_fetch_and_add(sum, value);
}

SEC("usdt/" USDT_TARGET ":pybpf:tick")
int BPF_USDT(on_tick, int x, long y)
{
	add(TICK_X, x);
	add(TICK_Y, y);
	add(TICK_HITS, 1);
	add(TICK_ARGC, bpf_usdt_arg_cnt(ctx));
	add(TICK_COOKIE, bpf_usdt_cookie(ctx));
	return 0;
}

SEC("usdt/" USDT_TARGET ":pybpf:bytes")
int BPF_USDT(on_bytes, long c, long s, long k)
{
	add(BYTES_C, c);
	add(BYTES_S, s);
	add(BYTES_K, k);
	add(BYTES_HITS, 1);
	return 0;
}

SEC("usdt.s/" USDT_TARGET ":pybpf:tick")
int on_tick_sleepable(struct pt_regs *ctx)
{
	add(SLEEPABLE_HITS, 1);
	return 0;
}

/* No target in the section: attached with attach_usdt(). */
SEC("usdt")
int BPF_USDT(on_any, long x)
{
	add(TICK_X, x);
	add(TICK_HITS, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
