/* ~50 CO-RE relocations over a dozen kernel types, for the timing test in
 * tests/unit/test_core.py (relocated against /sys/kernel/btf/vmlinux, never loaded).
 * The local definitions name fields every 6.x kernel has. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define PAI __attribute__((preserve_access_index))

struct list_head { struct list_head *next, *prev; } PAI;
struct qstr { const unsigned char *name; } PAI;
struct super_block { unsigned long s_blocksize; unsigned long s_flags; unsigned long s_magic; } PAI;
struct inode { unsigned short i_mode; unsigned int i_flags; unsigned long i_ino; long long i_size;
	       struct super_block *i_sb; } PAI;
struct dentry { struct qstr d_name; struct inode *d_inode; struct dentry *d_parent; } PAI;
struct path { struct dentry *dentry; } PAI;
struct file { struct path f_path; struct inode *f_inode; unsigned int f_flags; } PAI;
struct mm_struct { unsigned long start_code, end_code, start_data, end_data, start_brk, brk,
		   start_stack, arg_start, arg_end, env_start, env_end; } PAI;
struct cred { unsigned int securebits; } PAI;
struct nsproxy { struct pid_namespace *pid_ns_for_children; } PAI;
struct pid_namespace { unsigned int level; } PAI;
struct signal_struct { int nr_threads; } PAI;
struct sock_common { unsigned short skc_family; unsigned int skc_rcv_saddr, skc_daddr;
		     unsigned short skc_num; } PAI;
struct sock { struct sock_common __sk_common; int sk_rcvbuf; int sk_sndbuf; } PAI;
struct net_device { char name[16]; int ifindex; unsigned int mtu; } PAI;
struct sk_buff { unsigned int len, data_len; unsigned short protocol; struct sock *sk;
		 struct net_device *dev; unsigned char *head, *data; } PAI;
struct task_struct { int pid, tgid; struct task_struct *real_parent, *group_leader;
		     struct mm_struct *mm; const struct cred *cred; char comm[16];
		     struct nsproxy *nsproxy; struct signal_struct *signal;
		     struct list_head children; unsigned int flags; int prio; } PAI;

SEC("raw_tracepoint/perf")
long perf(void *ctx)
{
	struct task_struct *t = (void *)bpf_get_current_task();
	struct sk_buff *skb = ctx;
	struct file *f = (void *)t;
	long r = 0;

	r += BPF_CORE_READ(t, pid) + BPF_CORE_READ(t, tgid) + BPF_CORE_READ(t, flags);
	r += BPF_CORE_READ(t, prio) + BPF_CORE_READ(t, real_parent, tgid);
	r += BPF_CORE_READ(t, group_leader, pid) + BPF_CORE_READ(t, cred, securebits);
	r += BPF_CORE_READ(t, mm, start_code) + BPF_CORE_READ(t, mm, end_code);
	r += BPF_CORE_READ(t, mm, start_data) + BPF_CORE_READ(t, mm, end_data);
	r += BPF_CORE_READ(t, mm, start_brk) + BPF_CORE_READ(t, mm, brk);
	r += BPF_CORE_READ(t, mm, start_stack) + BPF_CORE_READ(t, mm, arg_start);
	r += BPF_CORE_READ(t, mm, arg_end) + BPF_CORE_READ(t, mm, env_start);
	r += BPF_CORE_READ(t, mm, env_end);
	r += BPF_CORE_READ(t, nsproxy, pid_ns_for_children, level);
	r += BPF_CORE_READ(t, signal, nr_threads);
	r += (long)BPF_CORE_READ(t, children.next);
	r += bpf_core_field_size(t->comm) + bpf_core_field_exists(t->prio);
	r += BPF_CORE_READ(skb, len) + BPF_CORE_READ(skb, data_len);
	r += BPF_CORE_READ(skb, protocol) + BPF_CORE_READ(skb, dev, ifindex);
	r += BPF_CORE_READ(skb, dev, mtu) + (long)BPF_CORE_READ(skb, head);
	r += (long)BPF_CORE_READ(skb, data);
	r += BPF_CORE_READ(skb, sk, __sk_common.skc_family);
	r += BPF_CORE_READ(skb, sk, __sk_common.skc_num);
	r += BPF_CORE_READ(skb, sk, __sk_common.skc_daddr);
	r += BPF_CORE_READ(skb, sk, sk_rcvbuf) + BPF_CORE_READ(skb, sk, sk_sndbuf);
	r += BPF_CORE_READ(f, f_inode, i_ino) + BPF_CORE_READ(f, f_inode, i_size);
	r += BPF_CORE_READ(f, f_inode, i_mode) + BPF_CORE_READ(f, f_flags);
	r += BPF_CORE_READ(f, f_path.dentry, d_inode, i_sb, s_magic);
	r += (long)BPF_CORE_READ(f, f_path.dentry, d_name.name);
	r += bpf_core_type_exists(struct pid_namespace);
	return r;
}

char LICENSE[] SEC("license") = "GPL";
