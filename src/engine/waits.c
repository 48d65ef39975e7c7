// SPDX-License-Identifier: MIT
/*
 * Exact blocked time of one process, under an overhead governor.
 *
 * The target pays for every hit of gopark and ready: a trap into the kernel (the
 * kernel emulates "push %rbp", the after-prologue instruction from Go 1.21 on, in one
 * trap; "sub $N, %rsp" of Go 1.19 is single-stepped out of line, several times dearer)
 * plus the BPF program. Both costs come from the shared governor (engine/governor.c):
 * the trap timed once per process by instruction kind, the BPF run time from the
 * kernel's BPF stats. The governor thread turns hits per second into CPU-seconds per
 * second of the target and spends a token bucket that fills at the budget's rate: when
 * it is empty, both probes are detached together (a park without its ready is
 * worthless), and they come back with a new generation when it is full again.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "engine/waits.h"
#include "waits.skel.h"

#include "bpf/bpf_support.h"
#include "engine/governor.h"
#include "goruntime/probes.h"
#include "util/log.h"

#define DEFAULT_MAX_PARKED 65536
#define DEFAULT_MAX_SITES 4096
#define DEFAULT_MAX_WAKERS 8192
#define DEFAULT_MAX_STACKS 16384
#define DEFAULT_TICK_MS 20
#define BURST_S 1.0		/* the bucket holds this many seconds of budget */
#define WIN_G 256		/* bytes of a g the BPF side reads at once (WT_GWIN) */

struct wprobe {
	enum go_probe_role role;
	const char *func;
	char insn[48];
	enum gov_kind kind;	/* of the probed instruction: sets the trap's cost */
	uint64_t file_off;
	uint64_t pc;		/* runtime address of the probed instruction */
	struct bpf_program *prog;
	struct gov_link link;
	uint64_t hits, hits_prev;
	double rate;		/* hits/s over the last accounted stretch */
	double prog_ns;
};

struct waits {
	const struct go_model *m;
	pid_t pid;
	struct waits_opts o;
	struct waits_bpf *skel;
	struct wprobe probes[WT_PROBE__CNT];
	int ncpus;
	struct wt_counters *pcpu;
	struct wt_counters sum;

	pthread_t thread;
	bool thread_started;
	int stop_fd;
	pthread_mutex_t lock;	/* everything below */
	enum waits_state state;
	double t0, last_tick, state_since;
	double on_s, off_s, first_off;
	uint64_t off_windows;
	struct gov_bucket bucket; /* budget < 0: none */
	double spent, est_now;
	double tail_spent;	/* of SPENT: unseen perf-event tails after detach */
	bool target_exited;
	struct gov_reaper reaper; /* threads closing links */
	uint64_t *stackbuf;	/* scratch for foreach callbacks */
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Cost of one hit of P in ns: the trap by instruction kind, plus the BPF program. */
static double probe_cost(const struct wprobe *p)
{
	return gov_trap_ns(p->kind) + p->prog_ns;
}

/* ---------------------------------------------------------------- attach, detach */

/*
 * Detach both probes: gopark first, so recorded parks still see their ready meanwhile.
 * The links close in reaper threads. Perf-event uprobes (no uprobe_multi here) keep
 * trapping unseen for a while after: that tail, at each probe's last rate, is charged.
 */
static void probes_off(struct waits *w)
{
	static const int order[WT_PROBE__CNT] = { WT_PROBE_GOPARK, WT_PROBE_READY };
	double tail_cost = 0;

	for (int i = 0; i < WT_PROBE__CNT; i++) {
		struct wprobe *p = &w->probes[order[i]];
		double tail_s = gov_link__detach(&p->link, &w->reaper);

		tail_cost += p->rate * tail_s * probe_cost(p) * 1e-9;
	}
	w->spent += tail_cost;
	w->tail_spent += tail_cost;
	w->bucket.level -= tail_cost;
}

/*
 * Attach both under a new generation: ready first, so that every park recorded can be
 * closed. 0 or -errno (then neither is attached).
 */
static int probes_on(struct waits *w)
{
	static const int order[WT_PROBE__CNT] = { WT_PROBE_READY, WT_PROBE_GOPARK };

	w->skel->bss->gen++;
	for (int i = 0; i < WT_PROBE__CNT; i++) {
		struct wprobe *p = &w->probes[order[i]];
		int err = gov_link__attach(&p->link, p->prog, w->pid, w->m->path, &p->file_off, 1);

		if (err) {
			for (int k = 0; k < WT_PROBE__CNT; k++)
				gov_link__destroy(&w->probes[k].link);
			return err;
		}
	}
	return 0;
}

/* ---------------------------------------------------------------- counters, governor */

static int read_counters(struct waits *w)
{
	/* Every field is a 64-bit counter. */
	int err = gov_sum_percpu(w->skel->maps.counters, w->pcpu, w->ncpus, sizeof(*w->pcpu),
				 sizeof(w->sum) / sizeof(uint64_t), (uint64_t *)&w->sum);

	if (err)
		return err;
	for (int id = 0; id < WT_PROBE__CNT; id++)
		w->probes[id].hits = w->sum.c[WT_CNT_HITS + id];
	return 0;
}

/* BPF run time per hit, when the kernel keeps BPF stats. */
static void read_prog_ns(struct waits *w)
{
	for (int id = 0; id < WT_PROBE__CNT; id++) {
		double ns = gov_prog_ns(w->probes[id].prog);

		if (ns > 0)
			w->probes[id].prog_ns = ns;
	}
}

/* Account the time since the last tick to the current state and to the bucket. */
static enum gov_action account(struct waits *w, double now)
{
	double dt = now - w->last_tick, cost = 0;
	enum gov_action a;

