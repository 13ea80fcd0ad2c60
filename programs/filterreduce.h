/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* The e2BPF filter-reduce pipeline's shared layouts: the tenant protocol.
 *
 * This header is the contract between the pipeline's BPF programs
 * (filterreduce.bpf.c, plus the filter stages pybpf generates), pybpf's Python side
 * (pybpf/filterreduce/layout.py mirrors it; a test compares the two with a compiler)
 * and any other program that takes part through the pinned maps, in C, Go or
 * anything that can call bpf(2). It includes nothing but <linux/types.h>, so user
 * space C can include it too. docs/filterreduce.md describes the protocol in prose.
 *
 * Map by map (pinned under DIR by `python -m pybpf attach copyout --pin DIR`):
 *   fr_tenants   HASH   struct fr_key -> struct fr_tenant   user space registers
 *   fr_inflight  HASH   __u64 pid_tgid -> struct fr_inflight  kernel only
 *   fr_scratch   ARRAY  cpu -> struct fr_scratch            kernel only
 *   fr_stages    PROG_ARRAY  slot -> program                the stages
 *   fr_slots     HASH   __u32 slot -> struct fr_slot        who owns which slot
 *   fr_info      ARRAY  0 -> struct fr_info                 what this pipeline is
 *   fr_state     HASH   struct fr_key -> struct fr_state    custom reduce states
 */
#ifndef PYBPF_FILTERREDUCE_H
#define PYBPF_FILTERREDUCE_H

#include <linux/types.h>

/* Protocol version: bumped on any change to a layout below. */
#define FR_VERSION 1
#define FR_MAGIC 0x65324246 /* "e2BF" */

/* Bytes a filter stage parses per pass; an event (one read(), one copy) larger than
 * this is fed to the stages piece by piece. */
#define FR_PIECE 16384
/* Room after the data for the strtol parser, which hands bpf_strtoul up to
 * FR_STRTOL_MAX bytes from any position inside the piece. */
#define FR_STRTOL_MAX 64
/* The native parser's unit: one bpf_loop callback parses FR_BLOCK bytes. */
#define FR_BLOCK 64
/* Numbers a piece can hold at most (one digit and one separator each), plus the
 * one that began in the previous piece. */
#define FR_KEPT_MAX (FR_PIECE / 2 + 8)

/* Slots of fr_stages below FR_SLOT_FIRST_FREE are the pipeline's own. */
#define FR_SLOT_FEED 0          /* copies the next piece, then runs the filter stage */
#define FR_SLOT_REDUCE_STATS 1  /* count, sum, min, max */
#define FR_SLOT_FIRST_FREE 2
#define FR_MAX_SLOTS 256

/* fr_tenant.mode: the parse state between pieces and between events. */
#define FR_MODE_IN_NUMBER 1  /* the last byte seen was a digit */
#define FR_MODE_NEGATIVE 2   /* ... of a number preceded by '-' */
#define FR_MODE_MINUS 4      /* the last byte seen was '-' (not in a number) */

/* fr_tenant.flags (written by user space at registration). */
#define FR_FLAG_OVERRIDE 1   /* copyout backend: skip the copy to user space */

/* fr_info.backend */
#define FR_BACKEND_SYSCALL 1
#define FR_BACKEND_COPY_TO_ITER 2
#define FR_BACKEND_COPYOUT 3

/* A tenant: a process (tgid) reading into one buffer (its user address). */
struct fr_key {
	__u32 tgid;
	__u32 pad;              /* zero */
	__u64 buf;
};

