#include "common.h"

/* A per-CPU cgroup storage whose value is one page: the kernel hands user space
 * round_up(4096, 8) bytes for every possible CPU, far more than one value. Counts the
 * packets the cgroup sends, in the first bytes of this CPU's value. */
struct page {
	__u64 packets;
	__u8 rest[4096 - 8];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE);
	__type(key, struct bpf_cgroup_storage_key);
	__type(value, struct page);
} storage SEC(".maps");

SEC("cgroup_skb/egress")
int count_egress(struct __sk_buff *skb)
{
	struct page *value = bpf_get_local_storage(&storage, 0);

	value->packets++;
	return 1; /* let it through */
}

char LICENSE[] SEC("license") = "GPL";