	if (dt <= 0)
		return GOV_KEEP;
	for (int id = 0; id < WT_PROBE__CNT; id++) {
		struct wprobe *p = &w->probes[id];
		uint64_t n = p->hits - p->hits_prev;

		cost += (double)n * probe_cost(p) * 1e-9;
		p->rate = (double)n / dt;
		p->hits_prev = p->hits;
	}
	if (w->state == WAITS_ON)
		w->on_s += dt;
	else if (w->state == WAITS_OFF)
		w->off_s += dt;
	w->spent += cost;
	w->est_now = cost / dt;
	a = gov_bucket__tick(&w->bucket, dt, cost, w->state == WAITS_ON);
	w->last_tick = now;
	return a;
}

/* One governor step: detach when the bucket ran dry, re-attach when it is full. */
static void govern(struct waits *w, double now)
{
	enum gov_action a = account(w, now);

	if (w->target_exited)
		return;
	if (a == GOV_DETACH && w->state == WAITS_ON) {
		probes_off(w);
		w->state = WAITS_OFF;
		w->state_since = now;
		w->off_windows++;
		if (w->first_off < 0)
			w->first_off = now - w->t0;
		vlog("gotrace: governor: probes detached at %.2f s (%.3f CPU-s/s > budget %.3f)\n",
		     now - w->t0, w->est_now, w->bucket.budget);
	} else if (a == GOV_ATTACH && w->state == WAITS_OFF) {
		if (probes_on(w)) {
			vlog("gotrace: governor: cannot re-attach the probes\n");
			return;
		}
		w->state = WAITS_ON;
		w->state_since = now;
		dlog("gotrace: governor: probes on again at %.2f s\n", now - w->t0);
	}
}

static void *governor_main(void *arg)
{
	struct waits *w = arg;
	struct pollfd pfd = { .fd = w->stop_fd, .events = POLLIN };
	double last_prog = 0;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	/*
	 * Real-time priority: a hot probe keeps trapping while the governor waits for a CPU.
	 * The reaper threads it starts inherit it, so the breakpoints go promptly too.
	 */
	if (gov_set_rt(true))
		vlog("gotrace: governor thread: no real-time priority\n");
	for (;;) {
		double now;

		if (poll(&pfd, 1, (int)w->o.tick_ms) > 0)
			break;
		pthread_mutex_lock(&w->lock);
		now = now_s();
		if (!w->target_exited && kill(w->pid, 0) && errno == ESRCH)
			w->target_exited = true;
		if (now - last_prog > 0.5) {
			read_prog_ns(w);
			last_prog = now;
		}
		if (!read_counters(w))
			govern(w, now);
		gov_reaper__reap(&w->reaper, false);
		pthread_mutex_unlock(&w->lock);
	}
	return NULL;
}

/* ---------------------------------------------------------------- set-up */

static int set_rodata(struct waits *w)
{
	static const enum go_off_id need[] = { GO_OFF_G_GOID, GO_OFF_G_M, GO_OFF_M_CURG,
					       GO_OFF_G_STACK_LO, GO_OFF_G_STACK_HI,
					       GO_OFF_G_SCHED_SP, GO_OFF_G_SCHED_BP };
	static const enum go_off_id pwin[] = { GO_OFF_G_GOID, GO_OFF_G_STACK_LO,
					       GO_OFF_G_STACK_HI };
	static const enum go_off_id cwin[] = { GO_OFF_G_STACK_LO, GO_OFF_G_STACK_HI,
					       GO_OFF_G_SCHED_SP, GO_OFF_G_SCHED_BP };
	const struct go_offsets *off = &w->m->off;
	struct waits_bpf__rodata *r = w->skel->rodata;
	struct stat st;

	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		if (off->val[need[i]] < 0) {
			gt_seterr("%s: no offset of %s for %s", w->m->path,
				  go_offsets__desc(need[i])->name, w->m->bi.version);
			return -ENOTSUP;
		}
	}
	r->off_g_goid = off->val[GO_OFF_G_GOID];
	r->off_g_m = off->val[GO_OFF_G_M];
	r->off_m_curg = off->val[GO_OFF_M_CURG];
	r->off_g_stack_lo = off->val[GO_OFF_G_STACK_LO];
	r->off_g_stack_hi = off->val[GO_OFF_G_STACK_HI];
	r->off_g_sched_sp = off->val[GO_OFF_G_SCHED_SP];
	r->off_g_sched_bp = off->val[GO_OFF_G_SCHED_BP];
	go_offsets__window(off, pwin, 3, WIN_G, &r->pwin_off, &r->pwin_len);
	go_offsets__window(off, cwin, 4, WIN_G, &r->cwin_off, &r->cwin_len);
	r->cfg_stack_depth = w->o.stack_depth;
	/* The kernel's tgid is our view of it only in the initial PID namespace. */
	if (!stat("/proc/self/ns/pid", &st) && st.st_ino == 0xEFFFFFFCU)
		r->targ_tgid = w->pid;
	return 0;
}

