// SPDX-License-Identifier: MIT
/*
 * gotrace top: the live view of one Go process. Every interval a census of its
 * goroutines (read from its memory: no probe, no signal) feeds the engine (gwatch),
 * which keeps creation sites, blocking groups and leak suspects over time. Full-screen
 * with ncurses, or plain text frames with -b; --json prints one document at the end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <ncurses.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>

#include "cmd/cmds.h"
#include "contention/sampler.h"
#include "contention/schedlat.h"
#include "engine/gwatch.h"
#include "engine/session.h"
#include "goruntime/offsets.h"
#include "heap/growth.h"
#include "heap/profile.h"
#include "heap/sites.h"
#include "util/log.h"

static const char top_help[] =
	"Usage: gotrace top -p PID [OPTIONS]        (or: gotrace -p PID)\n"
	"\n"
	"Live view of a running Go process: goroutines and their trend, creations and exits\n"
	"per second, states and wait reasons, top creation and blocking sites, leak suspects\n"
	"and gotrace's own health. Goroutines are read from the process's memory once per\n"
	"interval (the census): nothing is attached to the target, it is never stopped.\n"
	"\n"
	"Options:\n"
	"  -p, --pid PID          process to watch\n"
	"  -b, --batch            plain text frames on stdout instead of the full screen\n"
	"  -d, --duration SECS    stop after SECS seconds (default: until q, Ctrl-C or exit)\n"
	"  -i, --interval SECS    refresh interval (default 1)\n"
	"  -n, --top N            rows per table (default 10)\n"
	"  -j, --json             with -b: one JSON document at the end, no frames\n"
	"  -h, --help             this help\n"
	"\n"
	"Keys: q quit, p pause, s sort sites and groups by count or growth.\n"
	"Leak suspect: a group of goroutines (same creation site, same blocking line and wait\n"
	"reason) that keeps growing while its members stay blocked (docs/leaks.md).\n"
	"When the process exits, the last state is reported and gotrace exits with 0.\n";

struct top_env {
	pid_t pid;
	bool batch, json;
	double duration, interval;
	int rows;
	bool sort_growth;
};

/* The heap side of the view: GC state and growth suspects (src/heap). */
struct top_heap {
	struct heap_reader *hr;
	struct heap_sites *hs;
	struct heap_watch *hw;
	struct heap_gc first, last;
	bool ok;
	char why[256]; /* when !ok: why the heap is not shown */
};

/*
 * Scheduling latency and GC pauses over the last interval (src/contention/schedlat), and
 * blocked time by wait reason and blocking stack since the start, estimated from the
 * censuses (src/contention/sampler: each one charges an interval to every waiting
 * goroutine; `gotrace contention` samples the same way 100 times a second).
 */
struct top_sched {
	struct schedlat *sl;
	struct schedlat_sample last;
	bool have;
	struct contention *ct;
	uint64_t weight_ns; /* what one census stands for: the interval */
};

static volatile sig_atomic_t exiting;

static void on_signal(int sig)
{
	exiting = 1;
}

