// SPDX-License-Identifier: MIT
/*
 * Unit tests of the subcommands' option parsers (src/cmd/args.c): what each accepts, what
 * it refuses, the one line it reports, and that a refused value leaves *out alone.
 */
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "cmd/cmds.h"

/* main.c is not linked into unit tests: stand-ins that keep the last message. */
bool env_json;
static char last_msg[1024];
static int fails;

int cmd_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_msg, sizeof(last_msg), fmt, ap);
	va_end(ap);
	fails++;
	return 1;
}

static int setup(void **state)
{
	last_msg[0] = 0;
	fails = 0;
	return 0;
}

/* A refusal: cmd_fail()'s exit code, exactly one message, equal to WANT. */
#define assert_refused(call, want)                       \
	do {                                             \
		int before = fails;                      \
		assert_int_equal((call), 1);             \
		assert_int_equal(fails, before + 1);     \
		assert_string_equal(last_msg, (want));   \
	} while (0)

static void test_pid(void **state)
{
	pid_t pid = 0;

	assert_int_equal(cmd_parse_pid("1234", &pid), 0);
	assert_int_equal(pid, 1234);
	assert_int_equal(cmd_parse_pid("2147483647", &pid), 0);
	assert_int_equal(pid, INT_MAX);
	/* strtol's grammar: leading blanks and a plus sign. */
	assert_int_equal(cmd_parse_pid(" +7", &pid), 0);
	assert_int_equal(pid, 7);
	assert_int_equal(fails, 0);

	pid = 42;
	assert_refused(cmd_parse_pid("abc", &pid), "invalid PID 'abc': expected a positive number");
	assert_refused(cmd_parse_pid("0", &pid), "invalid PID '0': expected a positive number");
	assert_refused(cmd_parse_pid("-5", &pid), "invalid PID '-5': expected a positive number");
	assert_refused(cmd_parse_pid("", &pid), "invalid PID '': expected a positive number");
	assert_refused(cmd_parse_pid("12x", &pid), "invalid PID '12x': expected a positive number");
	assert_refused(cmd_parse_pid("0x10", &pid), "invalid PID '0x10': expected a positive number");
	assert_refused(cmd_parse_pid("2147483648", &pid),
		       "invalid PID '2147483648': expected a positive number");
	assert_refused(cmd_parse_pid("99999999999999999999", &pid),
		       "invalid PID '99999999999999999999': expected a positive number");
	assert_int_equal(pid, 42);
}