static int resolve(struct waits *w)
{
	static const struct {
		enum go_probe_role role;
		const char *prog;
	} spec[WT_PROBE__CNT] = {
		[WT_PROBE_GOPARK] = { GO_PROBE_GOPARK, "wt_gopark" },
		[WT_PROBE_READY] = { GO_PROBE_READY, "wt_ready" },
	};
	struct go_probe_site *sites = NULL;
	int n = 0, err;

	err = go_probes__resolve(w->m->ef, w->m->pcln, w->m->bi.minor, &sites, &n);
	if (err) {
		if (!gt_lasterr())
			gt_seterr("cannot resolve the runtime functions: %s", strerror(-err));
		return err;
	}
	for (int id = 0; id < WT_PROBE__CNT; id++) {
		struct wprobe *p = &w->probes[id];
		const struct go_probe_site *s = NULL;

		for (int i = 0; i < n && !s; i++) {
			if (sites[i].role == spec[id].role && sites[i].present)
				s = &sites[i];
		}
		/*
		 * The walk takes the return address at SP and the caller's frame pointer in
		 * BP: true only before the function sets up its own frame.
		 */
		if (!s || (strncmp(s->attach_insn, "push rbp", 8) &&
			   strncmp(s->attach_insn, "sub rsp", 7))) {
			gt_seterr("%s: %s %s: cannot probe it before its frame is set up",
				  w->m->path, s ? s->name : "the runtime function",
				  s ? s->attach_insn : "not found");
			free(sites);
			return -ENOTSUP;
		}
		p->role = spec[id].role;
		p->func = s->name;
		snprintf(p->insn, sizeof(p->insn), "%s", s->attach_insn);
		p->kind = gov_kind_of(s->attach_kind);
		p->file_off = s->file_offset + s->attach_offset;
		p->pc = go_model__to_runtime(w->m, s->addr + s->attach_offset);
		p->prog = bpf_object__find_program_by_name(w->skel->obj, spec[id].prog);
		/* Before the load: the link type decides the program's expected attach type. */
		gov_prepare_prog(p->prog);
	}
	free(sites);
	return 0;
}

