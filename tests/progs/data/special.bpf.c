/* Data sections as libbpf maps them: .data.locked holds only a hidden (static-linkage)
 * variable with a special field, which the kernel will not let user space map, so its
 * map must not be BPF_F_MMAPABLE; .data and .bss hold ordinary globals and are. The
 * bloom filter's map_extra (its number of hash functions) is given with __ulong. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define __hidden __attribute__((visibility("hidden")))
#define __ulong(name, val) enum { ___pybpf_##name = val } name

struct locked {
	struct bpf_spin_lock lock;
	__u64 count;
};

struct locked guarded SEC(".data.locked") __hidden __attribute__((aligned(8)));
__u64 plain = 7;
__u64 zeroed;

struct {
	__uint(type, BPF_MAP_TYPE_BLOOM_FILTER);
	__type(value, __u32);
	__uint(max_entries, 16);
	__ulong(map_extra, 3);
} bloom SEC(".maps");

SEC("syscall") int bump(void *ctx)
{
	bpf_spin_lock(&guarded.lock);
	guarded.count++;
	bpf_spin_unlock(&guarded.lock);
	zeroed += plain;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