/* What the pipeline reports per tenant. Written by the kernel only. */
struct fr_result {
	__u64 bytes;            /* bytes the filter stage parsed */
	__u64 events;           /* hook calls that carried data for this tenant */
	__u64 seen;             /* numbers (digit runs) that ended */
	__u64 out_of_range;     /* ... of which did not fit a signed 64-bit value */
	__u64 kept;             /* ... of which the filter kept (reduced) */
	__u64 sum_lo;           /* sum of the kept numbers, a 128-bit two's complement */
	__s64 sum_hi;           /*   integer: sum_hi * 2^64 + sum_lo */
	__s64 min;              /* valid when kept > 0 */
	__s64 max;
	__u64 truncated;        /* bytes of events the stages could not process */
	__u64 errors;           /* stage failures: a missing stage, a failed read */
	__u64 overridden;       /* copies skipped (copyout backend with override) */
};

/* The value of fr_tenants. User space writes the whole value once, when it
 * registers (BPF_NOEXIST), with mode, acc and res zero except res.min = INT64_MAX
 * and res.max = INT64_MIN; the kernel updates parse state and results in place. */
struct fr_tenant {
	__u32 filter_slot;      /* fr_stages slot of this tenant's filter stage */
	__u32 reduce_slot;      /* fr_stages slot of its reduce stage */
	__u64 start_lo;         /* the tgid's start time (task->start_boottime, ns) */
	__u64 start_hi;         /*   is in [start_lo, start_hi); both 0: not checked */
	__u32 flags;            /* FR_FLAG_* */
	__u32 pad;
	__u64 acc;              /* parse state: magnitude of the number being read */
	__u64 mode;             /* parse state: FR_MODE_* */
	struct fr_result res;
};

/* Armed reads, for the hooks that need the syscall's or the copy's context. */
struct fr_inflight {
	struct fr_key key;      /* the tenant */
	__u64 lo;               /* user addresses this call copies to: [lo, hi) */
	__u64 hi;
	__u32 segments;         /* readv: iovec count (only 1 is followed) */
	__u32 pad;
};

/* The work in progress on one CPU: an event's data, fed to the stages. */
struct fr_work {
	struct fr_key key;      /* whose data */
	__u64 src;              /* where the event's data is */
	__u32 len;              /* bytes in the event */
	__u32 done;             /* bytes handed to the filter stage so far */
	__u32 piece;            /* bytes in data[] now */
	__u32 nkept;            /* numbers in kept[] */
	__u32 user;             /* src is a user-space address */
	__u32 pad;
	__u64 stage[12];        /* the filter stage's parse context (see stage.py) */
};

struct fr_scratch {
	struct fr_work work;
	__u8 data[FR_PIECE + FR_STRTOL_MAX];
	__s64 kept[FR_KEPT_MAX];
};

/* fr_state: the state of a tenant's custom reduce stage (pybpf.filterreduce.Reduce):
 * 64-bit slots the compiled step function updates; the last counts the steps that
 * indexed a state array out of range (they were abandoned there). */
#define FR_STATE_SLOTS 64

struct fr_state {
	__s64 slot[FR_STATE_SLOTS];
};

/* fr_slots: who loaded the program in a slot; claimed with BPF_NOEXIST. */
#define FR_SLOT_KIND_FILTER 1
#define FR_SLOT_KIND_REDUCE 2

struct fr_slot {
	__u32 kind;             /* FR_SLOT_KIND_* */
	__u32 owner_tgid;       /* 0: the pipeline's own (lives as long as it) */
	__u64 owner_start_lo;   /* as fr_tenant.start_lo/hi */
	__u64 owner_start_hi;
	char description[104];  /* e.g. the filter expression, NUL-terminated */
};

struct fr_info {
	__u32 magic;            /* FR_MAGIC */
	__u32 version;          /* FR_VERSION */
	__u32 backend;          /* FR_BACKEND_* */
	__u32 prog_type;        /* BPF_PROG_TYPE_* of every stage */
	__u32 piece;            /* FR_PIECE */
	__u32 default_filter_slot; /* the filter given when the pipeline was pinned */
	__u32 flags;            /* FR_INFO_* */
	__u32 pad;
};

/* fr_info.flags */
#define FR_INFO_CAN_SKIP 1      /* the copyout backend's skip program is attached */

#endif /* PYBPF_FILTERREDUCE_H */
