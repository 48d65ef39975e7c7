// SPDX-License-Identifier: MIT
/* Goroutines over time: sites, blocking groups and leak suspects from successive censuses. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gwatch.h"
#include "goruntime/offsets.h"
#include "util/hash.h"
#include "util/log.h"

#define RATE_S 10.0 /* window of the creation and exit rates */

/* A goroutine known to be blocked in a group. */
struct member {
	uint64_t goid; /* 0: empty slot */
	uint32_t group;
	double first; /* monotonic seconds when first seen blocked there */
};

struct mtab {
	struct member *slot;
	size_t cap, n;
};

/* Index tables over the sites and groups arrays: open addressing, -1 empty. */
struct itab {
	int32_t *slot;
	size_t cap;
};

struct gwatch {
	struct session *s;
	int go_minor;
	double t0, last_t;  /* monotonic seconds of the first and last census */
	uint64_t last_maxgoid, last_total;
	/* (t, highest goid, total) per census, for creation and exit rates over RATE_S. */
	double rate_t[GW_HIST];
	uint64_t rate_goid[GW_HIST], rate_total[GW_HIST];
	unsigned rate_head, rate_len;
	bool have_last;
	struct gw_totals tot;
	struct gw_series total_hist;
	struct gw_site **sites;
	size_t nsites, sites_cap;
	struct gw_group **groups;
	size_t ngroups, groups_cap;
	struct itab site_ix, group_ix;
	struct mtab members;
	const struct gw_site **site_view;
	const struct gw_group **group_view;
};

static uint64_t group_hash(uint64_t gopc, uint64_t bpc, uint8_t r)
{
	return hash64(gopc ^ hash64(bpc) ^ ((uint64_t)r << 56));
}

/* ---- series */

static void series_push(struct gw_series *s, double t, uint32_t n)
{
	s->t[s->head] = t;
	s->n[s->head] = n;
	s->head = (s->head + 1) % GW_HIST;
	if (s->len < GW_HIST)
		s->len++;
}

/* The I-th newest point (0 = newest). */
static void series_at(const struct gw_series *s, unsigned i, double *t, uint32_t *n)
{
	unsigned k = (s->head + GW_HIST - 1 - i) % GW_HIST;

	*t = s->t[k];
	*n = s->n[k];
}

double gw_series__slope_per_min(const struct gw_series *s, double window_s)
{
	double st = 0, sn = 0, stt = 0, stn = 0, tnow, t;
	uint32_t n;
	unsigned k = 0;

	if (s->len < 2)
		return 0;
	series_at(s, 0, &tnow, &n);
	for (unsigned i = 0; i < s->len; i++) {
		series_at(s, i, &t, &n);
		if (tnow - t > window_s)
			break;
		t -= tnow;
		st += t;
		sn += n;
		stt += t * t;
		stn += t * n;
		k++;
	}
	if (k < 2 || k * stt - st * st <= 1e-9)
		return 0;
	return (k * stn - st * sn) / (k * stt - st * st) * 60.0;
}

/* The count at the newest point at least AGO seconds old (the oldest if none). */
static uint32_t series_ago(const struct gw_series *s, double ago, double *when)
{
	double tnow, t = 0;
	uint32_t n = 0;

	series_at(s, 0, &tnow, &n);
	for (unsigned i = 0; i < s->len; i++) {
		series_at(s, i, &t, &n);
		if (tnow - t >= ago)
			break;
	}
	if (when)
		*when = t;
	return n;
}

/* ---- tables */

