/* A program that throws (bpf_throw, 6.7+) from a subprogram, with its own exception
 * callback: the callback is called by nothing, so the loader must place it in the
 * program's image for the kernel to find it by name. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

extern void bpf_throw(__u64 cookie) __ksym;

__noinline int on_throw(__u64 cookie)
{
	return cookie + 100;
}

static __noinline int check(int len)
{
	if (len > 40)
		bpf_throw(7);
	return len;
}

__attribute__((btf_decl_tag("exception_callback:on_throw")))
SEC("tc") int throws(struct __sk_buff *skb)
{
	return check(skb->len);
}

SEC("tc") int plain(struct __sk_buff *skb)
{
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
