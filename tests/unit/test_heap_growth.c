// SPDX-License-Identifier: MIT
/*
 * Unit tests of the pure rules of src/heap: growth detection on synthetic series of one
 * stack's in-use bytes per GC cycle (growth.c). The token bucket that keeps the BPF
 * allocation probes within their budget is the governor's (test_governor.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "heap/growth.h"

#define MiB (1024.0 * 1024)

static struct heap_series run(const double *v, int n, double floor_b)
{
	struct heap_series s = { 0 };

	for (int i = 0; i < n; i++)
		heap_series__add(&s, v[i], floor_b);
	return s;
}

static void test_floor(void **state)
{
	/* Two sampling periods, never under 256 KiB. */
	assert_true(heap_growth__floor(512 * 1024) == 1 * MiB);
	assert_true(heap_growth__floor(1) == 256 * 1024);
	assert_true(heap_growth__floor(0) == 256 * 1024);
	assert_true(heap_growth__floor(4 << 20) == 8 * MiB);
}

/* A cache without eviction: flagged once it rose in two cycles past the floor. */
static void test_steady_growth(void **state)
{
	const double v[] = { 0, 1 * MiB, 2 * MiB, 3 * MiB, 4 * MiB };
	struct heap_series s = run(v, 5, 1 * MiB);

	assert_int_equal(s.points, 5);
	assert_int_equal(s.rises, 4);
	assert_int_equal(s.falls, 0);
	assert_true(s.first == 0 && s.last == 4 * MiB);
	assert_int_equal(s.flagged_at, 2);
	assert_true(heap_series__grows(&s, 1 * MiB));
	/* One rise is not enough, however large. */
	s = run(v, 2, 1 * MiB);
	assert_false(heap_series__grows(&s, 0));
	assert_int_equal(s.flagged_at, 0);
}

/*
 * Garbage comes and goes: as much falls as rises. (After 0, 2, 0, 2 MiB the falls were
 * exactly half the rises and the rule was met for a moment: flagged_at records it, the
 * verdict is taken on the whole series.)
 */
static void test_garbage_is_not_growth(void **state)
{
	const double v[] = { 0, 2 * MiB, 0, 2 * MiB, 0, 2 * MiB };
	struct heap_series s = run(v, 6, 1 * MiB);

	assert_int_equal(s.rises, 3);
	assert_int_equal(s.falls, 2);
	assert_true(s.up == 6 * MiB && s.down == 4 * MiB);
	assert_false(heap_series__grows(&s, 1 * MiB));
	assert_int_equal(s.flagged_at, 3);
	s = run(v, 3, 1 * MiB);
	assert_int_equal(s.flagged_at, 0);
}

/* A fixed working set stays flat; rounding noise is not a rise. */
static void test_flat(void **state)
{
	const double v[] = { 5 * MiB, 5 * MiB + 0.3, 5 * MiB - 0.2, 5 * MiB, 5 * MiB };
	struct heap_series s = run(v, 5, 1 * MiB);

	assert_int_equal(s.rises, 0);
	assert_int_equal(s.falls, 0);
	assert_false(heap_series__grows(&s, 1 * MiB));
}

/* Growth with some eviction (or a pool dropping objects) still grows. */
static void test_growth_with_falls(void **state)
{
	const double v[] = { 0, 2 * MiB, 1.5 * MiB, 3.5 * MiB, 3 * MiB, 5 * MiB };
	struct heap_series s = run(v, 6, 1 * MiB);

	assert_int_equal(s.rises, 3);
	assert_int_equal(s.falls, 2);
	assert_true(s.up == 6 * MiB && s.down == 1 * MiB);
	assert_true(heap_series__grows(&s, 1 * MiB));
	assert_int_equal(s.flagged_at, 3);
	/* Falls of more than half the rises: not growth. */
	{
		const double w[] = { 0, 4 * MiB, 0.5 * MiB, 3 * MiB };
		struct heap_series t = run(w, 4, 1 * MiB);

		assert_true(t.down * 2 > t.up);
		assert_false(heap_series__grows(&t, 1 * MiB));
	}
}

/* Under the floor: a few samples' worth of rises are noise. */
static void test_below_floor(void **state)
{
	const double v[] = { 0, 100e3, 200e3, 300e3, 400e3 };
	struct heap_series s = run(v, 5, 1 * MiB);

	assert_int_equal(s.rises, 4);
	assert_false(heap_series__grows(&s, 1 * MiB));
	assert_true(heap_series__grows(&s, 256 * 1024));
}

/* A stack that appears later was at 0 before: its growth counts from the first point. */
static void test_late_stack(void **state)
{
	const double v[] = { 0, 0, 0, 1 * MiB, 2 * MiB };
	struct heap_series s = run(v, 5, 1 * MiB);

	assert_int_equal(s.rises, 2);
	assert_int_equal(s.flagged_at, 4);
	assert_true(s.last - s.first == 2 * MiB);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_floor),
		cmocka_unit_test(test_steady_growth),
		cmocka_unit_test(test_garbage_is_not_growth),
		cmocka_unit_test(test_flat),
		cmocka_unit_test(test_growth_with_falls),
		cmocka_unit_test(test_below_floor),
		cmocka_unit_test(test_late_stack),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