static void test_int(void **state)
{
	long v = 0;

	assert_int_equal(cmd_parse_int("--hz", "1", 1, 1000, NULL, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(cmd_parse_int("--hz", "1000", 1, 1000, NULL, &v), 0);
	assert_int_equal(v, 1000);
	assert_int_equal(cmd_parse_int("--top", "0", 0, INT_MAX, "a count", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(cmd_parse_int("--bpf-period", "1099511627776", 1, 1L << 40, NULL, &v), 0);
	assert_true(v == 1L << 40);
	assert_int_equal(fails, 0);

	v = 9;
	/* Without EXPECT the message gives the range. */
	assert_refused(cmd_parse_int("--hz", "0", 1, 1000, NULL, &v),
		       "invalid --hz '0': expected 1 to 1000");
	assert_refused(cmd_parse_int("--hz", "1001", 1, 1000, NULL, &v),
		       "invalid --hz '1001': expected 1 to 1000");
	assert_refused(cmd_parse_int("--hz", "1.5", 1, 1000, NULL, &v),
		       "invalid --hz '1.5': expected 1 to 1000");
	/* With EXPECT, its words instead. */
	assert_refused(cmd_parse_int("--top", "-1", 0, INT_MAX, "a count", &v),
		       "invalid --top '-1': expected a count");
	assert_refused(cmd_parse_int("--top", "", 0, INT_MAX, "a count", &v),
		       "invalid --top '': expected a count");
	assert_refused(cmd_parse_int("--top", "2147483648", 0, INT_MAX, "a count", &v),
		       "invalid --top '2147483648': expected a count");
	assert_refused(cmd_parse_int("--top", "99999999999999999999", 0, LONG_MAX, "a count", &v),
		       "invalid --top '99999999999999999999': expected a count");
	assert_int_equal(v, 9);
}

static void test_double(void **state)
{
	double v = 0;

	assert_int_equal(cmd_parse_double("--max-cpu", "0", 0, 100, NULL, &v), 0);
	assert_true(v == 0);
	assert_int_equal(cmd_parse_double("--max-cpu", "2.5", 0, 100, NULL, &v), 0);
	assert_true(v == 2.5);
	assert_int_equal(cmd_parse_double("--max-cpu", "100", 0, 100, NULL, &v), 0);
	assert_true(v == 100);
	assert_int_equal(fails, 0);

	v = 3;
	assert_refused(cmd_parse_double("--max-cpu", "100.5", 0, 100, NULL, &v),
		       "invalid --max-cpu '100.5': expected 0 to 100");
	assert_refused(cmd_parse_double("--max-cpu", "nan", 0, 100, "a percentage", &v),
		       "invalid --max-cpu 'nan': expected a percentage");
	assert_refused(cmd_parse_double("--max-cpu", "inf", 0, 100, "a percentage", &v),
		       "invalid --max-cpu 'inf': expected a percentage");
	assert_refused(cmd_parse_double("--max-cpu", "", 0, 100, "a percentage", &v),
		       "invalid --max-cpu '': expected a percentage");
	assert_refused(cmd_parse_double("--max-cpu", "5%", 0, 100, "a percentage", &v),
		       "invalid --max-cpu '5%': expected a percentage");
	assert_true(v == 3);
}

static void test_secs(void **state)
{
	double v = 0;

	/* Above 0 (durations and intervals of most commands). */
	assert_int_equal(cmd_parse_secs("duration", "0.5", CMD_ABOVE_0, 1e6, &v), 0);
	assert_true(v == 0.5);
	assert_int_equal(cmd_parse_secs("duration", "1e6", CMD_ABOVE_0, 1e6, &v), 0);
	assert_true(v == 1e6);
	assert_int_equal(cmd_parse_secs("duration", "1e-9", CMD_ABOVE_0, 1e6, &v), 0);
	assert_true(v == 1e-9);
	/* 0 allowed (heap -d 0: one reading). */
	assert_int_equal(cmd_parse_secs("duration", "0", 0, 1e6, &v), 0);
	assert_true(v == 0);
	/* An inclusive floor (top -i). */
	assert_int_equal(cmd_parse_secs("interval", "0.05", 0.05, 1e7, &v), 0);
	assert_true(v == 0.05);
	assert_int_equal(fails, 0);

	v = 7;
	assert_refused(cmd_parse_secs("duration", "x", CMD_ABOVE_0, 1e6, &v),
		       "invalid duration 'x': expected seconds, e.g. 10 or 0.5");
	assert_refused(cmd_parse_secs("duration", "0", CMD_ABOVE_0, 1e6, &v),
		       "invalid duration '0': expected seconds, e.g. 10 or 0.5");
	assert_refused(cmd_parse_secs("duration", "-0", CMD_ABOVE_0, 1e6, &v),
		       "invalid duration '-0': expected seconds, e.g. 10 or 0.5");
	assert_refused(cmd_parse_secs("duration", "nan", CMD_ABOVE_0, 1e6, &v),
		       "invalid duration 'nan': expected seconds, e.g. 10 or 0.5");
	assert_refused(cmd_parse_secs("duration", "", 0, 1e6, &v),
		       "invalid duration '': expected seconds (0 or more), e.g. 10 or 0.5");
	assert_refused(cmd_parse_secs("duration", "-1", 0, 1e6, &v),
		       "invalid duration '-1': expected seconds (0 or more), e.g. 10 or 0.5");
	assert_refused(cmd_parse_secs("duration", "1000000.5", CMD_ABOVE_0, 1e6, &v),
		       "invalid duration '1000000.5': expected seconds, at most 1000000");
	assert_refused(cmd_parse_secs("duration", "inf", CMD_ABOVE_0, 1e7, &v),
		       "invalid duration 'inf': expected seconds, at most 10000000");
	assert_refused(cmd_parse_secs("interval", "0.01", 0.05, 1e7, &v),
		       "invalid interval '0.01': expected seconds, at least 0.05");
	assert_refused(cmd_parse_secs("interval", "2s", 0.05, 1e7, &v),
		       "invalid interval '2s': expected seconds, at least 0.05");
	assert_true(v == 7);
}

static void test_budget(void **state)
{
	double pct = 0;

	assert_int_equal(cmd_parse_budget("none", 100, &pct), 0);
	assert_true(pct == -1);
	pct = 0;
	assert_int_equal(cmd_parse_budget("unlimited", 100, &pct), 0);
	assert_true(pct == -1);
	assert_int_equal(cmd_parse_budget("0.5", 100, &pct), 0);
	assert_true(pct == 0.5);
	assert_int_equal(cmd_parse_budget("5%", 100, &pct), 0);
	assert_true(pct == 5);
	assert_int_equal(cmd_parse_budget("100", 100, &pct), 0);
	assert_true(pct == 100);
	assert_int_equal(cmd_parse_budget("250", 1e4, &pct), 0);
	assert_true(pct == 250);
	assert_int_equal(fails, 0);

	pct = 2;
	assert_refused(cmd_parse_budget("0", 100, &pct),
		       "invalid --budget '0': expected a percentage of one CPU above 0 and at most "
		       "100 (e.g. 1 or 0.5), or none");
	assert_refused(cmd_parse_budget("100.5", 100, &pct),
		       "invalid --budget '100.5': expected a percentage of one CPU above 0 and at "
		       "most 100 (e.g. 1 or 0.5), or none");
	assert_refused(cmd_parse_budget("abc", 1e4, &pct),
		       "invalid --budget 'abc': expected a percentage of one CPU above 0 and at "
		       "most 10000 (e.g. 1 or 0.5), or none");
	assert_refused(cmd_parse_budget("%", 1e4, &pct),
		       "invalid --budget '%': expected a percentage of one CPU above 0 and at "
		       "most 10000 (e.g. 1 or 0.5), or none");
	assert_refused(cmd_parse_budget("5%%", 1e4, &pct),
		       "invalid --budget '5%%': expected a percentage of one CPU above 0 and at "
		       "most 10000 (e.g. 1 or 0.5), or none");
	assert_refused(cmd_parse_budget("", 1e4, &pct),
		       "invalid --budget '': expected a percentage of one CPU above 0 and at "
		       "most 10000 (e.g. 1 or 0.5), or none");
	assert_refused(cmd_parse_budget("nan", 1e4, &pct),
		       "invalid --budget 'nan': expected a percentage of one CPU above 0 and at "
		       "most 10000 (e.g. 1 or 0.5), or none");
	assert_refused(cmd_parse_budget("None", 1e4, &pct),
		       "invalid --budget 'None': expected a percentage of one CPU above 0 and at "
		       "most 10000 (e.g. 1 or 0.5), or none");
	assert_true(pct == 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_pid, setup),
		cmocka_unit_test_setup(test_int, setup),
		cmocka_unit_test_setup(test_double, setup),
		cmocka_unit_test_setup(test_secs, setup),
		cmocka_unit_test_setup(test_budget, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
