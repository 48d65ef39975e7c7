// SPDX-License-Identifier: MIT
/*
 * Option values shared by the subcommands: process IDs, seconds, CPU budgets and bounded
 * numbers (contracts in cmds.h). The whole argument must be the number, in strtol/strtod's
 * grammar (leading blanks and a sign are taken); an empty one is refused. A refused value
 * leaves *out alone.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmds.h"

/* ARG as one base-10 integer. */
static bool scan_long(const char *arg, long *v)
{
	char *end;

	errno = 0;
	*v = strtol(arg, &end, 10);
	return !errno && end != arg && !*end;
}

/* ARG as one floating-point number, with up to one SUFFIX character after it (0: none). */
static bool scan_double(const char *arg, char suffix, double *v)
{
	char *end;

	errno = 0;
	*v = strtod(arg, &end);
	if (end == arg)
		return false;
	if (suffix && *end == suffix)
		end++;
	return !errno && !*end;
}

int cmd_parse_pid(const char *arg, pid_t *out)
{
	long v;

	if (!scan_long(arg, &v) || v <= 0 || v > INT_MAX)
		return cmd_fail("invalid PID '%s': expected a positive number", arg);
	*out = (pid_t)v;
	return 0;
}

int cmd_parse_int(const char *what, const char *arg, long min, long max, const char *expect,
		  long *out)
{
	long v;

	if (scan_long(arg, &v) && v >= min && v <= max) {
		*out = v;
		return 0;
	}
	if (expect)
		return cmd_fail("invalid %s '%s': expected %s", what, arg, expect);
	return cmd_fail("invalid %s '%s': expected %ld to %ld", what, arg, min, max);
}

int cmd_parse_double(const char *what, const char *arg, double min, double max,
		     const char *expect, double *out)
{
	double v;

	/* Written so that NaN fails. */
	if (scan_double(arg, 0, &v) && v >= min && v <= max) {
		*out = v;
		return 0;
	}
	if (expect)
		return cmd_fail("invalid %s '%s': expected %s", what, arg, expect);
	return cmd_fail("invalid %s '%s': expected %.15g to %.15g", what, arg, min, max);
}

int cmd_parse_secs(const char *what, const char *arg, double min, double max, double *out)
{
	bool num;
	double v;

	num = scan_double(arg, 0, &v);
	if (num && v >= min && v <= max) {
		*out = v;
		return 0;
	}
	/* Say which bound was missed; the usual case gets an example. */
	if (num && v > max)
		return cmd_fail("invalid %s '%s': expected seconds, at most %.15g", what, arg, max);
	if (min == CMD_ABOVE_0)
		return cmd_fail("invalid %s '%s': expected seconds, e.g. 10 or 0.5", what, arg);
	if (min == 0)
		return cmd_fail("invalid %s '%s': expected seconds (0 or more), e.g. 10 or 0.5",
				what, arg);
	return cmd_fail("invalid %s '%s': expected seconds, at least %.15g", what, arg, min);
}

int cmd_parse_budget(const char *arg, double max, double *pct_out)
{
	double v;

	if (!strcmp(arg, "none") || !strcmp(arg, "unlimited")) {
		*pct_out = -1;
		return 0;
	}
	/* A percentage, "5" or "5%". */
	if (scan_double(arg, '%', &v) && v > 0 && v <= max) {
		*pct_out = v;
		return 0;
	}
	return cmd_fail("invalid --budget '%s': expected a percentage of one CPU above 0 and at "
			"most %.15g (e.g. 1 or 0.5), or none", arg, max);
}
