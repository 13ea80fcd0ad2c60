/* A tracing (fentry) program, kept apart from attach.bpf.c: kernels that refuse
 * tracing programs refuse it at load, and the test checks what that error says. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__u64 hits = 0;

SEC("fentry/do_sys_openat2")
int on_fentry(void *ctx)
{
	__sync_fetch_and_add(&hits, 1);
	return 0;
}

SEC("fexit/do_sys_openat2")
int on_fexit(void *ctx)
{
	__sync_fetch_and_add(&hits, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
