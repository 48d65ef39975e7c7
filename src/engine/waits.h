/* SPDX-License-Identifier: MIT */
/*
 * Exact blocked time of one process (bpf/waits.bpf.c): every park-to-ready interval,
 * measured in the kernel, aggregated per (parked stack, wait reason) with a latency
 * histogram, and per (waker stack, parked stack, wait reason): who wakes whom.
 *
 * Two uprobes, runtime.gopark and runtime.ready, after their stack-check prologue. Each
 * hit costs the target a trap (microseconds), so an overhead governor thread estimates
 * that cost (hits/s x the trap cost of the probed instruction's kind + the BPF program's
 * own run time, both from engine/governor.h) and keeps its average under a budget with
 * a token bucket: when the bucket is empty both probes are detached together until it
 * is full again (duty cycling). Intervals that span a detached period are dropped and
 * counted; totals are then partial, and the stats say so and for how long.
 *
 * Wake-ups that bypass runtime.ready (netpoll and GC work lists through injectglist,
 * aborted parks) are not seen: they are counted, per wait reason of the park, when
 * the goroutine parks again.
 */
#ifndef GOTRACE_ENGINE_WAITS_H
#define GOTRACE_ENGINE_WAITS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <linux/types.h>
#include "gotrace/waits.h"
#include "goruntime/model.h"

#define WAITS_DEFAULT_BUDGET_PCT 5.0

struct waits;

struct waits_opts {
	/* Overhead budget, % of one CPU, averaged: 0 = WAITS_DEFAULT_BUDGET_PCT, < 0 none. */
	double budget_pct;
	int stack_depth;	  /* frames per stack: 0 = WT_MAX_STACK */
	unsigned int max_parked;  /* park table: 0 = 65536 */
	unsigned int max_sites;	  /* (stack, reason) sites: 0 = 4096 */
	unsigned int max_wakers;  /* (waker, wakee, reason): 0 = 8192 */
	unsigned int max_stacks;  /* distinct stacks: 0 = 16384 */
	unsigned int tick_ms;	  /* governor period: 0 = 20 */
	bool no_calibrate;	  /* built-in trap costs instead of timing a probe here */
};

enum waits_state {
	WAITS_ON,	/* probes attached */
	WAITS_OFF,	/* detached by the governor */
	WAITS_STOPPED,	/* detached for good (waits__stop) */
};

struct waits_probe_stats {
	const char *func;     /* "runtime.gopark" */
	const char *insn;     /* disassembly of the probed instruction */
	const char *kind;     /* "emulated", "single-step" */
	uint64_t pc;	      /* runtime address of the probed instruction */
	uint64_t hits;
	double cost_ns;	      /* per hit: trap + BPF run time */
	double trap_ns, prog_ns;
};

struct waits_stats {
	double elapsed_s;	/* since attach */
	double on_s, off_s;	/* probes attached / detached by the governor */
	uint64_t off_windows;	/* times the governor detached them */
	double first_off_s;	/* when it first did, since attach; < 0 never */
	bool partial;		/* detached at some point: totals are lower bounds */
	enum waits_state state;
	double budget_pct;	/* < 0: none */
	double est_cost_pct;	/* now, while attached: % of one CPU */
	double avg_cost_pct;	/* since attach */
	double burst_s;
	bool calibrated;	/* trap costs measured here (else built in) */
	bool multi_links;	/* uprobe_multi links (else perf-event uprobes, tail charged) */
	double tail_charged_s;	/* CPU-s charged for perf-event probes trapping after detach */
	struct waits_probe_stats probes[WT_PROBE__CNT];
	uint64_t c[WT_CNT__NR]; /* the BPF counters, summed over CPUs */
	uint64_t unseen_reason[WT_MAX_WAITREASONS];
	bool target_exited;
	char governor[256];	/* one line: what the governor did */
};

/* A stack from the stack table: runtime return addresses, innermost first. */
struct waits_stack {
	int depth;	      /* 0: unknown (not kept, or none) */
	bool truncated;
	const uint64_t *pcs;
};

struct waits_site {
	uint8_t reason;
	struct waits_stack stack;
	uint64_t count, total_ns, max_ns;
	const uint64_t *hist; /* WT_HIST_SLOTS counts; waits__hist_lower() gives the bounds */
};

struct waits_waker {
	uint8_t reason;
	bool no_goroutine;    /* readied by the scheduler itself (timers, GC): no waker stack */
	struct waits_stack waker, wakee;
	uint64_t count, total_ns;
};

/*
 * Load the programs for M's Go version, start the governor and attach to PID (M must
 * describe PID's executable and outlive the handle). 0 or -errno with gt_lasterr() set.
 */
int waits__attach(const struct go_model *m, pid_t pid, const struct waits_opts *o,
		  struct waits **out);
/* Counters and the governor's state now. 0 or -errno. */
int waits__poll(struct waits *w, struct waits_stats *st);
/* Stop the governor and detach the probes for good: the maps stop changing. */
void waits__stop(struct waits *w);
/* Every site / waker pair (read after waits__stop); CB returning non-zero stops. */
int waits__foreach_site(struct waits *w, int (*cb)(void *ctx, const struct waits_site *s),
			void *ctx);
int waits__foreach_waker(struct waits *w, int (*cb)(void *ctx, const struct waits_waker *k),
			 void *ctx);
/*
 * Park records left in the table: goroutines still parked, or woken unseen (netpoll) and
 * gone since, or parked before a detached period.
 */
uint64_t waits__still_parked(struct waits *w);
/* Lower bound in ns of histogram slot I (0 for the first; the upper bound is lower(I + 1)). */
uint64_t waits__hist_lower(int i);
/* Detach and free; NULL ok. */
void waits__detach(struct waits *w);

#endif
