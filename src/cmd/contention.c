// SPDX-License-Identifier: MIT
/*
 * gotrace contention -p PID: where goroutines wait and for how long, and how long
 * runnable goroutines queue for a CPU, measured from outside.
 *
 * Sampled mode (the default): goroutine censuses taken --hz times a second, each
 * charging its interval to every waiting goroutine's stack and wait reason
 * (src/contention/sampler.c). Nothing is attached to the target: it is only read.
 *
 * Exact mode (--mode exact): every park-to-ready interval measured in the kernel by
 * uprobes on runtime.gopark and runtime.ready (src/engine/waits.c), with who wakes whom,
 * under an overhead governor (--budget).
 *
 * Both: scheduling latency and GC pauses from the runtime's own histograms, read at both
 * ends of the window (src/contention/rthist.c).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>

#include "census/census.h"
#include "cmd/cmds.h"
#include "contention/rthist.h"
#include "contention/sampler.h"
#include "engine/waits.h"
#include "goruntime/model.h"
#include "pprof/pprof.h"
#include "proc/mem.h"
#include "util/log.h"

#define DEFAULT_HZ 100
#define MAX_HZ 1000
#define DEFAULT_SECONDS 5.0
#define DEFAULT_TOP 10
#define DEFAULT_MAX_CPU 5.0

static const char contention_help[] =
	"Usage: gotrace contention -p PID [-d SECONDS] [--mode sampled|exact] [--hz N]\n"
	"                          [--budget PCT] [--pprof FILE] [--json]\n"
	"\n"
	"Where the goroutines of a running Go process wait, for how long, and how long\n"
	"runnable goroutines queue for a CPU, measured from outside without stopping it.\n"
	"\n"
	"Blocked time is sampled: the goroutine list is read N times a second and each read\n"
	"charges its interval to every waiting goroutine's blocking stack and wait reason\n"
	"(channel, select, sync.Mutex/RWMutex, sync.Cond, WaitGroup, sleep, IO, GC...).\n"
	"Totals are unbiased; counts are blocking episodes seen (shorter ones than the\n"
	"interval are undercounted). Scheduling latency (runnable to running) and GC\n"
	"stop-the-world pauses come from the runtime's own histograms over the window.\n"
	"\n"
	"--mode exact measures every park-to-ready interval instead, with uprobes on\n"
	"runtime.gopark and runtime.ready (root): counts, totals and a latency histogram\n"
	"per blocking stack, and who wakes whom. Each probe hit costs the target a trap;\n"
	"a governor keeps that under --budget by detaching the probes for a while, and\n"
	"then says the totals are partial. Wake-ups by the network poller and the GC\n"
	"bypass runtime.ready: they are counted, not timed.\n"
	"\n"
	"Options:\n"
	"  -p, --pid PID       the process\n"
	"  -d, --duration S    how long to watch (default 5 seconds; Ctrl-C ends early)\n"
	"      --hz N          goroutine reads per second (default 100, at most 1000)\n"
	"      --pprof FILE    also write a gzipped pprof profile (contentions/count,\n"
	"                      delay/nanoseconds): go tool pprof -top FILE\n"
	"      --top N         blocking sites shown in text (default 10; JSON has all)\n"
	"      --max-cpu PCT   CPU budget in percent of one core (default 5; 0: none):\n"
	"                      with many goroutines, fewer reads a second\n"
	"      --system        also count the runtime's own goroutines\n"
	"      --mode MODE     sampled (default) or exact\n"
	"      --budget PCT    exact mode: the probes' average cost on the target, in\n"
	"                      percent of one CPU (default 5; none: no limit)\n"
	"      --max-parked N  exact mode: parked goroutines tracked at once (65536)\n"
	"  -j, --json          JSON output (see docs/json-output.md)\n"
	"  -h, --help          this help\n"
	"\n"
	"Example: gotrace contention -p $(pidof server) -d 10 --pprof block.pb.gz\n";

enum { OPT_HZ = 1000, OPT_PPROF, OPT_TOP, OPT_SYSTEM, OPT_MODE, OPT_MAX_CPU, OPT_BUDGET,
       OPT_MAX_PARKED };

struct ct_env {
	pid_t pid;
	double seconds;
	int hz;
	int top;
	const char *pprof;
	bool system;
	double max_cpu; /* percent of one CPU gotrace may use; 0 no limit */
	bool exact;
	double budget;	/* exact mode: waits_opts.budget_pct */
	unsigned int max_parked;
};

/* One run: what was measured, for the report. */
struct ct_run {
	struct go_model *m;
	struct proc_mem *mem;
	struct contention *ct;
	struct rthist_addrs ha;
	struct rthist ttr[2], gcp[2];
	bool have_ttr, have_gcp;
	int ttr_err, gcp_err;
	int64_t mutex_wait[2];
	bool have_mutex_wait;
	uint64_t t_start, t_end;	/* CLOCK_MONOTONIC of the first and last census */
	int64_t wall_start;		/* CLOCK_REALTIME ns at the start */
	uint64_t samples_failed;
	uint64_t strata_overrun;	/* strata a census ran into: covered by the next */
	uint64_t strata_budget;		/* strata the CPU budget had censuses stand for */
	double w_sum, w_sq;		/* censuses' weights (strata they stand for): n_eff */
	char last_census_err[256];
	bool target_exited, interrupted;
	double census_ms_sum, census_ms_max;
	uint64_t cpu_ns;		/* gotrace's own CPU time while sampling */
	struct proc_mem_stats mem_stats;
	/* Exact mode. */
	struct waits *w;
	struct waits_stats ws;
	uint64_t still_parked;
	int ingest_err;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
	/* A second Ctrl-C kills (RS retsnoop). */
	signal(sig, SIG_DFL);
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

static int parse_args(int argc, char **argv, struct ct_env *env)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "duration", required_argument, NULL, 'd' },
		{ "hz", required_argument, NULL, OPT_HZ },
		{ "pprof", required_argument, NULL, OPT_PPROF },
		{ "top", required_argument, NULL, OPT_TOP },
		{ "system", no_argument, NULL, OPT_SYSTEM },
		{ "mode", required_argument, NULL, OPT_MODE },
		{ "max-cpu", required_argument, NULL, OPT_MAX_CPU },
		{ "budget", required_argument, NULL, OPT_BUDGET },
		{ "max-parked", required_argument, NULL, OPT_MAX_PARKED },
		{ "json", no_argument, NULL, 'j' },
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
			err = cmd_parse_secs("duration", optarg, CMD_ABOVE_0, 1e6, &env->seconds);
			break;
		case OPT_HZ:
			err = cmd_parse_int("--hz", optarg, 1, MAX_HZ, NULL, &v);
			env->hz = (int)v;
			break;
		case OPT_PPROF:
			env->pprof = optarg;
			break;
		case OPT_MAX_CPU:
			err = cmd_parse_double("--max-cpu", optarg, 0, 100,
					      "a percentage, 0 for no limit", &env->max_cpu);
			break;
		case OPT_TOP:
			err = cmd_parse_int("--top", optarg, 0, INT_MAX, "a count", &v);
			env->top = (int)v;
			break;
		case OPT_SYSTEM:
			env->system = true;
			break;
		case OPT_MODE:
			if (!strcmp(optarg, "exact"))
				env->exact = true;
			else if (!strcmp(optarg, "sampled"))
				env->exact = false;
			else
				return cmd_fail("invalid --mode '%s': use sampled or exact",
						optarg);
			break;
		case OPT_BUDGET:
			err = cmd_parse_budget(optarg, 100, &env->budget);
			break;
		case OPT_MAX_PARKED:
			err = cmd_parse_int("--max-parked", optarg, 1, 1 << 24, NULL, &v);
			env->max_parked = (unsigned int)v;
			break;
		case 'j':
			env_json = true;
			break;
		case 'v':
			log_verbosity++;
			break;
		case 'h':
			fputs(contention_help, stdout);
			return -1;
		default:
			return cmd_fail("usage: gotrace contention -p PID [-d SECONDS] [--hz N] "
					"[--pprof FILE] [--json]");
		}
		if (err)
			return err;
	}
	if (optind < argc)
		return cmd_fail("unexpected argument '%s': see 'gotrace contention --help'",
				argv[optind]);
	if (!env->pid)
		return cmd_fail("no process: give -p PID");
	return 0;
}

