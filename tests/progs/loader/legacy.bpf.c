#include "common.h"

/* The pre-BTF way to define maps: struct bpf_map_def in section "maps". */
struct legacy_map_def {
	unsigned int type, key_size, value_size, max_entries, map_flags;
};

struct legacy_map_def old_counts SEC("maps") = {
	.type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 8, .max_entries = 2,
};

SEC("socket")
int count(struct __sk_buff *skb)
{
	__u32 one = 1;
	__u64 *v = bpf_map_lookup_elem(&old_counts, &one);

	if (v)
		*v += 3;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
