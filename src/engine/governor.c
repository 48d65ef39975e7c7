// SPDX-License-Identifier: MIT
/*
 * Cost of uprobe hits, links that stop trapping when detached, and the budget's token
 * bucket (see governor.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <elf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "engine/governor.h"
#include "calib.skel.h"

#include "util/log.h"

/*
 * Built-in trap cost per hit (bench/probe_cost.sh, kernel 6.18 on the project's
 * machines), used when timing is off or fails.
 */
#define BUILTIN_EMULATED_NS 5400.0
#define BUILTIN_SINGLESTEP_NS 19000.0
#define BUILTIN_NOP5_NS 1300.0

/* Until a perf-event detach has been timed: the tail seen under load here. */
#define PERF_TAIL_GUESS_S 0.08
#define PERF_TAIL_MAX_S 0.15

/* Not in the headers of Debian 12's libbpf 1.1 and kernel 6.1 uapi (Linux 6.6+). */
#define GOV_BPF_TRACE_UPROBE_MULTI 48

#define CALIB_CALLS 200
#define CALIB_ROUNDS 3

static const char *const kind_names[GOV_KIND__CNT] = { "emulated", "single-step", "nop5" };

static pthread_mutex_t gov_lock = PTHREAD_MUTEX_INITIALIZER;
static bool gov_done;
static int gov_err;
static struct gov_costs costs = {
	.trap_ns = { [GOV_KIND_EMULATED] = BUILTIN_EMULATED_NS,
		     [GOV_KIND_SINGLESTEP] = BUILTIN_SINGLESTEP_NS,
		     [GOV_KIND_NOP5] = BUILTIN_NOP5_NS },
};
static int stats_fd = -1; /* BPF run-time stats on while open: kept for the process */
static double perf_tail_s = PERF_TAIL_GUESS_S;
static bool perf_tail_timed;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

const char *gov_kind_name(enum gov_kind k)
{
	return k < GOV_KIND__CNT ? kind_names[k] : "?";
}

enum gov_kind gov_kind_of(enum go_attach_kind k)
{
	return k == GO_ATTACH_EMULATED ? GOV_KIND_EMULATED : GOV_KIND_SINGLESTEP;
}

enum gov_kind gov_site_kind(uint16_t machine, const uint8_t *code, size_t len)
{
	static const uint8_t nop5[] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };

	if (!code)
		return GOV_KIND_SINGLESTEP;
	if (machine == EM_X86_64 && len >= sizeof(nop5) && !memcmp(code, nop5, sizeof(nop5)))
		return GOV_KIND_NOP5;
	return gov_kind_of(insn__attach_kind(machine, code, len));
}

const struct gov_costs *gov_costs(void)
{
	return &costs;
}

double gov_trap_ns(enum gov_kind k)
{
	return costs.trap_ns[k < GOV_KIND__CNT ? k : GOV_KIND_SINGLESTEP];
}

void gov_prepare_prog(struct bpf_program *prog)
{
	if (costs.multi)
		bpf_program__set_expected_attach_type(prog, GOV_BPF_TRACE_UPROBE_MULTI);
}

double gov_prog_ns(const struct bpf_program *prog)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	/* A mean over a few runs is noise (a preempted run on a VM counts 100 us). */
	if (stats_fd < 0 || bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) ||
	    info.run_cnt < 100)
		return 0;
	return (double)info.run_time_ns / (double)info.run_cnt;
}

int gov_sum_percpu(const struct bpf_map *map, void *pcpu, int ncpus, size_t vsize,
		   size_t nwords, uint64_t *sum)
{
	__u32 zero = 0;
	int err;

	err = bpf_map__lookup_elem(map, &zero, sizeof(zero), pcpu, ncpus * vsize, 0);
	if (err)
		return err;
	memset(sum, 0, nwords * sizeof(*sum));
	for (int i = 0; i < ncpus; i++) {
		const uint64_t *v = (const uint64_t *)((const char *)pcpu + i * vsize);

		for (size_t k = 0; k < nwords; k++)
			sum[k] += v[k];
	}
	return 0;
}

/* ---------------------------------------------------------------- links */

/* BPF_LINK_CREATE's attributes for a uprobe_multi link (include/uapi/linux/bpf.h). */
struct multi_attr {
	__u32 prog_fd, target_fd, attach_type, flags;
	__u64 path, offsets, ref_ctr_offsets, cookies;
	__u32 cnt, mflags, pid, pad;
};

