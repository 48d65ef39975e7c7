// SPDX-License-Identifier: MIT
/*
 * gotrace heap -p PID: in-use and allocated memory by allocation site, sites whose in-use
 * memory grows from one GC cycle to the next, and what the GC did, from outside.
 *
 * The runtime samples allocations into its own heap profile (one per MemProfileRate bytes);
 * gotrace reads those buckets from the target's memory (src/heap/profile.c), located by
 * decoding runtime functions even in stripped binaries (src/heap/locate.c):
 *   - at the start and the end of the window: every bucket, for the in-use figures (as
 *     runtime.MemProfile and pprof would give them at the end) and the allocation rates;
 *   - after each GC cycle, once its sweep is done: the heap as of that cycle's mark end,
 *     one point per cycle of each allocation stack's in-use bytes, for growth detection.
 * GC counts and pauses come from runtime.memstats, gcController and the runtime's pause
 * histogram (src/contention/rthist.c), read at both ends. Nothing is written to the target.
 *
 * Where the runtime's sampling is off (the linker disabled memory profiling, or the program
 * set MemProfileRate to 0) the report says so in "mode" and samples allocations in BPF
 * instead (src/heap/bpfsample.c, --bpf forces it): allocation figures only, under a CPU
 * budget, with the sites' rates scaled to the runtime's own allocation total
 * (memstats.heapStats, read like the rest). The runtime's total is reported in every mode.
 */
#define _GNU_SOURCE /* qsort_r */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <json-c/json.h>

#include "cmd/cmds.h"
#include "contention/rthist.h"
#include "goruntime/model.h"
#include "heap/bpfsample.h"
#include "heap/growth.h"
#include "heap/locate.h"
#include "heap/profile.h"
#include "heap/sites.h"
#include "pprof/pprof.h"
#include "proc/mem.h"
#include "util/log.h"

#define DEFAULT_SECONDS 5.0
#define DEFAULT_TOP 10
#define DEFAULT_MAX_SITES 1000	      /* JSON: the biggest sites in use, then allocators */
#define POLL_NS 20000000ULL	      /* GC state read every 20 ms */
#define DEFAULT_RATE (512 * 1024)     /* runtime.MemProfileRate's default */

static const char heap_help[] =
	"Usage: gotrace heap -p PID [-d SECONDS] [--pprof FILE] [--top N] [--json]\n"
	"\n"
	"Which allocation sites of a running Go process hold its heap memory, which allocate\n"
	"the most, which grow from one GC cycle to the next, and what the GC did, measured\n"
	"from outside without stopping or changing it.\n"
	"\n"
	"The figures are the runtime's own heap profile (one allocation sampled per\n"
	"runtime.MemProfileRate bytes, 512 KiB by default), read from the process's memory\n"
	"and scaled like pprof: in-use memory as of the last completed GC cycle, allocation\n"
	"rates over the window, and each site's in-use bytes after every GC cycle of the\n"
	"window (a site that only grows is a growth suspect). Binaries that never reference\n"
	"runtime.MemProfile (no runtime/pprof) have the runtime's sampling disabled, and\n"
	"a program can set MemProfileRate to 0: then allocations are sampled in BPF at the\n"
	"runtime's allocation paths instead (root), allocation rates by site only (frees\n"
	"are not visible), with the probes detached and re-attached to stay within a CPU\n"
	"budget.\n"
	"\n"
	"Options:\n"
	"  -p, --pid PID       the process\n"
	"  -d, --duration S    how long to watch (default 5 seconds; Ctrl-C ends early)\n"
	"      --pprof FILE    also write a gzipped pprof heap profile (alloc_objects,\n"
	"                      alloc_space, inuse_objects, inuse_space): go tool pprof FILE\n"
	"      --top N         sites shown in text (default 10)\n"
	"      --max-sites N   sites in JSON: the N biggest in use and the N biggest\n"
	"                      allocators (default 1000; 0: all)\n"
	"  -j, --json          JSON output (see docs/json-output.md)\n"
	"  -h, --help          this help\n"
	"\n"
	"Sampling in BPF:\n"
	"      --bpf           sample in BPF even when the runtime samples\n"
	"      --no-bpf        never: with the runtime's sampling off, GC figures only\n"
	"      --bpf-at WHERE  refill (default: when a span of a size class is used up,\n"
	"                      and every allocation over 32 KiB) or mallocgc (every\n"
	"                      allocation: exact sizes, many times the traps)\n"
	"      --budget PCT    CPU the probes may cost the target, % of one CPU\n"
	"                      (default 1; 'none': no limit, always attached)\n"
	"      --bpf-period B  mean bytes between sample points (default 524288)\n"
	"\n"
	"Example: gotrace heap -p $(pidof server) -d 30 --pprof heap.pb.gz\n";

enum { OPT_PPROF = 1000, OPT_TOP, OPT_MAX_SITES, OPT_BPF, OPT_NO_BPF, OPT_BPF_AT, OPT_BUDGET,
       OPT_BPF_PERIOD };

struct hp_env {
	pid_t pid;
	double seconds;
	int top;
	int max_sites; /* sites in JSON (0: all) */
	const char *pprof;
	bool bpf, no_bpf;
	struct heap_bpf_opts bo;
};

struct site {
	uint32_t shown;
	double inuse_objects, inuse_bytes, alloc_objects, alloc_bytes;
	double total0, total1; /* every sampled allocation at the start and the end (bytes) */
	uint32_t buckets;
	uint64_t bpf_samples;	/* BPF mode: sample points */
};

struct hp_run {
	struct go_model *m;
	struct proc_mem *mem;
	struct heap_reader *hr;
	struct heap_sites *hs;
	struct heap_gc gc0, gc1;
	struct heap_snapshot s0, s1;
	uint64_t t0, t1;	/* CLOCK_MONOTONIC of the first and last snapshot */
	int64_t wall0;		/* CLOCK_REALTIME at the start */
	int64_t rate;		/* MemProfileRate used for scaling */
	bool rate_known;
	struct rthist_addrs ha;
	struct rthist gcp[2];
	int gcp_err;
	bool have_gcp;
	uint64_t pause_ns[HEAP_PAUSE_RING], pause_end[HEAP_PAUSE_RING];
	bool have_pauses;	/* the rings, read at the end */
	struct heap_watch *hw;	/* growth points and suspects */
	const struct heap_suspect *sus;
	size_t nsus;
	struct heap_watch_stats ws;
	struct site *sites;	/* by shown id */
	size_t nsites;
	uint64_t snapshots, walk_ns_sum, walk_ns_max, retries;
	bool target_exited, interrupted;
	uint64_t cpu_ns;
	struct proc_mem_stats mem_stats;
	/* The runtime's allocation total (memstats.heapStats) at both ends. */
	uint64_t at_bytes[2], at_objects[2];
	int at_err;
	/* BPF mode. */
	bool use_bpf;
	char bpf_err[256];	 /* why BPF could not be used (mode stays disabled/off) */
	struct heap_bpf *hb;
	struct heap_bpf_stats bs;
	double bpf_scale;	 /* bytes per estimated byte: runtime total / sampled estimate */
	const char *rate_source; /* what the sites' rates are scaled to */
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
	signal(sig, SIG_DFL); /* a second Ctrl-C kills */
}

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000ULL +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000ULL;
}

