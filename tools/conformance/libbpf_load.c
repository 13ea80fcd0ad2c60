/* Load one BPF object with libbpf, as `bpftool prog loadall` does, for libbpf
 * versions newer than bpftool's: tools/conformance links it with the libbpf built
 * from the corpus tree's tools/lib/bpf.
 *
 *   libbpf_load OBJ [PIN_ROOT]
 *
 * Maps pinned by name go under PIN_ROOT (libbpf's default, /sys/fs/bpf). libbpf's
 * messages (warnings and info, not debug) go to stderr as they come. On success the
 * last line of stdout is "loaded N programs" (SEC("?...") programs libbpf leaves
 * unloaded are not counted) and the exit status is 0; on failure it is
 * "failed: ERRNO-TEXT" and the status is 1.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <bpf/libbpf.h>

static int print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, args);
}

int main(int argc, char **argv)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts);
	struct bpf_object *obj;
	struct bpf_program *prog;
	int err, loaded = 0;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: %s OBJ [PIN_ROOT]\n", argv[0]);
		return 2;
	}
	opts.pin_root_path = argc == 3 ? argv[2] : "/sys/fs/bpf";
	libbpf_set_print(print);
	obj = bpf_object__open_file(argv[1], &opts);
	if (!obj) {
		err = -errno;
		fprintf(stderr, "libbpf_load: failed to open object file: %s\n", strerror(-err));
		printf("failed: %s\n", strerror(-err));
		return 1;
	}
	err = bpf_object__load(obj);
	if (err) {
		fprintf(stderr, "libbpf_load: failed to load object: %s\n", strerror(-err));
		printf("failed: %s\n", strerror(-err));
		bpf_object__close(obj);
		return 1;
	}
	bpf_object__for_each_program(prog, obj)
		if (bpf_program__fd(prog) >= 0)
			loaded++;
	printf("loaded %d programs\n", loaded);
	bpf_object__close(obj);
	return 0;
}