static int parse_args(int argc, char **argv, struct top_env *env)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "batch", no_argument, NULL, 'b' },
		{ "duration", required_argument, NULL, 'd' },
		{ "interval", required_argument, NULL, 'i' },
		{ "top", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	long v = 0;
	int c, err = 0;

	optind = 1;
	env->json = env_json;
	env->interval = 1;
	env->rows = 10;
	while ((c = getopt_long(argc, argv, "p:bd:i:n:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			err = cmd_parse_pid(optarg, &env->pid);
			break;
		case 'b':
			env->batch = true;
			break;
		case 'd':
			err = cmd_parse_secs("duration", optarg, CMD_ABOVE_0, 1e7, &env->duration);
			break;
		case 'i':
			err = cmd_parse_secs("interval", optarg, 0.05, 1e7, &env->interval);
			break;
		case 'n':
			err = cmd_parse_int("--top", optarg, 1, 10000, NULL, &v);
			env->rows = (int)v;
			break;
		case 'j':
			env->json = true;
			env_json = true;
			break;
		case 'h':
			fputs(top_help, stdout);
			exit(0);
		default:
			fputs(top_help, stderr);
			return 2;
		}
		if (err)
			return err;
	}
	if (optind < argc)
		return cmd_fail("top: unexpected argument '%s' (try --help)", argv[optind]);
	if (!env->pid)
		return cmd_fail("top: which process? -p PID (try --help)");
	if (env->json && !env->batch)
		env->batch = true;
	if (!env->batch && (!isatty(STDOUT_FILENO) || !getenv("TERM")))
		return cmd_fail("top: stdout is not a terminal: use -b for text frames (and --json)");
	return 0;
}

/* ---- one frame of text, for the screen and for -b */

static const char *base(const char *p)
{
	const char *s = p ? strrchr(p, '/') : NULL;

	return s ? s + 1 : p ? p : "?";
}

static void site_str(char *b, size_t n, struct site s)
{
	snprintf(b, n, "%s (%s:%d)", s.func ? s.func : "?", base(s.file), s.line);
}

static int cmp_site_growth(const void *a, const void *b)
{
	const struct gw_site *x = *(const struct gw_site *const *)a;
	const struct gw_site *y = *(const struct gw_site *const *)b;

	return (x->growth_per_min < y->growth_per_min) - (x->growth_per_min > y->growth_per_min);
}

static int cmp_group_growth(const void *a, const void *b)
{
	const struct gw_group *x = *(const struct gw_group *const *)a;
	const struct gw_group *y = *(const struct gw_group *const *)b;

	return (x->growth_per_min < y->growth_per_min) - (x->growth_per_min > y->growth_per_min);
}

static void heap_open(struct top_heap *h, struct session *s)
{
	h->hr = heap_reader__new(s->m, s->mem);
	if (!h->hr) {
		snprintf(h->why, sizeof(h->why), "%s", gt_lasterr());
		return;
	}
	h->hs = heap_sites__new(s->m);
	if (!h->hs || heap_reader__read_gc(h->hr, &h->first)) {
		snprintf(h->why, sizeof(h->why), "cannot read the GC state: %s", gt_lasterr());
		return;
	}
	h->last = h->first;
	h->hw = heap_watch__new(h->hr, h->hs,
				h->first.have_rate && h->first.mem_profile_rate > 0
					? h->first.mem_profile_rate : 512 * 1024,
				h->first.have_sweep);
	if (!h->hw) {
		snprintf(h->why, sizeof(h->why), "out of memory");
		return;
	}
	h->ok = true;
	heap_watch__update(h->hw, &h->first);
}

/* Called every ~100 ms: catches each GC cycle's end for the growth rule. */
static void heap_poll(struct top_heap *h)
{
	struct heap_gc g;

	if (!h->ok || heap_reader__read_gc(h->hr, &g))
		return;
	h->last = g;
	heap_watch__update(h->hw, &g);
}

static void heap_close(struct top_heap *h)
{
	heap_watch__free(h->hw);
	heap_sites__free(h->hs);
	heap_reader__free(h->hr);
}

/* The site of a growth suspect: its innermost shown frame. */
static const struct heap_frame *heap_site(struct top_heap *h, const struct heap_suspect *x)
{
	struct heap_stack st;

	heap_sites__stack(h->hs, x->shown, &st);
	return st.n ? heap_sites__frame(h->hs, (uint32_t)st.frames[0]) : NULL;
}

static void render_heap(FILE *f, struct top_heap *h, int rows)
{
	const struct heap_gc *g = &h->last;
	const struct heap_suspect *sus = NULL;
	size_t n = 0;

	if (!h->ok) {
		fprintf(f, "\nheap: not shown: %s\n", h->why);
		return;
	}
	fprintf(f, "\nGC: %u cycles (+%u watched, %u forced), pauses %.1f ms in all",
		g->numgc, g->numgc - h->first.numgc, g->numforcedgc,
		g->pause_total_ns / 1e6);
	if (g->have_controller)
		fprintf(f, ", heap live %.1f MB, goal %.1f MB", g->heap_live / 1048576.0,
			g->heap_goal / 1048576.0);
	if (g->have_disabled && g->disabled)
		fprintf(f, "  [memory profiling disabled by the linker: no heap sites]");
	else if (g->have_rate && g->mem_profile_rate <= 0)
		fprintf(f, "  [MemProfileRate is 0: no heap sites]");
	fprintf(f, "\nHEAP GROWTH SUSPECTS\n");
	heap_watch__suspects(h->hw, &sus, &n);
	for (size_t i = 0; i < n && i < (size_t)rows; i++) {
		const struct heap_frame *fr = heap_site(h, &sus[i]);
		char a[256];

		site_str(a, sizeof(a),
			 fr ? (struct site){ fr->func, fr->file, fr->line } : (struct site){ 0 });
		fprintf(f, "  %-50.50s %+9.1f MB/min  in use %.1f -> %.1f MB, rose in %d of %d cycles\n",
			a, sus[i].per_min / 1048576.0, sus[i].first / 1048576.0,
			sus[i].last / 1048576.0, sus[i].rises, sus[i].points);
	}
	if (!n)
		fprintf(f, "  none\n");
}

static void fmt_ns(char *b, size_t n, double ns)
{
	if (ns < 0)
		snprintf(b, n, "-");
	else if (ns < 1e3)
		snprintf(b, n, "%.0fns", ns);
	else if (ns < 1e6)
		snprintf(b, n, "%.1fus", ns / 1e3);
	else
		snprintf(b, n, "%.1fms", ns / 1e6);
}

static void render_sched(FILE *f, struct top_sched *ts)
{
	const struct schedlat_sample *x = &ts->last;
	char a[32], b[32], c[32];

	if (ts->sl && !ts->have && !schedlat__why(ts->sl, false)[0]) {
		fprintf(f, "sched latency: measured from the next refresh on\n");
		return;
	}
	if (!ts->have || !x->sched.available) {
		fprintf(f, "sched latency: unavailable: %s\n",
			ts->sl ? schedlat__why(ts->sl, false) : "out of memory");
		return;
	}
	fmt_ns(a, sizeof(a), x->sched.p50_ns);
	fmt_ns(b, sizeof(b), x->sched.p99_ns);
	fmt_ns(c, sizeof(c), x->sched.max_ns);
	fprintf(f, "sched latency (last %.1fs, %" PRIu64 " sampled): p50 %s p99 %s max %s", x->interval_s,
		x->sched.count, a, b, c);
	if (x->gc.available) {
		fmt_ns(b, sizeof(b), x->gc.p99_ns);
		fmt_ns(c, sizeof(c), x->gc.max_ns);
		fprintf(f, "   GC STW pauses: %" PRIu64 ", p99 %s max %s", x->gc.count, b, c);
	}
	if (x->mutex_wait_ns >= 0)
		fprintf(f, "   mutex wait %.1f ms", x->mutex_wait_ns / 1e6);
	fprintf(f, "\n");
}

/* Blocked time per second of the window, by wait reason: the mean number waiting. */
static void render_blocked(FILE *f, struct top_sched *ts)
{
	const struct ct_reason_total *rt;
	const struct ct_stats *st;
	bool shown[256] = { false };
	size_t n;

	if (!ts->ct)
		return;
	rt = contention__reasons(ts->ct, &n);
	st = contention__stats(ts->ct);
	if (!st->charged_ns)
		return;
	fprintf(f, "blocked time per second (from the censuses):");
	for (int k = 0; k < 5; k++) {
		size_t best = n;

		for (size_t r = 0; r < n; r++)
			if (!shown[r] && rt[r].total_ns && (best == n ||
							    rt[r].total_ns > rt[best].total_ns))
				best = r;
		if (best == n)
			break;
		shown[best] = true;
		fprintf(f, "%s %s %.2fs", k ? "," : "", contention__reason_name(ts->ct, best),
			(double)rt[best].total_ns / (double)st->charged_ns);
	}
	fprintf(f, "\n");
}

static void render(FILE *f, struct session *s, struct gwatch *w, const struct top_env *env,
		   bool paused, struct top_heap *h, struct top_sched *ts)
{
	const struct gw_totals *T = gwatch__totals(w);
	const struct gw_site **sites;
	const struct gw_group **groups;
	size_t ns = gwatch__sites(w, &sites), ng = gwatch__groups(w, &groups), nsus = 0;
	char a[256], b[256];
	const char *sep = "";

	if (env->sort_growth) {
		qsort(sites, ns, sizeof(*sites), cmp_site_growth);
		qsort(groups, ng, sizeof(*groups), cmp_group_growth);
	}
	fprintf(f, "gotrace top - pid %d (%s) %.0fs%s   goroutines %" PRIu64 " (%+.0f/min)   "
		   "created %.1f/s  exited %.1f/s\n",
		(int)s->pid, s->go_version, T->t, paused ? " [paused]" : "", T->total,
		gw_series__slope_per_min(gwatch__total_hist(w), 60), T->created_per_s,
		T->exited_per_s);
	fprintf(f, "states:");
	for (unsigned st = 0; st < 16; st++)
		if (T->by_status[st])
			fprintf(f, " %s %" PRIu64, census__status_name(st), T->by_status[st]);
	fprintf(f, "   runtime goroutines %" PRIu64 "\nwaiting:", T->system);
	for (unsigned r = 0; r < 256; r++)
		if (T->by_reason[r]) {
			fprintf(f, "%s %s %" PRIu64, sep, gwatch__reason_name(w, r), T->by_reason[r]);
			sep = ",";
		}
	fprintf(f, "\n");
	render_sched(f, ts);
	render_blocked(f, ts);
	fprintf(f, "\nLEAK SUSPECTS\n");
	for (size_t i = 0; i < ng; i++) {
		const struct gw_group *g = groups[i];

		if (!g->suspect)
			continue;
		site_str(a, sizeof(a), g->created_at);
		site_str(b, sizeof(b), g->blocked_at);
		fprintf(f, "  %6" PRIu64 " %+7.0f/min  created at %s\n%16s blocked at %s [%s]\n"
			   "%16s %s\n",
			g->count, g->growth_per_min, a, "", b, g->wait_reason, "", g->why);
		nsus++;
	}
	if (!nsus)
		fprintf(f, "  none\n");
	fprintf(f, "\nTOP CREATION SITES (by %s)       count  growth/min\n",
		env->sort_growth ? "growth" : "count");
	for (size_t i = 0; i < ns && i < (size_t)env->rows; i++) {
		site_str(a, sizeof(a), sites[i]->created_at);
		fprintf(f, "  %-60.60s %7" PRIu64 " %+10.1f\n", sites[i]->gopc ? a : "(no creator)",
			sites[i]->count, sites[i]->growth_per_min);
	}
	fprintf(f, "\nTOP BLOCKING SITES                                    count  growth/min  "
		   "oldest  reason\n");
	for (size_t i = 0; i < ng && i < (size_t)env->rows; i++) {
		site_str(a, sizeof(a), groups[i]->blocked_at);
		fprintf(f, "  %-50.50s %7" PRIu64 " %+10.1f %6.0fs  %s\n", a, groups[i]->count,
			groups[i]->growth_per_min, groups[i]->oldest_blocked_s,
			groups[i]->wait_reason);
	}
	fprintf(f,
		"\nhealth: census %.1f ms, %" PRIu64 " censuses (%" PRIu64 " failed), "
		"unreadable %" PRIu64 ", without stack %" PRIu64 ", lost events 0 (no probes)\n",
		T->census_ms, s->st.censuses, s->st.census_failed, T->unreadable,
		T->stack_unknown);
	render_heap(f, h, env->rows);
}

/* ---- JSON at the end */

static struct json_object *jsite(struct site s)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "function", json_object_new_string(s.func ? s.func : "?"));
	json_object_object_add(o, "file", json_object_new_string(s.file ? s.file : "?"));
	json_object_object_add(o, "line", json_object_new_int(s.line));
	return o;
}