static int parse_args(int argc, char **argv, struct hp_env *env)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "duration", required_argument, NULL, 'd' },
		{ "pprof", required_argument, NULL, OPT_PPROF },
		{ "top", required_argument, NULL, OPT_TOP },
		{ "max-sites", required_argument, NULL, OPT_MAX_SITES },
		{ "json", no_argument, NULL, 'j' },
		{ "bpf", no_argument, NULL, OPT_BPF },
		{ "no-bpf", no_argument, NULL, OPT_NO_BPF },
		{ "bpf-at", required_argument, NULL, OPT_BPF_AT },
		{ "budget", required_argument, NULL, OPT_BUDGET },
		{ "bpf-period", required_argument, NULL, OPT_BPF_PERIOD },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	long v = 0;
	int c, err = 0;

	while ((c = getopt_long(argc, argv, "p:d:jvh", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			err = cmd_parse_pid(optarg, &env->pid);
			break;
		case 'd':
			err = cmd_parse_secs("duration", optarg, 0, 1e6, &env->seconds);
			break;
		case OPT_PPROF:
			env->pprof = optarg;
			break;
		case OPT_TOP:
			err = cmd_parse_int("--top", optarg, 0, INT_MAX, "a count", &v);
			env->top = (int)v;
			break;
		case OPT_MAX_SITES:
			err = cmd_parse_int("--max-sites", optarg, 0, INT_MAX, "a count, 0 for all",
					    &v);
			env->max_sites = (int)v;
			break;
		case OPT_BPF:
			env->bpf = true;
			break;
		case OPT_NO_BPF:
			env->no_bpf = true;
			break;
		case OPT_BPF_AT:
			if (!strcmp(optarg, "refill"))
				env->bo.at = HEAP_BPF_AT_REFILL;
			else if (!strcmp(optarg, "mallocgc"))
				env->bo.at = HEAP_BPF_AT_MALLOCGC;
			else
				return cmd_fail("invalid --bpf-at '%s': expected refill or "
						"mallocgc", optarg);
			break;
		case OPT_BUDGET:
			err = cmd_parse_budget(optarg, 1e4, &env->bo.budget_pct);
			break;
		case OPT_BPF_PERIOD:
			err = cmd_parse_int("--bpf-period", optarg, 1, 1L << 40, "bytes, e.g. 524288",
					    &v);
			env->bo.period = (uint64_t)v;
			break;
		case 'j':
			env_json = true;
			break;
		case 'v':
			log_verbosity++;
			break;
		case 'h':
			fputs(heap_help, stdout);
			return -1;
		default:
			return cmd_fail("usage: gotrace heap -p PID [-d SECONDS] [--pprof FILE] "
					"[--top N] [--json]");
		}
		if (err)
			return err;
	}
	if (optind < argc)
		return cmd_fail("unexpected argument '%s': see 'gotrace heap --help'",
				argv[optind]);
	if (!env->pid)
		return cmd_fail("no process: give -p PID");
	if (env->bpf && env->no_bpf)
		return cmd_fail("--bpf and --no-bpf contradict each other");
	return 0;
}

/* ---- measuring */

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t n = *cap ? *cap : 64;
	void *q;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	q = realloc(*p, n * elem);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

static int take_snapshot(struct hp_run *r, struct heap_snapshot *s)
{
	int err = heap_reader__snapshot(r->hr, s);

	if (err)
		return err;
	r->snapshots++;
	r->retries += (uint64_t)s->retries;
	r->walk_ns_sum += s->walk_ns;
	if (s->walk_ns > r->walk_ns_max)
		r->walk_ns_max = s->walk_ns;
	return 0;
}

/* The runtime's allocation total now, into slot I (its error kept in r->at_err). */
static void read_alloc_total(struct hp_run *r, int i)
{
	int err = heap_reader__read_alloc_total(r->hr, &r->at_bytes[i], &r->at_objects[i]);

	if (err && !r->at_err)
		r->at_err = err;
}

