/* SPDX-License-Identifier: MIT */
/* Subcommands, dispatched from the table in main.c (bpftool's struct cmd). */
#ifndef GOTRACE_CMDS_H
#define GOTRACE_CMDS_H

#include <stdbool.h>
#include <stdio.h>

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

int cmd_inspect(int argc, char **argv);
int cmd_symbolize(int argc, char **argv);
int cmd_count(int argc, char **argv);
int cmd_trace(int argc, char **argv);
int cmd_contention(int argc, char **argv);
int cmd_heap(int argc, char **argv);
int cmd_goroutines(int argc, char **argv);
int cmd_top(int argc, char **argv);

#endif