static int multi_link_create(struct bpf_program *prog, pid_t pid, const char *path,
			     const uint64_t *offs, int n)
{
	struct multi_attr a;
	int fd;

	memset(&a, 0, sizeof(a));
	a.prog_fd = bpf_program__fd(prog);
	a.attach_type = GOV_BPF_TRACE_UPROBE_MULTI;
	a.path = (uintptr_t)path;
	a.offsets = (uintptr_t)offs;
	a.cnt = n;
	a.pid = pid;
	fd = syscall(__NR_bpf, BPF_LINK_CREATE, &a, sizeof(a));
	return fd < 0 ? -errno : fd;
}

void gov_link__init(struct gov_link *l)
{
	l->fd = -1;
	l->perf = NULL;
	l->n = 0;
}

bool gov_link__attached(const struct gov_link *l)
{
	if (l->fd >= 0)
		return true;
	for (int i = 0; l->perf && i < l->n; i++) {
		if (l->perf[i])
			return true;
	}
	return false;
}

int gov_link__attach(struct gov_link *l, struct bpf_program *prog, pid_t pid, const char *path,
		     const uint64_t *offs, int n)
{
	if (gov_link__attached(l))
		return 0;
	if (costs.multi) {
		int fd = multi_link_create(prog, pid, path, offs, n);

		if (fd < 0)
			return fd;
		l->fd = fd;
		return 0;
	}
	if (!l->perf || l->n < n) {
		struct bpf_link **v = realloc(l->perf, n * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->perf = v;
	}
	l->n = n;
	memset(l->perf, 0, n * sizeof(*l->perf));
	for (int i = 0; i < n; i++) {
		l->perf[i] = bpf_program__attach_uprobe_opts(prog, pid, path, offs[i], NULL);
		if (!l->perf[i]) {
			int err = -errno;

			gov_link__destroy(l);
			return err;
		}
	}
	return 0;
}

struct reap_job {
	int fd;
	struct bpf_link *link;
};

static void *reap_main(void *arg)
{
	struct reap_job *j = arg;

	if (j->fd >= 0) {
		close(j->fd);
	} else {
		/* The probe traps until this returns: time it, for the tail charged. */
		double t = now_s();

		bpf_link__destroy(j->link);
		/*
		 * Destroys run in parallel, each waiting for the others' grace periods
		 * (seconds with 18 links) after its breakpoints went: cap the sample.
		 */
		t = fmin(now_s() - t, PERF_TAIL_MAX_S);
		pthread_mutex_lock(&gov_lock);
		perf_tail_s = perf_tail_timed ? 0.8 * perf_tail_s + 0.2 * t : t;
		perf_tail_timed = true;
		pthread_mutex_unlock(&gov_lock);
	}
	free(j);
	return NULL;
}

void gov_reaper__reap(struct gov_reaper *r, bool wait)
{
	int k = 0;

	for (int i = 0; i < r->n; i++) {
		if (wait)
			pthread_join(r->t[i], NULL);
		else if (pthread_tryjoin_np(r->t[i], NULL))
			r->t[k++] = r->t[i];
	}
	r->n = k;
	if (wait) {
		free(r->t);
		r->t = NULL;
		r->cap = 0;
	}
}

/* Close FD or destroy LINK in a thread of R (inline when no thread can be had). */
static void reap_async(struct gov_reaper *r, int fd, struct bpf_link *link)
{
	struct reap_job *j = malloc(sizeof(*j));

	if (j) {
		j->fd = fd;
		j->link = link;
	}
	gov_reaper__reap(r, false);
	if (j && r->n == r->cap) {
		int cap = r->cap ? 2 * r->cap : 8;
		pthread_t *v = realloc(r->t, cap * sizeof(*v));

		if (v) {
			r->t = v;
			r->cap = cap;
		}
	}
	/* Reaper threads inherit the governor's priority: the breakpoints go promptly. */
	if (j && r->n < r->cap && !pthread_create(&r->t[r->n], NULL, reap_main, j)) {
		r->n++;
		return;
	}
	free(j);
	if (fd >= 0)
		close(fd);
	else
		bpf_link__destroy(link);
}

double gov_link__detach(struct gov_link *l, struct gov_reaper *r)
{
	bool perf = false;
	double tail;

	if (l->fd >= 0) {
		reap_async(r, l->fd, NULL);
		l->fd = -1;
	}
	for (int i = 0; l->perf && i < l->n; i++) {
		if (l->perf[i]) {
			reap_async(r, -1, l->perf[i]);
			l->perf[i] = NULL;
			perf = true;
		}
	}
	if (!perf)
		return 0;
	pthread_mutex_lock(&gov_lock);
	tail = perf_tail_s;
	pthread_mutex_unlock(&gov_lock);
	return tail;
}

void gov_link__destroy(struct gov_link *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	for (int i = 0; l->perf && i < l->n; i++)
		bpf_link__destroy(l->perf[i]);
	free(l->perf);
	l->perf = NULL;
	l->n = 0;
}

/* ---------------------------------------------------------------- calibration */

/*
 * Three tiny functions of our own whose first instruction the kernel handles like the
 * probe sites in Go code: "push %rbp" is emulated, "sub $8, %rsp" single-stepped out
 * of line (arch/x86/kernel/uprobes.c), a 5-byte nop optimized into a trampoline call.
 */
#if defined(__x86_64__)
__asm__(".pushsection .text.gov_calib,\"ax\",@progbits\n"
	".p2align 4\n"
	".globl gov_calib_push\n"
	".hidden gov_calib_push\n"
	".type gov_calib_push,@function\n"
	"gov_calib_push:\n"
	"	push %rbp\n"
	"	pop %rbp\n"
	"	ret\n"
	".size gov_calib_push, .-gov_calib_push\n"
	".p2align 4\n"
	".globl gov_calib_step\n"
	".hidden gov_calib_step\n"
	".type gov_calib_step,@function\n"
	"gov_calib_step:\n"
	"	sub $8, %rsp\n"
	"	add $8, %rsp\n"
	"	ret\n"
	".size gov_calib_step, .-gov_calib_step\n"
	".p2align 4\n"
	".globl gov_calib_nop5\n"
	".hidden gov_calib_nop5\n"
	".type gov_calib_nop5,@function\n"
	"gov_calib_nop5:\n"
	"	.byte 0x0f, 0x1f, 0x44, 0x00, 0x00\n" /* nopl 0x0(%rax,%rax,1) */
	"	ret\n"
	".size gov_calib_nop5, .-gov_calib_nop5\n"
	".popsection\n");
void gov_calib_push(void);
void gov_calib_step(void);
void gov_calib_nop5(void);
#endif

static double thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Fastest of CALIB_ROUNDS rounds, CPU ns per call of FN. */
static double time_calls(void (*volatile fn)(void))
{
	double best = INFINITY;

	for (int r = 0; r < CALIB_ROUNDS; r++) {
		double t = thread_cpu_ns();

		for (int i = 0; i < CALIB_CALLS; i++)
			fn();
		t = (thread_cpu_ns() - t) / CALIB_CALLS;
		if (t < best)
			best = t;
	}
	return best;
}

/* File offset of our own code at ADDR, and the path of the file, from /proc/self/maps. */
static int self_file_offset(uint64_t addr, char *path, size_t len, uint64_t *off)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[4352];
	int err = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long lo, hi, pgoff;
		char perms[8], file[4096];

		file[0] = 0;
		if (sscanf(line, "%llx-%llx %7s %llx %*s %*s %4095s", &lo, &hi, perms, &pgoff,
			   file) < 4)
			continue;
		if (addr < lo || addr >= hi || perms[2] != 'x' || file[0] != '/')
			continue;
		*off = addr - lo + pgoff;
		/*
		 * Our own executable (where the calibration code is), by a name that stays
		 * this file when a build replaces it on disk while we run.
		 */
		snprintf(path, len, "/proc/self/exe");
		err = 0;
		break;
	}
	fclose(f);
	return err;
}

