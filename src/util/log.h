/* SPDX-License-Identifier: MIT */
/* Logging and the one-line error every command reports on failure. */
#ifndef GOTRACE_LOG_H
#define GOTRACE_LOG_H

#include <stdarg.h>

extern int log_verbosity; /* 0 quiet, 1 -v, 2 -vv */

void log_printf(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define elog(...) log_printf(-1, __VA_ARGS__)
#define log(...) log_printf(0, __VA_ARGS__)
#define vlog(...) log_printf(1, __VA_ARGS__)
#define dlog(...) log_printf(2, __VA_ARGS__)

/*
 * The last error, as one human line ("not a Go binary: no .gopclntab section in /bin/ls").
 * Library code sets it next to returning -errno/NULL; main prints it once.
 */
void gt_seterr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *gt_lasterr(void);
void gt_clearerr(void);

#endif
