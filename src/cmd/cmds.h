/* SPDX-License-Identifier: MIT */
/* Subcommands, dispatched from the table in main.c (bpftool's struct cmd). */
#ifndef GOTRACE_CMDS_H
#define GOTRACE_CMDS_H

#include <float.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

struct cmd {
	const char *name;
	int (*fn)(int argc, char **argv); /* argv[0] is the subcommand name; returns exit code */
	const char *summary;		  /* one line for `gotrace --help` */
};

/* Global flags parsed by main before dispatch. */
extern bool env_json; /* --json */

/*
 * Report a fatal error: "gotrace: MSG" on stderr and, with --json, {"error": MSG} on
 * stdout. Returns 1, the exit code to use.
 */
int cmd_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Option values (args.c). Each returns 0 with the value in *out, or reports one line through
 * cmd_fail() ("invalid WHAT 'ARG': expected ...") and returns its exit code. WHAT names the
 * value as messages show it ("duration", "--hz"). Bounds are inclusive.
 */
/* The smallest double above 0: as a low bound, "any number above 0". */
#define CMD_ABOVE_0 DBL_TRUE_MIN

/* -p PID: 1 to INT_MAX. */
int cmd_parse_pid(const char *arg, pid_t *out);
/* An integer in [MIN, MAX]; EXPECT ("a count") replaces "MIN to MAX" in the message. */
int cmd_parse_int(const char *what, const char *arg, long min, long max, const char *expect,
		  long *out);
/* A number in [MIN, MAX]; EXPECT as for cmd_parse_int(). */
int cmd_parse_double(const char *what, const char *arg, double min, double max,
		     const char *expect, double *out);
/* Seconds in [MIN, MAX]; MIN is often CMD_ABOVE_0. */
int cmd_parse_secs(const char *what, const char *arg, double min, double max, double *out);
/* --budget PCT: % of one CPU, above 0 and at most MAX ("5" or "5%"); "none"/"unlimited": -1. */
int cmd_parse_budget(const char *arg, double max, double *pct_out);

int cmd_inspect(int argc, char **argv);
int cmd_symbolize(int argc, char **argv);
int cmd_count(int argc, char **argv);
int cmd_trace(int argc, char **argv);
int cmd_contention(int argc, char **argv);
int cmd_heap(int argc, char **argv);
int cmd_goroutines(int argc, char **argv);
int cmd_top(int argc, char **argv);

#endif
