/* The "kernel" of tests/unit/test_core.py: target types whose layout differs from the
 * local definitions in core_local.bpf.c (fields reordered, resized, missing, moved
 * bitfields, changed enum values, flavored names). Compiled twice: by clang -g for its
 * BTF (the relocation target), and by the host's gcc, which prints offsetof/sizeof and
 * bitfield images to check every relocated value independently. So: plain C, no
 * headers, nothing BPF-specific. */

enum core_color {
	CORE_RED = 10,
	CORE_GREEN = 20,
	CORE_BLUE = -3,
	CORE_EXTRA = 99,
};

struct core_inner {
	long x;
	int y;
	int z;
};

struct core_basic {
	long pad;
	char c;
	int arr[8];
	struct core_inner inner;
	unsigned long grown;		/* local: unsigned int -> loads widen */
	long sgrown;			/* local: int -> signed, cannot widen: poisoned */
	int a;
	union {
		struct {
			int u_a;
			int u_b;
		};
		long u_whole;
	};
	unsigned int pad_bits: 3, flags: 5, mode: 11, big: 13;
	int sbits: 7;
	enum core_color color;
	struct core_inner *ptr;
	char tail[];
};

/* Two flavors of one type: a local 'struct core_amb' matches both. */
struct core_amb___one {
	int a;
	int x;
	int only_one;
};

struct core_amb___two {
	int x;
	int a;
};

typedef unsigned int core_u32_t;

struct core_sized {
	char data[40];
};

/* A global of each type makes clang describe it fully in the BTF (a type reached only
 * through pointers would be a mere forward declaration). */
struct core_basic core_basic_var;
struct core_amb___one core_amb_one_var;
struct core_amb___two core_amb_two_var;
core_u32_t core_u32_var;
struct core_sized core_sized_var;
enum core_color core_color_var;
