/* SPDX-License-Identifier: MIT */
/*
 * The Go runtime's own heap profile and GC statistics, read from a live process's memory.
 *
 * The runtime samples one allocation per MemProfileRate bytes (512 KiB by default) into
 * profile buckets (runtime/mprof.go): one per (allocation stack, object size), linked from
 * runtime.mbuckets through bucket.allnext, each followed by its stack PCs and a memRecord:
 *	active     the published counts (allocs, frees) as of a completed GC cycle
 *	future[3]  counts of cycles not yet published, indexed by the profile cycle C:
 *	           mallocs go to C+2, sweep frees to C+1; mark termination moves C into active
 * Buckets are never freed and only prepended, so the list can be walked while the target
 * runs; the counts are re-read whole and a walk that crossed a cycle change is retried.
 *
 * Three readings of a bucket's counts:
 *	HEAP_VIEW_PUBLISHED  what runtime.MemProfile (and so pprof) returns now: active plus
 *	                     future[C] (not yet flushed right after mark termination), or every
 *	                     cycle when nothing was published yet (no GC so far)
 *	HEAP_VIEW_AS_OF_GC   the heap as of the last mark termination C, once its sweep is done:
 *	                     active + future[C] + future[C+1] (what runtime.GC() publishes)
 *	HEAP_VIEW_TOTAL      every sampled allocation so far, published or not (for rates)
 */
#ifndef GOTRACE_HEAP_PROFILE_H
#define GOTRACE_HEAP_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "goruntime/model.h"
#include "heap/locate.h"
#include "proc/mem.h"

#define HEAP_MAX_STACK 1024 /* runtime maxProfStackDepth */

enum heap_view { HEAP_VIEW_PUBLISHED, HEAP_VIEW_AS_OF_GC, HEAP_VIEW_TOTAL };

struct heap_bucket {
	uint64_t addr;	     /* in the target */
	uint64_t size;	     /* object size (rounded to the size class) */
	uint32_t nstk;
	uint32_t stk;	     /* index of the first PC in the snapshot's pcs[] */
	uint64_t active[2];  /* allocs, frees */
	uint64_t future[3][2];
};

struct heap_snapshot {
	uint64_t mono_ns;      /* CLOCK_MONOTONIC when the walk ended */
	uint32_t cycle_raw;    /* runtime.mProfCycle: cycle << 1 | flushed */
	bool none_published;   /* every bucket's active is 0: no GC published yet */
	size_t n;
	struct heap_bucket *b;
	uint64_t *pcs;	       /* runtime return addresses, innermost first */
	size_t npcs;
	uint64_t walk_ns;      /* how long the last walk took */
	int retries;	       /* walks restarted because a GC cycle changed meanwhile */
	size_t cap_b, cap_pcs; /* allocated lengths of b and pcs */
};

/* GC statistics (fields valid when their have_* is set). */
struct heap_gc {
	bool have_memstats, have_controller, have_sweep, have_rate, have_disabled;
	uint32_t numgc, numforcedgc;
	uint64_t pause_total_ns, last_gc_unix_ns;
	uint64_t heap_live;    /* gcController.heapLive: bytes in use now (plus unswept) */
	uint64_t heap_marked;  /* gcController.heapMarked: live bytes at the last mark end */
	uint64_t heap_goal;    /* heapGoal() as the runtime computes it without a memory limit */
	int64_t memory_limit;  /* gcController.memoryLimit (math.MaxInt64: none) */
	bool sweep_done;       /* sweep.active.state == sweepDrainedMask */
	uint32_t cycle_raw;    /* runtime.mProfCycle */
	int64_t mem_profile_rate;
	bool disabled;	       /* runtime.disableMemoryProfiling */
};

struct heap_reader;

/*
 * Locate M's heap profile and open it for reading through MEM (both must outlive the
 * reader). NULL with errno and gt_lasterr() set when the buckets cannot be located.
 */
struct heap_reader *heap_reader__new(const struct go_model *m, struct proc_mem *mem);
/* A reader of the variables V as given (not located), e.g. synthetic ones in tests. */
struct heap_reader *heap_reader__new_vars(const struct go_model *m, struct proc_mem *mem,
					  const struct heap_vars *v);
void heap_reader__free(struct heap_reader *r);
const struct heap_vars *heap_reader__vars(const struct heap_reader *r);

#define HEAP_PAUSE_RING 256

/*
 * The runtime's rings of the last 256 GC cycles (memstats.pause_ns, pause_end: what
 * ReadMemStats gives as PauseNs and PauseEnd): cycle N (numgc after it) at (N - 1) % 256.
 * 0, -ENOENT (memstats not located) or the read error.
 */
int heap_reader__read_pauses(struct heap_reader *r, uint64_t pause_ns[HEAP_PAUSE_RING],
			     uint64_t pause_end[HEAP_PAUSE_RING]);
/*
 * Everything the process allocated so far, as runtime.ReadMemStats counts TotalAlloc and
 * Mallocs, from the runtime's sharded heap statistics (memstats.heapStats), which take
 * small allocations when a span leaves an mcache (so up to one span per size class and P
 * lags) and large ones at once. No allocation is seen, nothing stops: a few KiB read.
 * 0, -ENOENT (memstats not located), -EAGAIN (the runtime was merging the statistics),
 * or the read error.
 */
int heap_reader__read_alloc_total(struct heap_reader *r, uint64_t *bytes, uint64_t *objects);
/*
 * The same sum over a copy BUF of the heapStats words (3 generations and gen) laid out as
 * L says; the pure part of heap_reader__read_alloc_total(), for tests.
 */
void heap_alloc_total(const struct heap_layout *l, const uint8_t *buf, uint64_t *bytes,
		      uint64_t *objects);
/* Read the GC statistics (a few words). 0, or -ESRCH when the process is gone. */
int heap_reader__read_gc(struct heap_reader *r, struct heap_gc *gc);
/*
 * Walk every bucket into S (its arrays reused across calls). Retried (up to a few times)
 * when a GC cycle is published meanwhile. 0, or -errno with gt_lasterr() set (-ESRCH: the
 * process is gone; -EINVAL: the memory does not hold a bucket list).
 */
int heap_reader__snapshot(struct heap_reader *r, struct heap_snapshot *s);
void heap_snapshot__free(struct heap_snapshot *s);

/* The bucket's allocation and free counts in VIEW. */
void heap_snapshot__counts(const struct heap_snapshot *s, const struct heap_bucket *b,
			   enum heap_view view, uint64_t *allocs, uint64_t *frees);
/*
 * pprof's unsampling (runtime/pprof scaleHeapSample): COUNT objects of BYTES total sampled at
 * one per RATE bytes stand for COUNT/(1-exp(-avg/RATE)) objects, avg = BYTES/COUNT.
 */
void heap_scale(uint64_t count, uint64_t bytes, int64_t rate, double *objects, double *total);

#endif