/* ---- measuring */

static void read_hists(struct ct_run *r, int end)
{
	int err;

	if (r->ha.time_to_run) {
		err = rthist__read(r->m, r->mem, r->ha.time_to_run, r->ha.layout, &r->ttr[end]);
		if (err)
			r->ttr_err = err;
	}
	if (r->ha.gc_pauses) {
		err = rthist__read(r->m, r->mem, r->ha.gc_pauses, r->ha.layout, &r->gcp[end]);
		if (err)
			r->gcp_err = err;
	}
	if (r->ha.mutex_wait) {
		err = proc_mem__read(r->mem, go_model__to_runtime(r->m, r->ha.mutex_wait),
				     &r->mutex_wait[end], 8);
		if (err)
			r->ha.mutex_wait = 0;
	}
}

/* splitmix64: the sampling instants' random phases. */
static uint64_t rnd(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/*
 * Take censuses until the deadline or a signal. The window is cut into 1/hz strata and
 * each census is taken at a random instant of the stretch of strata it stands for: a
 * fixed period would alias with a program's own periodic behaviour (a 10 ms period on a
 * 212 us producer/consumer cycle gave anything from 45% to 112% of the truth).
 *
 * The CPU budget stretches that span when censuses are expensive (many goroutines): a
 * census that took C of CPU time lets the next one stand for C / budget of the window,
 * so gotrace's share of a CPU stays near the budget. Strata a census overran, or a failed
 * census left, are covered by the next one. Returns 0, or -errno when not one census worked.
 */
static int sample(struct ct_run *r, const struct ct_env *env)
{
	struct census_opts copts = { .keep_system = env->system };
	struct census_reader *rd = NULL; /* kept across censuses: list and caches found once */
	uint64_t period = 1000000000ULL / (uint64_t)env->hz;
	uint64_t nstrata = (uint64_t)ceil(env->seconds * env->hz);
	uint64_t base, cpu0, seed, kstart = 0, span = 1;
	int64_t kcov = -1; /* last stratum covered by a census */
	int first_err = 0;

	seed = now_ns(CLOCK_REALTIME) ^ ((uint64_t)getpid() << 32);
	/* Wake up on time: the default 50 us timer slack is a sizeable part of a stratum. */
	prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
	if (!nstrata)
		nstrata = 1;
	r->wall_start = (int64_t)now_ns(CLOCK_REALTIME);
	cpu0 = cpu_ns();
	read_hists(r, 0);
	/* Callers comparing with the target's own counters start their window on this line. */
	elog("gotrace: sampling the goroutines of process %d for %g s; Ctrl-C to stop\n",
	     env->pid, env->seconds);
	base = now_ns(CLOCK_MONOTONIC);
	while (!stop && kstart < nstrata) {
		uint64_t kend = kstart + span - 1, target, t0, t1, c0, next;
		struct census *c = NULL;
		struct timespec ts;
		int err;

		if (kend >= nstrata)
			kend = nstrata - 1;
		target = base + kstart * period + rnd(&seed) % ((kend - kstart + 1) * period);
		ts.tv_sec = (time_t)(target / 1000000000ULL);
		ts.tv_nsec = (long)(target % 1000000000ULL);
		while (!stop && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
		if (stop)
			break;
		t0 = now_ns(CLOCK_MONOTONIC);
		c0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
		err = rd ? 0 : census_reader__new(r->m, r->mem, &copts, &rd);
		if (!err)
			err = census_reader__take(rd, &c);
		t1 = now_ns(CLOCK_MONOTONIC);
		if (err && err != -ENOMEM) {
			/* Found again from scratch next time, like census__take did each time. */
			census_reader__free(rd);
			rd = NULL;
		}
		if (err == -ESRCH) {
			r->target_exited = true;
			break;
		}
		if (err) {
			/* A torn list is retried in the next stratum; counted, never hidden. */
			r->samples_failed++;
			if (!first_err)
				first_err = err;
			snprintf(r->last_census_err, sizeof(r->last_census_err), "%s",
				 gt_lasterr() ? gt_lasterr() : strerror(-err));
			if (err == -ENOTSUP || err == -ENOENT || err == -ENOMEM)
				break;
		} else {
			double ms = (double)(t1 - t0) / 1e6;

			r->census_ms_sum += ms;
			if (ms > r->census_ms_max)
				r->census_ms_max = ms;
			/* The census's instant: the middle of the time it took. */
			err = contention__sample(r->ct, c, r->mem, t0 + (t1 - t0) / 2,
						 ((int64_t)kend - kcov) * period);
			r->w_sum += (double)((int64_t)kend - kcov);
			r->w_sq += (double)((int64_t)kend - kcov) * (double)((int64_t)kend - kcov);
			census__free(c);
			if (err) {
				census_reader__free(rd);
				return err;
			}
			kcov = (int64_t)kend;
		}
		/* Next: after this span, and after the stratum the census ended in. */
		next = (t1 - base) / period + 1;
		if (next > kend + 1)
			r->strata_overrun += next - kend - 1;
		else
			next = kend + 1;
		kstart = next;
		span = 1;
		if (env->max_cpu > 0) {
			/*
			 * CPU time, not wall time: on a busy machine a census waits for a CPU
			 * much longer than it uses one, and throttling on that would only
			 * cost samples.
			 */
			double need = (double)(now_ns(CLOCK_THREAD_CPUTIME_ID) - c0) /
				      (env->max_cpu / 100.0 * (double)period);

			span = need > 1 ? (uint64_t)ceil(need) : 1;
			if (span > 1)
				r->strata_budget += span - 1;
		}
	}
	census_reader__free(rd);
	r->interrupted = stop;
	if (kcov >= 0) {
		r->t_start = base;
		r->t_end = base + (uint64_t)(kcov + 1) * period;
	}
	read_hists(r, 1);
	r->cpu_ns = cpu_ns() - cpu0;
	r->mem_stats = *proc_mem__stats(r->mem);
	contention__finish(r->ct);
	if (!contention__stats(r->ct)->samples) {
		if (r->target_exited) {
			gt_seterr("process %d exited", env->pid);
			return -ESRCH;
		}
		gt_seterr("could not read the goroutines of process %d: %s", env->pid,
			  r->last_census_err[0] ? r->last_census_err : strerror(-first_err));
		return first_err ? first_err : -EINVAL;
	}
	return 0;
}

/* ---- exact mode */

/* Symbolization PCs of a probe's stack: the probed instruction, then return addresses - 1. */
static uint32_t probe_pcs(uint64_t probe_pc, const struct waits_stack *k, uint64_t *out)
{
	uint32_t n = 0;

	if (!k->depth)
		return 0;
	out[n++] = probe_pc;
	for (int i = 0; i < k->depth; i++)
		out[n++] = k->pcs[i] ? k->pcs[i] - 1 : 0;
	return n;
}

/* Nearest-rank p99 of a site's histogram: the upper bound of its bucket, at most MAX. */
static uint64_t hist_p99(const uint64_t *h, uint64_t count, uint64_t max)
{
	uint64_t rank = (count * 99 + 99) / 100, cum = 0;

	for (int i = 0; i < WT_HIST_SLOTS; i++) {
		cum += h[i];
		if (h[i] && cum >= rank) {
			uint64_t hi = i + 1 < WT_HIST_SLOTS ? waits__hist_lower(i + 1) : max;

			return hi < max ? hi : max;
		}
	}
	return max;
}

struct ingest {
	struct ct_run *r;
	uint64_t park_pc, ready_pc;
	uint64_t pcs[2][WT_MAX_STACK + 1];
};

static int ingest_site(void *ctx, const struct waits_site *s)
{
	struct ingest *in = ctx;
	uint32_t n = probe_pcs(in->park_pc, &s->stack, in->pcs[0]);
	uint64_t p99 = hist_p99(s->hist, s->count, s->max_ns);
	int err = contention__add_site(in->r->ct, in->pcs[0], n, s->stack.truncated, s->reason,
				       s->count, s->total_ns, p99, s->max_ns, s->hist,
				       WT_HIST_SLOTS);

	if (err)
		in->r->ingest_err = err;
	return err;
}

static int ingest_waker(void *ctx, const struct waits_waker *k)
{
	struct ingest *in = ctx;
	uint32_t wn = probe_pcs(in->ready_pc, &k->waker, in->pcs[0]);
	uint32_t en = probe_pcs(in->park_pc, &k->wakee, in->pcs[1]);
	int err = contention__add_waker(in->r->ct, in->pcs[0], wn, k->waker.truncated, in->pcs[1],
					en, k->wakee.truncated, k->reason, k->count, k->total_ns);

	if (err)
		in->r->ingest_err = err;
	return err;
}

/*
 * Trace every park and wake-up until the deadline, a signal or the target's exit, then
 * detach and fold the kernel's aggregates into the report. 0 or -errno.
 */
static int run_exact(struct ct_run *r, const struct ct_env *env)
{
	struct waits_opts o = { .budget_pct = env->budget, .max_parked = env->max_parked };
	struct ingest *in;
	uint64_t cpu0, deadline;
	int err;

	err = waits__attach(r->m, env->pid, &o, &r->w);
	if (err)
		return err;
	r->wall_start = (int64_t)now_ns(CLOCK_REALTIME);
	cpu0 = cpu_ns();
	read_hists(r, 0);
	/* Callers comparing with the target's own counters start their window on this line. */
	elog("gotrace: tracing every park and wake-up of process %d for %g s; Ctrl-C to stop\n",
	     env->pid, env->seconds);
	r->t_start = now_ns(CLOCK_MONOTONIC);
	deadline = r->t_start + (uint64_t)(env->seconds * 1e9);
	while (!stop) {
		uint64_t now = now_ns(CLOCK_MONOTONIC), left;
		struct timespec ts;

		if (now >= deadline)
			break;
		if (kill(env->pid, 0) && errno == ESRCH) {
			r->target_exited = true;
			break;
		}
		left = deadline - now < 50000000ULL ? deadline - now : 50000000ULL;
		ts.tv_sec = (time_t)(left / 1000000000ULL);
		ts.tv_nsec = (long)(left % 1000000000ULL);
		clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
	}
	r->interrupted = stop;
	r->t_end = now_ns(CLOCK_MONOTONIC);
	read_hists(r, 1);
	waits__stop(r->w);
	err = waits__poll(r->w, &r->ws);
	if (err)
		return err;
	r->still_parked = waits__still_parked(r->w);
	r->cpu_ns = cpu_ns() - cpu0;

	in = calloc(1, sizeof(*in));
	if (!in)
		return -ENOMEM;
	in->r = r;
	in->park_pc = r->ws.probes[WT_PROBE_GOPARK].pc;
	in->ready_pc = r->ws.probes[WT_PROBE_READY].pc;
	waits__foreach_site(r->w, ingest_site, in);
	if (!r->ingest_err)
		waits__foreach_waker(r->w, ingest_waker, in);
	free(in);
	contention__finish(r->ct);
	if (r->ingest_err) {
		gt_seterr("out of memory");
		return r->ingest_err;
	}
	return 0;
}

/* ---- report */

static struct json_object *jint(uint64_t v)
{
	return json_object_new_int64(v > INT64_MAX ? INT64_MAX : (int64_t)v);
}

static struct json_object *jns(double v)
{
	return json_object_new_int64(v < 0 ? -1 : (int64_t)llround(v));
}

static struct json_object *frame_json(const struct ct_frame *f)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "function", json_object_new_string(f->func));
	json_object_object_add(o, "file", json_object_new_string(f->file));
	json_object_object_add(o, "line", json_object_new_int(f->line));
	json_object_object_add(o, "inlined", json_object_new_boolean(f->inlined));
	json_object_object_add(o, "pc", jint(f->pc));
	return o;
}

