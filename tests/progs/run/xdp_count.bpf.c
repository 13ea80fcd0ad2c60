#include "common.h"

/* Counts UDP packets and drops those sent to drop_port. */
const volatile __u16 drop_port = 0;

enum { SEEN_UDP, DROPPED, NR_COUNTS };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NR_COUNTS);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

static __always_inline void count(__u32 slot)
{
	__u64 *n = bpf_map_lookup_elem(&counts, &slot);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("xdp")
int xdp_filter(struct xdp_md *ctx)
{
	struct udphdr *udp = udp_header((void *)(long)ctx->data, (void *)(long)ctx->data_end);

	if (!udp)
		return XDP_PASS;
	count(SEEN_UDP);
	if (drop_port && udp->dest == bpf_htons(drop_port)) {
		count(DROPPED);
		return XDP_DROP;
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
