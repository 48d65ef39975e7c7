/* SPDX-License-Identifier: MIT */
/*
 * Goroutine lifecycle tracing (bpf/lifecycle.bpf.c): records and limits shared by
 * the BPF programs and src/engine/lifecycle.c. Plain fixed-width types only.
 *
 * Probes: runtime.newproc1's RET instructions (creation: the new g in the first
 * result register), runtime.goexit1 (exit, on the exiting goroutine), runtime.gopark
 * (park, wait reason in the third argument) and runtime.ready (the readied g in the
 * first argument); entry probes sit after the stack-check prologue, so they fire once
 * per call.
 */
#ifndef GOTRACE_LIFECYCLE_H
#define GOTRACE_LIFECYCLE_H

#define LC_MAX_STACK 16	     /* creator frames kept per creation stack */
#define LC_MAX_WAITREASONS 64 /* park counts per wait reason; larger values land in the last */
#define LC_GWIN 256	      /* bytes of a g read at once (power of two) */

enum lc_probe_id {
	LC_PROBE_NEWPROC1,
	LC_PROBE_GOEXIT,
	LC_PROBE_GOPARK,
	LC_PROBE_READY,
	LC_PROBE__CNT,
};

/* Slots of struct lc_counters.c. */
enum lc_counter {
	LC_CNT_HITS,		       /* LC_PROBE__CNT slots: hits per probe */
	LC_CNT_CREATED = LC_PROBE__CNT, /* goroutines created */
	LC_CNT_EXITED,		       /* goroutines exited */
	LC_CNT_PARKED,		       /* gopark calls */
	LC_CNT_READIED,		       /* ready calls */
	LC_CNT_EXIT_UNTRACKED,	       /* exits of goroutines not in the table (created earlier) */
	LC_CNT_GTAB_FULL,	       /* goroutine table full: a creation not tracked */
	LC_CNT_SITES_FULL,	       /* site table full: a creation not attributed */
	LC_CNT_STACKS_FULL,	       /* stack table full: a creation stack not kept */
	LC_CNT_READ_ERR,	       /* reads of target memory that failed */
	LC_CNT_RB_LOST,		       /* ring buffer full: events lost */
	LC_CNT_EVENTS,		       /* events submitted to the ring buffer */
	LC_CNT_STACK_BAD,	       /* creator stack did not start at gopc: kept gopc only */
	LC_CNT__NR,
};

/* Per CPU, one element: every counter of one target. */
struct lc_counters {
	__u64 c[LC_CNT__NR];
	__u64 park_reason[LC_MAX_WAITREASONS];
};

enum lc_gstate {
	LC_G_RUNNABLE = 1, /* created or readied */
	LC_G_WAITING = 2,  /* parked */
};

/* Key of the goroutine table and of events: the kernel's tgid and the goroutine id. */
struct lc_gkey {
	__u32 tgid;
	__u32 pad;
	__u64 goid;
};

struct lc_goroutine {
	__u64 g;	   /* address of the g in the target */
	__u64 parent_goid; /* the creator; 0 unknown */
	__u64 gopc;	   /* runtime address of the go statement (return address) */
	__u64 startpc;	   /* runtime address of the goroutine's function */
	__u64 created_ns;  /* bpf_ktime_get_ns() */
	__u64 since_ns;	   /* of the last state change */
	__u32 stack_hash;  /* of the creation stack, 0 none */
	__u8 state;	   /* enum lc_gstate */
	__u8 waitreason;   /* raw wait reason while LC_G_WAITING */
	__u16 pad;
};

struct lc_site_key {
	__u32 tgid;
	__u32 pad;
	__u64 gopc;
};

struct lc_site {
	__u64 startpc; /* of the first goroutine created there */
	__u64 created;
	__u64 exited; /* exits of goroutines created (and tracked) there */
};

/* A distinct creation stack: return addresses, innermost (gopc) first; unused slots 0. */
struct lc_stack_key {
	__u32 tgid;
	__u32 depth;
	__u64 pcs[LC_MAX_STACK];
};

enum lc_event_type {
	LC_EV_CREATE = 1,
	LC_EV_EXIT,
	LC_EV_PARK,
	LC_EV_READY,
	LC_EV_NEW_SITE, /* the first creation at a gopc (aggregated mode too) */
};

/* Ring buffer record. Per event only in per-event mode; NEW_SITE always. */
struct lc_event {
	__u32 type; /* enum lc_event_type */
	__u32 tgid;
	__u64 ts_ns;
	__u64 goid;
	__u64 arg;     /* CREATE: parent goid; PARK: wait reason */
	__u64 gopc;    /* CREATE, NEW_SITE */
	__u64 startpc; /* CREATE, NEW_SITE */
};

_Static_assert(sizeof(struct lc_counters) == 8 * (LC_CNT__NR + LC_MAX_WAITREASONS),
	       "lc_counters layout");
_Static_assert(sizeof(struct lc_gkey) == 16, "lc_gkey layout");
_Static_assert(sizeof(struct lc_goroutine) == 56, "lc_goroutine layout");
_Static_assert(sizeof(struct lc_site_key) == 16, "lc_site_key layout");
_Static_assert(sizeof(struct lc_site) == 24, "lc_site layout");
_Static_assert(sizeof(struct lc_stack_key) == 8 + 8 * LC_MAX_STACK, "lc_stack_key layout");
_Static_assert(sizeof(struct lc_event) == 48, "lc_event layout");

#endif