static struct json_object *jdouble(double v)
{
	return json_object_new_double(round(v * 1000) / 1000);
}

static void heap_json(struct json_object *root, struct top_heap *h)
{
	struct json_object *gc = json_object_new_object(), *sus = json_object_new_array();
	const struct heap_suspect *x = NULL;
	size_t n = 0;

	if (!h->ok) {
		json_object_object_add(root, "gc", NULL);
		json_object_object_add(root, "heap_growth_suspects", NULL);
		json_object_object_add(root, "heap_unavailable", json_object_new_string(h->why));
		json_object_put(gc);
		json_object_put(sus);
		return;
	}
	json_object_object_add(gc, "cycles", json_object_new_int64(h->last.numgc));
	json_object_object_add(gc, "cycles_watched",
			       json_object_new_int64(h->last.numgc - h->first.numgc));
	json_object_object_add(gc, "forced", json_object_new_int64(h->last.numforcedgc));
	json_object_object_add(gc, "pause_total_ns", json_object_new_uint64(h->last.pause_total_ns));
	json_object_object_add(gc, "heap_live_bytes", h->last.have_controller ?
			       json_object_new_uint64(h->last.heap_live) : NULL);
	json_object_object_add(gc, "heap_goal_bytes", h->last.have_controller ?
			       json_object_new_uint64(h->last.heap_goal) : NULL);
	json_object_object_add(root, "gc", gc);
	heap_watch__suspects(h->hw, &x, &n);
	for (size_t i = 0; i < n; i++) {
		const struct heap_frame *fr = heap_site(h, &x[i]);
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "function", json_object_new_string(fr ? fr->func : "?"));
		json_object_object_add(o, "file", json_object_new_string(fr ? fr->file : "?"));
		json_object_object_add(o, "line", json_object_new_int(fr ? fr->line : 0));
		json_object_object_add(o, "inuse_bytes_first", jdouble(x[i].first));
		json_object_object_add(o, "inuse_bytes_last", jdouble(x[i].last));
		json_object_object_add(o, "growth_bytes_per_min", jdouble(x[i].per_min));
		json_object_object_add(o, "rises", json_object_new_int(x[i].rises));
		json_object_object_add(o, "points", json_object_new_int(x[i].points));
		json_object_array_add(sus, o);
	}
	json_object_object_add(root, "heap_growth_suspects", sus);
}