static int itab_grow(struct itab *ix, size_t need, void *const *items, bool sites)
{
	size_t ncap = ix->cap ? ix->cap : 256;
	int32_t *ns;

	if (need * 2 <= ix->cap)
		return 0;
	while (need * 2 > ncap)
		ncap *= 2;
	ns = malloc(ncap * sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	memset(ns, 0xff, ncap * sizeof(*ns));
	for (size_t i = 0; i + 1 < need; i++) {
		uint64_t h;
		size_t j;

		if (sites) {
			const struct gw_site *e = items[i];

			h = hash64(e->gopc);
		} else {
			const struct gw_group *e = items[i];

			h = group_hash(e->gopc, e->blocked_pc, e->waitreason);
		}
		for (j = h & (ncap - 1); ns[j] >= 0; j = (j + 1) & (ncap - 1))
			;
		ns[j] = (int32_t)i;
	}
	free(ix->slot);
	ix->slot = ns;
	ix->cap = ncap;
	return 0;
}

static struct gw_site *site_get(struct gwatch *w, uint64_t gopc)
{
	struct gw_site *e;
	size_t j;

	if (itab_grow(&w->site_ix, w->nsites + 1, (void *const *)w->sites, true))
		return NULL;
	for (j = hash64(gopc) & (w->site_ix.cap - 1); w->site_ix.slot[j] >= 0;
	     j = (j + 1) & (w->site_ix.cap - 1))
		if (w->sites[w->site_ix.slot[j]]->gopc == gopc)
			return w->sites[w->site_ix.slot[j]];
	if (w->nsites == w->sites_cap) {
		size_t ncap = w->sites_cap ? w->sites_cap * 2 : 64;
		struct gw_site **nv = realloc(w->sites, ncap * sizeof(*nv));

		if (!nv)
			return NULL;
		w->sites = nv;
		w->sites_cap = ncap;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->gopc = gopc;
	e->created_at = w->s ? session__created_at(w->s, gopc) : (struct site){ "?", "?", 0 };
	w->site_ix.slot[j] = (int32_t)w->nsites;
	w->sites[w->nsites++] = e;
	return e;
}

static int32_t group_get(struct gwatch *w, uint64_t gopc, uint64_t bpc, uint8_t r,
			 struct site blocked_at)
{
	struct gw_group *e;
	size_t j;

	if (itab_grow(&w->group_ix, w->ngroups + 1, (void *const *)w->groups, false))
		return -1;
	for (j = group_hash(gopc, bpc, r) & (w->group_ix.cap - 1); w->group_ix.slot[j] >= 0;
	     j = (j + 1) & (w->group_ix.cap - 1)) {
		e = w->groups[w->group_ix.slot[j]];
		if (e->gopc == gopc && e->blocked_pc == bpc && e->waitreason == r)
			return w->group_ix.slot[j];
	}
	if (w->ngroups == w->groups_cap) {
		size_t ncap = w->groups_cap ? w->groups_cap * 2 : 64;
		struct gw_group **nv = realloc(w->groups, ncap * sizeof(*nv));

		if (!nv)
			return -1;
		w->groups = nv;
		w->groups_cap = ncap;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return -1;
	e->gopc = gopc;
	e->blocked_pc = bpc;
	e->waitreason = r;
	e->created_at = w->s ? session__created_at(w->s, gopc) : (struct site){ "?", "?", 0 };
	e->blocked_at = blocked_at;
	e->wait_reason = gwatch__reason_name(w, r);
	e->first_reported_s = -1;
	w->group_ix.slot[j] = (int32_t)w->ngroups;
	w->groups[w->ngroups++] = e;
	return (int32_t)(w->ngroups - 1);
}

static struct member *mtab_find(const struct mtab *t, uint64_t goid)
{
	size_t j;

	if (!t->cap)
		return NULL;
	for (j = hash64(goid) & (t->cap - 1); t->slot[j].goid; j = (j + 1) & (t->cap - 1))
		if (t->slot[j].goid == goid)
			return &t->slot[j];
	return NULL;
}

static struct member *mtab_put(struct mtab *t, uint64_t goid)
{
	size_t j;

	for (j = hash64(goid) & (t->cap - 1); t->slot[j].goid; j = (j + 1) & (t->cap - 1))
		if (t->slot[j].goid == goid)
			return &t->slot[j];
	t->slot[j].goid = goid;
	t->n++;
	return &t->slot[j];
}

/* ---- public */

const char *gwatch__reason_name(const struct gwatch *w, unsigned r)
{
	const char *n = go_waitreason(w->go_minor, r);

	return n && n[0] ? n : "unknown";
}

int gwatch__new(struct session *s, struct gwatch **out)
{
	struct gwatch *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->s = s;
	w->go_minor = s ? s->m->bi.minor : GO_MAX_MINOR;
	*out = w;
	return 0;
}

void gwatch__free(struct gwatch *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->nsites; i++)
		free(w->sites[i]);
	for (size_t i = 0; i < w->ngroups; i++)
		free(w->groups[i]);
	free(w->sites);
	free(w->groups);
	free(w->site_ix.slot);
	free(w->group_ix.slot);
	free(w->members.slot);
	free(w->site_view);
	free(w->group_view);
	free(w);
}

/* The leak rule (gwatch.h) for G at T. */
static void judge(struct gwatch *w, struct gw_group *g, double t, uint32_t retained_at_start)
{
	double t_start, span, tnow;
	uint32_t c0, c1, c2, c3 = (uint32_t)g->count, n;
	int grew;

	series_at(&g->hist, 0, &tnow, &n);
	if (g->suspect) {
		/* Stays a suspect until it shrinks to half of what it was when reported. */
		if (g->count * 2 < g->count_at_report) {
			g->suspect = false;
			snprintf(g->why, sizeof(g->why), "shrank from %" PRIu64 " to %" PRIu64,
				 g->count_at_report, g->count);
		}
		return;
	}
	c0 = series_ago(&g->hist, GW_WINDOW_S, &t_start);
	span = tnow - t_start;
	if (span < GW_MIN_AGE_S || c3 < GW_MIN_COUNT)
		return;
	c1 = series_ago(&g->hist, span * 2 / 3, NULL);
	c2 = series_ago(&g->hist, span / 3, NULL);
	grew = (c1 > c0) + (c2 > c1) + (c3 > c2);
	if (c3 < c0 + GW_MIN_GROWTH || c3 < c0 + c0 / 20 || grew < 2)
		return;
	if (retained_at_start * 10 < c0 * 9)
		return;
	if (g->oldest_blocked_s < GW_MIN_AGE_S)
		return;
	g->suspect = true;
	g->first_reported_s = t - w->t0;
	g->count_at_report = g->count;
	snprintf(g->why, sizeof(g->why),
		 "grew from %u to %u in %.0f s (%+.0f/min), %u of %u members still blocked, "
		 "oldest blocked %.0f s",
		 c0, c3, span, g->growth_per_min, retained_at_start, c0, g->oldest_blocked_s);
}

int gwatch__update(struct gwatch *w, const struct census *c, double t)
{
	struct mtab nm = { 0 };
	uint32_t *cnt = NULL, *retained = NULL;
	double *oldest = NULL;
	uint64_t maxgoid = 0;
	int64_t mono = (int64_t)(t * 1e9);
	struct gw_totals *T = &w->tot;
	double *t_start = NULL;
	int err = -ENOMEM;

	if (!w->have_last)
		w->t0 = t;
	memset(T, 0, sizeof(*T));
	T->t = t - w->t0;
	T->total = c->user;
	T->system = c->system;
	T->unreadable = c->unreadable;
	T->stack_unknown = c->stack_unknown;
	T->census_ms = c->elapsed_ms;

	/* Members are rebuilt from this census: goroutines gone from it are dropped. */
	nm.cap = 1024;
	while (nm.cap < c->ng * 2 + 2)
		nm.cap *= 2;
	nm.slot = calloc(nm.cap, sizeof(*nm.slot));
	if (!nm.slot)
		goto out;
	for (size_t i = 0; i < w->nsites; i++) {
		w->sites[i]->count = 0;
		w->sites[i]->seen = false;
	}
	for (size_t i = 0; i < c->ng; i++) {
		const struct census_g *g = &c->gs[i];
		const struct member *old = mtab_find(&w->members, g->goid);
		struct gw_site *site;

		if (g->system)
			continue;
		T->by_status[g->status & 15]++;
		if (g->goid > maxgoid)
			maxgoid = g->goid;
		site = site_get(w, g->gopc);
		if (!site)
			goto out;
		site->count++;
		site->seen = true;
		if (g->status == GO_GWAITING) {
			const struct census_stack *st = g->stack >= 0 ? c->stacks[g->stack] : NULL;
			uint64_t bpc;
			struct site at;
			int32_t gi;
			struct member *m;

			T->by_reason[g->waitreason]++;
			if (!st)
				continue;
			if (w->s) {
				at = session__blocked_at(w->s, st, &bpc);
			} else {
				at = (struct site){ "?", "?", 0 };
				bpc = st->depth ? st->pcs[0] : 0;
			}
			gi = group_get(w, g->gopc, bpc, g->waitreason, at);
			if (gi < 0)
				goto out;
			m = mtab_put(&nm, g->goid);
			if (old && old->group == (uint32_t)gi) {
				m->group = old->group;
				m->first = old->first;
			} else {
				/* New here: blocked since now, or since the GC first saw it. */
				m->group = (uint32_t)gi;
				m->first = t;
				if (g->waitsince > 0 && g->waitsince < mono && !w->have_last)
					m->first = t - (mono - g->waitsince) / 1e9;
			}
		} else if (old) {
			/* Running between two parks (a ticker loop): still the group's. */
			*mtab_put(&nm, g->goid) = *old;
		}
	}
	free(w->members.slot);
	w->members = nm;
	nm.slot = NULL;

	/* Per group: members, the oldest, samples; those present at the window's start. */
	cnt = calloc(w->ngroups + 1, sizeof(*cnt));
	retained = calloc(w->ngroups + 1, sizeof(*retained));
	oldest = calloc(w->ngroups + 1, sizeof(*oldest));
	t_start = calloc(w->ngroups + 1, sizeof(*t_start));
	if (!cnt || !retained || !oldest || !t_start)
		goto out;
	for (size_t i = 0; i < w->ngroups; i++) {
		oldest[i] = t;
		w->groups[i]->nsamples = 0;
	}
	for (size_t j = 0; j < w->members.cap; j++) {
		const struct member *m = &w->members.slot[j];
		struct gw_group *g;

		if (!m->goid)
			continue;
		g = w->groups[m->group];
		cnt[m->group]++;
		if (m->first < oldest[m->group])
			oldest[m->group] = m->first;
		if (g->nsamples < GW_SAMPLE_GOIDS)
			g->sample_goids[g->nsamples++] = m->goid;
	}
	for (size_t i = 0; i < w->ngroups; i++) {
		struct gw_group *g = w->groups[i];

		g->count = cnt[i];
		g->oldest_blocked_s = cnt[i] ? t - oldest[i] : 0;
		series_push(&g->hist, t, cnt[i]);
		g->growth_per_min = gw_series__slope_per_min(&g->hist, GW_WINDOW_S);
		series_ago(&g->hist, GW_WINDOW_S, &t_start[i]);
	}
	/* Members already there at the window's start, and still there. */
	for (size_t j = 0; j < w->members.cap; j++) {
		const struct member *m = &w->members.slot[j];

		if (m->goid && m->first <= t_start[m->group])
			retained[m->group]++;
	}
	for (size_t i = 0; i < w->ngroups; i++)
		judge(w, w->groups[i], t, retained[i]);
	for (size_t i = 0; i < w->nsites; i++) {
		struct gw_site *s = w->sites[i];

		series_push(&s->hist, t, (uint32_t)s->count);
		s->growth_per_min = gw_series__slope_per_min(&s->hist, GW_WINDOW_S);
	}
	series_push(&w->total_hist, t, (uint32_t)T->total);

	/*
	 * Creations from the advance of goids, exits are what the total did not keep, over
	 * the last RATE_S seconds: Ps take goids in batches of 16, so one interval is noise.
	 */
	if (maxgoid < w->last_maxgoid)
		maxgoid = w->last_maxgoid;
	w->rate_t[w->rate_head] = t;
	w->rate_goid[w->rate_head] = maxgoid;
	w->rate_total[w->rate_head] = T->total;
	w->rate_head = (w->rate_head + 1) % GW_HIST;
	if (w->rate_len < GW_HIST)
		w->rate_len++;
	for (unsigned i = w->rate_len; i-- > 1;) {
		unsigned k = (w->rate_head + GW_HIST - 1 - i) % GW_HIST;
		double dt = t - w->rate_t[k];

		if (dt > RATE_S && i > 1)
			continue;
		if (dt > 0) {
			double created = (double)(maxgoid - w->rate_goid[k]);

			T->created_per_s = created / dt;
			T->exited_per_s =
				(created - ((double)T->total - (double)w->rate_total[k])) / dt;
			if (T->exited_per_s < 0)
				T->exited_per_s = 0;
		}
		break;
	}
	w->last_maxgoid = maxgoid;
	w->last_total = T->total;
	w->last_t = t;
	w->have_last = true;
	err = 0;
out:
	free(nm.slot);
	free(cnt);
	free(retained);
	free(oldest);
	free(t_start);
	return err;
}

int gwatch__tick(struct gwatch *w)
{
	struct census *c = NULL;
	int err = session__census(w->s, NULL, &c);

	if (err)
		return err;
	err = gwatch__update(w, c, session__mono_ns() / 1e9);
	census__free(c);
	return err;
}

const struct gw_totals *gwatch__totals(const struct gwatch *w)
{
	return &w->tot;
}

const struct gw_series *gwatch__total_hist(const struct gwatch *w)
{
	return &w->total_hist;
}

static int cmp_site(const void *a, const void *b)
{
	const struct gw_site *x = *(const struct gw_site *const *)a;
	const struct gw_site *y = *(const struct gw_site *const *)b;

	if (x->count != y->count)
		return x->count < y->count ? 1 : -1;
	return (x->growth_per_min < y->growth_per_min) - (x->growth_per_min > y->growth_per_min);
}

static int cmp_group(const void *a, const void *b)
{
	const struct gw_group *x = *(const struct gw_group *const *)a;
	const struct gw_group *y = *(const struct gw_group *const *)b;

	if (x->count != y->count)
		return x->count < y->count ? 1 : -1;
	return (x->growth_per_min < y->growth_per_min) - (x->growth_per_min > y->growth_per_min);
}

size_t gwatch__sites(struct gwatch *w, const struct gw_site ***out)
{
	size_t n = 0;
	const struct gw_site **v = realloc(w->site_view, (w->nsites + 1) * sizeof(*v));

	if (!v)
		return *out = NULL, 0;
	w->site_view = v;
	for (size_t i = 0; i < w->nsites; i++)
		if (w->sites[i]->count)
			v[n++] = w->sites[i];
	qsort(v, n, sizeof(*v), cmp_site);
	*out = v;
	return n;
}

size_t gwatch__groups(struct gwatch *w, const struct gw_group ***out)
{
	size_t n = 0;
	const struct gw_group **v = realloc(w->group_view, (w->ngroups + 1) * sizeof(*v));

	if (!v)
		return *out = NULL, 0;
	w->group_view = v;
	for (size_t i = 0; i < w->ngroups; i++)
		if (w->groups[i]->count)
			v[n++] = w->groups[i];
	qsort(v, n, sizeof(*v), cmp_group);
	*out = v;
	return n;
}
