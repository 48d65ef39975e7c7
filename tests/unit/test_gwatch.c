// SPDX-License-Identifier: MIT
/*
 * Unit tests of src/engine/gwatch: the leak rule and the rates on synthetic censuses, one a
 * second, without a process. Each case is a shape a real program takes: a leak, an idle
 * pool, a group whose members come and go, a one-off step, a ticker loop caught running.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "census/census.h"
#include "engine/gwatch.h"

#define REASON 7 /* any wait reason */

/* A census builder: goroutines of one or more groups, each group one stack. */
struct cb {
	struct census *c;
};

static void cb_init(struct cb *b)
{
	b->c = calloc(1, sizeof(*b->c));
	b->c->go_minor = 22;
	b->c->gs = calloc(200000, sizeof(struct census_g));
	b->c->stacks = calloc(16, sizeof(struct census_stack *));
}

/* N goroutines with goids FIRST.., created at GOPC, blocked at PC (status ST). */
static void cb_add(struct cb *b, uint64_t first, int n, uint64_t gopc, uint64_t pc, uint32_t st)
{
	int32_t sid = -1;

	for (size_t i = 0; i < b->c->nstacks; i++)
		if (b->c->stacks[i]->pcs[0] == pc)
			sid = (int32_t)i;
	if (sid < 0) {
		struct census_stack *s = calloc(1, sizeof(*s) + 8);

		s->depth = 1;
		s->pcs[0] = pc;
		sid = (int32_t)b->c->nstacks;
		b->c->stacks[b->c->nstacks++] = s;
	}
	for (int i = 0; i < n; i++) {
		struct census_g *g = &b->c->gs[b->c->ng++];

		g->goid = first + (uint64_t)i;
		g->gopc = gopc;
		g->status = st;
		g->waitreason = REASON;
		g->stack = st == GO_GWAITING ? sid : -1;
		b->c->user++;
	}
}

static const struct gw_group *group_at(struct gwatch *w, uint64_t pc)
{
	const struct gw_group **v;
	size_t n = gwatch__groups(w, &v);

	for (size_t i = 0; i < n; i++)
		if (v[i]->blocked_pc == pc)
			return v[i];
	return NULL;
}

/* Feed census(t) for t = 0..SECS, one a second; returns the watcher. */
typedef void (*shape_fn)(struct cb *b, int t);

static struct gwatch *run(shape_fn shape, int secs)
{
	struct gwatch *w;

	assert_int_equal(gwatch__new(NULL, &w), 0);
	for (int t = 0; t <= secs; t++) {
		struct cb b;

		cb_init(&b);
		shape(&b, t);
		assert_int_equal(gwatch__update(w, b.c, 1000.0 + t), 0);
		census__free(b.c);
	}
	return w;
}

/* A leak: 5 blocked at attach, 3 more every second, never released. */
static void leak(struct cb *b, int t)
{
	cb_add(b, 100, 5 + 3 * t, 0x1000, 0x2000, GO_GWAITING);
}

static void test_leak_reported(void **state)
{
	struct gwatch *w = run(leak, 30);
	const struct gw_group *g = group_at(w, 0x2000);

	assert_non_null(g);
	assert_true(g->suspect);
	assert_int_equal(g->count, 5 + 3 * 30);
	/* Within 10-20 s: the rule needs 10 s of history and the oldest blocked 10 s. */
	assert_true(g->first_reported_s >= 10 && g->first_reported_s <= 20);
	assert_true(g->growth_per_min > 170 && g->growth_per_min < 190);
	assert_true(g->oldest_blocked_s >= 30);
	assert_int_equal(g->nsamples, GW_SAMPLE_GOIDS);
	gwatch__free(w);
}

/* An idle pool: the same 8 workers blocked forever. */
static void pool(struct cb *b, int t)
{
	cb_add(b, 100, 8, 0x1000, 0x2000, GO_GWAITING);
}

static void test_idle_pool_silent(void **state)
{
	struct gwatch *w = run(pool, 60);
	const struct gw_group *g = group_at(w, 0x2000);

	assert_non_null(g);
	assert_false(g->suspect);
	assert_true(g->growth_per_min == 0);
	gwatch__free(w);
}

