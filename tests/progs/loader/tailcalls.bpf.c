#include "common.h"

/* A prog_array filled from its .values initialiser: a -> b -> c. */
__u64 result;

int b(struct __sk_buff *skb);
int c(struct __sk_buff *skb);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, int (void *));
} jumps SEC(".maps") = {
	.values = { [1] = (void *)&b, [2] = (void *)&c },
};

SEC("tc")
int c(struct __sk_buff *skb)
{
	result += 100;
	return 3;
}

SEC("tc")
int b(struct __sk_buff *skb)
{
	result += 10;
	bpf_tail_call(skb, &jumps, 2);
	return 2;
}

SEC("tc")
int a(struct __sk_buff *skb)
{
	result += 1;
	bpf_tail_call(skb, &jumps, 1);
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
