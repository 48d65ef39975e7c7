// SPDX-License-Identifier: MIT
/* gotrace symbolize PATH|-p PID ADDR...: function, file:line and inlined frames per address. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "cmd/cmds.h"
#include "goruntime/model.h"
#include "util/log.h"

#define MAX_FRAMES 64

static const char symbolize_help[] =
	"Usage: gotrace symbolize [OPTIONS] PATH ADDR...\n"
	"       gotrace symbolize [OPTIONS] -p PID ADDR...\n"
	"\n"
	"Map each address (hex, with or without 0x) to its function, file:line and inlined\n"
	"frames, from .gopclntab alone (no symbols or DWARF needed). With -p, addresses are\n"
	"runtime addresses in the process (PIE load bias removed). '-' reads addresses from\n"
	"standard input, one per line.\n"
	"\n"
	"Options:\n"
	"  -p, --pid PID   symbolize against a running process's executable\n"
	"  -j, --json      JSON output (see docs/json-output.md)\n"
	"  -h, --help      this help\n";

static int parse_addr(const char *s, uint64_t *v)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	if (!*s)
		return -EINVAL;
	errno = 0;
	*v = strtoull(s, &end, 16);
	while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')
		end++;
	return errno || *end ? -EINVAL : 0;
}

struct sym_out {
	struct json_object *results; /* JSON mode */
};

static void symbolize_one(const struct go_model *m, uint64_t addr, struct sym_out *out)
{
	struct go_frame frames[MAX_FRAMES];
	uint64_t pc = go_model__to_link(m, addr);
	const struct go_func *fn = pclntab__find_func(m->pcln, pc);
	const char *file = NULL;
	int line = 0, n = 0;

	if (fn) {
		n = pclntab__symbolize(m->pcln, pc, frames, MAX_FRAMES);
		if (n < 0)
			n = 0;
		if (pclntab__line(m->pcln, fn, pc, &file, &line))
			file = NULL;
	}

	if (env_json) {
		struct json_object *r = json_object_new_object(), *fa = json_object_new_array();

		json_object_object_add(r, "address", json_object_new_int64((int64_t)addr));
		json_object_object_add(r, "function", fn ? json_object_new_string(fn->name) : NULL);
		if (fn)
			json_object_object_add(r, "entry",
					       json_object_new_int64((int64_t)go_model__to_runtime(
						       m, fn->entry)));
		json_object_object_add(r, "file", file ? json_object_new_string(file) : NULL);
		json_object_object_add(r, "line", json_object_new_int(line));
		for (int i = 0; i < n; i++) {
			struct json_object *f = json_object_new_object();

			json_object_object_add(f, "function", json_object_new_string(frames[i].func));
			json_object_object_add(f, "file", json_object_new_string(frames[i].file));
			json_object_object_add(f, "line", json_object_new_int(frames[i].line));
			json_object_object_add(f, "inlined", json_object_new_boolean(frames[i].inlined));
			json_object_array_add(fa, f);
		}
		json_object_object_add(r, "frames", fa);
		json_object_array_add(out->results, r);
		return;
	}
	if (!fn) {
		printf("0x%" PRIx64 " ?? (not in any Go function)\n", addr);
		return;
	}
	if (n == 0) {
		printf("0x%" PRIx64 " %s+0x%" PRIx64 " %s:%d\n", addr, fn->name, pc - fn->entry,
		       file ? file : "?", line);
		return;
	}
	for (int i = 0; i < n; i++) {
		if (i == 0)
			printf("0x%" PRIx64 " ", addr);
		else
			printf("%*s", 19, "");
		printf("%s%s %s:%d%s\n", frames[i].func, frames[i].inlined ? "" : "",
		       frames[i].file, frames[i].line, frames[i].inlined ? " (inlined)" : "");
	}
}

int cmd_symbolize(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct go_model_opts mopts = { .allow_unsupported = true };
	struct sym_out out = {};
	struct go_model *m = NULL;
	pid_t pid = 0;
	char line[256];
	int c, err, first;
	uint64_t addr;

	while ((c = getopt_long(argc, argv, "p:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			err = cmd_parse_pid(optarg, &pid);
			if (err)
				return err;
			break;
		case 'j':
			env_json = true;
			break;
		case 'h':
			fputs(symbolize_help, stdout);
			return 0;
		default:
			fputs(symbolize_help, stderr);
			return 2;
		}
	}
	first = pid ? optind : optind + 1;
	if ((!pid && optind >= argc) || first >= argc)
		return cmd_fail("symbolize needs PATH (or -p PID) and at least one ADDR: see "
				"'gotrace symbolize --help'");
	/* Validate every address before opening anything. */
	for (int i = first; i < argc; i++) {
		if (!strcmp(argv[i], "-"))
			continue;
		if (parse_addr(argv[i], &addr))
			return cmd_fail("invalid address '%s': expected hex like 0x4a1b2c", argv[i]);
	}

	if (pid)
		err = go_model__open_pid(pid, &mopts, &m);
	else
		err = go_model__open_path(argv[optind], &mopts, &m);
	if (err)
		return cmd_fail("%s", gt_lasterr() ? gt_lasterr() : strerror(-err));

	if (env_json)
		out.results = json_object_new_array();
	for (int i = first; i < argc; i++) {
		if (strcmp(argv[i], "-")) {
			parse_addr(argv[i], &addr);
			symbolize_one(m, addr, &out);
			continue;
		}
		while (fgets(line, sizeof(line), stdin)) {
			if (parse_addr(line, &addr)) {
				if (line[strspn(line, " \t\r\n")] == '\0')
					continue;
				line[strcspn(line, "\r\n")] = '\0';
				err = cmd_fail("invalid address '%s' on standard input", line);
				goto cleanup;
			}
			symbolize_one(m, addr, &out);
		}
	}
	if (env_json) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "path", json_object_new_string(
							  m->has_proc ? m->proc.exe_path : m->path));
		json_object_object_add(o, "results", json_object_get(out.results));
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
								 JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	}
	err = 0;
cleanup:
	json_object_put(out.results);
	go_model__free(m);
	return err;
}
