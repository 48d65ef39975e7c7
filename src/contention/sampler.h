/* SPDX-License-Identifier: MIT */
/*
 * Blocked time by (blocking stack, wait reason), estimated from goroutine censuses taken
 * many times a second: each census charges the time since the previous one to every
 * goroutine it finds waiting, at that goroutine's stack and wait reason. The target is
 * only read, never stopped or probed.
 *
 * What it measures is what Go's block profile measures: from the park to the wake-up
 * (a woken goroutine waiting for a CPU is runnable, not blocked: that is scheduling
 * latency). Totals are unbiased estimates; counts are blocking episodes observed, a
 * goroutine seen waiting at the same place in consecutive censuses being one episode,
 * so episodes shorter than the interval are undercounted and durations are multiples
 * of it (see contention__resolution_ns()).
 */
#ifndef GOTRACE_CONTENTION_SAMPLER_H
#define GOTRACE_CONTENTION_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "census/census.h"
#include "goruntime/model.h"
#include "gosym/pclntab.h"
#include "proc/mem.h"

#define CT_MAX_FRAMES 128     /* symbolized frames kept per stack (inlined ones included) */
#define CT_LONGEST 5	      /* runnable goroutines reported as having waited longest */

struct contention;

struct contention_opts {
	bool system; /* also charge the runtime's own goroutines (GC workers, ...) */
};

/* One symbolized frame of a stack, innermost first. */
struct ct_frame {
	uint64_t pc;	  /* runtime address (symbolization PC) */
	const char *func; /* into the binary's pclntab; "?" when unknown */
	const char *file;
	int line;
	bool inlined;
};

struct ct_stack {
	uint32_t depth;	      /* PCs */
	bool truncated;
	uint32_t nframes;     /* symbolized frames */
	uint32_t blocked_at;  /* index in frames of the first frame outside the runtime, sync,
				 internal/... machinery (where the program waits) */
	uint32_t top;	      /* index of the last machinery frame above it: what the user
				 called (runtime.chanrecv1, sync.(*Mutex).Lock, time.Sleep) */
	bool system;	      /* every frame is the runtime's own (GC workers, sweeper...) */
	struct ct_frame *frames;
	uint64_t pcs[];
};

struct ct_site {
	uint32_t stack;	      /* contention__stack() id */
	uint8_t reason;	      /* raw wait reason; go_waitreason() names it */
	uint64_t count;	      /* blocking episodes observed */
	uint64_t total_ns;    /* blocked time charged in the window */
	uint64_t p99_ns;      /* over the episodes' durations (nearest rank) */
	uint64_t max_ns;
	uint64_t *durs;	      /* episode durations (internal) */
	size_t ndurs, cap;
	uint64_t *hist;	      /* exact mode: latency histogram (add_site), or NULL */
	uint32_t nhist;
};

/* Exact mode: who wakes whom. */
struct ct_waker {
	uint32_t waker;	      /* contention__stack() id of the goroutine that called ready,
				 UINT32_MAX: no goroutine (the scheduler: timers, GC) or unknown */
	uint32_t wakee;	      /* the parked stack */
	uint8_t reason;
	uint64_t count;
	uint64_t total_ns;
};

struct ct_reason_total {
	uint64_t count;
	uint64_t total_ns;
};

/* A goroutine seen runnable (ready, not running) in consecutive censuses. */
struct ct_runnable {
	uint64_t goid;
	uint32_t stack;	    /* contention__stack() id, or UINT32_MAX */
	uint64_t waited_ns; /* lower bound: span of the censuses that saw it runnable */
};

struct ct_stats {
	uint64_t samples;	  /* censuses fed */
	uint64_t charged_ns;	  /* window covered: the sum of the censuses' weights */
	uint64_t goroutines_max, goroutines_sum;
	uint64_t waiting_sum, runnable_sum, running_sum;
	uint64_t unreadable;	  /* goroutines the censuses could not read (summed) */
	uint64_t no_stack;	  /* waiting goroutines charged without a stack (summed) */
	uint64_t waitsince_splits; /* episodes split because g.waitsince changed */
	uint64_t census_retries;
	uint64_t system_sites;	  /* exact mode: sites of runtime goroutines left out */
};

/* A sampler for the process M was opened on. NULL with errno (ENOMEM). */
struct contention *contention__new(const struct go_model *m, const struct contention_opts *opts);
void contention__free(struct contention *ct);
/*
 * Feed census C, taken at CLOCK_MONOTONIC time T_NS (the clock of the runtime's
 * nanotime), standing for WEIGHT_NS of the window: every goroutine it finds waiting is
 * charged that much. Unbiased when T_NS is drawn uniformly inside the WEIGHT_NS-long
 * stretch it stands for (stratified sampling; fixed-phase sampling aliases with periodic
 * programs). MEM reads each waiting goroutine's g.waitsince (the GC stamps a goroutine
 * blocked across a cycle start; a new stamp means a new episode). 0 or -ENOMEM.
 */
int contention__sample(struct contention *ct, const struct census *c, struct proc_mem *mem,
		       uint64_t t_ns, uint64_t weight_ns);
/* Close the episodes still open, sort the sites by total_ns and compute p99s. */
void contention__finish(struct contention *ct);

/*
 * Exact mode: add a site measured elsewhere (every interval seen), whose stack is PCS[0..N)
 * (symbolization PCs, innermost first), with its figures and, if HIST, a copy of its NHIST
 * histogram counts. A stack of the runtime's own goroutines is left out (counted in
 * stats.system_sites) unless opts.system. Before contention__finish(). 0 or -ENOMEM.
 */
int contention__add_site(struct contention *ct, const uint64_t *pcs, uint32_t n, bool trunc,
			 uint8_t reason, uint64_t count, uint64_t total_ns, uint64_t p99_ns,
			 uint64_t max_ns, const uint64_t *hist, uint32_t nhist);
/*
 * Exact mode: COUNT wake-ups totalling TOTAL_NS of the goroutines parked at stack EPCS by
 * the goroutine at stack WPCS (WN 0: none or unknown). Same rules. 0 or -ENOMEM.
 */
int contention__add_waker(struct contention *ct, const uint64_t *wpcs, uint32_t wn, bool wtrunc,
			  const uint64_t *epcs, uint32_t en, bool etrunc, uint8_t reason,
			  uint64_t count, uint64_t total_ns);
/* Wakers, by total_ns (after contention__finish()). */
size_t contention__waker_cnt(const struct contention *ct);
const struct ct_waker *contention__waker(const struct contention *ct, size_t i);

size_t contention__site_cnt(const struct contention *ct);
const struct ct_site *contention__site(const struct contention *ct, size_t i);
/* Totals per raw wait reason; *N gets the array length (256). */
const struct ct_reason_total *contention__reasons(const struct contention *ct, size_t *n);
const struct ct_stack *contention__stack(const struct contention *ct, uint32_t id);
const struct ct_stats *contention__stats(const struct contention *ct);
/* The runnable goroutines that waited longest, longest first; returns how many. */
size_t contention__longest_runnable(const struct contention *ct, const struct ct_runnable **out);
/* Mean weight of a census: the time resolution of counts and durations. */
uint64_t contention__resolution_ns(const struct contention *ct);
/* The name of wait reason R for this binary's Go version ("" for none, "?" unknown). */
const char *contention__reason_name(const struct contention *ct, unsigned r);

#endif
