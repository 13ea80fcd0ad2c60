/* Legacy packet loads (BPF_LD | BPF_ABS / BPF_IND) via the LLVM intrinsics
 * that old socket filters used. */
#include "bpf_asm_common.h"

u64 load_byte(void *skb, u64 off) asm("llvm.bpf.load.byte");
u64 load_half(void *skb, u64 off) asm("llvm.bpf.load.half");
u64 load_word(void *skb, u64 off) asm("llvm.bpf.load.word");

SEC("socket")
int legacy(void *skb)
{
	u64 proto = load_half(skb, 12);
	u64 ihl = load_byte(skb, 14) & 0xf;
	u64 daddr = load_word(skb, 30);
	u64 dport = load_half(skb, ihl * 4 + 16);

	if (proto != 0x0800)
		return 0;
	return (int)(daddr + dport + load_byte(skb, ihl));
}

char LICENSE[] SEC("license") = "GPL";
