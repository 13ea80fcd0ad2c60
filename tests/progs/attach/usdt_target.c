/* USDT probes for tests/kernel/test_usdt.py and tests/unit/test_usdtnotes.py.
 * pybpf:tick fires at two sites: with (i, -3 * i) for i in 0..N-1 (N = argv[1]),
 * then once with (N, -7). pybpf:bytes fires N times with a signed char, an unsigned
 * short and a constant. Built with -DWITH_SEMAPHORE, the probes have semaphores and
 * the program prints pybpf_tick_semaphore before the probes fire. With a second
 * argument it first prints "ready" and waits for a line on stdin. */
#ifdef WITH_SEMAPHORE
#define _SDT_HAS_SEMAPHORES 1
unsigned short pybpf_tick_semaphore __attribute__((section(".probes")));
unsigned short pybpf_bytes_semaphore __attribute__((section(".probes")));
#endif
#include <sys/sdt.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) static void bytes(int i)
{
	signed char c = -(signed char)i;
	unsigned short s = 60000 + i;

	DTRACE_PROBE3(pybpf, bytes, c, s, 42);
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1;
	char line[16];

	if (argc > 2) {
		printf("ready\n");
		fflush(stdout);
		if (!fgets(line, sizeof(line), stdin))
			return 1;
	}
#ifdef WITH_SEMAPHORE
	printf("semaphore %u\n", pybpf_tick_semaphore);
#else
	printf("semaphore none\n");
#endif
	for (int i = 0; i < n; i++) {
		long y = -3L * i;

		DTRACE_PROBE2(pybpf, tick, i, y);
		bytes(i);
	}
	DTRACE_PROBE2(pybpf, tick, n, -7L);
	return 0;
}