static struct json_object *hist_json(const struct rthist *h, const char *source, int err,
				     const char *why, const char *sampling)
{
	struct json_object *o = json_object_new_object(), *b;

	json_object_object_add(o, "source", source ? json_object_new_string(source) : NULL);
	if (!h) {
		json_object_object_add(o, "available", json_object_new_boolean(false));
		json_object_object_add(o, "reason", json_object_new_string(why ? why : "unknown"));
		return o;
	}
	json_object_object_add(o, "available", json_object_new_boolean(true));
	if (err)
		json_object_object_add(o, "warning",
				       json_object_new_string("a bucket went backwards: the "
							      "memory read may not be the histogram"));
	json_object_object_add(o, "count", jint(rthist__total(h)));
	json_object_object_add(o, "p50_ns", jns(rthist__quantile(h, 0.5)));
	json_object_object_add(o, "p99_ns", jns(rthist__quantile(h, 0.99)));
	json_object_object_add(o, "max_ns", jns(rthist__max(h)));
	json_object_object_add(o, "quantiles",
			       json_object_new_string("lower bound of the bucket holding the "
						      "quantile (as runtime/metrics' median "
						      "example); max: upper bound of the highest "
						      "non-empty bucket"));
	if (sampling)
		json_object_object_add(o, "sampling", json_object_new_string(sampling));
	json_object_object_add(o, "layout", json_object_new_string(rthist__layout_name(h->layout)));
	b = json_object_new_array();
	for (int i = 0; i < h->n; i++) {
		struct json_object *e;
		double lo = rthist__lower(h, i), hi = rthist__lower(h, i + 1);

		if (!h->counts[i])
			continue;
		e = json_object_new_object();
		/* Open ends are null. */
		json_object_object_add(e, "lo_ns", isinf(lo) ? NULL : jns(lo));
		json_object_object_add(e, "hi_ns", isinf(hi) ? NULL : jns(hi));
		json_object_object_add(e, "count", jint(h->counts[i]));
		json_object_array_add(b, e);
	}
	json_object_object_add(o, "histogram", b);
	return o;
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? s + 1 : p;
}

