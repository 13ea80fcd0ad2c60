#include "common.h"

/* Counts UDP packets to port, one counter per direction; lets everything through. */
const volatile __u16 port = 0;
__u64 ingress_packets;
__u64 egress_packets;

static __always_inline int matches(struct __sk_buff *skb)
{
	struct udphdr *udp = udp_header((void *)(long)skb->data, (void *)(long)skb->data_end);

	return udp && udp->dest == bpf_htons(port);
}

SEC("tc")
int count_ingress(struct __sk_buff *skb)
{
	if (matches(skb))
		__sync_fetch_and_add(&ingress_packets, 1);
	return 0; /* TC_ACT_OK */
}

SEC("tc")
int count_egress(struct __sk_buff *skb)
{
	if (matches(skb))
		__sync_fetch_and_add(&egress_packets, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