static int watch(struct hp_run *r, const struct hp_env *env)
{
	uint64_t deadline, cpu0 = cpu_ns();
	struct heap_gc g;
	int err;

	r->wall0 = (int64_t)now_ns(CLOCK_REALTIME);
	if (r->ha.gc_pauses)
		r->gcp_err = rthist__read(r->m, r->mem, r->ha.gc_pauses, r->ha.layout, &r->gcp[0]);
	err = heap_reader__read_gc(r->hr, &r->gc0);
	if (err)
		return err;
	r->rate_known = r->gc0.have_rate;
	r->rate = r->gc0.have_rate ? r->gc0.mem_profile_rate : DEFAULT_RATE;
	r->hw = heap_watch__new(r->hr, r->hs, r->rate, r->gc0.have_sweep);
	if (!r->hw)
		return -ENOMEM;
	/* Callers comparing with the target's own counters start their window on this line. */
	if (r->use_bpf)
		elog("gotrace: reading GC figures of process %d and sampling its allocations in "
		     "BPF for %g s; Ctrl-C to stop\n", env->pid, env->seconds);
	else
		elog("gotrace: reading the heap profile of process %d for %g s; Ctrl-C to stop\n",
		     env->pid, env->seconds);
	read_alloc_total(r, 0);
	if (r->use_bpf) {
		/* No bucket to walk: the sites come from the BPF samples. */
		r->s0.mono_ns = now_ns(CLOCK_MONOTONIC);
	} else {
		err = take_snapshot(r, &r->s0);
		if (err)
			return err;
		err = heap_watch__update(r->hw, &r->gc0);
		if (err)
			return err;
	}
	r->t0 = r->s0.mono_ns;
	deadline = r->t0 + (uint64_t)(env->seconds * 1e9);
	while (!stop) {
		uint64_t now = now_ns(CLOCK_MONOTONIC), wake;
		struct timespec ts;

		if (now >= deadline)
			break;
		wake = now + POLL_NS < deadline ? now + POLL_NS : deadline;
		ts.tv_sec = (time_t)(wake / 1000000000ULL);
		ts.tv_nsec = (long)(wake % 1000000000ULL);
		while (!stop && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
		if (stop)
			break;
		err = heap_reader__read_gc(r->hr, &g);
		if (!err && !r->use_bpf)
			err = heap_watch__update(r->hw, &g);
		if (err == -ESRCH) {
			r->target_exited = true;
			break;
		}
		if (err)
			return err;
	}
	r->interrupted = stop;
	/* The end: probes off first (they cost the target), then what the runtime says. */
	if (r->hb) {
		heap_bpf__stop(r->hb);
		heap_bpf__stats(r->hb, &r->bs);
	}
	if (!r->target_exited) {
		err = heap_reader__read_gc(r->hr, &r->gc1);
		if (!err && !r->use_bpf)
			err = heap_watch__update(r->hw, &r->gc1);
		if (!err && !r->use_bpf)
			err = take_snapshot(r, &r->s1);
		else if (!err)
			r->s1.mono_ns = now_ns(CLOCK_MONOTONIC);
		if (!err)
			read_alloc_total(r, 1);
		if (!err)
			r->have_pauses = !heap_reader__read_pauses(r->hr, r->pause_ns,
								   r->pause_end);
		if (!err && r->ha.gc_pauses && !r->gcp_err)
			r->gcp_err = rthist__read(r->m, r->mem, r->ha.gc_pauses, r->ha.layout,
						  &r->gcp[1]);
		if (err == -ESRCH)
			r->target_exited = true;
		else if (err)
			return err;
	}
	if (r->target_exited) {
		/* The last good readings stand for the end. */
		heap_snapshot__free(&r->s1);
		r->s1 = r->s0; /* rates over nothing: 0 */
		memset(&r->s0, 0, sizeof(r->s0));
		r->gc1 = r->gc0;
		r->gcp_err = -ESRCH;
		r->at_err = -ESRCH;
	}
	r->t1 = r->s1.mono_ns;
	r->have_gcp = r->ha.gc_pauses && !r->gcp_err;
	r->cpu_ns = cpu_ns() - cpu0;
	r->mem_stats = *proc_mem__stats(r->mem);
	heap_watch__stats(r->hw, &r->ws);
	return 0;
}

/* ---- sites and growth */

static int cmp_site(const void *a, const void *b)
{
	const struct site *x = a, *y = b;

	if (x->inuse_bytes != y->inuse_bytes)
		return x->inuse_bytes < y->inuse_bytes ? 1 : -1;
	if (x->alloc_bytes != y->alloc_bytes)
		return x->alloc_bytes < y->alloc_bytes ? 1 : -1;
	return x->shown < y->shown ? -1 : x->shown > y->shown;
}

/* The site of the raw stack PCS[0..N) (by shown stack), or NULL on ENOMEM. */
static struct site *site_of(struct hp_run *r, const uint64_t *pcs, uint32_t n)
{
	size_t cap = r->nsites;
	long raw, id;

	raw = heap_sites__raw(r->hs, pcs, n);
	id = raw < 0 ? raw : heap_sites__shown_of_raw(r->hs, (uint32_t)raw);
	if (id < 0)
		return NULL;
	if ((size_t)id >= r->nsites) {
		if (grow((void **)&r->sites, &cap, (size_t)id + 1, sizeof(*r->sites)))
			return NULL;
		memset(r->sites + r->nsites, 0, (cap - r->nsites) * sizeof(*r->sites));
		for (size_t k = r->nsites; k < cap; k++)
			r->sites[k].shown = (uint32_t)k;
		r->nsites = cap;
	}
	return &r->sites[id];
}

/* Sum the buckets of S into sites by shown stack (FINAL: the end snapshot). */
static int add_sites(struct hp_run *r, const struct heap_snapshot *s, bool final)
{
	for (size_t i = 0; i < s->n; i++) {
		const struct heap_bucket *b = &s->b[i];
		uint64_t al, fr, tal, tfr;
		double o, bytes;
		struct site *st = site_of(r, s->pcs + b->stk, b->nstk);

		if (!st)
			return -ENOMEM;
		heap_snapshot__counts(s, b, HEAP_VIEW_TOTAL, &tal, &tfr);
		heap_scale(tal, tal * b->size, r->rate, &o, &bytes);
		if (!final) {
			st->total0 += bytes;
			continue;
		}
		st->total1 += bytes;
		st->buckets++;
		heap_snapshot__counts(s, b, HEAP_VIEW_PUBLISHED, &al, &fr);
		heap_scale(al, al * b->size, r->rate, &o, &bytes);
		st->alloc_objects += o;
		st->alloc_bytes += bytes;
		heap_scale(al - fr, (al - fr) * b->size, r->rate, &o, &bytes);
		st->inuse_objects += o;
		st->inuse_bytes += bytes;
	}
	return 0;
}

/* One BPF allocation stack: its estimates go to its site. */
static int add_bpf_stack(void *ctx, const uint64_t *pcs, uint32_t n, uint64_t samples,
			 uint64_t bytes, uint64_t objects)
{
	struct site *st = site_of(ctx, pcs, n);

	if (!st)
		return -ENOMEM;
	st->alloc_bytes += (double)bytes;
	st->alloc_objects += (double)objects;
	st->bpf_samples += samples;
	st->buckets++;
	return 0;
}

/*
 * BPF mode: the sample points give each site's share of the bytes allocated; the total
 * is the runtime's own count over the window (memstats.heapStats) when readable, else
 * what the probes saw while attached, extrapolated to the window.
 */
static int add_bpf_sites(struct hp_run *r)
{
	double secs = (double)(r->t1 - r->t0) / 1e9, est = 0, total = 0;
	int err;

	err = heap_bpf__foreach_stack(r->hb, add_bpf_stack, r);
	if (err)
		return err;
	for (size_t i = 0; i < r->nsites; i++)
		est += r->sites[i].alloc_bytes;
	if (!r->at_err && r->at_bytes[1] >= r->at_bytes[0] && secs > 0) {
		total = (double)(r->at_bytes[1] - r->at_bytes[0]);
		r->rate_source = "the runtime's allocation total over the window "
				 "(memstats.heapStats)";
	} else if (r->bs.attached_s > 0) {
		total = (double)r->bs.attached_bytes / r->bs.attached_s * secs;
		r->rate_source = "the bytes the probes saw while attached, extrapolated to the "
				 "window";
	} else {
		r->rate_source = "nothing: the probes were never attached";
	}
	r->bpf_scale = est > 0 ? total / est : 0;
	for (size_t i = 0; i < r->nsites; i++) {
		struct site *st = &r->sites[i];

		st->alloc_bytes *= r->bpf_scale;
		st->alloc_objects *= r->bpf_scale;
		st->total0 = 0;
		st->total1 = st->alloc_bytes;
	}
	return 0;
}

static int build_sites(struct hp_run *r)
{
	size_t n = 0;
	int err;

	if (r->use_bpf) {
		err = add_bpf_sites(r);
	} else {
		err = add_sites(r, &r->s1, true);
		if (!err)
			err = add_sites(r, &r->s0, false);
	}
	if (err)
		return err;
	/* Keep the sites the end snapshot has, most memory in use first. */
	for (size_t i = 0; i < r->nsites; i++) {
		if (r->sites[i].buckets)
			r->sites[n++] = r->sites[i];
	}
	r->nsites = n;
	qsort(r->sites, r->nsites, sizeof(*r->sites), cmp_site);
	return 0;
}

/* ---- output */

static struct json_object *jint(uint64_t v)
{
	return json_object_new_int64(v > INT64_MAX ? INT64_MAX : (int64_t)v);
}

static struct json_object *jdbl(double v)
{
	return json_object_new_int64(v < 0 ? 0 : (int64_t)llround(v));
}

static struct json_object *frame_json(const struct heap_frame *f)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "function", json_object_new_string(f->func));
	json_object_object_add(o, "file", json_object_new_string(f->file));
	json_object_object_add(o, "line", json_object_new_int(f->line));
	return o;
}

/* {function, file, line} of the site and its stack (innermost first). */
static void stack_json(struct hp_run *r, struct json_object *o, uint32_t shown)
{
	struct json_object *a = json_object_new_array();
	struct heap_stack st;

	heap_sites__stack(r->hs, shown, &st);
	for (uint32_t i = 0; i < st.n; i++)
		json_object_array_add(a, frame_json(heap_sites__frame(r->hs,
								      (uint32_t)st.frames[i])));
	if (st.n) {
		const struct heap_frame *f = heap_sites__frame(r->hs, (uint32_t)st.frames[0]);

		json_object_object_add(o, "function", json_object_new_string(f->func));
		json_object_object_add(o, "file", json_object_new_string(f->file));
		json_object_object_add(o, "line", json_object_new_int(f->line));
	} else {
		json_object_object_add(o, "function", NULL);
		json_object_object_add(o, "file", NULL);
		json_object_object_add(o, "line", NULL);
	}
	json_object_object_add(o, "stack", a);
}

/* Why the runtime samples nothing, into WHY; NULL when it samples. */
static const char *sampling_off(const struct hp_run *r, char *why, size_t n)
{
	const struct heap_gc *g = &r->gc1;

	if (g->have_disabled && g->disabled) {
		snprintf(why, n, "memory profiling is disabled in this binary: the linker turned "
			 "it off because the program never references runtime.MemProfile (no "
			 "runtime/pprof or net/http/pprof), so the runtime samples no allocation");
		return "disabled";
	}
	if (g->have_rate && g->mem_profile_rate <= 0) {
		snprintf(why, n, "runtime.MemProfileRate is %" PRId64 ": the program turned the "
			 "runtime's allocation sampling off", g->mem_profile_rate);
		return "off";
	}
	return NULL;
}

