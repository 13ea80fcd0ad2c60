#include "common.h"

/* .kconfig externs resolved by the loader from the running kernel. */
extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern _Bool CONFIG_BPF_SYSCALL __kconfig;
extern int CONFIG_PYBPF_NO_SUCH_OPTION __kconfig __weak;

__u64 version, syscall_on, missing = 77;

SEC("socket")
int read_config(struct __sk_buff *skb)
{
	version = LINUX_KERNEL_VERSION;
	syscall_on = CONFIG_BPF_SYSCALL;
	missing = CONFIG_PYBPF_NO_SUCH_OPTION;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
