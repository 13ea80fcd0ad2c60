#include "common.h"

/* Global data in every section kind, read by a program through subprograms. */
int counter = 5;                       /* .data */
const volatile int threshold = 10;     /* .rodata, set by the user before load */
unsigned long long last_len;           /* .bss, written by the program */
int last_class;                        /* .bss */
const char greeting[] = "hello";       /* .rodata */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} lengths SEC(".maps");

static int add_one(__u32 i, void *ctx)
{
	(*(int *)ctx)++;
	return 0;
}

static __attribute__((noinline)) int scale(int x)
{
	return x * 2 + counter;
}

__attribute__((noinline)) int classify(int len)
{
	int loops = 0;

	bpf_loop(3, add_one, &loops, 0);
	return (scale(len) > threshold ? 1 : 0) + loops * 10 + (greeting[1] == 'e' ? 100 : 0);
}

SEC("xdp")
int measure(struct xdp_md *ctx)
{
	int len = ctx->data_end - ctx->data;
	__u32 key = len;
	__u64 one = 1, *seen;

	last_len = len;
	seen = bpf_map_lookup_elem(&lengths, &key);
	if (seen)
		__sync_fetch_and_add(seen, 1);
	else
		bpf_map_update_elem(&lengths, &key, &one, BPF_ANY);
	last_class = classify(len);
	return last_class >= 100 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
