/* Self-contained definitions for the pybpf.asm round-trip programs.
 * No kernel headers: <linux/bpf.h> needs the host's <asm/types.h>, which
 * `clang -target bpf` does not find.  Helpers are declared the classic way,
 * as pointers whose value is the helper id. */
#ifndef BPF_ASM_COMMON_H
#define BPF_ASM_COMMON_H
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef signed char s8;
typedef short s16;
typedef int s32;
typedef long long s64;

#define SEC(name) __attribute__((section(name), used))
#define NOINLINE __attribute__((noinline))

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value,
                                   u64 flags) = (void *)2;
static u64 (*bpf_ktime_get_ns)(void) = (void *)5;
static u32 (*bpf_get_prandom_u32)(void) = (void *)7;

/* BTF-style map definition, as libbpf's __uint/__type macros spell it. */
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
struct array_u64 {
	__uint(type, 2); /* BPF_MAP_TYPE_ARRAY */
	__uint(max_entries, 8);
	__type(key, u32);
	__type(value, u64);
};
#endif
