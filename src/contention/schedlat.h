/* SPDX-License-Identifier: MIT */
/*
 * Scheduling latency and GC stop-the-world pauses of a live Go process over the last
 * interval, for callers that poll (gotrace top, once a second): the runtime's own
 * histograms (rthist.h) read from the target's memory at each call and subtracted from
 * the previous read. A call costs two process_vm_readv reads (5.8 KB and 1.3 KB on Go
 * 1.21+, 5.8 KB twice before) and a pass over the buckets: microseconds, nothing for the
 * target.
 *
 * The figures are runtime/metrics' /sched/latencies:seconds and /gc/pauses:seconds over
 * the interval: the runtime records one runnable-to-running transition in 8
 * (gTrackingPeriod); quantiles are bucket lower bounds as runtime/metrics documents them.
 */
#ifndef GOTRACE_CONTENTION_SCHEDLAT_H
#define GOTRACE_CONTENTION_SCHEDLAT_H

#include <stdbool.h>
#include <stdint.h>
#include "contention/rthist.h"
#include "goruntime/model.h"
#include "proc/mem.h"

struct schedlat;

/* One histogram over the interval. Quantiles in ns, -1 when nothing was recorded. */
struct schedlat_hist {
	bool available;	  /* located and read (else see schedlat__why()) */
	uint64_t count;	  /* recorded in the interval */
	double p50_ns, p99_ns, max_ns;
	bool suspect;	  /* a bucket went backwards: the memory may not be the histogram */
};

struct schedlat_sample {
	double interval_s;	    /* since the previous read (CLOCK_MONOTONIC) */
	struct schedlat_hist sched; /* runnable -> running */
	struct schedlat_hist gc;    /* GC stop-the-world pauses */
	int64_t mutex_wait_ns;	    /* runtime's sync.Mutex wait estimate (1.21+), or -1 */
};

/*
 * Locate the histograms in M's binary and take the first read through MEM (both must
 * outlive the handle). NULL with errno ENOMEM only: a version or architecture without
 * the histograms gives a handle whose samples say unavailable, schedlat__why() why.
 */
struct schedlat *schedlat__new(const struct go_model *m, struct proc_mem *mem);
/*
 * Read again; *OUT gets the interval since the previous read (or since schedlat__new()).
 * 0, or -errno when the process's memory cannot be read (-ESRCH: it is gone).
 */
int schedlat__read(struct schedlat *s, struct schedlat_sample *out);
/* Why the scheduling-latency (GC = false) or GC-pause histogram is unavailable, or "". */
const char *schedlat__why(const struct schedlat *s, bool gc);
void schedlat__free(struct schedlat *s);

#endif