/*
 * Connections being served: the group grows, but apart from 3 long-lived ones its members
 * are new every second (the oldest is old enough: only the retention rule tells).
 */
static void turnover(struct cb *b, int t)
{
	cb_add(b, 10, 3, 0x1000, 0x2000, GO_GWAITING);
	cb_add(b, 1000 + 1000 * (uint64_t)t, 5 + t, 0x1000, 0x2000, GO_GWAITING);
}

static void test_turnover_silent(void **state)
{
	struct gwatch *w = run(turnover, 40);

	assert_false(group_at(w, 0x2000)->suspect);
	gwatch__free(w);
}

/* A pool filled once: 5, then 50 from second 5 on, never more. */
static void step(struct cb *b, int t)
{
	cb_add(b, 100, t < 5 ? 5 : 50, 0x1000, 0x2000, GO_GWAITING);
}

static void test_step_silent(void **state)
{
	struct gwatch *w = run(step, 60);

	assert_false(group_at(w, 0x2000)->suspect);
	gwatch__free(w);
}

/* Leaked ticker loops: 2 more a second, a third of them awake at each census. */
static void ticker(struct cb *b, int t)
{
	int n = 6 + 2 * t;

	for (int i = 0; i < n; i++)
		cb_add(b, 100 + (uint64_t)i, 1, 0x1000, 0x3000,
		       (i + t) % 3 ? GO_GWAITING : GO_GRUNNABLE);
}

static void test_ticker_loops_reported(void **state)
{
	struct gwatch *w = run(ticker, 30);
	const struct gw_group *g = group_at(w, 0x3000);

	assert_non_null(g);
	assert_true(g->suspect);
	/* Awake members stay members: the count is every leaked loop seen blocked once. */
	assert_int_equal(g->count, 6 + 2 * 30);
	gwatch__free(w);
}

/* A leak that is released: reported, then cleared when it shrinks below half. */
static void released(struct cb *b, int t)
{
	cb_add(b, 100, t <= 30 ? 5 + 3 * t : 10, 0x1000, 0x2000, GO_GWAITING);
}

static void test_released_clears(void **state)
{
	struct gwatch *w = run(released, 35);
	const struct gw_group *g = group_at(w, 0x2000);

	assert_false(g->suspect);
	assert_true(g->first_reported_s >= 10);
	assert_non_null(strstr(g->why, "shrank"));
	gwatch__free(w);
}

/* Creations from the goid advance: 50 exit and 50 start every second, 10 stay. */
static void churn(struct cb *b, int t)
{
	cb_add(b, 10, 10, 0x1000, 0x2000, GO_GWAITING);
	cb_add(b, 1000 + 50 * (uint64_t)t, 50, 0x1100, 0, GO_GRUNNABLE);
}

static void test_rates(void **state)
{
	struct gwatch *w = run(churn, 20);
	const struct gw_totals *T = gwatch__totals(w);

	assert_int_equal(T->total, 60);
	assert_true(T->created_per_s > 49 && T->created_per_s < 51);
	assert_true(T->exited_per_s > 49 && T->exited_per_s < 51);
	assert_int_equal(T->by_status[GO_GWAITING], 10);
	assert_int_equal(T->by_reason[REASON], 10);
	gwatch__free(w);
}

static void test_slope(void **state)
{
	struct gw_series s = { 0 };
	double slope;

	(void)state;
	/* y = 2t over 0..9 s: +120/min; points older than the window are ignored. */
	for (int t = -100; t < 10; t++) {
		uint32_t n = t < 0 ? 1000 : (uint32_t)(2 * t);

		s.t[s.head] = t;
		s.n[s.head] = n;
		s.head = (s.head + 1) % GW_HIST;
		if (s.len < GW_HIST)
			s.len++;
	}
	slope = gw_series__slope_per_min(&s, 9.5);
	assert_true(slope > 119.9 && slope < 120.1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_leak_reported),
		cmocka_unit_test(test_idle_pool_silent),
		cmocka_unit_test(test_turnover_silent),
		cmocka_unit_test(test_step_silent),
		cmocka_unit_test(test_ticker_loops_reported),
		cmocka_unit_test(test_released_clears),
		cmocka_unit_test(test_rates),
		cmocka_unit_test(test_slope),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