static struct json_object *jhist(const struct schedlat_hist *h)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "count", json_object_new_uint64(h->count));
	json_object_object_add(o, "p50_ns", h->p50_ns >= 0 ? jdouble(h->p50_ns) : NULL);
	json_object_object_add(o, "p99_ns", h->p99_ns >= 0 ? jdouble(h->p99_ns) : NULL);
	json_object_object_add(o, "max_ns", h->max_ns >= 0 ? jdouble(h->max_ns) : NULL);
	return o;
}

static void sched_json(struct json_object *root, struct top_sched *ts)
{
	const struct schedlat_sample *x = &ts->last;

	json_object_object_add(root, "sched_latency",
			       ts->have && x->sched.available ? jhist(&x->sched) : NULL);
	json_object_object_add(root, "gc_pauses",
			       ts->have && x->gc.available ? jhist(&x->gc) : NULL);
	json_object_object_add(root, "sched_interval_s",
			       ts->have ? jdouble(x->interval_s) : NULL);
}

/* What `gotrace contention` reports, from top's censuses: one per interval. */
static void blocked_json(struct json_object *root, struct top_sched *ts)
{
	struct json_object *o, *reasons, *sites;
	const struct ct_reason_total *rt;
	const struct ct_stats *st;
	size_t n, ns;

	if (!ts->ct) {
		json_object_object_add(root, "contention", NULL);
		return;
	}
	contention__finish(ts->ct);
	st = contention__stats(ts->ct);
	o = json_object_new_object();
	reasons = json_object_new_array();
	sites = json_object_new_array();
	json_object_object_add(o, "method", json_object_new_string("census each interval"));
	json_object_object_add(o, "window_ns", json_object_new_uint64(st->charged_ns));
	json_object_object_add(o, "samples", json_object_new_uint64(st->samples));
	json_object_object_add(o, "resolution_ns",
			       json_object_new_uint64(contention__resolution_ns(ts->ct)));
	rt = contention__reasons(ts->ct, &n);
	for (size_t r = 0; r < n; r++) {
		struct json_object *x;

		if (!rt[r].total_ns)
			continue;
		x = json_object_new_object();
		json_object_object_add(x, "reason",
				       json_object_new_string(contention__reason_name(ts->ct, r)));
		json_object_object_add(x, "count", json_object_new_uint64(rt[r].count));
		json_object_object_add(x, "total_ns", json_object_new_uint64(rt[r].total_ns));
		json_object_array_add(reasons, x);
	}
	ns = contention__site_cnt(ts->ct);
	for (size_t i = 0; i < ns && i < 20; i++) {
		const struct ct_site *cs = contention__site(ts->ct, i);
		const struct ct_stack *sk = contention__stack(ts->ct, cs->stack);
		struct json_object *x = json_object_new_object(), *at = NULL;

		if (sk && sk->nframes) {
			const struct ct_frame *fr = &sk->frames[sk->blocked_at];

			at = json_object_new_object();
			json_object_object_add(at, "function", json_object_new_string(fr->func));
			json_object_object_add(at, "file", json_object_new_string(fr->file));
			json_object_object_add(at, "line", json_object_new_int(fr->line));
		}
		json_object_object_add(x, "blocked_at", at);
		json_object_object_add(x, "wait_reason", json_object_new_string(
					       contention__reason_name(ts->ct, cs->reason)));
		json_object_object_add(x, "count", json_object_new_uint64(cs->count));
		json_object_object_add(x, "total_ns", json_object_new_uint64(cs->total_ns));
		json_object_object_add(x, "p99_ns", json_object_new_uint64(cs->p99_ns));
		json_object_array_add(sites, x);
	}
	json_object_object_add(o, "by_wait_reason", reasons);
	json_object_object_add(o, "sites", sites);
	json_object_object_add(root, "contention", o);
}

