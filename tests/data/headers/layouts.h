/* Layouts gcc decides: bitfields, unions, anonymous members, packing, alignment,
 * enums of each size, constants computed by the preprocessor. Checked against gcc's
 * offsetof by tests/unit/test_cdecl.py. */
#ifndef LAYOUTS_H
#define LAYOUTS_H
#include <stddef.h>

#define SLOTS	(2 * 3 + 1)
#define SHIFTED	(1 << 3)
#if SLOTS > 5 && defined(SHIFTED)
#define WIDE 1
#else
#define WIDE 0
#endif

enum small { S_A, S_B = 5, S_C };
enum negative { N_MINUS = -2, N_ZERO };
enum big { B_HUGE = 0x100000000ULL };

typedef unsigned long long my_u64;
typedef struct { __u8 a; __u64 b; } anon_t;

struct bits {
	unsigned int a : 3;
	unsigned int b : 30;
	int c : 5;
	unsigned char d : 4;
	unsigned char : 0;
	unsigned char e : 2;
	__u64 f : 40;
	__u16 g : 16;
	bool h : 1;
};

struct with_union {
	char tag;
	union {
		__u32 word;
		__u8 bytes[4];
		struct { __u16 lo, hi; };
	};
	union value { __s64 s; double d; } v;
	short after;
};

struct packed_one {
	char c;
	__u32 x;
	__u64 y;
} __attribute__((packed));

struct aligned_member {
	char c;
	int x __attribute__((aligned(16)));
	char tail;
};

struct nested {
	char name[SLOTS];
	struct bits b[2];
	anon_t pair;
	enum small s;
	enum negative n;
	enum big big;
	my_u64 counts[SHIFTED][WIDE + 1];
	const char *ptr;
	void (*callback)(int, char *);
	struct with_union u;
	long double ld;
	unsigned __int128 wide;
	char flex[];
};

/* not types: skipped */
static inline int helper(int x) { return x + sizeof(struct nested); }
extern int some_variable;
int prototype(struct nested *n);
#endif