/* The sampled mode's own fields. */
static void sampled_json(struct json_object *o, struct ct_run *r, const struct ct_env *env)
{
	const struct ct_stats *st = contention__stats(r->ct);
	struct json_object *x;

	json_object_object_add(o, "hz", json_object_new_int(env->hz));
	json_object_object_add(o, "samples", jint(st->samples));
	json_object_object_add(o, "samples_failed", jint(r->samples_failed));
	/* Censuses standing for more strata weigh more: Kish's effective sample size. */
	json_object_object_add(o, "effective_samples", json_object_new_double(
					  r->w_sq > 0 ? r->w_sum * r->w_sum / r->w_sq : 0));
	json_object_object_add(o, "effective_hz", json_object_new_double(
					  r->t_end > r->t_start ?
						  (double)st->samples * 1e9 / (double)(r->t_end - r->t_start) :
						  0));
	json_object_object_add(o, "strata_overrun", jint(r->strata_overrun));
	json_object_object_add(o, "strata_budget", jint(r->strata_budget));
	json_object_object_add(o, "max_cpu_percent", json_object_new_double(env->max_cpu));
	if (r->samples_failed)
		json_object_object_add(o, "last_census_error",
				       json_object_new_string(r->last_census_err));
	json_object_object_add(o, "resolution_ns", jint(contention__resolution_ns(r->ct)));

	x = json_object_new_object();
	json_object_object_add(x, "max", jint(st->goroutines_max));
	json_object_object_add(x, "mean", json_object_new_double(
					  st->samples ? (double)st->goroutines_sum / st->samples : 0));
	json_object_object_add(x, "waiting_mean", json_object_new_double(
					  st->samples ? (double)st->waiting_sum / st->samples : 0));
	json_object_object_add(x, "runnable_mean", json_object_new_double(
					  st->samples ? (double)st->runnable_sum / st->samples : 0));
	json_object_object_add(x, "running_mean", json_object_new_double(
					  st->samples ? (double)st->running_sum / st->samples : 0));
	json_object_object_add(x, "unreadable", jint(st->unreadable));
	json_object_object_add(x, "waiting_without_stack", jint(st->no_stack));
	json_object_object_add(x, "census_retries", jint(st->census_retries));
	json_object_object_add(x, "episodes_split_by_waitsince", jint(st->waitsince_splits));
	json_object_object_add(x, "system_included", json_object_new_boolean(env->system));
	json_object_object_add(o, "goroutines", x);

	x = json_object_new_object();
	json_object_object_add(x, "cpu_ns", jint(r->cpu_ns));
	json_object_object_add(x, "cpu_share", json_object_new_double(
					  r->t_end > r->t_start ?
						  (double)r->cpu_ns / (double)(r->t_end - r->t_start) :
						  0));
	json_object_object_add(x, "census_ms_mean", json_object_new_double(
					  st->samples ? r->census_ms_sum / st->samples : 0));
	json_object_object_add(x, "census_ms_max", json_object_new_double(r->census_ms_max));
	json_object_object_add(x, "read_syscalls", jint(r->mem_stats.syscalls));
	json_object_object_add(x, "read_bytes", jint(r->mem_stats.bytes));
	json_object_object_add(x, "read_failures", jint(r->mem_stats.failures));
	json_object_object_add(o, "cost", x);
}