int waits__attach(const struct go_model *m, pid_t pid, const struct waits_opts *o,
		  struct waits **out)
{
	struct waits *w;
	int err;

	*out = NULL;
	if (!m->supported) {
		gt_seterr("%s", m->unsupported_reason[0] ? m->unsupported_reason
							 : "unsupported Go version");
		return -ENOTSUP;
	}
	err = bpf_support__check();
	if (err)
		return err;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->m = m;
	w->pid = pid;
	w->stop_fd = -1;
	w->first_off = -1;
	for (int id = 0; id < WT_PROBE__CNT; id++)
		gov_link__init(&w->probes[id].link);
	pthread_mutex_init(&w->lock, NULL);
	if (o)
		w->o = *o;
	if (!w->o.budget_pct)
		w->o.budget_pct = WAITS_DEFAULT_BUDGET_PCT;
	gov_bucket__init(&w->bucket, w->o.budget_pct < 0 ? -1 : w->o.budget_pct / 100.0,
			 BURST_S);
	if (w->o.stack_depth <= 0 || w->o.stack_depth > WT_MAX_STACK)
		w->o.stack_depth = WT_MAX_STACK;
	if (!w->o.max_parked)
		w->o.max_parked = DEFAULT_MAX_PARKED;
	if (!w->o.max_sites)
		w->o.max_sites = DEFAULT_MAX_SITES;
	if (!w->o.max_wakers)
		w->o.max_wakers = DEFAULT_MAX_WAKERS;
	if (!w->o.max_stacks)
		w->o.max_stacks = DEFAULT_MAX_STACKS;
	if (!w->o.tick_ms)
		w->o.tick_ms = DEFAULT_TICK_MS;

	w->ncpus = libbpf_num_possible_cpus();
	if (w->ncpus <= 0) {
		err = w->ncpus ? w->ncpus : -EINVAL;
		gt_seterr("cannot count the CPUs: %s", strerror(-err));
		goto fail;
	}
	w->pcpu = calloc(w->ncpus, sizeof(*w->pcpu));
	w->stackbuf = calloc(2 * (WT_MAX_STACK + 1), sizeof(*w->stackbuf));
	if (!w->pcpu || !w->stackbuf) {
		err = -ENOMEM;
		goto fail;
	}
	/* Trap costs and the kind of links, before the object is opened. */
	err = gov_init(w->o.no_calibrate);
	if (err)
		goto fail;
	w->skel = waits_bpf__open();
	if (!w->skel) {
		err = -errno;
		gt_seterr("cannot open the BPF object: %s", strerror(-err));
		goto fail;
	}
	err = set_rodata(w);
	if (!err)
		err = resolve(w);
	if (err)
		goto fail;
	err = bpf_map__set_max_entries(w->skel->maps.parked, w->o.max_parked);
	if (!err)
		err = bpf_map__set_max_entries(w->skel->maps.sites, w->o.max_sites);
	if (!err)
		err = bpf_map__set_max_entries(w->skel->maps.wakers, w->o.max_wakers);
	if (!err)
		err = bpf_map__set_max_entries(w->skel->maps.stacks, w->o.max_stacks);
	if (err) {
		gt_seterr("cannot size the BPF maps: %s", strerror(-err));
		goto fail;
	}
	err = waits_bpf__load(w->skel);
	if (err) {
		gt_seterr("cannot load the waits BPF programs: %s (run with -vv for the verifier "
			  "log)", strerror(-err));
		goto fail;
	}