static const char *mode_of(const struct hp_run *r, char *why, size_t n)
{
	char off[300];
	const char *mode = sampling_off(r, off, sizeof(off));

	if (r->use_bpf) {
		if (!mode)
			snprintf(off, sizeof(off), "sampling in BPF forced with --bpf (the runtime "
				 "samples one allocation per %" PRId64 " bytes too)", r->rate);
		snprintf(why, n, "%s; allocations sampled in BPF at %s (one sample point per "
			 "%" PRIu64 " bytes allocated on average, probes attached %.0f%% of the "
			 "time); allocation figures only: frees are not visible, so no in-use "
			 "bytes and no growth suspects; site rates scaled to %s", off,
			 !strcmp(r->bs.at, "refill") ? "runtime.(*mcache).refill and "
				 "runtime.(*mcache).allocLarge" : "mallocgc and the functions it "
				 "dispatches to", r->bs.period,
			 r->bs.elapsed_s > 0 ? 100 * r->bs.attached_s / r->bs.elapsed_s : 0,
			 r->rate_source ? r->rate_source : "?");
		return "bpf";
	}
	if (mode && !strcmp(mode, "disabled")) {
		snprintf(why, n, "%s; no sampling in BPF (%s), so there are no allocation sites, "
			 "only GC figures", off, r->bpf_err[0] ? r->bpf_err : "--no-bpf");
		return mode;
	}
	if (mode) {
		snprintf(why, n, "%s; sites show what was sampled before; no sampling in BPF (%s)",
			 off, r->bpf_err[0] ? r->bpf_err : "--no-bpf");
		return mode;
	}
	snprintf(why, n, "the runtime's own heap profile, read from the process's memory: one "
		 "allocation sampled per %" PRId64 " bytes on average (runtime.MemProfileRate%s), "
		 "scaled like pprof; in-use figures as of the last completed GC cycle",
		 r->rate, r->rate_known ? "" : " not found: assumed the default");
	return "runtime";
}

/* The runtime's own allocation total over the window (every mode). */
static struct json_object *alloc_total_json(const struct hp_run *r)
{
	double secs = (double)(r->t1 - r->t0) / 1e9;
	struct json_object *o = json_object_new_object();
	uint64_t b, ob;

	if (r->at_err || r->at_bytes[1] < r->at_bytes[0] || !(secs > 0)) {
		json_object_object_add(o, "bytes", NULL);
		json_object_object_add(o, "bytes_per_s", NULL);
		json_object_object_add(o, "unavailable", json_object_new_string(
			r->at_err ? strerror(-r->at_err) : "no window"));
		return o;
	}
	b = r->at_bytes[1] - r->at_bytes[0];
	ob = r->at_objects[1] - r->at_objects[0];
	json_object_object_add(o, "bytes", jint(b));
	json_object_object_add(o, "objects", jint(ob));
	json_object_object_add(o, "bytes_per_s", jdbl((double)b / secs));
	json_object_object_add(o, "objects_per_s", jdbl((double)ob / secs));
	json_object_object_add(o, "total_bytes_end", jint(r->at_bytes[1]));
	json_object_object_add(o, "source", json_object_new_string(
		"memstats.heapStats: what ReadMemStats sums into TotalAlloc and Mallocs, without "
		"the allocations still in the Ps' current spans"));
	return o;
}

/* How the BPF samples were taken, and what they cost. */
static struct json_object *bpf_json(const struct hp_run *r)
{
	const struct heap_bpf_stats *b = &r->bs;
	struct json_object *o = json_object_new_object(), *a = json_object_new_array();
	double cost = b->trap_ns + b->prog_ns;

	json_object_object_add(o, "at", json_object_new_string(b->at));
	for (int i = 0; i < b->nprobes; i++) {
		struct json_object *p = json_object_new_object();

		json_object_object_add(p, "function", json_object_new_string(b->probes[i].func));
		json_object_object_add(p, "address", jint(b->probes[i].addr));
		json_object_object_add(p, "file_offset", jint(b->probes[i].file_off));
		json_object_object_add(p, "insn_kind",
				       json_object_new_string(b->probes[i].insn_kind));
		json_object_array_add(a, p);
	}
	json_object_object_add(o, "probes", a);
	json_object_object_add(o, "period_bytes", jint(b->period));
	json_object_object_add(o, "budget_pct", b->budget_pct < 0 ? NULL :
				json_object_new_double(b->budget_pct));
	json_object_object_add(o, "governor", json_object_new_string(b->governor));
	json_object_object_add(o, "elapsed_s", json_object_new_double(b->elapsed_s));
	json_object_object_add(o, "attached_s", json_object_new_double(b->attached_s));
	json_object_object_add(o, "attached_fraction", json_object_new_double(
		b->elapsed_s > 0 ? b->attached_s / b->elapsed_s : 0));
	json_object_object_add(o, "attach_windows", jint(b->attaches));
	json_object_object_add(o, "hits", jint(b->hits));
	json_object_object_add(o, "hits_per_s_attached", jdbl(
		b->attached_s > 0 ? (double)b->attached_hits / b->attached_s : 0));
	json_object_object_add(o, "bytes_seen", jint(b->bytes));
	json_object_object_add(o, "objects_seen", jint(b->objects));
	json_object_object_add(o, "bytes_per_s_attached", jdbl(
		b->attached_s > 0 ? (double)b->attached_bytes / b->attached_s : 0));
	json_object_object_add(o, "objects_per_s_attached", jdbl(
		b->attached_s > 0 ? (double)b->attached_objects / b->attached_s : 0));
	json_object_object_add(o, "samples", jint(b->samples));
	json_object_object_add(o, "trap_ns_per_hit", jdbl(b->trap_ns));
	json_object_object_add(o, "trap_cost_source", json_object_new_string(
		b->calibrated ? "measured" : "built-in"));
	json_object_object_add(o, "bpf_ns_per_hit", b->prog_ns_measured ? jdbl(b->prog_ns) :
				NULL);
	json_object_object_add(o, "cost_ns_per_hit", jdbl(cost));
	json_object_object_add(o, "links", json_object_new_string(
				     b->multi_links ? "uprobe_multi" : "perf_event"));
	json_object_object_add(o, "cost_pct_attached", json_object_new_double(
		b->cost_pct_attached));
	json_object_object_add(o, "cost_pct_average", json_object_new_double(b->cost_pct_avg));
	json_object_object_add(o, "site_scale", json_object_new_double(r->bpf_scale));
	json_object_object_add(o, "rate_source", json_object_new_string(
		r->rate_source ? r->rate_source : "?"));
	json_object_object_add(o, "empty_hits", jint(b->empty));
	json_object_object_add(o, "read_errors", jint(b->read_errors));
	json_object_object_add(o, "stack_errors", jint(b->stack_errors));
	json_object_object_add(o, "stacks_full", jint(b->stacks_full));
	json_object_object_add(o, "frees", json_object_new_string(
		"not observed: the runtime frees by sweeping whole spans, with no call per "
		"object to probe; in-use bytes are unavailable"));
	return o;
}

static struct json_object *gc_json(struct hp_run *r)
{
	const struct heap_gc *a = &r->gc0, *b = &r->gc1;
	struct json_object *o = json_object_new_object(), *h;

