#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Events, typed globals and the loader bits of `run` (tests/kernel/test_cli_run_events.py):
 * each getpid() of process targ_tgid sends one record through a ring buffer and one
 * through a perf event array. */
enum kind { KIND_RING = 1, KIND_PERF = 2 };
struct event {
	__u32 pid;
	enum kind kind;
	char comm[16];
	char tag[8];
	__u64 seq;
};
struct settings {
	__u16 limit;
	__u8 bytes[2];
};

struct event *unused_event_pointer;	/* puts struct event into the BTF (bpf2go's way) */
const volatile __u32 targ_tgid = 0;
const volatile _Bool enabled = 0;
const volatile char tag[8] = "none";
const volatile struct settings settings = {};
__u64 seq;
__u64 stext;

extern void _stext __ksym;	/* typeless: an address from kallsyms, not in kernel BTF */
extern const char CONFIG_PYBPF_TEST_STRING[4] __kconfig __weak;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16384);
} ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} perf SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} cgroups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);	/* no max_entries: --max-entries sizes it */
	__type(key, __u32);
	__type(value, struct settings);
} seen SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getpid")
int on_getpid(void *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct event e = {};
	struct settings s = settings;

	if (!enabled || tgid != targ_tgid)
		return 0;
	stext = (__u64)&_stext;
	e.pid = tgid;
	bpf_get_current_comm(e.comm, sizeof(e.comm));
	for (int i = 0; i < 8; i++)
		e.tag[i] = tag[i];
	e.tag[7] = CONFIG_PYBPF_TEST_STRING[0] ? CONFIG_PYBPF_TEST_STRING[0] : e.tag[7];
	e.seq = __sync_fetch_and_add(&seq, 1);
	e.kind = KIND_RING;
	bpf_ringbuf_output(&ring, &e, sizeof(e), 0);
	e.kind = KIND_PERF;
	bpf_perf_event_output(ctx, &perf, BPF_F_CURRENT_CPU, &e, sizeof(e));
	bpf_map_update_elem(&seen, &tgid, &s, BPF_ANY);
	return 0;
}

SEC("fentry/do_nanosleep")	/* refused here (EPERM): --no-autoload or --only */
int on_nanosleep(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
