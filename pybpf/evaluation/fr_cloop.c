/* The user-space baseline of the filter-reduce benchmark (tools/bench_filterreduce.py):
 * read a file with read(2) in CHUNK-byte calls, parse its numbers by the pipeline's
 * rules (a maximal run of ASCII digits, negative when '-' comes right before it,
 * out of range beyond a signed 64-bit value), keep those with x >= THRESHOLD, and
 * print count, 128-bit sum, min and max as JSON, with the seconds from open() to the
 * end of the loop (the in-process time). Built by the benchmark with gcc -O2.
 *
 *   fr_cloop FILE CHUNK THRESHOLD
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s FILE CHUNK THRESHOLD\n", argv[0]);
		return 2;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int fd = open(argv[1], O_RDONLY);
	size_t chunk = strtoul(argv[2], NULL, 10);
	int64_t threshold = strtoll(argv[3], NULL, 10);
	unsigned char *buf = malloc(chunk);
	if (fd < 0 || !buf || !chunk) {
		perror(argv[1]);
		return 1;
	}
	const uint64_t limit = UINT64_C(922337203685477580); /* 2^63 / 10 */
	uint64_t acc = 0, seen = 0, kept = 0, out = 0, bytes = 0;
	int in = 0, neg = 0, minus = 0;
	__int128 sum = 0;
	int64_t lo = INT64_MAX, hi = INT64_MIN;
	ssize_t n;

#define EMIT() do {                                                          \
	seen++;                                                              \
	if (acc > (UINT64_C(1) << 63) || (acc == (UINT64_C(1) << 63) && !neg)) { \
		out++;                                                       \
	} else {                                                             \
		int64_t x = neg ? (int64_t)(0 - acc) : (int64_t)acc;         \
		if (x >= threshold) {                                        \
			kept++; sum += x;                                    \
			if (x < lo) lo = x;                                  \
			if (x > hi) hi = x;                                  \
		}                                                            \
	}                                                                    \
} while (0)

	while ((n = read(fd, buf, chunk)) > 0) {
		bytes += n;
		for (ssize_t i = 0; i < n; i++) {
			unsigned d = buf[i] - '0';
			if (d <= 9) {
				if (!in) {
					in = 1; neg = minus; acc = d;
				} else if (acc > limit) {
					acc = UINT64_MAX;
				} else {
					acc = acc * 10 + d;
				}
			} else {
				if (in) {
					EMIT();
					in = 0;
				}
				minus = buf[i] == '-';
			}
		}
	}
	if (n < 0) {
		perror("read");
		return 1;
	}
	if (in)
		EMIT();
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("{\"seconds\": %.6f, \"bytes\": %llu, \"numbers_seen\": %llu, \"numbers_kept\": %llu, "
	       "\"numbers_out_of_range\": %llu, \"sum_hi\": %lld, \"sum_lo\": %llu, "
	       "\"min\": %lld, \"max\": %lld}\n",
	       (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
	       (unsigned long long)bytes, (unsigned long long)seen,
	       (unsigned long long)kept, (unsigned long long)out,
	       (long long)(sum >> 64), (unsigned long long)(uint64_t)sum,
	       (long long)lo, (long long)hi);
	return 0;
}