	if (b->have_memstats) {
		json_object_object_add(o, "cycles", jint(b->numgc - a->numgc));
		json_object_object_add(o, "forced", jint(b->numforcedgc - a->numforcedgc));
		json_object_object_add(o, "pause_total_ns", jint(b->pause_total_ns -
								  a->pause_total_ns));
		json_object_object_add(o, "num_gc_start", jint(a->numgc));
		json_object_object_add(o, "num_gc_end", jint(b->numgc));
		json_object_object_add(o, "num_forced_gc_end", jint(b->numforcedgc));
		json_object_object_add(o, "pause_total_ns_start", jint(a->pause_total_ns));
		json_object_object_add(o, "pause_total_ns_end", jint(b->pause_total_ns));
		json_object_object_add(o, "last_gc_unix_ns", jint(b->last_gc_unix_ns));
	} else {
		json_object_object_add(o, "cycles", NULL);
		json_object_object_add(o, "forced", NULL);
		json_object_object_add(o, "pause_total_ns", NULL);
		json_object_object_add(o, "unavailable", json_object_new_string(
			heap_reader__vars(r->hr)->why[HV_MEMSTATS]));
	}
	if (b->have_controller) {
		json_object_object_add(o, "heap_live_bytes", jint(b->heap_marked));
		json_object_object_add(o, "heap_now_bytes", jint(b->heap_live));
		/* GOGC=off: the GOGC goal is infinite; only a memory limit would set one. */
		json_object_object_add(o, "heap_goal_bytes", b->heap_goal == UINT64_MAX ? NULL :
				       jint(b->heap_goal));
		json_object_object_add(o, "gogc_off", json_object_new_boolean(
			b->heap_goal == UINT64_MAX));
		json_object_object_add(o, "memory_limit_bytes", b->memory_limit == INT64_MAX ?
					NULL : json_object_new_int64(b->memory_limit));
		if (b->memory_limit != INT64_MAX)
			json_object_object_add(o, "heap_goal_note", json_object_new_string(
				"a memory limit is set: the runtime may use a lower goal than this "
				"GOGC-based one"));
	} else {
		json_object_object_add(o, "heap_live_bytes", NULL);
		json_object_object_add(o, "heap_now_bytes", NULL);
		json_object_object_add(o, "heap_goal_bytes", NULL);
	}
	h = json_object_new_object();
	json_object_object_add(h, "source", r->ha.gc_pauses_name ?
				json_object_new_string(r->ha.gc_pauses_name) : NULL);
	if (r->have_gcp) {
		struct rthist d;
		struct json_object *bk = json_object_new_array();

		rthist__sub(&r->gcp[1], &r->gcp[0], &d);
		json_object_object_add(h, "available", json_object_new_boolean(true));
		json_object_object_add(h, "count", jint(rthist__total(&d)));
		json_object_object_add(h, "p50_ns", json_object_new_int64(
			(int64_t)llround(rthist__quantile(&d, 0.5))));
		json_object_object_add(h, "p99_ns", json_object_new_int64(
			(int64_t)llround(rthist__quantile(&d, 0.99))));
		json_object_object_add(h, "max_ns", json_object_new_int64(
			(int64_t)llround(rthist__max(&d))));
		for (int i = 0; i < d.n; i++) {
			double lo = rthist__lower(&d, i), hi = rthist__lower(&d, i + 1);
			struct json_object *e;

			if (!d.counts[i])
				continue;
			e = json_object_new_object();
			json_object_object_add(e, "lo_ns", isinf(lo) ? NULL : json_object_new_int64(
							(int64_t)llround(lo)));
			json_object_object_add(e, "hi_ns", isinf(hi) ? NULL : json_object_new_int64(
							(int64_t)llround(hi)));
			json_object_object_add(e, "count", jint(d.counts[i]));
			json_object_array_add(bk, e);
		}
		json_object_object_add(h, "buckets", bk);
	} else {
		json_object_object_add(h, "available", json_object_new_boolean(false));
		json_object_object_add(h, "reason", json_object_new_string(
			r->gcp_err ? strerror(-r->gcp_err) : r->ha.gc_why));
	}
	json_object_object_add(o, "pause_histogram", h);
	/* Each cycle of the window: its end and its stop-the-world time (both phases). */
	if (b->have_memstats && r->have_pauses) {
		struct json_object *l = json_object_new_array();
		uint32_t from = b->numgc - a->numgc > HEAP_PAUSE_RING ?
					b->numgc - HEAP_PAUSE_RING : a->numgc;

		for (uint32_t n = from + 1; n <= b->numgc; n++) {
			struct json_object *e = json_object_new_object();

			json_object_object_add(e, "num_gc", jint(n));
			json_object_object_add(e, "end_unix_ns",
					       jint(r->pause_end[(n - 1) % HEAP_PAUSE_RING]));
			json_object_object_add(e, "pause_ns",
					       jint(r->pause_ns[(n - 1) % HEAP_PAUSE_RING]));
			json_object_array_add(l, e);
		}
		json_object_object_add(o, "cycles_in_window", l);
	} else {
		json_object_object_add(o, "cycles_in_window", NULL);
	}
	return o;
}

static int cmp_rate_idx(const void *a, const void *b, void *ctx)
{
	const struct site *s = ctx;
	double x = s[*(const size_t *)a].total1 - s[*(const size_t *)a].total0;
	double y = s[*(const size_t *)b].total1 - s[*(const size_t *)b].total0;

	return x < y ? 1 : x > y ? -1 : 0;
}

/*
 * Which sites JSON lists when there are more than MAX: the MAX biggest in use (r->sites is
 * sorted so) and the MAX biggest allocators. NULL: all (or out of memory: all too).
 */
static bool *site_selection(const struct hp_run *r, int max)
{
	size_t *idx;
	bool *keep;

	if (!max || r->nsites <= (size_t)max)
		return NULL;
	keep = calloc(r->nsites, sizeof(*keep));
	idx = malloc(r->nsites * sizeof(*idx));
	if (!keep || !idx) {
		free(keep);
		free(idx);
		return NULL;
	}
	for (size_t i = 0; i < r->nsites; i++) {
		idx[i] = i;
		keep[i] = i < (size_t)max;
	}
	qsort_r(idx, r->nsites, sizeof(*idx), cmp_rate_idx, r->sites);
	for (size_t i = 0; i < (size_t)max; i++)
		keep[idx[i]] = true;
	free(idx);
	return keep;
}

static struct json_object *report_json(struct hp_run *r, const struct hp_env *env)
{
	const struct heap_vars *v = heap_reader__vars(r->hr);
	double secs = (double)(r->t1 - r->t0) / 1e9;
	struct json_object *o = json_object_new_object(), *a, *x;
	char why[1024];
	const char *mode = mode_of(r, why, sizeof(why));
	bool *keep;

	json_object_object_add(o, "pid", json_object_new_int(env->pid));
	json_object_object_add(o, "binary", json_object_new_string(r->m->proc.exe_path));
	json_object_object_add(o, "go_version", json_object_new_string(r->m->bi.version));
	json_object_object_add(o, "mode", json_object_new_string(mode));
	json_object_object_add(o, "mode_reason", json_object_new_string(why));
	json_object_object_add(o, "bpf", r->use_bpf ? bpf_json(r) : NULL);
	json_object_object_add(o, "bpf_unavailable", r->bpf_err[0] ?
				json_object_new_string(r->bpf_err) : NULL);
	json_object_object_add(o, "mem_profile_rate", r->rate_known ?
				json_object_new_int64(r->gc1.mem_profile_rate) : NULL);
	json_object_object_add(o, "memory_profiling_disabled", r->gc1.have_disabled ?
				json_object_new_boolean(r->gc1.disabled) : NULL);
	json_object_object_add(o, "duration_ns", jint(r->t1 - r->t0));
	x = json_object_new_object();
	json_object_object_add(x, "start_mono_ns", jint(r->t0));
	json_object_object_add(x, "end_mono_ns", jint(r->t1));
	json_object_object_add(x, "start_unix_ns", jint((uint64_t)r->wall0));
	json_object_object_add(o, "window", x);
	json_object_object_add(o, "profile_cycle", jint(r->s1.cycle_raw >> 1));
	json_object_object_add(o, "interrupted", json_object_new_boolean(r->interrupted));
	json_object_object_add(o, "target_exited", json_object_new_boolean(r->target_exited));

	json_object_object_add(o, "gc", gc_json(r));
	json_object_object_add(o, "alloc_total", alloc_total_json(r));

	a = json_object_new_array();
	keep = site_selection(r, env->max_sites);
	for (size_t i = 0; i < r->nsites; i++) {
		const struct site *s = &r->sites[i];

		if (keep && !keep[i])
			continue;
		x = json_object_new_object();
		stack_json(r, x, s->shown);
		/* BPF sees no free: nothing is known of what is still in use. */
		json_object_object_add(x, "inuse_bytes", r->use_bpf ? NULL : jdbl(s->inuse_bytes));
		json_object_object_add(x, "inuse_objects", r->use_bpf ? NULL :
				       jdbl(s->inuse_objects));
		json_object_object_add(x, "alloc_bytes", jdbl(s->alloc_bytes));
		json_object_object_add(x, "alloc_objects", jdbl(s->alloc_objects));
		json_object_object_add(x, "alloc_bytes_per_s",
				       jdbl(secs > 0 ? (s->total1 - s->total0) / secs : 0));
		if (r->use_bpf)
			json_object_object_add(x, "samples", jint(s->bpf_samples));
		else
			json_object_object_add(x, "buckets", json_object_new_int((int)s->buckets));
		json_object_array_add(a, x);
	}
	json_object_object_add(o, "sites", a);
	json_object_object_add(o, "sites_total", jint(r->nsites));
	json_object_object_add(o, "sites_omitted", jint(r->nsites - json_object_array_length(a)));
	free(keep);

