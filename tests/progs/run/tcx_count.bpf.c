#include "common.h"

/* tc_count.bpf.c's counters from the sections that name their direction, which
 * attach/tcx.py attaches as tcx links: UDP packets to port; everything passes. */
const volatile __u16 port = 0;
__u64 ingress_packets;
__u64 egress_packets;

#define COUNTER(section, name, counter)                                               \
	SEC(section) int name(struct __sk_buff *skb)                                  \
	{                                                                             \
		struct udphdr *udp = udp_header((void *)(long)skb->data,              \
						(void *)(long)skb->data_end);         \
		if (udp && udp->dest == bpf_htons(port))                              \
			__sync_fetch_and_add(&counter, 1);                            \
		return -1; /* TCX_NEXT */                                             \
	}

COUNTER("tcx/ingress", tcx_ingress, ingress_packets)
COUNTER("tc/egress", tc_egress, egress_packets)

char LICENSE[] SEC("license") = "GPL";
