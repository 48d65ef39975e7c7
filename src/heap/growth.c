// SPDX-License-Identifier: MIT
/* Growth points per GC cycle and the suspects they show (see growth.h). */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "heap/growth.h"
#include "util/log.h"

#define GROWTH_MIN_BYTES (256 << 10) /* growth of at least this much ... */
#define GROWTH_MIN_SAMPLES 2	     /* ... or this many sampling periods, if more */
#define MAX_POINTS 100000
#define WALK_BUDGET_PCT 10	     /* point walks: at most this share of a CPU */

/* One GC cycle's point: the in-use bytes of each raw stack as of that cycle's mark end. */
struct point {
	uint64_t mono_ns;
	uint32_t cycle; /* heap profile cycle */
	uint32_t numgc;
	size_t off, n;	/* its values in vals */
};

struct pval {
	uint32_t raw;
	double bytes;
};

struct heap_watch {
	struct heap_reader *r;
	struct heap_sites *hs;
	int64_t rate;
	bool as_of_gc;
	struct heap_snapshot snap;
	struct point *pts;
	size_t npts, cappts;
	struct pval *vals;
	size_t nvals, capvals;
	struct heap_suspect *sus;
	size_t nsus, capsus;
	uint64_t next_walk_ns;
	struct heap_watch_stats st;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t n = *cap ? *cap : 64;
	void *q;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	q = realloc(*p, n * elem);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

struct heap_watch *heap_watch__new(struct heap_reader *r, struct heap_sites *hs, int64_t rate,
				   bool as_of_gc)
{
	struct heap_watch *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->r = r;
	w->hs = hs;
	w->rate = rate;
	w->as_of_gc = as_of_gc;
	return w;
}

void heap_watch__free(struct heap_watch *w)
{
	if (!w)
		return;
	heap_snapshot__free(&w->snap);
	free(w->pts);
	free(w->vals);
	free(w->sus);
	free(w);
}

void heap_watch__stats(const struct heap_watch *w, struct heap_watch_stats *st)
{
	*st = w->st;
	st->points = w->npts;
	st->as_of_gc = w->as_of_gc;
	st->numgc_first = w->npts ? w->pts[0].numgc : 0;
}

/* Record the snapshot as a point (GC number NUMGC). 0 or -ENOMEM. */
static int add_point(struct heap_watch *w, uint32_t numgc)
{
	enum heap_view view = w->as_of_gc ? HEAP_VIEW_AS_OF_GC : HEAP_VIEW_PUBLISHED;
	const struct heap_snapshot *s = &w->snap;
	struct point *p;

	if (w->npts >= MAX_POINTS)
		return 0;
	if (grow((void **)&w->pts, &w->cappts, w->npts + 1, sizeof(*w->pts)) ||
	    grow((void **)&w->vals, &w->capvals, w->nvals + s->n, sizeof(*w->vals)))
		return -ENOMEM;
	p = &w->pts[w->npts++];
	p->mono_ns = s->mono_ns;
	p->cycle = s->cycle_raw >> 1;
	p->numgc = numgc;
	p->off = w->nvals;
	p->n = 0;
	for (size_t i = 0; i < s->n; i++) {
		const struct heap_bucket *b = &s->b[i];
		uint64_t al, fr;
		double o, bytes;
		long raw;

		heap_snapshot__counts(s, b, view, &al, &fr);
		if (al == fr)
			continue;
		raw = heap_sites__raw(w->hs, s->pcs + b->stk, b->nstk);
		if (raw < 0)
			return (int)raw;
		heap_scale(al - fr, (al - fr) * b->size, w->rate, &o, &bytes);
		w->vals[w->nvals++] = (struct pval){ (uint32_t)raw, bytes };
		p->n++;
	}
	return 0;
}

/*
 * Is the heap as of cycle G's mark end readable now? With the sweep state: G's sweep is
 * done (then future[C] and future[C+1] hold all of G's frees). Without it: the cycle was
 * just published (the flushed bit), and the published view is used.
 */
static bool point_ready(const struct heap_watch *w, const struct heap_gc *g)
{
	if (w->npts && w->pts[w->npts - 1].cycle == g->cycle_raw >> 1)
		return false;
	/* A big profile under very frequent GCs: some cycles get no point. */
	if (now_ns() < w->next_walk_ns)
		return false;
	return w->as_of_gc ? g->sweep_done : g->cycle_raw & 1;
}

int heap_watch__update(struct heap_watch *w, const struct heap_gc *g)
{
	struct heap_gc after;
	int err;

	if (!point_ready(w, g))
		return 0;
	err = heap_reader__snapshot(w->r, &w->snap);
	if (!err)
		err = heap_reader__read_gc(w->r, &after);
	/* A walk that kept failing (torn reads) costs this cycle its point, not the watch. */
	if (err && err != -ESRCH && err != -ENOMEM) {
		w->st.failed++;
		vlog("gotrace: no growth point for GC cycle %u: %s\n", g->cycle_raw >> 1,
		     gt_lasterr() ? gt_lasterr() : strerror(-err));
		return 0;
	}
	if (err)
		return err;
	w->st.snapshots++;
	w->st.retries += (uint64_t)w->snap.retries;
	w->st.walk_ns_sum += w->snap.walk_ns;
	if (w->snap.walk_ns > w->st.walk_ns_max)
		w->st.walk_ns_max = w->snap.walk_ns;
	w->next_walk_ns = now_ns() + w->snap.walk_ns * (100 / WALK_BUDGET_PCT);
	/* Kept only when the cycle (and its sweep being done) held during the walk. */
	if (after.cycle_raw >> 1 != g->cycle_raw >> 1 ||
	    w->snap.cycle_raw >> 1 != g->cycle_raw >> 1 || (w->as_of_gc && !after.sweep_done))
		return 0;
	return add_point(w, after.numgc);
}

/* The frame just inside the site: the runtime function it called (makeslice...), or -1. */
static long via_frame(struct heap_sites *hs, uint32_t raw, uint32_t shown)
{
	const uint64_t *pcs;
	struct heap_stack st;
	uint32_t n;
	long prev = -1;

	heap_sites__stack(hs, shown, &st);
	pcs = heap_sites__raw_pcs(hs, raw, &n);
	for (uint32_t i = 0; st.n && i < n; i++) {
		long fid = heap_sites__frame_of(hs, pcs[i]);

		if (fid < 0 || (uint64_t)fid == st.frames[0])
			return prev;
		prev = fid;
	}
	return -1;
}

static int cmp_suspect(const void *a, const void *b)
{
	const struct heap_suspect *x = a, *y = b;

	return x->per_min < y->per_min ? 1 : x->per_min > y->per_min ? -1 : 0;
}

double heap_growth__floor(int64_t rate)
{
	double f = GROWTH_MIN_SAMPLES * (double)(rate > 1 ? rate : 1);

	return f < GROWTH_MIN_BYTES ? GROWTH_MIN_BYTES : f;
}

bool heap_series__grows(const struct heap_series *s, double floor_bytes)
{
	return s->rises >= HEAP_GROWTH_MIN_RISES && s->last - s->first >= floor_bytes &&
	       2 * s->down <= s->up;
}

void heap_series__add(struct heap_series *s, double value, double floor_bytes)
{
	double d = value - s->last;

	if (!s->points++) {
		s->first = s->last = value;
		return;
	}
	/* Sampled bytes move by whole samples: anything smaller is rounding. */
	if (d > 0.5) {
		s->rises++;
		s->up += d;
	} else if (d < -0.5) {
		s->falls++;
		s->down -= d;
	}
	s->last = value;
	if (!s->flagged_at && heap_series__grows(s, floor_bytes))
		s->flagged_at = s->points - 1;
}

int heap_watch__suspects(struct heap_watch *w, const struct heap_suspect **out, size_t *nout)
{
	size_t nraw = heap_sites__raw_cnt(w->hs);
	double *cur, floor_b = heap_growth__floor(w->rate);
	struct heap_series *ser;
	int err = -ENOMEM;

	w->nsus = 0;
	*out = w->sus;
	*nout = 0;
	if (w->npts < HEAP_GROWTH_MIN_RISES + 1 || !nraw)
		return 0;
	ser = calloc(nraw, sizeof(*ser));
	cur = calloc(nraw, sizeof(*cur));
	if (!ser || !cur)
		goto out;
	/* Stacks first seen later were at 0 before: every series starts at the first point. */
	for (size_t p = 0; p < w->npts; p++) {
		memset(cur, 0, nraw * sizeof(*cur));
		for (size_t k = 0; k < w->pts[p].n; k++)
			cur[w->vals[w->pts[p].off + k].raw] += w->vals[w->pts[p].off + k].bytes;
		for (size_t k = 0; k < nraw; k++)
			heap_series__add(&ser[k], cur[k], floor_b);
	}
	for (size_t k = 0; k < nraw; k++) {
		const struct point *a = &w->pts[0], *b = &w->pts[w->npts - 1];
		const struct heap_series *x = &ser[k];
		struct heap_suspect *s;
		long shown;

		if (x->rises)
			dlog("gotrace: growth: stack %zu: %.0f -> %.0f bytes over %zu points, %d "
			     "rises (%.0f), %d falls (%.0f)\n", k, x->first, x->last, w->npts,
			     x->rises, x->up, x->falls, x->down);
		if (!heap_series__grows(x, floor_b))
			continue;
		shown = heap_sites__shown_of_raw(w->hs, (uint32_t)k);
		if (shown < 0 || grow((void **)&w->sus, &w->capsus, w->nsus + 1, sizeof(*w->sus)))
			goto out;
		s = &w->sus[w->nsus++];
		s->raw = (uint32_t)k;
		s->shown = (uint32_t)shown;
		s->first = x->first;
		s->last = x->last;
		s->growth = x->last - x->first;
		s->per_min = b->mono_ns > a->mono_ns ?
				     s->growth * 60e9 / (double)(b->mono_ns - a->mono_ns) : 0;
		s->rises = x->rises;
		s->falls = x->falls;
		s->flagged_after = x->flagged_at;
		s->points = (int)w->npts;
		s->numgc_first = a->numgc;
		s->numgc_last = b->numgc;
		s->via = via_frame(w->hs, (uint32_t)k, (uint32_t)shown);
	}
	qsort(w->sus, w->nsus, sizeof(*w->sus), cmp_suspect);
	*out = w->sus;
	*nout = w->nsus;
	err = 0;
out:
	free(ser);
	free(cur);
	return err;
}