	a = json_object_new_array();
	for (size_t i = 0; i < r->nsus; i++) {
		const struct heap_suspect *s = &r->sus[i];

		x = json_object_new_object();
		stack_json(r, x, s->shown);
		json_object_object_add(x, "allocated_via", s->via >= 0 ? json_object_new_string(
			heap_sites__frame(r->hs, (uint32_t)s->via)->func) : NULL);
		json_object_object_add(x, "inuse_bytes", jdbl(s->last));
		json_object_object_add(x, "growth_bytes", jdbl(s->growth));
		json_object_object_add(x, "bytes_per_minute", jdbl(s->per_min));
		json_object_object_add(x, "cycles_rising", json_object_new_int(s->rises));
		json_object_object_add(x, "cycles_falling", json_object_new_int(s->falls));
		json_object_object_add(x, "cycles_observed", json_object_new_int(s->points - 1));
		json_object_object_add(x, "flagged_after_cycles",
				       json_object_new_int(s->flagged_after));
		json_object_object_add(x, "num_gc_first", jint(s->numgc_first));
		json_object_object_add(x, "num_gc_last", jint(s->numgc_last));
		json_object_array_add(a, x);
	}
	json_object_object_add(o, "growth_suspects", a);
	x = json_object_new_object();
	json_object_object_add(x, "points", jint(r->ws.points));
	json_object_object_add(x, "cycles_skipped", jint(
		r->ws.points && r->gc1.have_memstats &&
				r->gc1.numgc - r->ws.numgc_first + 1 > r->ws.points ?
			r->gc1.numgc - r->ws.numgc_first + 1 - r->ws.points : 0));
	json_object_object_add(x, "view", json_object_new_string(
		r->ws.as_of_gc ? "heap as of each GC cycle's mark end, after its sweep" :
				     "published profile after each GC cycle"));
	json_object_object_add(x, "rule", json_object_new_string(
		"the in-use bytes of one allocation stack rose in at least 2 GC cycles, by at "
		"least 2 sampling periods (256 KiB minimum) overall, and gave back at most half "
		"of their rises in falls"));
	if (r->use_bpf)
		json_object_object_add(x, "unavailable", json_object_new_string(
			"sampling in BPF sees no frees: no in-use bytes to follow"));
	json_object_object_add(o, "growth", x);

	x = json_object_new_object();
	for (int i = 0; i < HV__CNT; i++) {
		struct json_object *e = json_object_new_object();

		json_object_object_add(e, "address", v->addr[i] ? jint(v->addr[i]) : NULL);
		json_object_object_add(e, "source", json_object_new_string(
			heap_locate__source(v, (enum heap_var)i)));
		if (!v->addr[i])
			json_object_object_add(e, "why", json_object_new_string(v->why[i]));
		json_object_object_add(x, heap_locate__name((enum heap_var)i), e);
	}
	json_object_object_add(o, "runtime_vars", x);

	x = json_object_new_object();
	json_object_object_add(x, "buckets", jint(r->s1.n));
	json_object_object_add(x, "snapshots", jint(r->snapshots + r->ws.snapshots));
	json_object_object_add(x, "walk_retries", jint(r->retries + r->ws.retries));
	json_object_object_add(x, "walks_failed", jint(r->ws.failed));
	json_object_object_add(x, "walk_ms_max", json_object_new_double(
		(double)(r->walk_ns_max > r->ws.walk_ns_max ? r->walk_ns_max : r->ws.walk_ns_max) /
		1e6));
	json_object_object_add(x, "walk_ms_mean", json_object_new_double(
		r->snapshots + r->ws.snapshots ?
			(double)(r->walk_ns_sum + r->ws.walk_ns_sum) / 1e6 /
				(double)(r->snapshots + r->ws.snapshots) : 0));
	json_object_object_add(x, "cpu_ns", jint(r->cpu_ns));
	json_object_object_add(x, "read_syscalls", jint(r->mem_stats.syscalls));
	json_object_object_add(x, "read_bytes", jint(r->mem_stats.bytes));
	json_object_object_add(x, "read_failures", jint(r->mem_stats.failures));
	json_object_object_add(o, "cost", x);
	return o;
}

/* "12.3 MiB", "456 KiB", "78 B". */
static const char *fmt_bytes(double b, char *s, size_t n)
{
	if (b >= 1024.0 * 1024 * 1024)
		snprintf(s, n, "%.2f GiB", b / (1024.0 * 1024 * 1024));
	else if (b >= 1024.0 * 1024)
		snprintf(s, n, "%.1f MiB", b / (1024.0 * 1024));
	else if (b >= 1024)
		snprintf(s, n, "%.0f KiB", b / 1024);
	else
		snprintf(s, n, "%.0f B", b);
	return s;
}

static const char *fmt_ns(double ns, char *b, size_t n)
{
	if (ns >= 1e9)
		snprintf(b, n, "%.2f s", ns / 1e9);
	else if (ns >= 1e6)
		snprintf(b, n, "%.1f ms", ns / 1e6);
	else if (ns >= 1e3)
		snprintf(b, n, "%.0f us", ns / 1e3);
	else
		snprintf(b, n, "%.0f ns", ns);
	return b;
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? s + 1 : p;
}

static void print_site(struct hp_run *r, uint32_t shown)
{
	struct heap_stack st;
	const struct heap_frame *f;

	heap_sites__stack(r->hs, shown, &st);
	if (!st.n) {
		printf("(no stack)\n");
		return;
	}
	f = heap_sites__frame(r->hs, (uint32_t)st.frames[0]);
	printf("%s (%s:%d)", f->func, base_name(f->file), f->line);
	if (st.n > 1) {
		f = heap_sites__frame(r->hs, (uint32_t)st.frames[1]);
		printf(" <- %s", f->func);
	}
	printf("\n");
}

static int cmp_rate(const void *a, const void *b)
{
	const struct site *x = a, *y = b;
	double rx = x->total1 - x->total0, ry = y->total1 - y->total0;

	return rx < ry ? 1 : rx > ry ? -1 : 0;
}

/* PREFIX then TEXT, wrapped at 78 columns, continuation lines indented by two. */
static void print_wrapped(const char *prefix, const char *text)
{
	int col = printf("%s", prefix), first = 1;

	while (*text) {
		const char *sp = strchr(text, ' ');
		int len = sp ? (int)(sp - text) : (int)strlen(text);

		if (!first && col + 1 + len > 78) {
			printf("\n  ");
			col = 2;
		} else if (!first) {
			col += printf(" ");
		}
		col += printf("%.*s", len, text);
		first = 0;
		text += len + (sp ? 1 : 0);
	}
	printf("\n");
}

