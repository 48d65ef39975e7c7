// SPDX-License-Identifier: MIT
/*
 * gotrace goroutines: a goroutine dump of a live process, read from its memory (the
 * census), without stopping it or sending it a signal. Grouped by identical stack and
 * creation site with counts (like pprof's goroutine debug=1), or one by one (--all,
 * like debug=2). Text or --json.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "cmd/cmds.h"
#include "engine/session.h"
#include "goruntime/offsets.h"
#include "util/log.h"

static const char goroutines_help[] =
	"Usage: gotrace goroutines -p PID [OPTIONS]\n"
	"\n"
	"Dump the goroutines of a running Go process, read from its memory: the target is\n"
	"neither stopped nor signalled. By default goroutines with the same stack and the\n"
	"same creation site are grouped, largest group first (like pprof's debug=1).\n"
	"\n"
	"Options:\n"
	"  -p, --pid PID     process to read\n"
	"  -a, --all         one entry per goroutine: goid, state, wait reason, how long,\n"
	"                    stack, \"created by ... in goroutine N\" (like debug=2)\n"
	"  -s, --system      include the runtime's own goroutines (GC workers, ...)\n"
	"  -j, --json        JSON document (docs/json-output.md)\n"
	"  -h, --help        this help\n"
	"\n"
	"Counts: `total` is what runtime.NumGoroutine() would say; goroutines that could not\n"
	"be read while the program ran are counted as unreadable, never guessed.\n";

struct gr_env {
	pid_t pid;
	bool all, system, json;
};

struct group {
	int32_t stack;
	uint64_t gopc;
	uint64_t count;
	uint64_t by_status[16];
	uint64_t by_reason[256];
	size_t first; /* index of a member in census->gs */
};

static int parse_args(int argc, char **argv, struct gr_env *env)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' }, { "all", no_argument, NULL, 'a' },
		{ "system", no_argument, NULL, 's' },	 { "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },	 { 0 },
	};
	int c, err = 0;

	optind = 1;
	env->json = env_json;
	while ((c = getopt_long(argc, argv, "p:asjh", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			err = cmd_parse_pid(optarg, &env->pid);
			break;
		case 'a':
			env->all = true;
			break;
		case 's':
			env->system = true;
			break;
		case 'j':
			env->json = true;
			env_json = true;
			break;
		case 'h':
			fputs(goroutines_help, stdout);
			exit(0);
		default:
			fputs(goroutines_help, stderr);
			return 2;
		}
		if (err)
			return err;
	}
	if (optind < argc)
		return cmd_fail("goroutines: unexpected argument '%s' (try --help)", argv[optind]);
	if (!env->pid)
		return cmd_fail("goroutines: which process? -p PID (try --help)");
	return 0;
}

static const struct census_stack *g_stack(const struct census *c, const struct census_g *g)
{
	return g->stack >= 0 ? c->stacks[g->stack] : NULL;
}

/* Seconds blocked, from g.waitsince (set by the GC when it first saw the goroutine blocked). */
static double wait_s(const struct census_g *g, int64_t now)
{
	if (g->status != GO_GWAITING || g->waitsince <= 0 || g->waitsince > now)
		return -1;
	return (now - g->waitsince) / 1e9;
}

static int cmp_group(const void *a, const void *b)
{
	const struct group *x = a, *y = b;

	if (x->count != y->count)
		return x->count < y->count ? 1 : -1;
	return x->first < y->first ? -1 : x->first > y->first;
}

/* Group by (stack, creation site); largest first. */
static struct group *make_groups(const struct census *c, size_t *n)
{
	struct group *gr = calloc(c->ng ? c->ng : 1, sizeof(*gr));
	size_t ng = 0;

	if (!gr)
		return NULL;
	/* Quadratic in groups, linear in goroutines: groups are few, and a hash is next. */
	for (size_t i = 0; i < c->ng; i++) {
		const struct census_g *g = &c->gs[i];
		size_t k;

		for (k = 0; k < ng; k++)
			if (gr[k].stack == g->stack && gr[k].gopc == g->gopc)
				break;
		if (k == ng) {
			gr[ng].stack = g->stack;
			gr[ng].gopc = g->gopc;
			gr[ng].first = i;
			ng++;
		}
		gr[k].count++;
		gr[k].by_status[g->status & 15]++;
		if (g->status == GO_GWAITING)
			gr[k].by_reason[g->waitreason]++;
	}
	qsort(gr, ng, sizeof(*gr), cmp_group);
	*n = ng;
	return gr;
}

static struct json_object *site_json(struct site s)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "function", json_object_new_string(s.func ? s.func : "?"));
	json_object_object_add(o, "file", json_object_new_string(s.file ? s.file : "?"));
	json_object_object_add(o, "line", json_object_new_int(s.line));
	return o;
}

/*
 * Frames a Go traceback shows (showframe): no compiler wrappers and, unless the runtime's
 * own goroutines were asked for, no runtime frames.
 */
