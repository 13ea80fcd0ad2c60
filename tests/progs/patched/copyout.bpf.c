/* Kprobes on copyout(to, from, n), the copy of a read() to user space in a kernel built
 * with kernel-config/ (tools/build-kernel), for tests/kernel/test_patched_kernel.py.
 * Both count what target_tgid's calls ask to copy; skip_copyout also makes copyout()
 * return 0 ("no byte left uncopied") without copying, via bpf_override_return. */
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define SLOT_CALLS 0 /* copyout() calls by target_tgid */
#define SLOT_BYTES 1 /* the n they asked to copy, summed */
#define SLOT_OVERRIDDEN 2 /* calls whose copy was skipped */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

/* The one process whose copies count (and, for skip_copyout, are skipped); set before
 * load. Every other process's copyout() runs untouched. */
volatile const __u32 target_tgid = 0;

static __always_inline void add(__u32 slot, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&counts, &slot);

	if (v)
		__sync_fetch_and_add(v, n);
}

static __always_inline int mine(struct pt_regs *ctx)
{
	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	add(SLOT_CALLS, 1);
	add(SLOT_BYTES, PT_REGS_PARM3(ctx));
	return 1;
}

SEC("kprobe/copyout")
int count_copyout(struct pt_regs *ctx)
{
	mine(ctx);
	return 0;
}

SEC("kprobe/copyout")
int skip_copyout(struct pt_regs *ctx)
{
	if (mine(ctx) && bpf_override_return(ctx, 0) == 0)
		add(SLOT_OVERRIDDEN, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