static void print_text(struct hp_run *r, const struct hp_env *env)
{
	double secs = (double)(r->t1 - r->t0) / 1e9;
	const struct heap_gc *a = &r->gc0, *b = &r->gc1;
	char b1[32], b2[32], b3[32], why[1024];
	const char *mode = mode_of(r, why, sizeof(why));
	struct site *by_rate;
	int shown = 0;

	if (r->use_bpf)
		printf("pid %d %s %s: %.2f s, %" PRIu64 " BPF sample points\n", env->pid,
		       base_name(r->m->proc.exe_path), r->m->bi.version, secs, r->bs.samples);
	else
		printf("pid %d %s %s: %.2f s, %zu profile buckets\n", env->pid,
		       base_name(r->m->proc.exe_path), r->m->bi.version, secs, r->s1.n);
	if (!strcmp(mode, "runtime"))
		printf("mode: the runtime's heap profile (1 sample per %s allocated%s), scaled\n",
		       fmt_bytes((double)r->rate, b1, sizeof(b1)),
		       r->rate_known ? "" : ", rate assumed");
	else
		print_wrapped("mode: ", why);
	if (r->use_bpf)
		print_wrapped("BPF: ", r->bs.governor);
	if (!r->at_err && r->at_bytes[1] >= r->at_bytes[0] && secs > 0)
		printf("allocated: %s/s (the runtime's total)\n",
		       fmt_bytes((double)(r->at_bytes[1] - r->at_bytes[0]) / secs, b1, sizeof(b1)));
	if (b->have_memstats)
		printf("GC: %u cycles (%u forced), %s of stop-the-world pauses in the window\n",
		       b->numgc - a->numgc, b->numforcedgc - a->numforcedgc,
		       fmt_ns((double)(b->pause_total_ns - a->pause_total_ns), b1, sizeof(b1)));
	if (b->have_controller)
		printf("heap: %s live after the last mark, %s now, %s%s\n",
		       fmt_bytes((double)b->heap_marked, b1, sizeof(b1)),
		       fmt_bytes((double)b->heap_live, b2, sizeof(b2)),
		       b->heap_goal == UINT64_MAX ? "GOGC=off" : "next GC at ",
		       b->heap_goal == UINT64_MAX ? "" :
			       fmt_bytes((double)b->heap_goal, b3, sizeof(b3)));
	if (r->have_gcp) {
		struct rthist d;

		rthist__sub(&r->gcp[1], &r->gcp[0], &d);
		if (rthist__total(&d))
			printf("GC pauses: p50 %s, p99 %s, max %s (%" PRIu64 ")\n",
			       fmt_ns(rthist__quantile(&d, 0.5), b1, sizeof(b1)),
			       fmt_ns(rthist__quantile(&d, 0.99), b2, sizeof(b2)),
			       fmt_ns(rthist__max(&d), b3, sizeof(b3)), rthist__total(&d));
	}

	if (r->use_bpf)
		goto allocators;
	printf("\nin use by allocation site (of %zu), as of the last GC\n", r->nsites);
	printf("  %10s %10s %12s  %s\n", "IN USE", "OBJECTS", "ALLOC/S", "SITE");
	for (size_t i = 0; i < r->nsites && shown < env->top; i++) {
		const struct site *s = &r->sites[i];

		if (s->inuse_bytes <= 0)
			break;
		printf("  %10s %10.0f %10s/s  ", fmt_bytes(s->inuse_bytes, b1, sizeof(b1)),
		       s->inuse_objects,
		       fmt_bytes(secs > 0 ? (s->total1 - s->total0) / secs : 0, b2, sizeof(b2)));
		print_site(r, s->shown);
		shown++;
	}
	if (!shown)
		printf("  (nothing sampled)\n");

allocators:
	by_rate = malloc(r->nsites * sizeof(*by_rate) + 1);
	if (by_rate && secs > 0) {
		memcpy(by_rate, r->sites, r->nsites * sizeof(*by_rate));
		qsort(by_rate, r->nsites, sizeof(*by_rate), cmp_rate);
		printf("\ntop allocators over the window\n  %12s %10s  %s\n", "ALLOC/S",
		       r->use_bpf ? "SAMPLES" : "IN USE", "SITE");
		shown = 0;
		for (size_t i = 0; i < r->nsites && shown < env->top; i++) {
			const struct site *s = &by_rate[i];
			double rate = (s->total1 - s->total0) / secs;

			if (rate <= 0)
				break;
			if (r->use_bpf)
				snprintf(b2, sizeof(b2), "%" PRIu64, s->bpf_samples);
			else
				fmt_bytes(s->inuse_bytes, b2, sizeof(b2));
			printf("  %10s/s %10s  ", fmt_bytes(rate, b1, sizeof(b1)), b2);
			print_site(r, s->shown);
			shown++;
		}
		if (!shown)
			printf("  (no sampled allocation in the window)\n");
	}
	free(by_rate);

	if (r->use_bpf) {
		printf("\ngrowth suspects: not available (BPF sampling sees no frees)\n");
		return;
	}
	printf("\ngrowth suspects (%zu GC cycles seen)\n", r->ws.points ? r->ws.points - 1 : 0);
	for (size_t i = 0; i < r->nsus && (int)i < env->top; i++) {
		const struct heap_suspect *s = &r->sus[i];

		printf("  +%s/min, rising in %d of %d cycles, %s in use: ",
		       fmt_bytes(s->per_min, b1, sizeof(b1)), s->rises, s->points - 1,
		       fmt_bytes(s->last, b2, sizeof(b2)));
		print_site(r, s->shown);
	}
	if (!r->nsus)
		printf("  (none%s)\n", r->ws.points < HEAP_GROWTH_MIN_RISES + 1 ?
		       ": fewer than 2 GC cycles in the window, watch longer" : "");
}

/* ---- pprof */

/* Locations of a profile being written: one per frame (its first PC), one line each. */
struct pp_locs {
	struct pprof *p;
	uint64_t map;
	uint64_t *locid; /* by frame id, 0: not added yet */
	size_t nfr;
	uint64_t *locs;	 /* one stack's, innermost first */
	size_t caplocs;
};

/* The locations of shown stack SHOWN into L->locs (*N of them). 0 or -ENOMEM. */
static int pp_stack(struct hp_run *r, struct pp_locs *l, uint32_t shown, uint32_t *n)
{
	struct heap_stack st;

	heap_sites__stack(r->hs, shown, &st);
	*n = st.n;
	if (grow((void **)&l->locs, &l->caplocs, st.n + 1, sizeof(*l->locs)))
		return -ENOMEM;
	for (uint32_t k = 0; k < st.n; k++) {
		uint32_t fid = (uint32_t)st.frames[k];

		if (fid >= l->nfr) {
			size_t c2 = l->nfr, old = l->nfr;

			if (grow((void **)&l->locid, &c2, fid + 1, sizeof(*l->locid)))
				return -ENOMEM;
			memset(l->locid + old, 0, (c2 - old) * sizeof(*l->locid));
			l->nfr = c2;
		}
		if (!l->locid[fid]) {
			const struct heap_frame *f = heap_sites__frame(r->hs, fid);
			struct pprof_line line = { pprof__function(l->p, f->func, f->file, 0),
						   f->line };

			if (!line.function_id)
				return -ENOMEM;
			l->locid[fid] = pprof__location(l->p, l->map, f->pc, &line, 1);
			if (!l->locid[fid])
				return -ENOMEM;
		}
		l->locs[k] = l->locid[fid];
	}
	return 0;
}

/*
 * The runtime's buckets, one sample each (four values, the object size as a "bytes"
 * label); in BPF mode the sites, allocation values only.
 */
