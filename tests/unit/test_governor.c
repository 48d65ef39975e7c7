// SPDX-License-Identifier: MIT
/*
 * Unit tests of the pure parts of src/engine/governor: the token bucket that keeps the
 * probing engines within their CPU budget (duty cycling on synthetic ticks), and the kind
 * of a probed instruction, which sets a trap's cost. No BPF, no root.
 */
#include <elf.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/governor.h"

#define TICK_S 0.005

/* ---- the budget */

/*
 * SECONDS of 5 ms ticks with probes costing COST CPU-s/s while attached: the fraction of
 * the time attached; *AVG the CPU-s/s spent, *WINDOWS the attach windows.
 */
static double duty(double budget, double cost, double seconds, double *avg, int *windows)
{
	struct gov_bucket b;
	double on = 0, spent = 0;
	bool attached = true;

	gov_bucket__init(&b, budget, 0.5);
	*windows = 1;
	for (double t = 0; t < seconds; t += TICK_S) {
		double c = attached ? cost * TICK_S : 0;
		enum gov_action a = gov_bucket__tick(&b, TICK_S, c, attached);

		spent += c;
		on += attached ? TICK_S : 0;
		if (a == GOV_DETACH) {
			assert_true(attached);
			attached = false;
		} else if (a == GOV_ATTACH) {
			assert_false(attached);
			attached = true;
			++*windows;
		}
	}
	*avg = spent / seconds;
	return on / seconds;
}

static void test_bucket_duty_cycle(void **state)
{
	double avg, f;
	int w;

	/* 5% of a CPU while attached against a 1% budget: attached ~1/5 of the time. */
	f = duty(0.01, 0.05, 100, &avg, &w);
	assert_true(fabs(f - 0.2) < 0.02);
	assert_true(fabs(avg - 0.01) < 0.001);
	assert_true(w > 10);
	/* Much costlier probes: short windows, the same average. */
	f = duty(0.01, 0.5, 100, &avg, &w);
	assert_true(fabs(avg - 0.01) < 0.001);
	assert_true(f < 0.03);
	/* Within budget: never detached. */
	f = duty(0.01, 0.005, 100, &avg, &w);
	assert_true(fabs(f - 1) < 1e-3);
	assert_int_equal(w, 1);
	/* No budget: always attached. */
	f = duty(-1, 5, 10, &avg, &w);
	assert_true(fabs(f - 1) < 1e-3);
	assert_int_equal(w, 1);
}

static void test_bucket_no_limit_reattaches(void **state)
{
	struct gov_bucket b;

	gov_bucket__init(&b, -1, 0.5);
	assert_true(gov_bucket__cap(&b) == 0);
	assert_int_equal(gov_bucket__tick(&b, TICK_S, 1, true), GOV_KEEP);
	assert_int_equal(gov_bucket__tick(&b, TICK_S, 0, false), GOV_ATTACH);
}

/* Starts full; detaches when dry; back only once full again; never above the cap. */
static void test_bucket_levels(void **state)
{
	struct gov_bucket b;

	gov_bucket__init(&b, 0.01, 0.5);
	assert_true(fabs(gov_bucket__cap(&b) - 0.005) < 1e-12);
	assert_true(fabs(b.level - 0.005) < 1e-12);
	/* Idle while attached: stays at the cap. */
	assert_int_equal(gov_bucket__tick(&b, 1, 0, true), GOV_KEEP);
	assert_true(fabs(b.level - 0.005) < 1e-12);
	/* A cost of more than the level plus one tick's refill: dry. */
	assert_int_equal(gov_bucket__tick(&b, TICK_S, 0.006, true), GOV_DETACH);
	assert_true(b.level < 0);
	/* Half refilled: still detached. */
	assert_int_equal(gov_bucket__tick(&b, 0.3, 0, false), GOV_KEEP);
	/* Full again: attach. */
	assert_int_equal(gov_bucket__tick(&b, 0.3, 0, false), GOV_ATTACH);
	assert_true(fabs(b.level - 0.005) < 1e-12);
	/* A charge taken off the level (a detach's unseen tail) delays the next attach. */
	b.level -= 0.005;
	assert_int_equal(gov_bucket__tick(&b, 0.4, 0, false), GOV_KEEP);
	assert_int_equal(gov_bucket__tick(&b, 0.2, 0, false), GOV_ATTACH);
}

/* ---- instruction kinds */

static enum gov_kind kind(const uint8_t *code, size_t len)
{
	return gov_site_kind(EM_X86_64, code, len);
}

static void test_site_kind(void **state)
{
	static const uint8_t push_rbp[] = { 0x55 };
	static const uint8_t sub_rsp[] = { 0x48, 0x83, 0xec, 0x18 };
	static const uint8_t nop5[] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };
	static const uint8_t ret[] = { 0xc3 };

	/* Go 1.21+ after the stack check: emulated. */
	assert_int_equal(kind(push_rbp, sizeof(push_rbp)), GOV_KIND_EMULATED);
	/* Go 1.19 "sub $0x18, %rsp": single-stepped out of line. */
	assert_int_equal(kind(sub_rsp, sizeof(sub_rsp)), GOV_KIND_SINGLESTEP);
	/* The 5-byte nop the kernel optimizes into a trampoline call. */
	assert_int_equal(kind(nop5, sizeof(nop5)), GOV_KIND_NOP5);
	/* A RET site: single-stepped. */
	assert_int_equal(kind(ret, sizeof(ret)), GOV_KIND_SINGLESTEP);
	/* Too short to be the 5-byte nop: another nop form, emulated. */
	assert_int_equal(kind(nop5, 4), GOV_KIND_EMULATED);
	/* No code: the costly assumption. */
	assert_int_equal(kind(NULL, 0), GOV_KIND_SINGLESTEP);
	assert_string_equal(gov_kind_name(GOV_KIND_EMULATED), "emulated");
	assert_string_equal(gov_kind_name(GOV_KIND_SINGLESTEP), "single-step");
	assert_string_equal(gov_kind_name(GOV_KIND_NOP5), "nop5");
	assert_int_equal(gov_kind_of(GO_ATTACH_EMULATED), GOV_KIND_EMULATED);
	assert_int_equal(gov_kind_of(GO_ATTACH_SINGLESTEP), GOV_KIND_SINGLESTEP);
}

/* Before gov_init: the built-in table, a single-stepped trap the costliest. */
static void test_builtin_costs(void **state)
{
	assert_false(gov_costs()->measured);
	assert_true(gov_trap_ns(GOV_KIND_SINGLESTEP) > gov_trap_ns(GOV_KIND_EMULATED));
	assert_true(gov_trap_ns(GOV_KIND_EMULATED) > gov_trap_ns(GOV_KIND_NOP5));
	assert_true(gov_trap_ns(GOV_KIND_NOP5) > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bucket_duty_cycle),
		cmocka_unit_test(test_bucket_no_limit_reattaches),
		cmocka_unit_test(test_bucket_levels),
		cmocka_unit_test(test_site_kind),
		cmocka_unit_test(test_builtin_costs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
