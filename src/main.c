// SPDX-License-Identifier: MIT
/*
 * gotrace: trace live Go processes from outside.
 * main() parses the global flags and dispatches to a subcommand (bpftool's struct cmd).
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "cmd/cmds.h"
#include "util/log.h"

#ifndef GOTRACE_VERSION
#define GOTRACE_VERSION "0.1.0"
#endif

bool env_json;

static const struct cmd cmds[] = {
	{ "inspect", cmd_inspect, "describe a Go binary or process: version, runtime functions, offsets" },
	{ "symbolize", cmd_symbolize, "map addresses to function, file:line and inlined frames" },
	{ "count", cmd_count, "count uprobe hits on Go functions (probe check and cost measurement)" },
	{ "trace", cmd_trace, "trace goroutine creation, exit, park and ready (bounded by an overhead budget)" },
	{ "goroutines", cmd_goroutines, "dump the goroutines of a live process, grouped by stack or one by one" },
	{ "top", cmd_top, "live view: goroutines, creation and blocking sites, leak suspects" },
	{ "heap", cmd_heap, "in-use and allocated memory by allocation site, GC cycles and pauses" },
	{ "contention", cmd_contention, "where goroutines wait and for how long; scheduling latency" },
};

int cmd_fail(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "gotrace: %s\n", msg);
	if (env_json) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "error", json_object_new_string(msg));
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
	}
	return 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: gotrace [GLOBAL OPTIONS] COMMAND [ARGS...]\n"
		"       gotrace -p PID            (live view; shorthand for 'gotrace top -p PID')\n"
		"\n"
		"Trace a running Go process from outside: goroutines, heap, waiting.\n"
		"\n"
		"Commands:\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  %-10s %s\n", cmds[i].name, cmds[i].summary);
	fprintf(f,
		"\n"
		"Global options:\n"
		"  -j, --json     print JSON instead of text\n"
		"  -v, --verbose  more diagnostics (-vv: also libbpf debug output)\n"
		"  -V, --version  print the version\n"
		"  -h, --help     this help; 'gotrace COMMAND --help' for a command\n");
}

static const struct cmd *find_cmd(const char *name)
{
	const struct cmd *found = NULL;
	size_t len = strlen(name);

	/* Exact match first, then a unique prefix (bpftool's cmd_select). */
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (!strcmp(cmds[i].name, name))
			return &cmds[i];
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (len && !strncmp(cmds[i].name, name, len)) {
			if (found)
				return NULL;
			found = &cmds[i];
		}
	}
	return found;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const struct cmd *cmd;
	int c;

	setvbuf(stdout, NULL, _IOLBF, 0);
	/* Global flags stop at the first non-option: the subcommand parses the rest. */
	while ((c = getopt_long(argc, argv, "+jvVhp:", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			env_json = true;
			break;
		case 'v':
			log_verbosity++;
			break;
		case 'V':
			printf("gotrace %s\n", GOTRACE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		case 'p': {
			/* gotrace -p PID [top options]: the live view. */
			char *targv[64] = { "top", "-p", optarg };
			int targc = 3;

			for (int i = optind; i < argc && targc < 63; i++)
				targv[targc++] = argv[i];
			optind = 1;
			return cmd_top(targc, targv);
		}
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	cmd = find_cmd(argv[optind]);
	if (!cmd)
		return cmd_fail("unknown command '%s': see 'gotrace --help'", argv[optind]);
	/* Subcommands see argv[0] = their name and may also take --json/-v themselves. */
	optind++;
	argv[optind - 1] = (char *)cmd->name;
	{
		int sub_argc = argc - (optind - 1);
		char **sub_argv = argv + (optind - 1);

		optind = 0; /* reset getopt for the subcommand (glibc: 0 also re-inits) */
		return cmd->fn(sub_argc, sub_argv);
	}
}