	w->t0 = w->last_tick = w->state_since = now_s();
	w->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (w->stop_fd < 0) {
		err = -errno;
		gt_seterr("cannot create an eventfd: %s", strerror(-err));
		goto fail;
	}
	pthread_mutex_lock(&w->lock);
	err = probes_on(w);
	if (!err)
		w->state = WAITS_ON;
	pthread_mutex_unlock(&w->lock);
	if (err) {
		if (err == -ESRCH || err == -ENOENT)
			gt_seterr("process %d exited before the probes were attached", pid);
		else
			gt_seterr("cannot attach uprobes to %s and %s in %s: %s",
				  w->probes[WT_PROBE_GOPARK].func, w->probes[WT_PROBE_READY].func,
				  m->path, strerror(-err));
		goto fail;
	}
	/* Attached: the governor accounts from now on. */
	w->t0 = w->last_tick = w->state_since = now_s();
	err = -pthread_create(&w->thread, NULL, governor_main, w);
	if (err) {
		gt_seterr("cannot start the governor thread: %s", strerror(-err));
		goto fail;
	}
	w->thread_started = true;
	*out = w;
	return 0;
fail:
	waits__detach(w);
	return err;
}

static void governor_line(struct waits *w, char *buf, size_t len)
{
	double total = w->on_s + w->off_s;

	if (w->bucket.budget < 0)
		snprintf(buf, len, "probes on all the time (no budget)");
	else if (!w->off_windows)
		snprintf(buf, len, "probes on all the time (within the %g%% budget)",
			 w->o.budget_pct);
	else
		snprintf(buf, len, "probes detached %" PRIu64 " times to stay within the %g%% "
			 "budget, first at %.2f s: on %.1f%% of the time; totals are partial",
			 w->off_windows, w->o.budget_pct, w->first_off,
			 total > 0 ? 100.0 * w->on_s / total : 0.0);
}

int waits__poll(struct waits *w, struct waits_stats *st)
{
	double now;
	int err;

	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&w->lock);
	now = now_s();
	err = read_counters(w);
	if (err) {
		pthread_mutex_unlock(&w->lock);
		gt_seterr("cannot read the waits counters: %s", strerror(-err));
		return err;
	}
	read_prog_ns(w);
	if (w->state != WAITS_STOPPED)
		account(w, now);
	st->elapsed_s = (w->state == WAITS_STOPPED ? w->last_tick : now) - w->t0;
	st->on_s = w->on_s;
	st->off_s = w->off_s;
	st->off_windows = w->off_windows;
	st->first_off_s = w->first_off;
	st->partial = w->off_windows > 0;
	st->state = w->state;
	st->budget_pct = w->bucket.budget < 0 ? -1 : w->o.budget_pct;
	st->est_cost_pct = 100.0 * w->est_now;
	st->avg_cost_pct = st->elapsed_s > 0 ? 100.0 * w->spent / st->elapsed_s : 0;
	st->burst_s = BURST_S;
	st->calibrated = gov_costs()->measured;
	st->multi_links = gov_costs()->multi;
	st->tail_charged_s = w->tail_spent;
	for (int id = 0; id < WT_PROBE__CNT; id++) {
		struct wprobe *p = &w->probes[id];
		struct waits_probe_stats *ps = &st->probes[id];

		ps->func = p->func;
		ps->insn = p->insn;
		ps->kind = gov_kind_name(p->kind);
		ps->pc = p->pc;
		ps->hits = p->hits;
		ps->prog_ns = p->prog_ns;
		ps->trap_ns = gov_trap_ns(p->kind);
		ps->cost_ns = probe_cost(p);
	}
	memcpy(st->c, w->sum.c, sizeof(st->c));
	memcpy(st->unseen_reason, w->sum.unseen_reason, sizeof(st->unseen_reason));
	if (!w->target_exited && kill(w->pid, 0) && errno == ESRCH)
		w->target_exited = true;
	st->target_exited = w->target_exited;
	governor_line(w, st->governor, sizeof(st->governor));
	pthread_mutex_unlock(&w->lock);
	return 0;
}