/* The exact mode's own fields: probes, governor, and everything not charged. */
static void exact_json(struct json_object *o, struct ct_run *r, const struct ct_env *env)
{
	const struct waits_stats *ws = &r->ws;
	struct json_object *x = json_object_new_object(), *a, *e;
	uint64_t unseen = ws->c[WT_CNT_UNSEEN_WAKE];
	double on;

	a = json_object_new_array();
	for (int id = 0; id < WT_PROBE__CNT; id++) {
		const struct waits_probe_stats *p = &ws->probes[id];

		e = json_object_new_object();
		json_object_object_add(e, "function", json_object_new_string(p->func));
		json_object_object_add(e, "instruction", json_object_new_string(p->insn));
		json_object_object_add(e, "kind", json_object_new_string(p->kind));
		json_object_object_add(e, "hits", jint(p->hits));
		json_object_object_add(e, "cost_ns", json_object_new_double(p->cost_ns));
		json_object_object_add(e, "trap_ns", json_object_new_double(p->trap_ns));
		json_object_object_add(e, "bpf_ns", json_object_new_double(p->prog_ns));
		json_object_array_add(a, e);
	}
	json_object_object_add(x, "probes", a);
	json_object_object_add(x, "trap_cost_timed", json_object_new_boolean(ws->calibrated));
	json_object_object_add(x, "links", json_object_new_string(
				       ws->multi_links ? "uprobe_multi" : "perf_event"));
	json_object_object_add(x, "tail_charged_ns", jint((uint64_t)(ws->tail_charged_s * 1e9)));
	json_object_object_add(x, "budget_percent", ws->budget_pct < 0 ? NULL :
				json_object_new_double(ws->budget_pct));
	json_object_object_add(x, "cost_percent", json_object_new_double(ws->avg_cost_pct));
	json_object_object_add(x, "partial", json_object_new_boolean(ws->partial));
	on = ws->on_s + ws->off_s > 0 ? ws->on_s / (ws->on_s + ws->off_s) : 1;
	json_object_object_add(x, "on_fraction", json_object_new_double(on));
	json_object_object_add(x, "off_windows", jint(ws->off_windows));
	json_object_object_add(x, "first_off_s", ws->first_off_s < 0 ? NULL :
				json_object_new_double(ws->first_off_s));
	json_object_object_add(x, "governor", json_object_new_string(ws->governor));
	json_object_object_add(x, "parks", jint(ws->c[WT_CNT_PARKED]));
	json_object_object_add(x, "wakeups", jint(ws->c[WT_CNT_WOKEN]));
	json_object_object_add(x, "woken_by_scheduler", jint(ws->c[WT_CNT_WAKER_NONE]));
	json_object_object_add(x, "still_parked", jint(r->still_parked));

	e = json_object_new_object();
	json_object_object_add(e, "count", jint(unseen));
	a = json_object_new_array();
	for (int k = 0; k < WT_MAX_WAITREASONS; k++) {
		struct json_object *y;

		if (!ws->unseen_reason[k])
			continue;
		y = json_object_new_object();
		json_object_object_add(y, "reason", json_object_new_string(
						contention__reason_name(r->ct, k)));
		json_object_object_add(y, "count", jint(ws->unseen_reason[k]));
		json_object_array_add(a, y);
	}
	json_object_object_add(e, "by_reason", a);
	json_object_object_add(e, "why", json_object_new_string(
		"woken without runtime.ready (the network poller and the GC ready goroutines "
		"through injectglist; aborted parks): seen when the goroutine parks again, not "
		"timed"));
	json_object_object_add(x, "unseen_wakeups", e);

	e = json_object_new_object();
	json_object_object_add(e, "ready_without_park", jint(ws->c[WT_CNT_READY_NO_PARK]));
	json_object_object_add(e, "spanning_detach", jint(ws->c[WT_CNT_STALE]));
	json_object_object_add(e, "park_table_full", jint(ws->c[WT_CNT_PARKED_FULL]));
	json_object_object_add(e, "site_table_full", jint(ws->c[WT_CNT_SITES_FULL]));
	json_object_object_add(e, "waker_table_full", jint(ws->c[WT_CNT_WAKERS_FULL]));
	json_object_object_add(e, "stack_table_full", jint(ws->c[WT_CNT_STACKS_FULL]));
	json_object_object_add(e, "read_errors", jint(ws->c[WT_CNT_READ_ERR]));
	json_object_object_add(e, "stacks_truncated", jint(ws->c[WT_CNT_STACK_TRUNC]));
	json_object_object_add(x, "lost", e);
	json_object_object_add(x, "system_sites_left_out",
			       jint(contention__stats(r->ct)->system_sites));
	json_object_object_add(o, "exact", x);

	x = json_object_new_object();
	json_object_object_add(x, "cpu_ns", jint(r->cpu_ns));
	json_object_object_add(x, "cpu_share", json_object_new_double(
		r->t_end > r->t_start ? (double)r->cpu_ns / (double)(r->t_end - r->t_start) : 0));
	json_object_object_add(x, "target_cpu_share_estimate",
			       json_object_new_double(ws->avg_cost_pct / 100.0));
	json_object_object_add(o, "cost", x);
	(void)env;
}

/* A stack of the report: its site frame, the call it made there, every frame. */
static struct json_object *stack_json(const struct ct_stack *k)
{
	struct json_object *o = json_object_new_object(), *fr = json_object_new_array();

	json_object_object_add(o, "at", k && k->nframes ? frame_json(&k->frames[k->blocked_at])
						       : NULL);
	json_object_object_add(o, "call", k && k->nframes ?
				json_object_new_string(k->frames[k->top].func) : NULL);
	for (uint32_t f = 0; k && f < k->nframes; f++)
		json_object_array_add(fr, frame_json(&k->frames[f]));
	json_object_object_add(o, "stack", fr);
	json_object_object_add(o, "stack_truncated", json_object_new_boolean(k && k->truncated));
	return o;
}

static struct json_object *report_json(struct ct_run *r, const struct ct_env *env)
{
	struct json_object *o = json_object_new_object(), *a, *x, *fr;
	const struct ct_reason_total *rs;
	const struct ct_runnable *lr;
	struct rthist d;
	size_t nr, nl;
	int err;

	json_object_object_add(o, "pid", json_object_new_int(env->pid));
	json_object_object_add(o, "binary", json_object_new_string(r->m->proc.exe_path));
	json_object_object_add(o, "go_version", json_object_new_string(r->m->bi.version));
	json_object_object_add(o, "mode", json_object_new_string(env->exact ? "exact" : "sampled"));
	json_object_object_add(o, "duration_ns", jint(r->t_end - r->t_start));
	x = json_object_new_object();
	json_object_object_add(x, "start_mono_ns", jint(r->t_start));
	json_object_object_add(x, "end_mono_ns", jint(r->t_end));
	json_object_object_add(x, "start_unix_ns", jint((uint64_t)r->wall_start));
	json_object_object_add(o, "window", x);
	json_object_object_add(o, "interrupted", json_object_new_boolean(r->interrupted));
	json_object_object_add(o, "target_exited", json_object_new_boolean(r->target_exited));
	if (env->exact)
		exact_json(o, r, env);
	else
		sampled_json(o, r, env);

	a = json_object_new_array();
	rs = contention__reasons(r->ct, &nr);
	{
		/* Sorted by total, largest first: a small selection sort over 256 entries. */
		bool done[256] = { false };

		for (;;) {
			int best = -1;

			for (size_t i = 0; i < nr; i++) {
				if (!done[i] && rs[i].count &&
				    (best < 0 || rs[i].total_ns > rs[best].total_ns))
					best = (int)i;
			}
			if (best < 0)
				break;
			done[best] = true;
			x = json_object_new_object();
			json_object_object_add(x, "reason", json_object_new_string(
							  contention__reason_name(r->ct, best)));
			json_object_object_add(x, "reason_value", json_object_new_int(best));
			json_object_object_add(x, "count", jint(rs[best].count));
			json_object_object_add(x, "total_ns", jint(rs[best].total_ns));
			json_object_array_add(a, x);
		}
	}
	json_object_object_add(o, "by_wait_reason", a);

