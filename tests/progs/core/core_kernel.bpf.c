/* CO-RE reads of the running kernel's own structures, for
 * tests/kernel/test_core_load.py. The local definitions below hold only the fields
 * used, in an order unlike the kernel's, so every offset must be relocated against
 * /sys/kernel/btf/vmlinux for the programs to read the right values. No maps: each
 * program reports through its return value (BPF_PROG_TEST_RUN's retval). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct task_struct {
	char comm[16];
	struct task_struct *real_parent;
	int tgid;
	int pid;
} __attribute__((preserve_access_index));

/* A task_struct as no kernel has it: this field exists nowhere. */
struct task_struct___missing {
	int pybpf_no_such_field;
} __attribute__((preserve_access_index));

/* The context of socket filters, fields reversed. */
struct __sk_buff___local {
	__u32 protocol;
	__u32 mark;
	__u32 len;
} __attribute__((preserve_access_index));

/* The calling task's tgid (the test's process id). */
SEC("raw_tracepoint/sys_enter")
int task_tgid(void *ctx)
{
	struct task_struct *task = (void *)bpf_get_current_task();

	return BPF_CORE_READ(task, tgid);
}

/* The calling task's pid (its thread id) and its parent's tgid: pid * 2^16 ^ ppid
 * would overflow; the test runs this one and compares against getppid(). */
SEC("raw_tracepoint/sys_enter")
int parent_tgid(void *ctx)
{
	struct task_struct *task = (void *)bpf_get_current_task();

	return BPF_CORE_READ(task, real_parent, tgid);
}

/* The first four bytes of the task's comm, and a check of its size. */
SEC("raw_tracepoint/sys_enter")
int comm_head(void *ctx)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	__u32 head = 0;

	if (bpf_core_field_size(task->comm) != 16)
		return 0;
	bpf_probe_read_kernel(&head, sizeof(head), &task->comm);
	return head;
}

/* The missing field is read only where the kernel has it: loads everywhere. */
SEC("raw_tracepoint/sys_enter")
int guarded(void *ctx)
{
	struct task_struct___missing *task = (void *)bpf_get_current_task();

	if (bpf_core_field_exists(task->pybpf_no_such_field))
		return BPF_CORE_READ(task, pybpf_no_such_field);
	return 7;
}

/* The missing field is read unconditionally: the verifier must refuse the poisoned
 * instruction. */
SEC("raw_tracepoint/sys_enter")
int unguarded(void *ctx)
{
	struct task_struct___missing *task = (void *)bpf_get_current_task();

	return BPF_CORE_READ(task, pybpf_no_such_field);
}

/* Direct context loads of relocated __sk_buff fields. */
SEC("tc")
int skb_len(struct __sk_buff___local *skb)
{
	return skb->len;
}

SEC("tc")
int skb_protocol(struct __sk_buff___local *skb)
{
	return skb->protocol;
}

char LICENSE[] SEC("license") = "GPL";