void waits__stop(struct waits *w)
{
	if (!w)
		return;
	if (w->thread_started) {
		uint64_t one = 1;

		if (write(w->stop_fd, &one, sizeof(one)) != sizeof(one))
			elog("gotrace: BUG: cannot stop the governor thread\n");
		pthread_join(w->thread, NULL);
		w->thread_started = false;
	}
	pthread_mutex_lock(&w->lock);
	if (w->state != WAITS_STOPPED) {
		/* The last stretch counts, then nothing changes any more. */
		if (!read_counters(w))
			account(w, now_s());
		probes_off(w);
		w->state = WAITS_STOPPED;
	}
	pthread_mutex_unlock(&w->lock);
	/* The links are closed: no probe traps any more. */
	gov_reaper__reap(&w->reaper, true);
	pthread_mutex_lock(&w->lock);
	read_counters(w);
	pthread_mutex_unlock(&w->lock);
}

/* Stack HASH from the table into BUF (WT_MAX_STACK + 1 words). */
static void get_stack(struct waits *w, __u64 hash, uint64_t *buf, struct waits_stack *out)
{
	struct wt_stack st;

	memset(out, 0, sizeof(*out));
	out->pcs = buf;
	if (!hash || bpf_map__lookup_elem(w->skel->maps.stacks, &hash, sizeof(hash), &st,
					  sizeof(st), 0))
		return;
	out->depth = st.depth <= WT_MAX_STACK ? (int)st.depth : WT_MAX_STACK;
	out->truncated = st.truncated;
	memcpy(buf, st.pcs, out->depth * sizeof(*buf));
}

int waits__foreach_site(struct waits *w, int (*cb)(void *ctx, const struct waits_site *s),
			void *ctx)
{
	int fd = bpf_map__fd(w->skel->maps.sites);
	struct wt_site_key key, next, *prev = NULL;
	struct wt_site *v = malloc(sizeof(*v));

	if (!v)
		return -ENOMEM;
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		struct waits_site s;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, v))
			continue;
		s.reason = (uint8_t)key.reason;
		get_stack(w, key.stack, w->stackbuf, &s.stack);
		s.count = v->count;
		s.total_ns = v->total_ns;
		s.max_ns = v->max_ns;
		s.hist = (const uint64_t *)v->hist;
		if (cb(ctx, &s)) {
			free(v);
			return 1;
		}
	}
	free(v);
	return 0;
}

int waits__foreach_waker(struct waits *w, int (*cb)(void *ctx, const struct waits_waker *k),
			 void *ctx)
{
	int fd = bpf_map__fd(w->skel->maps.wakers);
	struct wt_waker_key key, next, *prev = NULL;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		struct waits_waker k;
		struct wt_waker v;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &v))
			continue;
		k.reason = (uint8_t)key.reason;
		k.no_goroutine = !key.waker;
		get_stack(w, key.waker, w->stackbuf, &k.waker);
		get_stack(w, key.wakee, w->stackbuf + WT_MAX_STACK + 1, &k.wakee);
		k.count = v.count;
		k.total_ns = v.total_ns;
		if (cb(ctx, &k))
			return 1;
	}
	return 0;
}

uint64_t waits__still_parked(struct waits *w)
{
	int fd = bpf_map__fd(w->skel->maps.parked);
	struct wt_gkey key, next, *prev = NULL;
	uint64_t n = 0;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		struct wt_parked v;

		key = next;
		prev = &key;
		if (!bpf_map_lookup_elem(fd, &key, &v))
			n++;
	}
	return n;
}

uint64_t waits__hist_lower(int i)
{
	int b, j;

	if (i <= 0)
		return 0;
	if (i >= WT_HIST_SLOTS - 1)
		return 1ULL << WT_HIST_MAX_BIT;
	b = WT_HIST_MIN_BIT + (i - 1) / WT_HIST_SUB;
	j = (i - 1) % WT_HIST_SUB;
	return (1ULL << b) + ((uint64_t)j << (b - 2));
}

void waits__detach(struct waits *w)
{
	if (!w)
		return;
	if (w->thread_started)
		waits__stop(w);
	for (int id = 0; id < WT_PROBE__CNT; id++)
		gov_link__destroy(&w->probes[id].link);
	gov_reaper__reap(&w->reaper, true);
	waits_bpf__destroy(w->skel);
	if (w->stop_fd >= 0)
		close(w->stop_fd);
	pthread_mutex_destroy(&w->lock);
	free(w->pcpu);
	free(w->stackbuf);
	free(w);
}