static void print_json(struct session *s, struct gwatch *w, double duration, const char *end,
		       struct top_heap *h, struct top_sched *ts)
{
	const struct gw_totals *T = gwatch__totals(w);
	struct json_object *root = json_object_new_object(), *gr = json_object_new_object();
	struct json_object *st = json_object_new_object(), *wr = json_object_new_object();
	struct json_object *sites = json_object_new_array(), *sus = json_object_new_array();
	struct json_object *bl = json_object_new_array(), *health = json_object_new_object();
	const struct gw_site **sv;
	const struct gw_group **gv;
	size_t ns = gwatch__sites(w, &sv), ng = gwatch__groups(w, &gv);

	json_object_object_add(root, "pid", json_object_new_int(s->pid));
	json_object_object_add(root, "go_version", json_object_new_string(s->go_version));
	json_object_object_add(root, "duration_s", jdouble(duration));
	json_object_object_add(root, "mode", json_object_new_string("census"));
	json_object_object_add(root, "target_exited", json_object_new_boolean(end != NULL));
	json_object_object_add(root, "target_end", end ? json_object_new_string(end) : NULL);
	for (unsigned i = 0; i < 16; i++)
		if (T->by_status[i])
			json_object_object_add(st, census__status_name(i),
					       json_object_new_uint64(T->by_status[i]));
	for (unsigned r = 0; r < 256; r++)
		if (T->by_reason[r])
			json_object_object_add(wr, gwatch__reason_name(w, r),
					       json_object_new_uint64(T->by_reason[r]));
	json_object_object_add(gr, "total", json_object_new_uint64(T->total));
	json_object_object_add(gr, "system", json_object_new_uint64(T->system));
	json_object_object_add(gr, "trend_per_min",
			       jdouble(gw_series__slope_per_min(gwatch__total_hist(w), 60)));
	json_object_object_add(gr, "by_state", st);
	json_object_object_add(gr, "by_wait_reason", wr);
	json_object_object_add(root, "goroutines", gr);
	json_object_object_add(root, "created_per_s", jdouble(T->created_per_s));
	json_object_object_add(root, "exited_per_s", jdouble(T->exited_per_s));
	for (size_t i = 0; i < ns; i++) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "created_at",
				       sv[i]->gopc ? jsite(sv[i]->created_at) : NULL);
		json_object_object_add(o, "count", json_object_new_uint64(sv[i]->count));
		json_object_object_add(o, "growth_per_min", jdouble(sv[i]->growth_per_min));
		json_object_array_add(sites, o);
	}
	json_object_object_add(root, "sites", sites);
	for (size_t i = 0; i < ng; i++) {
		const struct gw_group *g = gv[i];
		struct json_object *o = json_object_new_object(), *ids = json_object_new_array();

		json_object_object_add(o, "created_at", g->gopc ? jsite(g->created_at) : NULL);
		json_object_object_add(o, "blocked_at", jsite(g->blocked_at));
		json_object_object_add(o, "wait_reason", json_object_new_string(g->wait_reason));
		json_object_object_add(o, "count", json_object_new_uint64(g->count));
		json_object_object_add(o, "growth_per_min", jdouble(g->growth_per_min));
		json_object_object_add(o, "oldest_blocked_s", jdouble(g->oldest_blocked_s));
		for (int k = 0; k < g->nsamples; k++)
			json_object_array_add(ids, json_object_new_uint64(g->sample_goids[k]));
		json_object_object_add(o, "sample_goids", ids);
		if (g->suspect) {
			json_object_object_add(o, "first_reported_s", jdouble(g->first_reported_s));
			json_object_object_add(o, "why", json_object_new_string(g->why));
			json_object_array_add(sus, json_object_get(o));
		}
		json_object_array_add(bl, o);
	}
	json_object_object_add(root, "blocking_sites", bl);
	json_object_object_add(root, "leak_suspects", sus);
	json_object_object_add(root, "lost_events", json_object_new_uint64(0));
	json_object_object_add(root, "reads_failed",
			       json_object_new_uint64(s->st.unreadable + s->st.census_failed));
	json_object_object_add(health, "censuses", json_object_new_uint64(s->st.censuses));
	json_object_object_add(health, "census_failed",
			       json_object_new_uint64(s->st.census_failed));
	json_object_object_add(health, "goroutines_unreadable",
			       json_object_new_uint64(s->st.unreadable));
	json_object_object_add(health, "stacks_unknown",
			       json_object_new_uint64(s->st.stack_unknown));
	json_object_object_add(health, "last_census_ms", jdouble(s->st.last_census_ms));
	json_object_object_add(root, "health", health);
	heap_json(root, h);
	sched_json(root, ts);
	blocked_json(root, ts);
	json_c_set_serialization_double_format("%.6g", JSON_C_OPTION_THREAD);
	puts(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
							  JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(root);
}

