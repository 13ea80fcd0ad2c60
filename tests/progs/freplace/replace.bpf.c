/* Replaces decide() of target.bpf.c's program while attached. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("freplace/decide") int new_decide(struct __sk_buff *skb)
{
	return 42;
}

char LICENSE[] SEC("license") = "GPL";