static int write_pprof(struct hp_run *r, const char *path)
{
	const struct proc_target *t = &r->m->proc;
	struct pp_locs l = { .p = pprof__new() };
	uint64_t start = 0, limit = 0, off = 0;
	int err = -ENOMEM;
	char comment[200];

	if (!l.p)
		goto fail;
	for (int i = 0; i < t->nmaps; i++) {
		if (strchr(t->maps[i].perms, 'x')) {
			start = t->maps[i].start;
			limit = t->maps[i].end;
			off = t->maps[i].offset;
			break;
		}
	}
	if (pprof__add_sample_type(l.p, "alloc_objects", "count") ||
	    pprof__add_sample_type(l.p, "alloc_space", "bytes") ||
	    (!r->use_bpf && (pprof__add_sample_type(l.p, "inuse_objects", "count") ||
			     pprof__add_sample_type(l.p, "inuse_space", "bytes"))) ||
	    pprof__set_period(l.p, "space", "bytes",
			      r->use_bpf ? (int64_t)r->bs.period : r->rate) ||
	    pprof__set_default_sample_type(l.p, r->use_bpf ? "alloc_space" : "inuse_space"))
		goto fail;
	pprof__set_time(l.p, r->wall0, (int64_t)(r->t1 - r->t0));
	if (r->use_bpf)
		snprintf(comment, sizeof(comment), "gotrace heap: allocations of process %d (%s) "
			 "sampled in BPF at %s over %.1f s, scaled to the runtime's total; no "
			 "in-use figures", (int)t->pid, r->m->bi.version, r->bs.at,
			 (double)(r->t1 - r->t0) / 1e9);
	else
		snprintf(comment, sizeof(comment), "gotrace heap: the runtime's heap profile of "
			 "process %d (%s), MemProfileRate %" PRId64, (int)t->pid, r->m->bi.version,
			 r->rate);
	if (pprof__add_comment(l.p, comment))
		goto fail;
	l.map = pprof__add_mapping(l.p, start, limit, off, t->exe_path, NULL);
	if (!l.map)
		goto fail;
	for (size_t i = 0; r->use_bpf && i < r->nsites; i++) {
		const struct site *s = &r->sites[i];
		int64_t vals[2] = { (int64_t)s->alloc_objects, (int64_t)s->alloc_bytes };
		uint32_t n;

		err = pp_stack(r, &l, s->shown, &n);
		if (!err)
			err = pprof__add_sample(l.p, l.locs, n, vals, 2, NULL, 0);
		if (err)
			goto fail;
	}
	for (size_t i = 0; !r->use_bpf && i < r->s1.n; i++) {
		const struct heap_bucket *b = &r->s1.b[i];
		struct pprof_label lab = { "bytes", NULL, (int64_t)b->size, NULL };
		uint64_t al, fr;
		int64_t vals[4];
		double o, bytes;
		long raw, id;
		uint32_t n;

		heap_snapshot__counts(&r->s1, b, HEAP_VIEW_PUBLISHED, &al, &fr);
		if (!al)
			continue;
		raw = heap_sites__raw(r->hs, r->s1.pcs + b->stk, b->nstk);
		id = raw < 0 ? raw : heap_sites__shown_of_raw(r->hs, (uint32_t)raw);
		if (id < 0) {
			err = (int)id;
			goto fail;
		}
		heap_scale(al, al * b->size, r->rate, &o, &bytes);
		vals[0] = (int64_t)o;
		vals[1] = (int64_t)bytes;
		heap_scale(al - fr, (al - fr) * b->size, r->rate, &o, &bytes);
		vals[2] = (int64_t)o;
		vals[3] = (int64_t)bytes;
		err = pp_stack(r, &l, (uint32_t)id, &n);
		if (!err)
			err = pprof__add_sample(l.p, l.locs, n, vals, 4, &lab, 1);
		if (err)
			goto fail;
	}
	free(l.locs);
	free(l.locid);
	err = pprof__write(l.p, path);
	pprof__free(l.p);
	return err;
fail:
	free(l.locs);
	free(l.locid);
	pprof__free(l.p);
	gt_seterr("cannot build the pprof profile: %s", strerror(-err));
	return err;
}

/*
 * Up to 1.21 the pause histogram is memstats.gcPauseDist: when rthist's decoding of
 * gcMarkTermination did not single it out, memstats (found here) gives it.
 */
static void locate_pause_hist(struct hp_run *r)
{
	const struct heap_vars *v = heap_reader__vars(r->hr);

	if (r->ha.gc_pauses || !v->addr[HV_MEMSTATS] || !v->lay.ms_gc_pause_dist)
		return;
	r->ha.layout = r->m->bi.minor <= 19 ? RTHIST_HDR16 : RTHIST_HDR4;
	r->ha.gc_pauses = v->addr[HV_MEMSTATS] + v->lay.ms_gc_pause_dist;
	r->ha.gc_pauses_name = "memstats.gcPauseDist";
	vlog("gotrace: GC pause histogram at memstats.gcPauseDist (%s)\n", r->ha.gc_why);
}

/*
 * Sample in BPF when the runtime samples nothing (unless --no-bpf) or with --bpf. Without
 * BPF (no root, no probe site...) the report says why; with --bpf that is an error.
 */
static int start_bpf(struct hp_run *r, const struct hp_env *env)
{
	struct heap_gc g;
	char off[300];
	int err;

	err = heap_reader__read_gc(r->hr, &g);
	if (err)
		return err;
	r->gc1 = g;
	if (!env->bpf && (env->no_bpf || !sampling_off(r, off, sizeof(off))))
		return 0;
	gt_clearerr();
	err = heap_bpf__start(r->m, env->pid, &env->bo, &r->hb);
	if (err && env->bpf)
		return err;
	if (err) {
		snprintf(r->bpf_err, sizeof(r->bpf_err), "%s",
			 gt_lasterr() ? gt_lasterr() : strerror(-err));
		vlog("gotrace: no sampling in BPF: %s\n", r->bpf_err);
		gt_clearerr();
		return 0;
	}
	r->use_bpf = true;
	return 0;
}

int cmd_heap(int argc, char **argv)
{
	struct hp_env env = { .seconds = DEFAULT_SECONDS, .top = DEFAULT_TOP,
			      .max_sites = DEFAULT_MAX_SITES };
	struct go_model_opts mopts = { 0 };
	struct hp_run r = { 0 };
	struct json_object *rep = NULL;
	int err, ret = 1;

	err = parse_args(argc, argv, &env);
	if (err)
		return err < 0 ? 0 : err;

	gt_clearerr();
	err = go_model__open_pid(env.pid, &mopts, &r.m);
	if (err)
		return cmd_fail("%s", gt_lasterr() ? gt_lasterr() : strerror(-err));
	r.mem = proc_mem__open(env.pid);
	if (!r.mem) {
		ret = cmd_fail("%s", gt_lasterr() ? gt_lasterr() : strerror(errno));
		goto cleanup;
	}
	gt_clearerr();
	r.hr = heap_reader__new(r.m, r.mem);
	if (!r.hr) {
		ret = cmd_fail("%s", gt_lasterr() ? gt_lasterr() : strerror(errno));
		goto cleanup;
	}
	r.hs = heap_sites__new(r.m);
	if (!r.hs) {
		ret = cmd_fail("out of memory");
		goto cleanup;
	}
	/* The pause histogram is a bonus: without it, the totals still come from memstats. */
	rthist__locate(r.m, &r.ha);
	gt_clearerr();
	locate_pause_hist(&r);
	err = start_bpf(&r, &env);
	if (err) {
		ret = cmd_fail("%s", gt_lasterr() ? gt_lasterr() : strerror(-err));
		goto cleanup;
	}

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	err = watch(&r, &env);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	if (!err)
		err = build_sites(&r);
	if (!err)
		err = heap_watch__suspects(r.hw, &r.sus, &r.nsus);
	if (err) {
		ret = cmd_fail("%s", err != -ENOMEM && gt_lasterr() ? gt_lasterr() :
				     strerror(-err));
		goto cleanup;
	}
	if (r.target_exited)
		elog("gotrace: warning: process %d exited during the window: the report shows "
		     "the first reading\n", env.pid);
	if (env.pprof) {
		err = write_pprof(&r, env.pprof);
		if (err) {
			ret = cmd_fail("%s", gt_lasterr() ? gt_lasterr() : strerror(-err));
			goto cleanup;
		}
	}
	if (env_json) {
		rep = report_json(&r, &env);
		printf("%s\n", json_object_to_json_string_ext(rep, JSON_C_TO_STRING_PRETTY |
								   JSON_C_TO_STRING_NOSLASHESCAPE));
	} else {
		print_text(&r, &env);
	}
	ret = 0;
cleanup:
	json_object_put(rep);
	heap_snapshot__free(&r.s0);
	heap_snapshot__free(&r.s1);
	heap_watch__free(r.hw);
	heap_bpf__free(r.hb);
	free(r.sites);
	heap_sites__free(r.hs);
	heap_reader__free(r.hr);
	proc_mem__free(r.mem);
	go_model__free(r.m);
	return ret;
}
