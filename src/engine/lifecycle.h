/* SPDX-License-Identifier: MIT */
/*
 * Goroutine lifecycle tracing of one process (bpf/lifecycle.bpf.c): creations per
 * site and per creator stack, exits, parks by wait reason, readies, and a table of
 * the goroutines created while tracing, all counted in the kernel.
 *
 * Uprobes cost the target a trap per hit (microseconds each), so an overhead
 * governor runs in a thread of its own: it estimates the cost on the target
 * (hits/s x cost per hit of each probe's instruction kind, plus the BPF program's run
 * time, both from engine/governor.c) and keeps the average under a budget by
 * detaching hot probes and re-attaching them for short sampling windows (duty
 * cycling). Counts from a probe that was ever off are partial, and the stats say so.
 *
 * Exits are seen at runtime.goexit1, parks at runtime.gopark, readies at
 * runtime.ready: wakeups that bypass ready (netpoll and GC work lists, through
 * injectglist) are not readies, and a goroutine created before attach is counted
 * but not in the goroutine table.
 */
#ifndef GOTRACE_ENGINE_LIFECYCLE_H
#define GOTRACE_ENGINE_LIFECYCLE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <linux/types.h>
#include "gotrace/lifecycle.h"
#include "goruntime/model.h"

#define LIFECYCLE_DEFAULT_BUDGET_PCT 1.0

struct lifecycle;

struct lifecycle_opts {
	/*
	 * Overhead budget, % of one CPU, averaged: 0 = LIFECYCLE_DEFAULT_BUDGET_PCT,
	 * < 0 = no limit (the governor still measures and reports).
	 */
	double budget_pct;
	unsigned int probes;	     /* 1 << LC_PROBE_*; 0 = all */
	bool per_event;		     /* explicit mode: every event through the ring buffer */
	int stack_depth;	     /* creator frames per creation stack: 0 = 12, < 0 = none */
	unsigned int max_goroutines; /* goroutine table size: 0 = 65536 */
	unsigned int ringbuf_kb;     /* 0 = 4096 (rounded up to a power of two pages) */
	unsigned int tick_ms;	     /* governor period: 0 = 20 */
	bool no_calibrate;	     /* use the built-in cost table, do not time a probe */
	/*
	 * Creations at newproc1's RETs (every creation, a single-stepped trap each)
	 * instead of the go statement's call of runqput (a nop5 or emulated call, several
	 * times cheaper, but blind to iter.Pull coroutines and debugger calls).
	 */
	bool create_at_ret;
	/* Per-event mode: called from the governor thread for each record, in order. */
	void (*on_event)(void *ctx, const struct lc_event *e);
	void *ctx;
};

enum lifecycle_probe_state {
	LIFECYCLE_PROBE_UNUSED,	 /* not asked for, or not in the binary */
	LIFECYCLE_PROBE_ON,	 /* attached */
	LIFECYCLE_PROBE_SAMPLING, /* re-attached for a sampling window */
	LIFECYCLE_PROBE_OFF,	 /* detached by the governor */
	LIFECYCLE_PROBE_FAILED,	 /* could not be (re)attached */
};

struct lifecycle_probe_stats {
	const char *name;     /* "newproc1" */
	const char *func;     /* "runtime.newproc1" */
	const char *site;     /* "ret", "after-prologue", "nop before runqput" */
	const char *insn;     /* instruction kind: "emulated", "single-step", "nop5" */
	enum lifecycle_probe_state state;
	int nsites;	      /* uprobes (RETs of newproc1), all in one link */
	uint64_t hits;
	double cost_ns;	      /* per hit: calibrated trap + BPF program run time */
	double rate_on;	      /* hits/s measured while attached, last window */
	double cost_on;	      /* CPU-s/s the probe costs while attached (rate_on x cost_ns) */
	double on_s, off_s;   /* time attached / detached by the governor */
	uint64_t off_windows; /* times the governor detached it */
};

struct lifecycle_stats {
	double elapsed_s;
	uint64_t created, exited, parked, readied;
	uint64_t exit_untracked; /* exits of goroutines created before attach or while off */
	uint64_t exit_swept;	 /* table entries found dead by a sweep (exit missed while off) */
	uint64_t lost_events;	 /* ring buffer full */
	uint64_t events;	 /* records submitted; events_read = consumed by userspace */
	uint64_t events_read;
	uint64_t read_errors;	 /* target memory reads that failed in BPF */
	uint64_t table_full;	 /* creations not in the goroutine table */
	uint64_t sites_full, stacks_full, stack_bad;
	uint64_t tracked;	 /* goroutines in the table now */
	uint64_t park_reason[LC_MAX_WAITREASONS];
	struct lifecycle_probe_stats probes[LC_PROBE__CNT];
	double budget_pct;	 /* < 0: no limit */
	double burst_s;		 /* the bucket: this many seconds of budget may be spent at once */
	double tick_s;		 /* governor period */
	double est_cost_pct;	 /* now: attached probes' cost, % of one CPU */
	double avg_cost_pct;	 /* since attach */
	double calib_emulated_ns, calib_singlestep_ns, calib_nop5_ns; /* trap cost per hit */
	bool calibrated;	 /* measured here (else the built-in table) */
	bool multi_links;	 /* uprobe_multi links (else perf-event uprobes) */
	bool partial;		 /* some probe was off for a while: counts are lower bounds */
	bool target_exited;
	char governor[512];	 /* "all probes on", or what is off and why */
};

/* A creation site: runtime addresses (subtract the load bias for pclntab). */
struct lifecycle_site {
	uint64_t gopc, startpc;
	uint64_t created, exited; /* exited: of those created (and tracked) here */
};

struct lifecycle_stack {
	uint64_t count;
	int depth;
	const uint64_t *pcs; /* return addresses, innermost (gopc) first */
};

struct lifecycle_goroutine {
	uint64_t goid, parent_goid, gopc, startpc, g;
	uint8_t state; /* enum lc_gstate */
	uint8_t waitreason;
	double age_s, since_s; /* since creation, since the last state change */
};

/*
 * Load the BPF programs for M's Go version and attach them to PID (M must describe
 * PID's executable and outlive the handle). Starts the governor thread.
 * Returns 0 or -errno with gt_lasterr() set (no BPF, unsupported version, gone).
 */
int lifecycle__attach(const struct go_model *m, pid_t pid, const struct lifecycle_opts *o,
		      struct lifecycle **out);
/* Cumulative counts and the governor's state. 0 or -errno. */
int lifecycle__poll(struct lifecycle *lc, struct lifecycle_stats *st);
/* Every creation site / creation stack / tracked goroutine; CB returning non-zero stops. */
int lifecycle__foreach_site(struct lifecycle *lc,
			    int (*cb)(void *ctx, const struct lifecycle_site *s), void *ctx);
int lifecycle__foreach_stack(struct lifecycle *lc,
			     int (*cb)(void *ctx, const struct lifecycle_stack *s), void *ctx);
int lifecycle__foreach_goroutine(struct lifecycle *lc,
				 int (*cb)(void *ctx, const struct lifecycle_goroutine *g),
				 void *ctx);
/*
 * Drop the table entries of goroutines that are gone (their exit was not seen: created
 * before a detach of goexit1) by reading their g in the target. Returns how many.
 */
uint64_t lifecycle__sweep(struct lifecycle *lc);
/* Stop the governor, detach every probe, free. Safe after the target exited; NULL ok. */
void lifecycle__detach(struct lifecycle *lc);

const char *lifecycle__probe_state_name(enum lifecycle_probe_state s);

#endif
