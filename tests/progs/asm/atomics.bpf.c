/* Every atomic clang 14 emits (needs -mcpu=v3 for the fetching forms). */
#include "bpf_asm_common.h"

u64 g64 = 0;
u32 g32 = 0;

SEC("tc")
int atomics(void *ctx)
{
	u64 r = 0;

	__sync_fetch_and_add(&g64, 1);
	__sync_fetch_and_or(&g64, 2);
	__sync_fetch_and_and(&g64, 3);
	__sync_fetch_and_xor(&g64, 4);
	r += __sync_fetch_and_add(&g64, 5);
	r += __sync_fetch_and_or(&g64, 6);
	r += __sync_fetch_and_and(&g64, 7);
	r += __sync_fetch_and_xor(&g64, 8);
	r += __sync_lock_test_and_set(&g64, 9);
	r += __sync_val_compare_and_swap(&g64, 9, 10);

	__sync_fetch_and_add(&g32, 1);
	__sync_fetch_and_or(&g32, 2);
	__sync_fetch_and_and(&g32, 3);
	__sync_fetch_and_xor(&g32, 4);
	r += __sync_fetch_and_add(&g32, 5);
	r += __sync_fetch_and_or(&g32, 6);
	r += __sync_fetch_and_and(&g32, 7);
	r += __sync_fetch_and_xor(&g32, 8);
	r += __sync_lock_test_and_set(&g32, 9);
	r += __sync_val_compare_and_swap(&g32, 9, 10);
	return (int)r;
}

char LICENSE[] SEC("license") = "GPL";
