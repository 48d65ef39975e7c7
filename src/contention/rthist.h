/* SPDX-License-Identifier: MIT */
/*
 * The Go runtime's own time histograms, read from a live process's memory: the
 * scheduling-latency distribution (runtime.sched.timeToRun, what runtime/metrics calls
 * /sched/latencies:seconds) and the GC stop-the-world pauses (/gc/pauses:seconds:
 * memstats.gcPauseDist before 1.22, sched.stwTotalTimeGC from 1.22). The runtime keeps
 * them whatever the program does, so reading them twice and subtracting gives the
 * distribution over a window at no cost to the target.
 *
 * Located without symbols: runtime.casgstatus records into timeToRun (inlined before 1.20,
 * a call to runtime.(*timeHistogram).record after), so decoding it with capstone gives the
 * address; gcMarkTermination and startTheWorldWithSema likewise for the GC pauses.
 */
#ifndef GOTRACE_CONTENTION_RTHIST_H
#define GOTRACE_CONTENTION_RTHIST_H

#include <stdbool.h>
#include <stdint.h>
#include "goruntime/model.h"
#include "proc/mem.h"

/* Buckets in runtime/metrics form: [underflow, counts..., overflow]. */
#define RTHIST_MAX_BUCKETS 721

enum rthist_layout {
	RTHIST_NONE = 0,
	/* 1.17-1.19: 45 super-buckets x 16 sub-buckets, underflow; last bucket open-ended. */
	RTHIST_HDR16,
	/* 1.21+: buckets from bit 9 to bit 47, 4 sub-buckets each, underflow and overflow. */
	RTHIST_HDR4,
};

struct rthist {
	enum rthist_layout layout;
	int n;				     /* buckets (runtime/metrics' len(Counts)) */
	uint64_t counts[RTHIST_MAX_BUCKETS];
};

struct rthist_addrs {
	enum rthist_layout layout;
	uint64_t time_to_run;	     /* link-time address of sched.timeToRun, 0 unknown */
	uint64_t gc_pauses;	     /* memstats.gcPauseDist or sched.stwTotalTimeGC, 0 unknown */
	const char *gc_pauses_name;
	uint64_t mutex_wait;	     /* sched.totalMutexWaitTime (int64 ns, 1.21+), 0 unknown */
	char why[200];		     /* why time_to_run is 0 */
	char gc_why[200];	     /* why gc_pauses is 0 */
};

/*
 * Find the runtime's histograms in M's binary (amd64). Returns 0 when at least the
 * scheduling-latency histogram was found, else -ENOENT / -ENOTSUP with A->why (and
 * gt_lasterr()) saying why. A missing GC-pause histogram only leaves A->gc_pauses 0.
 */
int rthist__locate(const struct go_model *m, struct rthist_addrs *a);
/* Read the histogram at link-time ADDR of layout L from the process. 0 or -errno. */
int rthist__read(const struct go_model *m, struct proc_mem *mem, uint64_t addr,
		 enum rthist_layout l, struct rthist *h);
/*
 * H = END - START, bucket by bucket. Returns 0, or -ERANGE when a bucket went backwards
 * (the memory is not a histogram the runtime only adds to).
 */
int rthist__sub(const struct rthist *end, const struct rthist *start, struct rthist *h);
uint64_t rthist__total(const struct rthist *h);
/*
 * Lower bound of bucket I in nanoseconds, as runtime/metrics' Float64Histogram.Buckets[I]
 * gives it in seconds: -INFINITY for the underflow bucket; the upper bound of bucket I
 * is lower(I + 1), INFINITY for the last.
 */
double rthist__lower(const struct rthist *h, int i);
/*
 * The Q-quantile (0 < Q <= 1) the way runtime/metrics' documentation computes a median:
 * the lower bound of the first bucket whose cumulative count reaches Q * total. -1 when
 * the histogram is empty.
 */
double rthist__quantile(const struct rthist *h, double q);
/* Upper bound of the highest non-empty bucket (its lower bound when open-ended); -1 if empty. */
double rthist__max(const struct rthist *h);
const char *rthist__layout_name(enum rthist_layout l);

#endif