	a = json_object_new_array();
	for (size_t i = 0; i < contention__site_cnt(r->ct); i++) {
		const struct ct_site *s = contention__site(r->ct, i);
		const struct ct_stack *k = contention__stack(r->ct, s->stack);
		struct json_object *fr = json_object_new_array(), *ba;

		x = json_object_new_object();
		if (k && k->nframes) {
			ba = frame_json(&k->frames[k->blocked_at]);
			json_object_object_add(x, "blocked_at", ba);
			json_object_object_add(x, "blocking_call",
					       json_object_new_string(k->frames[k->top].func));
			for (uint32_t f = 0; f < k->nframes; f++)
				json_object_array_add(fr, frame_json(&k->frames[f]));
		} else {
			json_object_object_add(x, "blocked_at", NULL);
			json_object_object_add(x, "blocking_call", NULL);
		}
		json_object_object_add(x, "stack", fr);
		json_object_object_add(x, "stack_truncated",
				       json_object_new_boolean(!k || k->truncated));
		json_object_object_add(x, "wait_reason", json_object_new_string(
							 contention__reason_name(r->ct, s->reason)));
		json_object_object_add(x, "count", jint(s->count));
		json_object_object_add(x, "total_ns", jint(s->total_ns));
		json_object_object_add(x, "p99_ns", jint(s->p99_ns));
		json_object_object_add(x, "max_ns", jint(s->max_ns));
		if (s->hist) {
			struct json_object *h = json_object_new_array();

			for (uint32_t b = 0; b < s->nhist; b++) {
				struct json_object *e;

				if (!s->hist[b])
					continue;
				e = json_object_new_object();
				json_object_object_add(e, "lo_ns", jint(waits__hist_lower(b)));
				json_object_object_add(e, "hi_ns", b + 1 < s->nhist ?
							jint(waits__hist_lower(b + 1)) : NULL);
				json_object_object_add(e, "count", jint(s->hist[b]));
				json_object_array_add(h, e);
			}
			json_object_object_add(x, "histogram", h);
		}
		json_object_array_add(a, x);
	}
	json_object_object_add(o, "sites", a);

	a = json_object_new_array();
	for (size_t i = 0; i < contention__waker_cnt(r->ct); i++) {
		const struct ct_waker *k = contention__waker(r->ct, i);

		x = json_object_new_object();
		json_object_object_add(x, "waker", k->waker == UINT32_MAX ? NULL :
					stack_json(contention__stack(r->ct, k->waker)));
		json_object_object_add(x, "wakee", stack_json(contention__stack(r->ct, k->wakee)));
		json_object_object_add(x, "wait_reason", json_object_new_string(
						contention__reason_name(r->ct, k->reason)));
		json_object_object_add(x, "count", jint(k->count));
		json_object_object_add(x, "total_ns", jint(k->total_ns));
		json_object_array_add(a, x);
	}
	json_object_object_add(o, "wakers", a);
	if (!env->exact)
		json_object_object_add(o, "wakers_unavailable",
				       json_object_new_string("who wakes whom needs the exact mode "
							      "(--mode exact)"));

	if (r->have_ttr) {
		err = rthist__sub(&r->ttr[1], &r->ttr[0], &d);
		x = hist_json(&d, "runtime sched.timeToRun (= runtime/metrics "
			      "/sched/latencies:seconds)", err, NULL,
			      "the runtime records 1 in 8 runnable-to-running transitions "
			      "(gTrackingPeriod)");
	} else {
		x = hist_json(NULL, "runtime sched.timeToRun", 0,
			      r->ttr_err ? strerror(-r->ttr_err) : r->ha.why, NULL);
	}
	a = json_object_new_array();
	nl = contention__longest_runnable(r->ct, &lr);
	for (size_t i = 0; i < nl; i++) {
		const struct ct_stack *k = contention__stack(r->ct, lr[i].stack);
		struct json_object *e = json_object_new_object();

		json_object_object_add(e, "goid", jint(lr[i].goid));
		json_object_object_add(e, "runnable_ns_at_least", jint(lr[i].waited_ns));
		json_object_object_add(e, "at", k && k->nframes ?
						 frame_json(&k->frames[k->blocked_at]) : NULL);
		fr = json_object_new_array();
		for (uint32_t f = 0; k && f < k->nframes; f++)
			json_object_array_add(fr, frame_json(&k->frames[f]));
		json_object_object_add(e, "stack", fr);
		json_object_array_add(a, e);
	}
	json_object_object_add(x, "longest_runnable", a);
	json_object_object_add(o, "sched_latency", x);

	if (r->have_gcp) {
		err = rthist__sub(&r->gcp[1], &r->gcp[0], &d);
		x = hist_json(&d, r->ha.gc_pauses_name, err, NULL, NULL);
	} else {
		x = hist_json(NULL, r->ha.gc_pauses_name, 0,
			      r->gcp_err ? strerror(-r->gcp_err) : r->ha.gc_why, NULL);
	}
	json_object_object_add(o, "gc_pauses", x);
	if (r->have_mutex_wait)
		json_object_object_add(o, "runtime_sync_wait_ns",
				       json_object_new_int64(r->mutex_wait[1] - r->mutex_wait[0]));
	else
		json_object_object_add(o, "runtime_sync_wait_ns", NULL);
	return o;
}

/* "1.23 s", "45.6 ms", "789 us", "12 ns". */
static const char *fmt_ns(double ns, char *b, size_t n)
{
	if (ns < 0)
		snprintf(b, n, "-");
	else if (ns >= 1e9)
		snprintf(b, n, "%.2f s", ns / 1e9);
	else if (ns >= 1e6)
		snprintf(b, n, "%.1f ms", ns / 1e6);
	else if (ns >= 1e3)
		snprintf(b, n, "%.0f us", ns / 1e3);
	else
		snprintf(b, n, "%.0f ns", ns);
	return b;
}

static int64_t jget_i(struct json_object *o, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(o, k, &v) && v ? json_object_get_int64(v) : -1;
}

static const char *jget_s(struct json_object *o, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(o, k, &v) && v ? json_object_get_string(v) : NULL;
}

static void print_hist_line(const char *title, struct json_object *h)
{
	struct json_object *v;
	char a[32], b[32], c[32];

	if (!json_object_object_get_ex(h, "available", &v) || !json_object_get_boolean(v)) {
		printf("%s: not available (%s)\n", title, jget_s(h, "reason") ?: "?");
		return;
	}
	if (!jget_i(h, "count")) {
		printf("%s: none recorded in the window\n", title);
		return;
	}
	printf("%s: p50 %s  p99 %s  max %s  (%" PRId64 " recorded)\n", title,
	       fmt_ns((double)jget_i(h, "p50_ns"), a, sizeof(a)),
	       fmt_ns((double)jget_i(h, "p99_ns"), b, sizeof(b)),
	       fmt_ns((double)jget_i(h, "max_ns"), c, sizeof(c)), jget_i(h, "count"));
}

/* "main.worker (main.go:42)" of a stack_json() object, or what it is instead. */
static const char *site_text(struct json_object *k, char *b, size_t n)
{
	struct json_object *at;

	if (!k)
		snprintf(b, n, "(the scheduler: timer, GC or netpoll)");
	else if (json_object_object_get_ex(k, "at", &at) && at)
		snprintf(b, n, "%s (%s:%" PRId64 ")", jget_s(at, "function"),
			 base_name(jget_s(at, "file") ?: "?"), jget_i(at, "line"));
	else
		snprintf(b, n, "(stack unknown)");
	return b;
}

