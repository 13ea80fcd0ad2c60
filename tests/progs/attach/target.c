/* A program for uprobes to fire in: calls probed() N times (N = argv[1]) and prints
 * the sum of its results. With a second argument it first waits for a line on
 * stdin, so a test can attach (or move it into a cgroup) before the calls. Each
 * call of probed() comes with one of hit_one(), hit_two() and miss_three(), for the
 * patterns of uprobe_multi links (tests/kernel/test_uprobe_multi.py). */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) int probed(int x)
{
	__asm__ volatile("" ::: "memory"); /* keep the calls */
	return x + 1;
}

#define FUNC(name, k) \
	__attribute__((noinline)) int name(int x) \
	{ \
		__asm__ volatile("" ::: "memory"); \
		return x + k; \
	}

FUNC(hit_one, 1)
FUNC(hit_two, 2)
FUNC(miss_three, 3)

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1;
	long sum = 0;
	volatile int sink = 0;
	char line[16];

	if (argc > 2) {
		printf("ready\n");
		fflush(stdout);
		if (!fgets(line, sizeof(line), stdin))
			return 1;
	}
	for (int i = 0; i < n; i++) {
		sum += probed(i);
		sink += hit_one(i) + hit_two(i) + miss_three(i);
	}
	printf("%ld\n", sum);
	return 0;
}
