/* Load one BPF object with libbpf, as `bpftool prog loadall` does, for libbpf
 * versions newer than bpftool's: tools/conformance links it with the libbpf built
 * from the corpus tree's tools/lib/bpf.
 *
 *   libbpf_load [-n PROG]... [-m MAP=N]... OBJ [PIN_ROOT]
 *
 * -n turns PROG's autoload off and -m sets MAP's max_entries, between open and load,
 * as a tool's user space does (the variant the kernel cannot run, the maps it sizes
 * from its command line); pybpf's loader is given the same (--no-autoload,
 * --max-entries), so both load the same thing.
 * Maps pinned by name go under PIN_ROOT (libbpf's default, /sys/fs/bpf). libbpf's
 * messages (warnings and info, not debug) go to stderr as they come. On success the
 * last line of stdout is "loaded N programs" (SEC("?...") programs libbpf leaves
 * unloaded are not counted) and the exit status is 0; on failure it is
 * "failed: ERRNO-TEXT" and the status is 1.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <bpf/libbpf.h>

static int print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, args);
}

static int usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [-n PROG]... [-m MAP=N]... OBJ [PIN_ROOT]\n", argv0);
	return 2;
}

/* Apply the -n and -m options to the opened obj; 0, or 1 after printing the failure. */
static int adjust(struct bpf_object *obj, int argc, char **argv)
{
	int opt;

	optind = 1;
	while ((opt = getopt(argc, argv, "n:m:")) != -1) {
		char *eq = opt == 'm' ? strchr(optarg, '=') : NULL;
		struct bpf_program *prog;
		struct bpf_map *map;

		if (opt == 'n') {
			prog = bpf_object__find_program_by_name(obj, optarg);
			if (!prog || bpf_program__set_autoload(prog, false)) {
				printf("failed: no program %s\n", optarg);
				return 1;
			}
			continue;
		}
		*eq = '\0';
		map = bpf_object__find_map_by_name(obj, optarg);
		if (!map || bpf_map__set_max_entries(map, strtoul(eq + 1, NULL, 0))) {
			printf("failed: no map %s\n", optarg);
			return 1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts);
	struct bpf_object *obj;
	struct bpf_program *prog;
	int err, opt, loaded = 0;

	while ((opt = getopt(argc, argv, "n:m:")) != -1)
		if (opt == '?' || (opt == 'm' && !strchr(optarg, '=')))
			return usage(argv[0]);
	if (argc - optind < 1 || argc - optind > 2)
		return usage(argv[0]);
	opts.pin_root_path = argc - optind == 2 ? argv[optind + 1] : "/sys/fs/bpf";
	libbpf_set_print(print);
	obj = bpf_object__open_file(argv[optind], &opts);
	if (!obj) {
		err = -errno;
		fprintf(stderr, "libbpf_load: failed to open object file: %s\n", strerror(-err));
		printf("failed: %s\n", strerror(-err));
		return 1;
	}
	if (adjust(obj, argc, argv)) {
		bpf_object__close(obj);
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