/* ---- the screen */

static void draw(struct session *s, struct gwatch *w, const struct top_env *env, bool paused,
		 struct top_heap *h, struct top_sched *ts)
{
	char *buf = NULL, *line, *save = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int y = 0;

	if (!f)
		return;
	render(f, s, w, env, paused, h, ts);
	fclose(f);
	erase();
	for (line = strtok_r(buf, "\n", &save); line && y < LINES - 1;
	     line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "LEAK", 4) || !strncmp(line, "TOP", 3))
			attron(A_BOLD);
		mvaddnstr(y++, 0, line, COLS);
		attroff(A_BOLD);
	}
	mvaddnstr(LINES - 1, 0, "q quit  p pause  s sort by count/growth", COLS);
	refresh();
	free(buf);
}

static double now_s(void)
{
	return session__mono_ns() / 1e9;
}

/* One census: into the engine, and charged to the blocked-time estimate. */
static int top_tick(struct session *s, struct gwatch *w, struct top_sched *ts)
{
	struct census *c = NULL;
	int64_t t = session__mono_ns();
	int err = session__census(s, NULL, &c);

	if (err)
		return err;
	if (ts->ct && contention__sample(ts->ct, c, s->mem, t, ts->weight_ns)) {
		contention__free(ts->ct); /* out of memory: the rest of the view goes on */
		ts->ct = NULL;
	}
	err = gwatch__update(w, c, t / 1e9);
	census__free(c);
	return err;
}

