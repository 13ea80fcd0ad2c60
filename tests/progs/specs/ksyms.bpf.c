/* Externs of both __ksym kinds, for the spec tests: parsed only, never loaded. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
extern const void bpf_prog_active __ksym;
extern const void pybpf_no_such_symbol __ksym __weak;
extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;
__u64 addr, weak_addr;
SEC("tp_btf/sys_enter")
int use_ksyms(void *ctx)
{
	bpf_rcu_read_lock();
	addr = (__u64)&bpf_prog_active;
	weak_addr = (__u64)&pybpf_no_such_symbol;
	bpf_rcu_read_unlock();
	return 0;
}
char LICENSE[] SEC("license") = "GPL";
