/* Arithmetic, shifts, byte swaps, compares, loops, calls and memory ops of
 * every size; compiled for -mcpu=v1, v2 and v3 (v3 adds ALU32 and JMP32). */
#include "bpf_asm_common.h"

struct array_u64 counters SEC(".maps");
u64 global_total = 0;
s32 global_signed = -7;
static volatile u16 small_table[4] = {1, 2, 3, 4};

NOINLINE s64 mix(s64 a, s64 b)
{
	s64 r = a * 31 + b;
	r ^= (u64)r >> 7;
	r -= a << 3;
	r |= 0x100;
	r &= ~0xfLL;
	r += (s64)b >> 2;
	if (b != 0)
		r += (u64)a / (u64)b + (u64)a % (u64)b;
	return -r;
}

NOINLINE u32 mix32(u32 a, u32 b)
{
	u32 r = a * 3 - b;
	r ^= a >> 5;
	r |= b << 4;
	r &= 0xffff00ff;
	r += (s32)a >> 1;
	if (b)
		r += a / b + a % b;
	return -r + 0x7fffffff;
}

NOINLINE u64 swaps(u64 x)
{
	return __builtin_bswap64(x) + __builtin_bswap32((u32)x) + __builtin_bswap16((u16)x);
}

NOINLINE int compares(s64 a, s64 b, u64 c, u64 d, s32 e)
{
	int n = 0;
	if (a < b) n += 1;
	if (a <= -5) n += 2;
	if (a > b) n += 3;
	if (a >= 100000) n += 4;
	if (c < d) n += 5;
	if (c <= 9) n += 6;
	if (c > d) n += 7;
	if (c >= 0xffffffffULL) n += 8;
	if (c == d) n += 9;
	if (c != 0x7fffffff) n += 10;
	if (e < -1) n += 11;
	if (e >= 3) n += 12;
	if ((u32)e < 4) n += 13;
	if ((u32)e > (u32)a) n += 14;
	if (c & 4) n += 15;
	return n;
}

SEC("xdp")
int prog(u32 *ctx)
{
	u32 key = 0;
	u64 *val = bpf_map_lookup_elem(&counters, &key);
	u64 acc = bpf_ktime_get_ns();
	u8 buf[16];
	int i;

	if (!val)
		return 0;
	for (i = 0; i < (int)(bpf_get_prandom_u32() & 7); i++)
		acc = acc * 5 + i;
	acc += mix(acc, *val);
	acc += mix32((u32)acc, ctx[1]);
	acc += swaps(acc);
	acc += compares(acc, -(s64)acc, acc, *val, (s32)ctx[0]);
	acc += 0x123456789abcdefULL;
	acc += small_table[acc & 3];
	acc += global_signed;
	*(volatile u8 *)&buf[0] = (u8)acc;
	*(volatile u16 *)&buf[2] = (u16)acc;
	*(volatile u32 *)&buf[4] = (u32)acc;
	*(volatile u64 *)&buf[8] = acc;
	acc += *(volatile u8 *)&buf[1] + *(volatile u16 *)&buf[2] + *(volatile u32 *)&buf[4];
	acc += *(volatile s8 *)&buf[0] + *(volatile s16 *)&buf[2];
	global_total += acc;
	bpf_map_update_elem(&counters, &key, &acc, 0);
	return (int)(acc & 3);
}

char LICENSE[] SEC("license") = "GPL";
