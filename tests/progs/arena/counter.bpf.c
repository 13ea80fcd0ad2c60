/* __arena globals (clang 18+: address_space(1), in .addr_space.1) live in the object's
 * arena map; the loader copies their initial values there before the program loads. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define __arena __attribute__((address_space(1)))

struct {
	__uint(type, 33 /* BPF_MAP_TYPE_ARENA, 6.9 */);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 4);
} arena SEC(".maps");

int __arena counter = 5;
int __arena doubled;

SEC("syscall") int add(void *ctx)
{
	counter += 1;
	doubled += 2;
	return counter * 1000 + doubled;
}

char LICENSE[] SEC("license") = "GPL";
