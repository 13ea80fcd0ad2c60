/* CO-RE relocations for tests/unit/test_core.py, relocated against the BTF of
 * core_target.bpf.c (never loaded). Each section exercises one group of relocation
 * kinds; local types differ from the target's on purpose (see that file). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

enum core_color___v1 {
	CORE_RED___v1 = 1,
	CORE_GREEN___v1 = 2,
	CORE_BLUE___v1 = 5,
	CORE_GONE___v1 = 3,	/* not in the target */
};

struct core_inner___v1 {
	int y;
	long x;
} __attribute__((preserve_access_index));

struct core_inner___v2 {	/* exists in the target, but x is an int here */
	int x;
} __attribute__((preserve_access_index));

struct core_basic___v1 {
	int a;
	char c;
	unsigned int grown;
	int sgrown;
	int arr[4];
	struct core_inner___v1 inner;
	union {
		struct {
			int u_b;
			int u_a;
		};
		long u_whole;
	};
	unsigned int mode: 3, flags: 5, big: 13;
	int sbits: 7;
	enum core_color___v1 color;
	int missing_field;	/* not in the target */
	struct core_inner___v1 *ptr;
	char tail[];
} __attribute__((preserve_access_index));

struct core_missing {		/* no such type in the target */
	int x;
} __attribute__((preserve_access_index));

struct core_amb {
	int a;
	int x;
	int only_one;
} __attribute__((preserve_access_index));

struct core_amb2 {		/* not in the target under this name: see amb_narrow */
	int a;
};

typedef unsigned int core_u32_t;

struct core_sized___v1 {
	char data[8];
};

/* Offsets through direct loads (LDX off), address arithmetic (ALU add) and
 * BPF_CORE_READ chains (probe reads of relocated addresses). */
SEC("socket/offsets")
int offsets(void *ctx)
{
	struct core_basic___v1 *p = ctx;
	long r = 0;

	r += p->a;
	r += p->c;
	r += p->arr[3];
	r += p->inner.x;
	r += p->inner.y;
	r += p->u_a;
	r += p->u_b;
	r += p->u_whole;
	r += BPF_CORE_READ(p, ptr, x);
	r += (long)&p->tail[0];
	return r;
}

/* Field sizes, existence, signedness. */
SEC("socket/fields")
int fields(void *ctx)
{
	struct core_basic___v1 *p = ctx;
	long r = 0;

	r += bpf_core_field_size(p->a);
	r += bpf_core_field_size(p->arr) << 1;
	r += bpf_core_field_size(p->inner) << 2;
	r += bpf_core_field_size(p->grown) << 3;
	r += bpf_core_field_size(p->color) << 4;
	r += bpf_core_field_exists(p->a) << 5;
	r += bpf_core_field_exists(p->missing_field) << 6;
	r += bpf_core_field_exists(p->inner.y) << 7;
	r += bpf_core_field_offset(p->inner.y) << 8;
	r += __builtin_preserve_field_info(p->a, BPF_FIELD_SIGNED) << 9;
	r += __builtin_preserve_field_info(p->grown, BPF_FIELD_SIGNED) << 10;
	r += __builtin_preserve_field_info(p->color, BPF_FIELD_SIGNED) << 11;
	r += __builtin_preserve_field_info(p->sbits, BPF_FIELD_SIGNED) << 12;
	return r;
}

/* Bitfields: byte offset, load size, shifts and sign of each. */
SEC("socket/bitfields")
int bitfields(void *ctx)
{
	struct core_basic___v1 *p = ctx;
	long r = 0;

	r += BPF_CORE_READ_BITFIELD_PROBED(p, flags);
	r += BPF_CORE_READ_BITFIELD_PROBED(p, mode);
	r += BPF_CORE_READ_BITFIELD_PROBED(p, big);
	r += BPF_CORE_READ_BITFIELD_PROBED(p, sbits);
	return r;
}

/* Loads whose size changes: u32 -> u64 widens; int -> long must not. */
SEC("socket/resize")
int resize(void *ctx)
{
	struct core_basic___v1 *p = ctx;

	return p->grown + p->sgrown;
}

/* Types and enums. */
SEC("socket/types")
int types(void *ctx)
{
	long r = 0;

	r += bpf_core_type_exists(struct core_basic___v1);
	r += bpf_core_type_exists(struct core_missing) << 1;
	r += bpf_core_type_exists(core_u32_t) << 2;
	r += bpf_core_type_exists(struct core_inner___v2) << 3;
	r += bpf_core_type_size(struct core_basic___v1) << 4;
	r += bpf_core_type_size(struct core_sized___v1) << 5;
	r += bpf_core_type_size(struct core_missing) << 6;
	r += bpf_core_type_id_kernel(struct core_basic___v1) << 7;
	r += bpf_core_type_id_local(struct core_basic___v1) << 8;
	return r;
}

SEC("socket/enums")
int enums(void *ctx)
{
	long r = 0;

	r += bpf_core_enum_value_exists(enum core_color___v1, CORE_RED___v1);
	r += bpf_core_enum_value_exists(enum core_color___v1, CORE_GONE___v1) << 1;
	r += bpf_core_enum_value(enum core_color___v1, CORE_GREEN___v1) << 2;
	r += bpf_core_enum_value(enum core_color___v1, CORE_BLUE___v1) << 3;
	return r;
}

/* Missing things: a field and a whole type. Both reads get poisoned. */
SEC("socket/missing")
int missing(void *ctx)
{
	struct core_basic___v1 *p = ctx;
	struct core_missing *m = ctx;

	return p->missing_field + m->x
	       + bpf_core_enum_value(enum core_color___v1, CORE_GONE___v1);
}

/* core_amb matches core_amb___one and core_amb___two, which disagree on 'a'. */
SEC("socket/amb_bad")
int amb_bad(void *ctx)
{
	struct core_amb *p = ctx;

	return p->a;
}

/* Only core_amb___one has only_one: once that relocation narrowed the candidates
 * to it, 'a' is no longer ambiguous. */
SEC("socket/amb_narrow")
int amb_narrow(void *ctx)
{
	struct core_amb *p = ctx;

	return p->only_one + p->a;
}

char LICENSE[] SEC("license") = "GPL";
