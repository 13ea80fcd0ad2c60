/* Kfuncs and CO-RE types of a module (nf_conntrack): the loader finds them in the
 * module's BTF, calls the kfuncs through the program's fd_array and relocates
 * field offsets against the module's struct. */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

struct bpf_ct_opts {	/* net/netfilter/nf_conntrack_bpf.c, 6.1: NF_BPF_CT_OPTS_SZ 12 */
	__s32 netns_id;
	__s32 error;
	__u8 l4proto;
	__u8 dir;
	__u8 reserved[2];
};

/* A struct only nf_conntrack's BTF has (not vmlinux's, in Debian's 6.1), declared with
 * just the field whose offset the test reads: stop, at 8 in the module. */
struct nf_conn_tstamp___local {
	__u64 stop;
} __attribute__((preserve_access_index));

struct nf_conn;
extern struct nf_conn *bpf_xdp_ct_lookup(struct xdp_md *ctx, struct bpf_sock_tuple *tuple,
					 __u32 tuple__sz, struct bpf_ct_opts *opts,
					 __u32 opts__sz) __ksym;
extern void bpf_ct_release(struct nf_conn *ct) __ksym;

int lookup_error = 1;
int stop_offset = -1;

SEC("xdp") int lookup(struct xdp_md *ctx)
{
	struct bpf_sock_tuple tuple = {};
	struct bpf_ct_opts opts = { .netns_id = -1, .l4proto = IPPROTO_TCP };
	struct nf_conn *ct;

	tuple.ipv4.saddr = 0x0100007f;
	tuple.ipv4.daddr = 0x0100007f;
	tuple.ipv4.sport = 0x3930;
	tuple.ipv4.dport = 0x3930;
	ct = bpf_xdp_ct_lookup(ctx, &tuple, sizeof(tuple.ipv4), &opts, sizeof(opts));
	if (ct) {
		bpf_ct_release(ct);
		lookup_error = 0;
	} else {
		lookup_error = opts.error;
	}
	stop_offset = __builtin_preserve_field_info(
		((struct nf_conn_tstamp___local *)0)->stop, 0 /* BPF_FIELD_BYTE_OFFSET */);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