static bool shown(const struct sym_pc *e, int k, bool system)
{
	if (e->wrapper)
		return false;
	return system || !(!strncmp(e->frames[k].func, "runtime.", 8) ||
			   !strncmp(e->frames[k].func, "internal/runtime/", 17));
}

static struct json_object *stack_json(struct session *s, const struct census_stack *st,
				      bool system)
{
	struct json_object *a = json_object_new_array();

	for (uint32_t i = 0; st && i < st->depth; i++) {
		const struct sym_pc *e = session__sym(s, st->pcs[i]);

		for (int k = 0; k < e->nframes; k++)
			if (shown(e, k, system))
				json_object_array_add(a, site_json(e->frames[k]));
	}
	return a;
}

/* Go prints no creator for the main goroutine, nor for one the runtime started itself. */
static bool created_shown(struct session *s, const struct census_g *g)
{
	const char *fn;

	if (!g->gopc || g->goid == 1)
		return false;
	fn = session__created_at(s, g->gopc).func;
	return strncmp(fn, "runtime.", 8) || g->system;
}

static const char *reason_name(const struct census *c, unsigned r)
{
	const char *n = go_waitreason(c->go_minor, r);

	return n && n[0] ? n : "unknown";
}

static const char *state_of(const struct census *c, const struct census_g *g)
{
	return g->status == GO_GWAITING ? reason_name(c, g->waitreason)
					: census__status_name(g->status);
}

static void print_stack(FILE *f, struct session *s, const struct census_stack *st, bool debug2,
			bool system)
{
	for (uint32_t i = 0; st && i < st->depth; i++) {
		const struct sym_pc *e = session__sym(s, st->pcs[i]);

		for (int k = 0; k < e->nframes; k++) {
			if (!shown(e, k, system))
				continue;
			if (debug2)
				fprintf(f, "%s(...)\n\t%s:%d\n", e->frames[k].func, e->frames[k].file,
					e->frames[k].line);
			else
				fprintf(f, "#\t%#" PRIx64 "\t%s\t%s:%d\n", st->pcs[i],
					e->frames[k].func, e->frames[k].file, e->frames[k].line);
		}
	}
	if (st && st->truncated)
		fprintf(f, "%s...additional frames elided...\n", debug2 ? "" : "#\t");
}

static void header_text(FILE *f, struct session *s, const struct census *c)
{
	fprintf(f,
		"goroutine dump of process %d (%s): total %" PRIu64 " (runtime %" PRIu64
		", dead %" PRIu64 ", unreadable %" PRIu64 ", without stack %" PRIu64
		"), read in %.1f ms\n\n",
		(int)s->pid, s->go_version, c->user, c->system, c->dead, c->unreadable,
		c->stack_unknown, c->elapsed_ms);
}

static void print_text(struct session *s, const struct census *c, const struct gr_env *env)
{
	int64_t now = session__mono_ns();

	header_text(stdout, s, c);
	if (env->all) {
		for (size_t i = 0; i < c->ng; i++) {
			const struct census_g *g = &c->gs[i];
			const struct census_stack *st = g_stack(c, g);
			struct site cr = session__created_at(s, g->gopc);
			double w = wait_s(g, now);

			printf("goroutine %" PRIu64 " [%s", g->goid, state_of(c, g));
			if (w >= 60)
				printf(", %d minutes", (int)(w / 60));
			printf("]%s:\n", g->system ? " (runtime)" : "");
			if (!st)
				printf("(stack unknown: %s)\n",
				       g->stack_state == CENSUS_STACK_RUNNING ? "running on a CPU"
				       : g->stack_state == CENSUS_STACK_CHANGED
					       ? "it kept changing while read"
					       : "no saved context");
			print_stack(stdout, s, st, true, env->system);
			if (created_shown(s, g)) {
				printf("created by %s", cr.func);
				if (g->parent_goid)
					printf(" in goroutine %" PRIu64, g->parent_goid);
				printf("\n\t%s:%d\n", cr.file, cr.line);
			}
			printf("\n");
		}
		return;
	}
	{
		size_t ng = 0;
		struct group *gr = make_groups(c, &ng);

		for (size_t k = 0; gr && k < ng; k++) {
			const struct census_g *g = &c->gs[gr[k].first];
			struct site cr = session__created_at(s, gr[k].gopc);
			const char *sep = "";

			printf("%" PRIu64 " @ [", gr[k].count);
			for (unsigned st = 0; st < 16; st++) {
				if (!gr[k].by_status[st])
					continue;
				if (st == GO_GWAITING) {
					for (unsigned r = 0; r < 256; r++)
						if (gr[k].by_reason[r]) {
							printf("%s%s: %" PRIu64, sep, reason_name(c, r),
							       gr[k].by_reason[r]);
							sep = ", ";
						}
					continue;
				}
				printf("%s%s: %" PRIu64, sep, census__status_name(st),
				       gr[k].by_status[st]);
				sep = ", ";
			}
			printf("]\n");
			print_stack(stdout, s, g_stack(c, g), false, env->system);
			if (created_shown(s, g))
				printf("# created by %s at %s:%d\n", cr.func, cr.file, cr.line);
			printf("\n");
		}
		free(gr);
	}
}

