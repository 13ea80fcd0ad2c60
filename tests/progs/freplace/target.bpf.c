/* A program with a global function another program can replace (freplace). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__noinline int decide(struct __sk_buff *skb)
{
	return skb->len > 0 ? 1 : 0;
}

SEC("tc") int entry(struct __sk_buff *skb)
{
	return decide(skb);
}

char LICENSE[] SEC("license") = "GPL";
