// SPDX-License-Identifier: MIT
/*
 * gotrace contention -p PID: where goroutines wait and for how long, and how long
 * runnable goroutines queue for a CPU, measured from outside.
 *
 * Sampled mode (the default, and the only one built so far): goroutine censuses taken
 * --hz times a second, each charging its interval to every waiting goroutine's stack and
 * wait reason (src/contention/sampler.c); scheduling latency and GC pauses from the
 * runtime's own histograms, read at both ends of the window (src/contention/rthist.c).
 * Nothing is attached to the target: it is only read.
 *
 * The exact mode (every park-to-ready interval, and who wakes whom) needs the park/ready
 * probes of the live-goroutine engine; the report already has its fields ("mode",
 * "wakers") and says why they are empty.
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
	"Usage: gotrace contention -p PID [-d SECONDS] [--hz N] [--pprof FILE] [--json]\n"
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
	"      --mode MODE     sampled (default); exact is not built yet\n"
	"  -j, --json          JSON output (see docs/json-output.md)\n"
	"  -h, --help          this help\n"
	"\n"
	"Example: gotrace contention -p $(pidof server) -d 10 --pprof block.pb.gz\n";

enum { OPT_HZ = 1000, OPT_PPROF, OPT_TOP, OPT_SYSTEM, OPT_MODE, OPT_MAX_CPU };

struct ct_env {
	pid_t pid;
	double seconds;
	int hz;
	int top;
	const char *pprof;
	bool system;
	double max_cpu; /* percent of one CPU gotrace may use; 0 no limit */
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
	char last_census_err[256];
	bool target_exited, interrupted;
	double census_ms_sum, census_ms_max;
	uint64_t cpu_ns;		/* gotrace's own CPU time while sampling */
	struct proc_mem_stats mem_stats;
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
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	char *end;
	long v;
	int c;

	while ((c = getopt_long(argc, argv, "p:d:jvh", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || v <= 0 || v > INT_MAX)
				return cmd_fail("invalid PID '%s': expected a positive number",
						optarg);
			env->pid = (pid_t)v;
			break;
		case 'd':
			errno = 0;
			env->seconds = strtod(optarg, &end);
			if (errno || *end || !(env->seconds > 0) || env->seconds > 1e6)
				return cmd_fail("invalid duration '%s': expected seconds, e.g. 10 "
						"or 0.5", optarg);
			break;
		case OPT_HZ:
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || v < 1 || v > MAX_HZ)
				return cmd_fail("invalid --hz '%s': expected 1 to %d", optarg,
						MAX_HZ);
			env->hz = (int)v;
			break;
		case OPT_PPROF:
			env->pprof = optarg;
			break;
		case OPT_MAX_CPU:
			errno = 0;
			env->max_cpu = strtod(optarg, &end);
			if (errno || *end || env->max_cpu < 0 || env->max_cpu > 100)
				return cmd_fail("invalid --max-cpu '%s': expected a percentage, 0 "
						"for no limit", optarg);
			break;
		case OPT_TOP:
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || v < 0 || v > INT_MAX)
				return cmd_fail("invalid --top '%s': expected a count", optarg);
			env->top = (int)v;
			break;
		case OPT_SYSTEM:
			env->system = true;
			break;
		case OPT_MODE:
			if (!strcmp(optarg, "exact"))
				return cmd_fail("the exact mode (every park and wake-up probed, and "
						"who wakes whom) is not built yet: run without "
						"--mode for the sampled estimate");
			if (strcmp(optarg, "sampled"))
				return cmd_fail("invalid --mode '%s': use sampled", optarg);
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
		err = census__take(r->m, r->mem, &copts, &c);
		t1 = now_ns(CLOCK_MONOTONIC);
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
			census__free(c);
			if (err)
				return err;
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

static struct json_object *report_json(struct ct_run *r, const struct ct_env *env)
{
	const struct ct_stats *st = contention__stats(r->ct);
	struct json_object *o = json_object_new_object(), *a, *x, *fr;
	const struct ct_reason_total *rs;
	const struct ct_runnable *lr;
	struct rthist d;
	size_t nr, nl;
	int err;

	json_object_object_add(o, "pid", json_object_new_int(env->pid));
	json_object_object_add(o, "binary", json_object_new_string(r->m->proc.exe_path));
	json_object_object_add(o, "go_version", json_object_new_string(r->m->bi.version));
	json_object_object_add(o, "mode", json_object_new_string("sampled"));
	json_object_object_add(o, "duration_ns", jint(r->t_end - r->t_start));
	x = json_object_new_object();
	json_object_object_add(x, "start_mono_ns", jint(r->t_start));
	json_object_object_add(x, "end_mono_ns", jint(r->t_end));
	json_object_object_add(x, "start_unix_ns", jint((uint64_t)r->wall_start));
	json_object_object_add(o, "window", x);
	json_object_object_add(o, "hz", json_object_new_int(env->hz));
	json_object_object_add(o, "samples", jint(st->samples));
	json_object_object_add(o, "samples_failed", jint(r->samples_failed));
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
	json_object_object_add(o, "interrupted", json_object_new_boolean(r->interrupted));
	json_object_object_add(o, "target_exited", json_object_new_boolean(r->target_exited));

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
	json_object_object_add(x, "waitsince_read_failures", jint(st->waitsince_failed));
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
		json_object_array_add(a, x);
	}
	json_object_object_add(o, "sites", a);

	json_object_object_add(o, "wakers", json_object_new_array());
	json_object_object_add(o, "wakers_unavailable",
			       json_object_new_string("who wakes whom needs the exact mode "
						      "(park/ready probes), not built yet"));

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

static void print_text(struct json_object *rep, const struct ct_env *env)
{
	struct json_object *a, *e, *g;
	char b1[32], b2[32], b3[32];
	size_t n;

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
	printf("  (counts are episodes seen %s apart; shorter ones are undercounted)\n",
	       fmt_ns((double)jget_i(rep, "resolution_ns"), b3, sizeof(b3)));

	printf("\n");
	json_object_object_get_ex(rep, "sched_latency", &g);
	print_hist_line("scheduling latency (runnable -> running)", g);
	json_object_object_get_ex(rep, "gc_pauses", &g);
	print_hist_line("GC stop-the-world pauses", g);
	if (jget_i(rep, "runtime_sync_wait_ns") >= 0)
		printf("runtime's own sync.Mutex/RWMutex wait estimate: %s\n",
		       fmt_ns((double)jget_i(rep, "runtime_sync_wait_ns"), b1, sizeof(b1)));
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
	err = sample(&r, &env);
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
	contention__free(r.ct);
	proc_mem__free(r.mem);
	go_model__free(r.m);
	return ret;
}
