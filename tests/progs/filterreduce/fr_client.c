/* A tenant of a pinned filter-reduce pipeline written in plain C: raw bpf(2), no
 * libbpf, only programs/filterreduce.h. It follows docs/filterreduce.md's protocol:
 *
 *   fr_client DIR FILE   ->  one line of JSON with the kernel's result
 *
 * 1. open DIR/fr_tenants and DIR/fr_info (BPF_OBJ_GET);
 * 2. register (this tgid, the buffer's address) with BPF_NOEXIST: the filter slot of
 *    fr_info, the count/sum/min/max reduce slot, this process's start-time window;
 * 3. read FILE into the buffer; 4. read one '\n' into it from a pipe (the end of the
 * data); 5. look the tenant up for the result; 6. delete it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "filterreduce.h"

static long bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

static int obj_get(const char *dir, const char *name)
{
	char path[4096];
	union bpf_attr attr;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	memset(&attr, 0, sizeof(attr));
	attr.pathname = (uint64_t)(uintptr_t)path;
	return bpf(BPF_OBJ_GET, &attr);
}

static int map_op(int cmd, int fd, const void *key, void *value, uint64_t flags)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.map_fd = fd;
	attr.key = (uint64_t)(uintptr_t)key;
	attr.value = (uint64_t)(uintptr_t)value;
	attr.flags = flags;
	return bpf(cmd, &attr);
}

/* [lo, hi): the nanoseconds since boot this process's start time lies in. */
static int start_window(__u64 *lo, __u64 *hi)
{
	char text[4096], *p;
	unsigned long long ticks = 0;
	long long secs = 0, nsecs = 0;
	int fd = open("/proc/self/stat", O_RDONLY), i;
	ssize_t n;
	FILE *f;

	if (fd < 0 || (n = read(fd, text, sizeof(text) - 1)) <= 0)
		return -1;
	close(fd);
	text[n] = 0;
	p = strrchr(text, ')') + 2;            /* field 3 */
	for (i = 3; i < 22; i++)
		p = strchr(p, ' ') + 1;
	ticks = strtoull(p, NULL, 10);
	uint64_t tick = 1000000000ULL / sysconf(_SC_CLK_TCK);
	f = fopen("/proc/self/timens_offsets", "r");
	if (f) {
		char name[32];
		long long s, ns;
		while (fscanf(f, "%31s %lld %lld", name, &s, &ns) == 3)
			if (!strcmp(name, "boottime")) {
				secs = s;
				nsecs = ns;
			}
		fclose(f);
	}
	*lo = ticks * tick - (secs * 1000000000LL + nsecs);
	*hi = *lo + tick;
	return 0;
}

int main(int argc, char **argv)
{
	static char buf[4096];
	struct fr_tenant tenant, got;
	struct fr_info info;
	struct fr_key key;
	uint32_t zero = 0;
	int tenants, infos, fd, pipefd[2];
	ssize_t n;
	unsigned long long total = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: %s DIR FILE\n", argv[0]);
		return 2;
	}
	tenants = obj_get(argv[1], "fr_tenants");
	infos = obj_get(argv[1], "fr_info");
	if (tenants < 0 || infos < 0 || map_op(BPF_MAP_LOOKUP_ELEM, infos, &zero, &info, 0)) {
		perror("pinned maps");
		return 1;
	}
	if (info.magic != FR_MAGIC || info.version != FR_VERSION) {
		fprintf(stderr, "not a pipeline of protocol %d\n", FR_VERSION);
		return 1;
	}
	memset(&key, 0, sizeof(key));
	key.tgid = getpid();
	key.buf = (uint64_t)(uintptr_t)buf;
	memset(&tenant, 0, sizeof(tenant));
	tenant.filter_slot = info.default_filter_slot;
	tenant.reduce_slot = FR_SLOT_REDUCE_STATS;
	tenant.res.min = INT64_MAX;
	tenant.res.max = INT64_MIN;
	if (start_window(&tenant.start_lo, &tenant.start_hi) ||
	    map_op(BPF_MAP_UPDATE_ELEM, tenants, &key, &tenant, BPF_NOEXIST)) {
		perror("register");
		return 1;
	}
	fd = open(argv[2], O_RDONLY);
	if (fd < 0) {
		perror(argv[2]);
		return 1;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		total += n;
	close(fd);
	if (pipe(pipefd) || write(pipefd[1], "\n", 1) != 1 || read(pipefd[0], buf, 1) != 1) {
		perror("end of data");
		return 1;
	}
	if (map_op(BPF_MAP_LOOKUP_ELEM, tenants, &key, &got, 0)) {
		perror("result");
		return 1;
	}
	map_op(BPF_MAP_DELETE_ELEM, tenants, &key, NULL, 0);
	printf("{\"read\": %llu, \"bytes\": %llu, \"numbers_seen\": %llu, "
	       "\"numbers_kept\": %llu, \"numbers_out_of_range\": %llu, \"sum_hi\": %lld, "
	       "\"sum_lo\": %llu, \"min\": %lld, \"max\": %lld, \"truncated\": %llu, "
	       "\"errors\": %llu}\n", total,
	       (unsigned long long)got.res.bytes - 1, (unsigned long long)got.res.seen,
	       (unsigned long long)got.res.kept, (unsigned long long)got.res.out_of_range,
	       (long long)got.res.sum_hi, (unsigned long long)got.res.sum_lo,
	       (long long)got.res.min, (long long)got.res.max,
	       (unsigned long long)got.res.truncated, (unsigned long long)got.res.errors);
	return 0;
}