/*
 * Trap cost of one hit on FN's first instruction in *NS, through the links the engines
 * will use: 0, 1 when the timing is not to be trusted, -errno when no link can be made.
 */
static int calibrate_one(struct calib_bpf *skel, void (*fn)(void), double *ns)
{
	struct gov_link l;
	char path[4096];
	uint64_t off = 0, h0, h1;
	double base, traced;
	int err;

	if (self_file_offset((uint64_t)(uintptr_t)fn, path, sizeof(path), &off))
		return 1;
	base = time_calls(fn);
	gov_link__init(&l);
	err = gov_link__attach(&l, skel->progs.gov_calib, getpid(), path, &off, 1);
	if (err)
		return err;
	h0 = __atomic_load_n(&skel->bss->hits, __ATOMIC_RELAXED);
	traced = time_calls(fn);
	h1 = __atomic_load_n(&skel->bss->hits, __ATOMIC_RELAXED);
	gov_link__destroy(&l);
	/* Every call must have hit: otherwise the timing measured something else. */
	if (h1 - h0 != CALIB_CALLS * CALIB_ROUNDS || traced <= base)
		return 1;
	*ns = traced - base;
	return 0;
}

/* Time the three kinds; the table stays as it was unless all three succeed. */
static bool calibrate(struct calib_bpf *skel)
{
	double ns[GOV_KIND__CNT];

#if defined(__x86_64__)
	if (calibrate_one(skel, gov_calib_push, &ns[GOV_KIND_EMULATED]) ||
	    calibrate_one(skel, gov_calib_step, &ns[GOV_KIND_SINGLESTEP]) ||
	    calibrate_one(skel, gov_calib_nop5, &ns[GOV_KIND_NOP5]))
		return false;
	memcpy(costs.trap_ns, ns, sizeof(ns));
	return true;
#else
	(void)skel;
	(void)ns;
	return false;
#endif
}