static struct json_object *g_json(struct session *s, const struct census *c,
				  const struct census_g *g, int64_t now)
{
	struct json_object *o = json_object_new_object();
	double w = wait_s(g, now);

	json_object_object_add(o, "goid", json_object_new_uint64(g->goid));
	json_object_object_add(o, "state", json_object_new_string(census__status_name(g->status)));
	json_object_object_add(o, "wait_reason",
			       g->status == GO_GWAITING
				       ? json_object_new_string(reason_name(c, g->waitreason))
				       : NULL);
	json_object_object_add(o, "wait_s", w >= 0 ? json_object_new_double(w) : NULL);
	json_object_object_add(o, "system", json_object_new_boolean(g->system));
	json_object_object_add(o, "parent_goid",
			       g->parent_goid ? json_object_new_uint64(g->parent_goid) : NULL);
	json_object_object_add(o, "created_by",
			       created_shown(s, g) ? site_json(session__created_at(s, g->gopc)) : NULL);
	json_object_object_add(o, "start_function",
			       json_object_new_string(session__func_name(s, g->startpc)));
	json_object_object_add(o, "stack", stack_json(s, g_stack(c, g), g->system));
	json_object_object_add(o, "stack_complete",
			       json_object_new_boolean(g_stack(c, g) && !g_stack(c, g)->truncated));
	return o;
}

static int print_json(struct session *s, const struct census *c, const struct gr_env *env)
{
	struct json_object *root = json_object_new_object(), *arr = json_object_new_array();
	int64_t now = session__mono_ns();

	json_object_object_add(root, "pid", json_object_new_int(s->pid));
	json_object_object_add(root, "go_version", json_object_new_string(s->go_version));
	json_object_object_add(root, "total", json_object_new_uint64(c->user));
	json_object_object_add(root, "system", json_object_new_uint64(c->system));
	json_object_object_add(root, "dead", json_object_new_uint64(c->dead));
	json_object_object_add(root, "unreadable", json_object_new_uint64(c->unreadable));
	json_object_object_add(root, "stack_unknown", json_object_new_uint64(c->stack_unknown));
	json_object_object_add(root, "retries", json_object_new_uint64(c->retries));
	json_object_object_add(root, "elapsed_ms", json_object_new_double(c->elapsed_ms));
	if (env->all) {
		for (size_t i = 0; i < c->ng; i++)
			json_object_array_add(arr, g_json(s, c, &c->gs[i], now));
		json_object_object_add(root, "goroutines", arr);
	} else {
		size_t ng = 0;
		struct group *gr = make_groups(c, &ng);

		for (size_t k = 0; gr && k < ng; k++) {
			struct json_object *o = json_object_new_object(), *states;
			const struct census_g *g = &c->gs[gr[k].first];

			states = json_object_new_object();
			for (unsigned st = 0; st < 16; st++) {
				if (!gr[k].by_status[st])
					continue;
				if (st == GO_GWAITING) {
					for (unsigned r = 0; r < 256; r++)
						if (gr[k].by_reason[r])
							json_object_object_add(
								states, reason_name(c, r),
								json_object_new_uint64(
									gr[k].by_reason[r]));
					continue;
				}
				json_object_object_add(states, census__status_name(st),
						       json_object_new_uint64(gr[k].by_status[st]));
			}
			json_object_object_add(o, "count", json_object_new_uint64(gr[k].count));
			json_object_object_add(o, "states", states);
			json_object_object_add(
				o, "created_at",
				created_shown(s, g) ? site_json(session__created_at(s, gr[k].gopc))
						    : NULL);
			json_object_object_add(
				o, "blocked_at",
				g_stack(c, g) ? site_json(session__blocked_at(s, g_stack(c, g), NULL))
					      : NULL);
			json_object_object_add(o, "stack",
					       stack_json(s, g_stack(c, g), env->system));
			json_object_array_add(arr, o);
		}
		free(gr);
		json_object_object_add(root, "groups", arr);
	}
	json_c_set_serialization_double_format("%.6g", JSON_C_OPTION_THREAD);
	puts(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
							  JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(root);
	return 0;
}

int cmd_goroutines(int argc, char **argv)
{
	struct gr_env env = { 0 };
	struct census_opts co = { 0 };
	struct session *s = NULL;
	struct census *c = NULL;
	int err;

	err = parse_args(argc, argv, &env);
	if (err)
		return err;
	co.keep_system = env.system;
	err = session__open(env.pid, &s);
	if (err)
		return cmd_fail("%s", gt_lasterr());
	err = session__census(s, &co, &c);
	if (err) {
		err = cmd_fail("cannot read the goroutines of process %d: %s", (int)env.pid,
			       gt_lasterr());
		goto out;
	}
	if (env.json)
		print_json(s, c, &env);
	else
		print_text(s, c, &env);
	err = 0;
out:
	census__free(c);
	session__close(s);
	return err;
}
