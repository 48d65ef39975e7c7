/* SPDX-License-Identifier: MIT */
/*
 * Exact blocked time (bpf/waits.bpf.c, src/engine/waits.c): every park-to-ready interval
 * of a process measured in the kernel and aggregated there, per (parked stack, wait
 * reason) and per (waker stack, parked stack, wait reason). Plain fixed-width types only.
 *
 * runtime.gopark (after the stack-check prologue, on the parking goroutine) records
 * goid -> {park time, wait reason, parked stack}; runtime.ready (after the prologue: the
 * readied g in the first argument) closes the interval and charges it. Stacks are walked
 * along the frame-pointer chain, bounded by the goroutine's stack; both probes fire
 * before their function sets up its frame, so the innermost return address is at SP.
 */
#ifndef GOTRACE_WAITS_H
#define GOTRACE_WAITS_H

#define WT_MAX_STACK 32	       /* return addresses kept per stack */
#define WT_MAX_WAITREASONS 64  /* per-reason counters; larger values land in the last */
/*
 * Latency histogram of a site: 4 linear sub-buckets per power of two from 2^WT_HIST_MIN_BIT
 * ns (below it: slot 0) to 2^WT_HIST_MAX_BIT ns (at or above it: the last slot).
 */
#define WT_HIST_MIN_BIT 8
#define WT_HIST_MAX_BIT 40
#define WT_HIST_SUB 4
#define WT_HIST_SLOTS ((WT_HIST_MAX_BIT - WT_HIST_MIN_BIT) * WT_HIST_SUB + 2)

enum wt_probe_id {
	WT_PROBE_GOPARK,
	WT_PROBE_READY,
	WT_PROBE__CNT,
};

/* Slots of struct wt_counters.c: nothing is dropped without one of them counting it. */
enum wt_counter {
	WT_CNT_HITS,			  /* WT_PROBE__CNT slots: hits per probe */
	WT_CNT_PARKED = WT_PROBE__CNT,	  /* parks recorded in the table */
	WT_CNT_WOKEN,			  /* intervals closed by a ready and charged */
	WT_CNT_UNSEEN_WAKE,		  /* a goroutine parked again with no ready seen since */
	WT_CNT_READY_NO_PARK,		  /* ready of a goroutine whose park is not known */
	WT_CNT_STALE,			  /* interval spanning a detached period: dropped */
	WT_CNT_PARKED_FULL,		  /* park table full: park not recorded */
	WT_CNT_SITES_FULL,		  /* site table full: interval not charged */
	WT_CNT_WAKERS_FULL,		  /* waker table full: charged, waker not kept */
	WT_CNT_STACKS_FULL,		  /* stack table full: stack kept as its hash only */
	WT_CNT_READ_ERR,		  /* reads of target memory that failed */
	WT_CNT_STACK_TRUNC,		  /* stacks deeper than WT_MAX_STACK (cut) */
	WT_CNT_WAKER_NONE,		  /* readied with no goroutine running (timers, GC) */
	WT_CNT__NR,
};

/* Per CPU, one element. */
struct wt_counters {
	__u64 c[WT_CNT__NR];
	__u64 unseen_reason[WT_MAX_WAITREASONS]; /* WT_CNT_UNSEEN_WAKE by the park's reason */
};

/* A parked goroutine: (tgid, goid). */
struct wt_gkey {
	__u32 tgid;
	__u32 pad;
	__u64 goid;
};

struct wt_parked {
	__u64 ts_ns;	/* bpf_ktime_get_ns() at the park */
	__u64 stack;	/* hash of the parked stack (key of the stacks map), 0 none */
	__u32 gen;	/* attach generation: intervals spanning a detached period are dropped */
	__u8 reason;	/* raw wait reason */
	__u8 pad[3];
};

/* Stacks: return addresses (runtime addresses), innermost first. */
struct wt_stack {
	__u32 depth;
	__u32 truncated;
	__u64 pcs[WT_MAX_STACK];
};

struct wt_site_key {
	__u32 tgid;
	__u32 reason;
	__u64 stack; /* parked stack hash */
};

struct wt_site {
	__u64 count;
	__u64 total_ns;
	__u64 max_ns;
	__u64 hist[WT_HIST_SLOTS];
};

struct wt_waker_key {
	__u32 tgid;
	__u32 reason;
	__u64 waker; /* stack hash of the goroutine that called ready, 0 none (scheduler) */
	__u64 wakee; /* parked stack hash */
};

struct wt_waker {
	__u64 count;
	__u64 total_ns;
};

_Static_assert(sizeof(struct wt_counters) == 8 * (WT_CNT__NR + WT_MAX_WAITREASONS),
	       "wt_counters layout");
_Static_assert(sizeof(struct wt_gkey) == 16, "wt_gkey layout");
_Static_assert(sizeof(struct wt_parked) == 24, "wt_parked layout");
_Static_assert(sizeof(struct wt_stack) == 8 + 8 * WT_MAX_STACK, "wt_stack layout");
_Static_assert(sizeof(struct wt_site_key) == 16, "wt_site_key layout");
_Static_assert(sizeof(struct wt_site) == 8 * (3 + WT_HIST_SLOTS), "wt_site layout");
_Static_assert(sizeof(struct wt_waker_key) == 24, "wt_waker_key layout");
_Static_assert(sizeof(struct wt_waker) == 16, "wt_waker layout");

#endif
