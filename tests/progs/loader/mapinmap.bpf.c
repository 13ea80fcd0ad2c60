#include "common.h"

/* Map-in-map with an inner map definition and an initial element. */
struct inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
};

struct inner first SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner);
} outer SEC(".maps") = {
	.values = { [0] = &first },
};

SEC("xdp")
int read_inner(struct xdp_md *ctx)
{
	__u32 zero = 0, *v;
	void *m = bpf_map_lookup_elem(&outer, &zero);

	if (!m)
		return 0;
	v = bpf_map_lookup_elem(m, &zero);
	return v ? *v : 0;
}

char LICENSE[] SEC("license") = "GPL";
