/* SPDX-License-Identifier: MIT */
/*
 * Growth detection on the runtime's heap profile: one point per GC cycle (the heap as of
 * that cycle's mark end, read once its sweep is done), per raw allocation stack, and the
 * stacks whose in-use bytes grow from one cycle to the next.
 *
 * For any watcher (gotrace heap, gotrace top): call heap_watch__update() with each fresh
 * GC state (heap_reader__read_gc(), every few tens of ms); it walks the buckets only when a
 * new cycle became readable, within a CPU budget. heap_watch__suspects() applies the rule
 * to the points so far.
 *
 * The rule: the in-use bytes of one raw stack rose in at least 2 cycles, by at least 2
 * sampling periods (256 KiB minimum) from the first point to the last, and gave back at
 * most half of their rises in falls. Falls are allowed: a cache with some eviction still
 * grows, and a sync.Pool drops the objects a goroutine left in another P's private slot.
 * Garbage comes and goes (as much falls as rises); a fixed working set stays flat. Raw
 * stacks (not the shown ones) keep a site's own allocations apart from, say, the map growth
 * on the same line, whose old arrays are freed.
 */
#ifndef GOTRACE_HEAP_GROWTH_H
#define GOTRACE_HEAP_GROWTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "heap/profile.h"
#include "heap/sites.h"

#define HEAP_GROWTH_MIN_RISES 2

struct heap_suspect {
	uint32_t raw, shown;	/* raw and shown stack ids (heap_sites) */
	double first, last;	/* in-use bytes at the first and last point (scaled) */
	double growth, per_min; /* last - first, and per minute between those points */
	int rises, falls, points;
	int flagged_after;	/* the point (cycle of the window) where the rule was first met */
	uint32_t numgc_first, numgc_last;
	long via;		/* frame id of the runtime function the site called, -1 none */
};

struct heap_watch_stats {
	uint64_t snapshots, walk_ns_sum, walk_ns_max, retries;
	uint64_t failed;       /* walks that failed (the cycle got no point) */
	size_t points;
	bool as_of_gc;	       /* points in the as-of-GC view (else published, after each GC) */
	uint32_t numgc_first;  /* GC number at the first point */
};

struct heap_watch;

/* ---- the rule on one series (pure: heap_watch__suspects() applies it to every stack) */

/* One allocation stack's in-use bytes, point after point. */
struct heap_series {
	int points;
	double first, last;	/* the first and the latest value */
	double up, down;	/* sums of the rises and of the falls */
	int rises, falls;
	int flagged_at;		/* the point where the rule was first met, 0 never */
};

/* The least growth that counts for sampling rate RATE (2 periods, 256 KiB minimum). */
double heap_growth__floor(int64_t rate);
/* Add the next point's VALUE to S (start from a zeroed S). */
void heap_series__add(struct heap_series *s, double value, double floor_bytes);
/* Does S meet the rule now (with FLOOR_BYTES the least growth)? */
bool heap_series__grows(const struct heap_series *s, double floor_bytes);

/*
 * Watch R's profile, interning stacks in HS (both outlive it). RATE scales samples
 * (MemProfileRate); AS_OF_GC: the sweep state is readable (heap_gc.have_sweep). NULL on
 * ENOMEM.
 */
struct heap_watch *heap_watch__new(struct heap_reader *r, struct heap_sites *hs, int64_t rate,
				   bool as_of_gc);
void heap_watch__free(struct heap_watch *w);
/*
 * G is a fresh GC state: when a cycle not seen yet is readable, walk the buckets and add a
 * point (skipped while walks would take more than 10% of a CPU). 0 or -errno (-ESRCH: the
 * process is gone), gt_lasterr() set.
 */
int heap_watch__update(struct heap_watch *w, const struct heap_gc *g);
/* The suspects from the points so far, fastest growth first (owned by W). 0 or -ENOMEM. */
int heap_watch__suspects(struct heap_watch *w, const struct heap_suspect **s, size_t *n);
void heap_watch__stats(const struct heap_watch *w, struct heap_watch_stats *st);

#endif