static void print_wakers(struct json_object *rep, const struct ct_env *env)
{
	struct json_object *a, *e, *k;
	char b1[32], s1[256], s2[256];
	size_t n;

	json_object_object_get_ex(rep, "wakers", &a);
	n = json_object_array_length(a);
	printf("\nwho wakes whom (of %zu)\n  %10s %8s  %s\n", n, "DELAY", "WAKE-UPS",
	       "WAKER -> WAKEE");
	for (size_t i = 0; i < n && (int)i < env->top; i++) {
		e = json_object_array_get_idx(a, i);
		json_object_object_get_ex(e, "waker", &k);
		site_text(k, s1, sizeof(s1));
		json_object_object_get_ex(e, "wakee", &k);
		printf("  %10s %8" PRId64 "  %s\n      -> %s [%s]\n",
		       fmt_ns((double)jget_i(e, "total_ns"), b1, sizeof(b1)), jget_i(e, "count"),
		       s1, site_text(k, s2, sizeof(s2)), jget_s(e, "wait_reason") ?: "?");
	}
}

static void print_exact_cost(struct json_object *rep)
{
	struct json_object *x, *u, *l, *p;
	int64_t lost = 0;

	json_object_object_get_ex(rep, "exact", &x);
	json_object_object_get_ex(x, "unseen_wakeups", &u);
	json_object_object_get_ex(x, "lost", &l);
	json_object_object_foreach(l, key, val) {
		if (strcmp(key, "stacks_truncated"))
			lost += json_object_get_int64(val);
	}
	printf("governor: %s\n", jget_s(x, "governor") ?: "?");
	if (jget_i(u, "count") > 0)
		printf("not timed: %" PRId64 " wake-ups without runtime.ready (netpoll, GC, "
		       "aborted parks)\n", jget_i(u, "count"));
	if (lost > 0)
		printf("not charged: %" PRId64 " intervals or parks (see \"lost\" in --json)\n",
		       lost);
	json_object_object_get_ex(x, "probes", &p);
	for (size_t i = 0; i < json_object_array_length(p); i++) {
		struct json_object *e = json_object_array_get_idx(p, i);

		printf("probe %s: %" PRId64 " hits, %.1f us each (%s)\n", jget_s(e, "function"),
		       jget_i(e, "hits"),
		       json_object_get_double(json_object_object_get(e, "cost_ns")) / 1e3,
		       jget_s(e, "kind"));
	}
	printf("cost: about %.2f%% of one CPU for the target (probe traps)\n",
	       json_object_get_double(json_object_object_get(x, "cost_percent")));
}

static void print_text(struct json_object *rep, const struct ct_env *env)
{
	struct json_object *a, *e, *g;
	char b1[32], b2[32], b3[32];
	size_t n;

	if (env->exact)
		printf("pid %" PRId64 " %s %s: %s, every park and wake-up (exact mode)\n",
		       jget_i(rep, "pid"), base_name(jget_s(rep, "binary") ?: "?"),
		       jget_s(rep, "go_version") ?: "?",
		       fmt_ns((double)jget_i(rep, "duration_ns"), b1, sizeof(b1)));
	else
		printf("pid %" PRId64 " %s %s: %s, %" PRId64 " samples at %d Hz (sampled mode)\n",
		       jget_i(rep, "pid"), base_name(jget_s(rep, "binary") ?: "?"),
		       jget_s(rep, "go_version") ?: "?",
		       fmt_ns((double)jget_i(rep, "duration_ns"), b1, sizeof(b1)),
		       jget_i(rep, "samples"), env->hz);
	if (jget_i(rep, "strata_budget") > 0)
		printf("(%.1f reads a second on average, to stay within --max-cpu %g%%)\n",
		       json_object_get_double(json_object_object_get(rep, "effective_hz")),
		       json_object_get_double(json_object_object_get(rep, "max_cpu_percent")));
	if (json_object_object_get_ex(rep, "goroutines", &g))
		printf("goroutines: %" PRId64 " max, %.1f waiting and %.1f runnable on average\n",
		       jget_i(g, "max"), json_object_get_double(json_object_object_get(g, "waiting_mean")),
		       json_object_get_double(json_object_object_get(g, "runnable_mean")));

	printf("\nblocked time by wait reason\n  %-28s %10s %12s\n", "REASON", "EPISODES", "TOTAL");
	json_object_object_get_ex(rep, "by_wait_reason", &a);
	n = json_object_array_length(a);
	if (!n)
		printf("  (no goroutine was seen waiting)\n");
	for (size_t i = 0; i < n; i++) {
		e = json_object_array_get_idx(a, i);
		printf("  %-28s %10" PRId64 " %12s\n", jget_s(e, "reason"), jget_i(e, "count"),
		       fmt_ns((double)jget_i(e, "total_ns"), b1, sizeof(b1)));
	}

	json_object_object_get_ex(rep, "sites", &a);
	n = json_object_array_length(a);
	printf("\ntop blocking sites (of %zu)\n  %10s %8s %9s  %-20s %s\n", n, "TOTAL", "EPISODES",
	       "P99", "REASON", "BLOCKED AT");
	for (size_t i = 0; i < n && (int)i < env->top; i++) {
		struct json_object *ba;

		e = json_object_array_get_idx(a, i);
		printf("  %10s %8" PRId64 " %9s  %-20s ",
		       fmt_ns((double)jget_i(e, "total_ns"), b1, sizeof(b1)), jget_i(e, "count"),
		       fmt_ns((double)jget_i(e, "p99_ns"), b2, sizeof(b2)), jget_s(e, "wait_reason"));
		if (json_object_object_get_ex(e, "blocked_at", &ba) && ba)
			printf("%s (%s:%" PRId64 ")\n      in %s\n", jget_s(ba, "function"),
			       base_name(jget_s(ba, "file") ?: "?"), jget_i(ba, "line"),
			       jget_s(e, "blocking_call") ?: "?");
		else
			printf("(stack unknown)\n");
	}
	if (!env->exact)
		printf("  (counts are episodes seen %s apart; shorter ones are undercounted)\n",
		       fmt_ns((double)jget_i(rep, "resolution_ns"), b3, sizeof(b3)));
	else
		print_wakers(rep, env);

	printf("\n");
	json_object_object_get_ex(rep, "sched_latency", &g);
	print_hist_line("scheduling latency (runnable -> running)", g);
	json_object_object_get_ex(rep, "gc_pauses", &g);
	print_hist_line("GC stop-the-world pauses", g);
	if (jget_i(rep, "runtime_sync_wait_ns") >= 0)
		printf("runtime's own sync.Mutex/RWMutex wait estimate: %s\n",
		       fmt_ns((double)jget_i(rep, "runtime_sync_wait_ns"), b1, sizeof(b1)));
	if (env->exact) {
		print_exact_cost(rep);
		return;
	}
	printf("wakers: %s\n", jget_s(rep, "wakers_unavailable"));
	if (jget_i(rep, "samples_failed") > 0)
		printf("warning: %" PRId64 " samples failed (%s)\n", jget_i(rep, "samples_failed"),
		       jget_s(rep, "last_census_error") ?: "?");
	if (json_object_object_get_ex(rep, "goroutines", &g) && jget_i(g, "unreadable") > 0)
		printf("warning: %" PRId64 " goroutine reads failed over all samples\n",
		       jget_i(g, "unreadable"));
	json_object_object_get_ex(rep, "cost", &g);
	printf("cost: %.2f%% of one CPU for gotrace, %.3f ms per sample; the target is only read\n",
	       100 * json_object_get_double(json_object_object_get(g, "cpu_share")),
	       json_object_get_double(json_object_object_get(g, "census_ms_mean")));
}

