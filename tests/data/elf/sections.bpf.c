/* Fixture for tests/unit/test_elf.py: an object with everything the ELF reader must
 * see in a clang BPF object -- BTF maps in .maps, global .data/.rodata/.bss, a static
 * subprogram in .text (so R_BPF_64_32 call relocations), several program sections and a
 * license section. It is only compiled, never loaded. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} settings SEC(".maps");

__u64 hits = 1;                  /* .data */
const volatile __u32 limit = 7;  /* .rodata */
__u32 misses;                    /* .bss */
char scratch[256];               /* .bss, bigger than the rest */
__attribute__((visibility("hidden"))) __u32 calls; /* st_other != 0 */

static __attribute__((noinline)) __u64 bump(__u32 key)
{
	__u64 *v = bpf_map_lookup_elem(&counts, &key);

	if (!v) {
		misses++;
		return 0;
	}
	*v += hits;
	return *v;
}

SEC("tracepoint/syscalls/sys_enter_write")
int on_write(void *ctx)
{
	__u32 zero = 0, *cfg = bpf_map_lookup_elem(&settings, &zero);

	scratch[0] = 1;
	calls++;
	return bump(cfg ? *cfg : limit) > limit;
}

SEC("xdp")
int on_packet(struct xdp_md *ctx)
{
	return bump(ctx->ingress_ifindex) ? XDP_PASS : XDP_DROP;
}

SEC("raw_tracepoint/sched_switch")
int on_switch(void *ctx)
{
	return bump(2) + bump(3) > 0;
}

char LICENSE[] SEC("license") = "GPL";