int cmd_top(int argc, char **argv)
{
	struct top_env env = { 0 };
	struct session *s = NULL;
	struct gwatch *w = NULL;
	struct top_heap heap = { 0 };
	struct top_sched sched = { 0 };
	char end_msg[512] = "";
	bool screen = false, paused = false, exited = false;
	double t0, next;
	int err, frames = 0;

	err = parse_args(argc, argv, &env);
	if (err)
		return err;
	err = session__open(env.pid, &s);
	if (err)
		return cmd_fail("%s", gt_lasterr());
	err = gwatch__new(s, &w);
	if (err)
		goto out;
	sched.ct = contention__new(s->m, &(struct contention_opts){ 0 });
	sched.weight_ns = (uint64_t)(env.interval * 1e9);
	/* The first census now: it must work before the screen is taken over. */
	err = top_tick(s, w, &sched);
	if (err) {
		err = cmd_fail("cannot read the goroutines of process %d: %s", (int)env.pid,
			       gt_lasterr());
		goto out;
	}
	heap_open(&heap, s);
	sched.sl = schedlat__new(s->m, s->mem);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (!env.batch) {
		initscr();
		cbreak();
		noecho();
		curs_set(0);
		keypad(stdscr, TRUE);
		screen = true;
	}
	t0 = now_s();
	next = t0;
	while (!exiting) {
		if (!paused && now_s() >= next - 1e-3 && frames) {
			if (sched.sl)
				sched.have = !schedlat__read(sched.sl, &sched.last);
			err = top_tick(s, w, &sched);
			if (err == -ESRCH || err == -ESTALE || (err && !session__alive(s))) {
				exited = true;
				snprintf(end_msg, sizeof(end_msg), "%s",
					 err == -ESTALE ? gt_lasterr() : "");
				break;
			}
			if (err && err != -EINVAL) {
				if (screen)
					endwin();
				screen = false;
				err = cmd_fail("process %d: %s", (int)env.pid, gt_lasterr());
				goto out;
			}
		}
		if (!paused && now_s() >= next - 1e-3) {
			if (screen)
				draw(s, w, &env, paused, &heap, &sched);
			else if (!env.json) {
				render(stdout, s, w, &env, false, &heap, &sched);
				printf("\n");
				fflush(stdout);
			}
			frames++;
			next += env.interval;
		}
		if (env.duration && now_s() - t0 >= env.duration)
			break;
		if (screen) {
			int ch;

			timeout(100);
			ch = getch();
			heap_poll(&heap);
			if (ch == 'q' || ch == 'Q')
				break;
			if (ch == 'p' || ch == ' ') {
				paused = !paused;
				draw(s, w, &env, paused, &heap, &sched);
			}
			if (ch == 's') {
				env.sort_growth = !env.sort_growth;
				draw(s, w, &env, paused, &heap, &sched);
			}
		} else {
			double d = next - now_s();

			if (env.duration && t0 + env.duration - now_s() < d)
				d = t0 + env.duration - now_s();
			if (d > 0)
				usleep((useconds_t)(d * 1e6 < 100000 ? d * 1e6 : 100000));
			heap_poll(&heap);
		}
	}
	if (screen)
		endwin();
	screen = false;
	if (exited && end_msg[0])
		fprintf(stderr, "gotrace: %s after %.1f s; its last state follows\n", end_msg,
			now_s() - t0);
	else if (exited)
		fprintf(stderr, "gotrace: process %d exited after %.1f s; its last state follows\n",
			(int)env.pid, now_s() - t0);
	if (env.json)
		print_json(s, w, now_s() - t0, exited ? (end_msg[0] ? "exec" : "exited") : NULL,
			   &heap, &sched);
	else if (exited || !env.batch)
		render(stdout, s, w, &env, false, &heap, &sched);
	err = 0;
out:
	if (screen)
		endwin();
	heap_close(&heap);
	schedlat__free(sched.sl);
	contention__free(sched.ct);
	gwatch__free(w);
	session__close(s);
	return err;
}