/* ---- pprof */

static uint64_t pprof_loc(struct pprof *p, uint64_t map, const struct ct_stack *k, uint32_t *f)
{
	struct pprof_line lines[CT_MAX_FRAMES];
	uint64_t pc = k->frames[*f].pc;
	/* A location whose first lines were cut off (above the blocking call) is not shared. */
	bool cut = *f > 0 && k->frames[*f - 1].pc == pc;
	size_t n = 0;

	for (; *f < k->nframes && k->frames[*f].pc == pc; (*f)++) {
		const struct ct_frame *fr = &k->frames[*f];

		lines[n].function_id = pprof__function(p, fr->func, fr->file, 0);
		lines[n].line = fr->line;
		if (!lines[n].function_id)
			return 0;
		n++;
	}
	return pprof__location(p, map, cut ? 0 : pc, lines, n);
}

/*
 * The sites as a profile like Go's block profile: samples [contentions, delay], each
 * stack starting at the call that blocked (runtime.chanrecv1, sync.(*Mutex).Lock...),
 * labelled with its wait reason.
 */
static int write_pprof(struct ct_run *r, const char *path)
{
	struct pprof *p = pprof__new();
	const struct proc_target *t = &r->m->proc;
	uint64_t map = 0, start = 0, limit = 0, off = 0;
	int err = -ENOMEM;
	char comment[128];

	if (!p)
		goto fail;
	for (int i = 0; i < t->nmaps; i++) {
		if (strchr(t->maps[i].perms, 'x')) {
			start = t->maps[i].start;
			limit = t->maps[i].end;
			off = t->maps[i].offset;
			break;
		}
	}
	if (pprof__add_sample_type(p, "contentions", "count") ||
	    pprof__add_sample_type(p, "delay", "nanoseconds") ||
	    pprof__set_period(p, "contentions", "count", 1) ||
	    pprof__set_default_sample_type(p, "delay"))
		goto fail;
	pprof__set_time(p, r->wall_start, (int64_t)(r->t_end - r->t_start));
	if (r->w)
		snprintf(comment, sizeof(comment), "gotrace contention, exact (park to ready)%s",
			 r->ws.partial ? ", partial: probes duty-cycled" : "");
	else
		snprintf(comment, sizeof(comment), "gotrace contention, sampled at %" PRIu64 " ns",
			 contention__resolution_ns(r->ct));
	if (pprof__add_comment(p, comment))
		goto fail;
	map = pprof__add_mapping(p, start, limit, off, t->exe_path, NULL);
	if (!map)
		goto fail;
	for (size_t i = 0; i < contention__site_cnt(r->ct); i++) {
		const struct ct_site *s = contention__site(r->ct, i);
		const struct ct_stack *k = contention__stack(r->ct, s->stack);
		uint64_t locs[CT_MAX_FRAMES];
		int64_t vals[2] = { (int64_t)s->count, (int64_t)s->total_ns };
		struct pprof_label lab = { "wait_reason", contention__reason_name(r->ct, s->reason),
					   0, NULL };
		size_t nl = 0;
		uint32_t f;

		if (!k || !k->nframes)
			continue;
		for (f = k->top; f < k->nframes;) {
			locs[nl] = pprof_loc(p, map, k, &f);
			if (!locs[nl++])
				goto fail;
		}
		err = pprof__add_sample(p, locs, nl, vals, 2, &lab, 1);
		if (err)
			goto fail;
	}
	err = pprof__write(p, path);
	pprof__free(p);
	return err;
fail:
	pprof__free(p);
	gt_seterr("cannot build the pprof profile: %s", strerror(-err));
	return err;
}

int cmd_contention(int argc, char **argv)
{
	struct ct_env env = { .seconds = DEFAULT_SECONDS, .hz = DEFAULT_HZ, .top = DEFAULT_TOP,
			      .max_cpu = DEFAULT_MAX_CPU };
	struct go_model_opts mopts = { 0 };
	struct contention_opts copts = { 0 };
	struct ct_run r = { 0 };
	struct json_object *rep = NULL;
	int err, ret = 1;

	err = parse_args(argc, argv, &env);
	if (err)
		return err < 0 ? 0 : err;
	copts.system = env.system;

	gt_clearerr();
	err = go_model__open_pid(env.pid, &mopts, &r.m);
	if (err)
		return cmd_fail("%s", gt_lasterr() ? gt_lasterr() : strerror(-err));
	r.mem = proc_mem__open(env.pid);
	if (!r.mem) {
		ret = cmd_fail("%s", gt_lasterr() ? gt_lasterr() : strerror(errno));
		goto cleanup;
	}
	r.ct = contention__new(r.m, &copts);
	if (!r.ct) {
		ret = cmd_fail("out of memory");
		goto cleanup;
	}
	/* The histograms are a bonus: without them, blocked time is still measured. */
	if (rthist__locate(r.m, &r.ha))
		vlog("gotrace: no scheduling-latency histogram: %s\n", r.ha.why);

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	gt_clearerr();
	err = env.exact ? run_exact(&r, &env) : sample(&r, &env);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	if (err) {
		ret = cmd_fail("%s", gt_lasterr() ? gt_lasterr() : strerror(-err));
		goto cleanup;
	}
	r.have_ttr = r.ha.time_to_run && !r.ttr_err;
	r.have_gcp = r.ha.gc_pauses && !r.gcp_err;
	r.have_mutex_wait = r.ha.mutex_wait != 0;
	if (r.target_exited)
		elog("gotrace: warning: process %d exited during the window: the report covers "
		     "%.2f s\n", env.pid, (double)(r.t_end - r.t_start) / 1e9);

	if (env.pprof) {
		err = write_pprof(&r, env.pprof);
		if (err) {
			ret = cmd_fail("%s", gt_lasterr() ? gt_lasterr() : strerror(-err));
			goto cleanup;
		}
	}
	rep = report_json(&r, &env);
	if (env_json)
		printf("%s\n", json_object_to_json_string_ext(rep, JSON_C_TO_STRING_PRETTY |
								   JSON_C_TO_STRING_NOSLASHESCAPE));
	else
		print_text(rep, &env);
	ret = 0;
cleanup:
	json_object_put(rep);
	waits__detach(r.w);
	contention__free(r.ct);
	proc_mem__free(r.mem);
	go_model__free(r.m);
	return ret;
}
