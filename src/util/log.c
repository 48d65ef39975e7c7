// SPDX-License-Identifier: MIT
#include <stdio.h>
#include <string.h>
#include "util/log.h"

int log_verbosity;
static char last_err[512];

void log_printf(int level, const char *fmt, ...)
{
	va_list ap;

	if (level > log_verbosity)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

void gt_seterr(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_err, sizeof(last_err), fmt, ap);
	va_end(ap);
}

const char *gt_lasterr(void)
{
	return last_err[0] ? last_err : NULL;
}

void gt_clearerr(void)
{
	last_err[0] = '\0';
}