static struct calib_bpf *calib_load(bool multi)
{
	struct calib_bpf *skel = calib_bpf__open();

	if (!skel)
		return NULL;
	skel->rodata->self_tgid = getpid();
	if (multi)
		bpf_program__set_expected_attach_type(skel->progs.gov_calib,
						      GOV_BPF_TRACE_UPROBE_MULTI);
	if (calib_bpf__load(skel)) {
		calib_bpf__destroy(skel);
		return NULL;
	}
	return skel;
}

/* Does a uprobe_multi link on our own code work here? */
static bool multi_works(struct calib_bpf *skel)
{
	struct gov_link l;
	char path[4096];
	uint64_t off;
	int err;

	if (self_file_offset((uint64_t)(uintptr_t)time_calls, path, sizeof(path), &off))
		return false;
	gov_link__init(&l);
	err = gov_link__attach(&l, skel->progs.gov_calib, getpid(), path, &off, 1);
	gov_link__destroy(&l);
	if (err)
		dlog("gotrace: no uprobe_multi links (%s): perf-event uprobes\n", strerror(-err));
	return !err;
}

static int init_locked(bool no_calibrate)
{
	struct calib_bpf *skel;

	stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	/*
	 * uprobe_multi links where the kernel makes them, else perf-event uprobes
	 * (GOTRACE_NO_UPROBE_MULTI=1 forces those: the tests cover both).
	 */
	costs.multi = !getenv("GOTRACE_NO_UPROBE_MULTI") ||
		      !strcmp(getenv("GOTRACE_NO_UPROBE_MULTI"), "0");
	skel = costs.multi ? calib_load(true) : NULL;
	if (!skel || !multi_works(skel)) {
		if (skel)
			calib_bpf__destroy(skel);
		costs.multi = false;
		skel = calib_load(false);
	}
	if (!skel) {
		int err = errno ? -errno : -EINVAL;

		gt_seterr("cannot load a BPF program: %s", strerror(-err));
		return err;
	}
	costs.measured = !no_calibrate && calibrate(skel);
	calib_bpf__destroy(skel);
	if (!costs.measured && !no_calibrate)
		vlog("gotrace: uprobe cost calibration failed: using the built-in table\n");
	vlog("gotrace: uprobe trap per hit: %.0f ns emulated, %.0f ns single-stepped, %.0f ns at "
	     "a nop5 (%s); %s links\n", costs.trap_ns[GOV_KIND_EMULATED],
	     costs.trap_ns[GOV_KIND_SINGLESTEP], costs.trap_ns[GOV_KIND_NOP5],
	     costs.measured ? "timed here" : "built-in", costs.multi ? "uprobe_multi" : "perf-event");
	return 0;
}

int gov_init(bool no_calibrate)
{
	int err;

	pthread_mutex_lock(&gov_lock);
	if (!gov_done) {
		gov_err = init_locked(no_calibrate);
		gov_done = true;
	}
	err = gov_err;
	pthread_mutex_unlock(&gov_lock);
	return err;
}

/* ---------------------------------------------------------------- budget */

void gov_bucket__init(struct gov_bucket *b, double budget, double burst_s)
{
	b->budget = budget;
	b->burst_s = burst_s;
	b->level = budget > 0 ? budget * burst_s : 0;
}

double gov_bucket__cap(const struct gov_bucket *b)
{
	return b->budget > 0 ? b->budget * b->burst_s : 0;
}

enum gov_action gov_bucket__tick(struct gov_bucket *b, double dt, double cost, bool attached)
{
	double cap = gov_bucket__cap(b);

	if (b->budget < 0)
		return attached ? GOV_KEEP : GOV_ATTACH;
	b->level += b->budget * dt - cost;
	if (b->level > cap)
		b->level = cap;
	if (attached && b->level < 0)
		return GOV_DETACH;
	/* Back once the budget has refilled: on average on budget / cost of the time. */
	if (!attached && b->level >= cap)
		return GOV_ATTACH;
	return GOV_KEEP;
}

int gov_set_rt(bool on)
{
	struct sched_param sp = { .sched_priority = on ? 1 : 0 };

	return pthread_setschedparam(pthread_self(), on ? SCHED_FIFO : SCHED_OTHER, &sp);
}
