// SPDX-License-Identifier: MIT
/*
 * Scheduling latency and GC pauses over successive intervals: rthist reads, differences.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "contention/schedlat.h"
#include "util/log.h"

struct schedlat {
	const struct go_model *m;
	struct proc_mem *mem;
	struct rthist_addrs a;
	struct rthist ttr, gcp;	/* the previous reads */
	bool have_ttr, have_gcp;
	int64_t mutex_wait;
	bool have_mutex_wait;
	double t;		/* CLOCK_MONOTONIC of the previous read */
};

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Read histogram ADDR into H; false when absent or unreadable (*ERR: -errno). */
static bool read_one(struct schedlat *s, uint64_t addr, struct rthist *h, int *err)
{
	*err = 0;
	if (!addr)
		return false;
	*err = rthist__read(s->m, s->mem, addr, s->a.layout, h);
	return !*err;
}

/* OUT from the difference CUR - PREV. */
static void fill(struct schedlat_hist *out, const struct rthist *cur, const struct rthist *prev)
{
	struct rthist d;

	out->available = true;
	out->suspect = rthist__sub(cur, prev, &d) != 0;
	out->count = rthist__total(&d);
	out->p50_ns = rthist__quantile(&d, 0.5);
	out->p99_ns = rthist__quantile(&d, 0.99);
	out->max_ns = rthist__max(&d);
}

struct schedlat *schedlat__new(const struct go_model *m, struct proc_mem *mem)
{
	struct schedlat *s = calloc(1, sizeof(*s));
	int err;

	if (!s) {
		errno = ENOMEM;
		return NULL;
	}
	s->m = m;
	s->mem = mem;
	/* Without the scheduling-latency histogram the handle still answers "unavailable". */
	if (rthist__locate(m, &s->a))
		vlog("gotrace: no scheduling-latency histogram: %s\n", s->a.why);
	s->have_ttr = read_one(s, s->a.time_to_run, &s->ttr, &err);
	s->have_gcp = read_one(s, s->a.gc_pauses, &s->gcp, &err);
	s->have_mutex_wait = s->a.mutex_wait &&
			     !proc_mem__read(mem, go_model__to_runtime(m, s->a.mutex_wait),
					     &s->mutex_wait, sizeof(s->mutex_wait));
	s->t = mono_s();
	return s;
}

int schedlat__read(struct schedlat *s, struct schedlat_sample *out)
{
	struct rthist ttr, gcp;
	int64_t mw = 0;
	double now;
	int err, ret = 0;

	memset(out, 0, sizeof(*out));
	out->sched.p50_ns = out->sched.p99_ns = out->sched.max_ns = -1;
	out->gc = out->sched;
	out->mutex_wait_ns = -1;
	now = mono_s();
	out->interval_s = now - s->t;
	s->t = now;

	if (read_one(s, s->a.time_to_run, &ttr, &err)) {
		/* The first good read only sets the baseline. */
		if (s->have_ttr)
			fill(&out->sched, &ttr, &s->ttr);
		s->ttr = ttr;
		s->have_ttr = true;
	} else if (err) {
		ret = err;
	}
	if (read_one(s, s->a.gc_pauses, &gcp, &err)) {
		if (s->have_gcp)
			fill(&out->gc, &gcp, &s->gcp);
		s->gcp = gcp;
		s->have_gcp = true;
	} else if (err && !ret) {
		ret = err;
	}
	if (s->a.mutex_wait && !proc_mem__read(s->mem, go_model__to_runtime(s->m, s->a.mutex_wait),
					       &mw, sizeof(mw))) {
		if (s->have_mutex_wait)
			out->mutex_wait_ns = mw - s->mutex_wait;
		s->mutex_wait = mw;
		s->have_mutex_wait = true;
	}
	return ret;
}

const char *schedlat__why(const struct schedlat *s, bool gc)
{
	if (gc)
		return s->a.gc_pauses ? "" : s->a.gc_why;
	return s->a.time_to_run ? "" : s->a.why;
}

void schedlat__free(struct schedlat *s)
{
	free(s);
}
