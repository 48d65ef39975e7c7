// SPDX-License-Identifier: MIT
/*
 * Allocation sampling in BPF under a CPU budget (see bpfsample.h).
 *
 * The governor thread ticks every few milliseconds at the lowest real-time priority (a
 * target that keeps both CPUs busy trapping must not starve it): it reads the hit count,
 * charges hits x cost per hit to the shared governor's token bucket (engine/governor.h),
 * and detaches every probe when the bucket runs dry; they come back when it is full
 * again. The probes of one program are one gov_link (all of mallocgc's variants are one
 * uprobe_multi link): detaching removes every breakpoint at once, the link's RCU wait
 * happens in a reaper thread.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "gotrace/heapalloc.h"
#include "heapalloc.skel.h"

#include "bpf/bpf_support.h"
#include "engine/governor.h"
#include "goruntime/probes.h"
#include "heap/bpfsample.h"
#include "util/log.h"

#define TICK_MS 5
#define BURST_S 0.5	   /* the bucket holds this many seconds of budget */
#define DEFAULT_MAX_STACKS 8192
#define MAX_LINKS 3	   /* ha_refill + ha_large, or ha_alloc */

struct probe {
	struct heap_bpf_probe pub; /* copied to heap_bpf.pub for the stats */
	struct bpf_program *prog;
	enum gov_kind kind;
};

/* The probes of one program: one link, all their offsets at once. */
struct link {
	struct bpf_program *prog;
	uint64_t offs[HEAP_BPF_MAX_PROBES];
	int n;
	int first; /* its first probe, for messages */
	struct gov_link gl;
};

struct heap_bpf {
	const struct go_model *m;
	pid_t pid;
	struct heap_bpf_opts o;
	enum heap_bpf_at at;
	struct heapalloc_bpf *skel;
	struct probe probes[HEAP_BPF_MAX_PROBES];
	struct heap_bpf_probe pub[HEAP_BPF_MAX_PROBES];
	int nprobes;
	struct link links[MAX_LINKS];
	int nlinks;
	int ncpus;
	struct ha_counters *pcpu;
	double trap_ns; /* the costliest kind of the probed instructions */
	bool calibrated;

	pthread_t thread;
	bool thread_started, stopping;
	pthread_mutex_t lock; /* everything below */
	pthread_cond_t wake;
	struct gov_bucket bucket;
	bool attached, target_exited, ever_detached, stopped;
	double t0, last_tick, spent;
	double rate; /* hits per second while attached, for a detach's unseen tail */
	/*
	 * The rates while attached come from the stretches between the end of an attach
	 * (every probe in) and a detach: attaching can take long on a busy target, and
	 * probes come out one by one after a detach. Counters at the stretch's start:
	 */
	double attached_s, full_since;
	struct ha_counters full0, full; /* full: sums over the finished stretches */
	uint64_t attaches, hits_prev;
	double prog_ns;	     /* per hit */
	bool prog_ns_measured;
	struct ha_counters sum;
	struct gov_reaper reaper;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *heap_bpf__at_name(enum heap_bpf_at at)
{
	return at == HEAP_BPF_AT_MALLOCGC ? "mallocgc" : "refill";
}

/* ---------------------------------------------------------------- probe sites */

/*
 * runtime.mcache and runtime.mspan fields ha_refill reads, from the DWARF of go1.19.8
 * and go1.21.13 ... go1.27.4 builds (gdb `ptype /o`): mcache.alloc, mspan.allocCount,
 * mspan.allocCountBeforeCache, mspan.elemsize. 1.24 added mcache.memProfRate before
 * alloc; 1.22 shrank mspan.freeindex and nelems to uint16.
 */
static int refill_offsets(int minor, uint32_t o[4])
{
	static const struct {
		int lo, hi;
		uint32_t o[4];
	} tab[] = {
		{ 19, 19, { 40, 96, 102, 104 } },
		{ 21, 21, { 40, 104, 110, 112 } },
		{ 22, 23, { 40, 96, 102, 104 } },
		{ 24, 27, { 48, 96, 102, 104 } },
	};

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		if (minor >= tab[i].lo && minor <= tab[i].hi) {
			memcpy(o, tab[i].o, sizeof(tab[i].o));
			return 0;
		}
	}
	return -ENOTSUP;
}

/* Add a probe on FN after its stack-check prologue, running PROG. 0 or -errno. */
static int add_probe(struct heap_bpf *hb, const struct go_func *fn, struct bpf_program *prog,
		     const char *prog_name)
{
	uint16_t machine = elf_file__machine(hb->m->ef);
	struct probe *p = &hb->probes[hb->nprobes];
	uint64_t size = fn->end > fn->entry ? fn->end - fn->entry : 0;
	const uint8_t *code = size ? elf_file__vaddr_ptr(hb->m->ef, fn->entry, size) : NULL;
	enum go_attach_kind kind;
	uint32_t off = 0;
	bool check = false;
	char insn[48];
	int err;

	if (hb->nprobes >= HEAP_BPF_MAX_PROBES) {
		gt_seterr("%s: more than %d allocation functions to probe", hb->m->path,
			  HEAP_BPF_MAX_PROBES);
		return -E2BIG;
	}
	if (!code) {
		gt_seterr("%s: the code of %s is not in the file", hb->m->path, fn->name);
		return -ENOENT;
	}
	err = insn__attach_point(machine, code, size, fn->entry, &off, insn, sizeof(insn),
				 &kind, &check);
	if (!err && elf_file__vaddr_to_offset(hb->m->ef, fn->entry + off, &p->pub.file_off))
		err = -ENOENT;
	if (err) {
		gt_seterr("%s: cannot find where to probe %s", hb->m->path, fn->name);
		return err;
	}
	p->pub.func = fn->name;
	p->pub.prog = prog_name;
	p->pub.addr = fn->entry + off;
	/* How the kernel handles the probed instruction sets the trap's cost. */
	p->kind = gov_site_kind(machine, code + off, size - off);
	p->pub.insn_kind = gov_kind_name(p->kind);
	p->prog = prog;
	hb->pub[hb->nprobes++] = p->pub;
	return 0;
}

static const struct go_func *func(const struct heap_bpf *hb, const char *name)
{
	return pclntab__func_by_name(hb->m->pcln, name);
}

static int resolve_refill(struct heap_bpf *hb)
{
	const struct go_func *refill = func(hb, "runtime.(*mcache).refill");
	const struct go_func *large = func(hb, "runtime.(*mcache).allocLarge");
	uint32_t o[4];
	int err;

	if (refill_offsets(hb->m->bi.minor, o)) {
		gt_seterr("%s: %s: the runtime.mspan layout is known for go1.19 and go1.21 to "
			  "go1.27 only (try --bpf-at mallocgc)", hb->m->path, hb->m->bi.version);
		return -ENOTSUP;
	}
	if (!refill || !large) {
		gt_seterr("%s: no function %s", hb->m->path, refill ? "runtime.(*mcache).allocLarge"
								 : "runtime.(*mcache).refill");
		return -ENOENT;
	}
	hb->skel->rodata->off_mcache_alloc = o[0];
	hb->skel->rodata->off_span_alloc_count = o[1];
	hb->skel->rodata->off_span_count_before = o[2];
	hb->skel->rodata->off_span_elemsize = o[3];
	err = add_probe(hb, refill, hb->skel->progs.ha_refill, "ha_refill");
	if (!err)
		err = add_probe(hb, large, hb->skel->progs.ha_large, "ha_large");
	return err;
}

/*
 * The functions every allocation enters exactly once (see bpfsample.h): with the 1.27
 * size-specialized routines, those and the four general ones mallocgc calls for the
 * sizes they do not cover; 1.24-1.26, the five bodies mallocgc is split into; before,
 * mallocgc itself.
 */
static int resolve_mallocgc(struct heap_bpf *hb)
{
	static const char *const general[] = {
		"runtime.mallocgcSmallNoscan", "runtime.mallocgcSmallScanNoHeader",
		"runtime.mallocgcSmallScanHeader", "runtime.mallocgcLarge",
		"runtime.mallocgcTiny",
	};
	const struct pclntab *p = hb->m->pcln;
	struct bpf_program *prog = hb->skel->progs.ha_alloc;
	const struct go_func *fn;
	size_t nsc = 0, ngen = 0;
	int err;

	for (size_t i = 0, cnt = pclntab__func_cnt(p); i < cnt; i++) {
		fn = pclntab__func(p, i);
		if (fn && fn->name && go_probes__is_sc_variant(fn->name))
			nsc++;
	}
	for (size_t i = 0; i < 5; i++)
		ngen += func(hb, general[i]) != NULL;
	if (nsc) {
		/* mallocgc sends every size below its tables' length to them: no Tiny. */
		for (size_t i = 0; i < 4; i++) {
			fn = func(hb, general[i]);
			if (!fn) {
				gt_seterr("%s: no function %s next to the size-specialized "
					  "allocators", hb->m->path, general[i]);
				return -ENOENT;
			}
			err = add_probe(hb, fn, prog, "ha_alloc");
			if (err)
				return err;
		}
		for (size_t i = 0, cnt = pclntab__func_cnt(p); i < cnt; i++) {
			fn = pclntab__func(p, i);
			if (fn && fn->name && go_probes__is_sc_variant(fn->name)) {
				err = add_probe(hb, fn, prog, "ha_alloc");
				if (err)
					return err;
			}
		}
		return 0;
	}
	if (ngen == 5) {
		for (size_t i = 0; i < 5; i++) {
			err = add_probe(hb, func(hb, general[i]), prog, "ha_alloc");
			if (err)
				return err;
		}
		return 0;
	}
	if (hb->m->bi.minor >= 24 && ngen) {
		gt_seterr("%s: only %zu of mallocgc's 5 variants are in the binary (inlined?): "
			  "each allocation would not hit exactly one probe", hb->m->path, ngen);
		return -ENOTSUP;
	}
	fn = func(hb, "runtime.mallocgc");
	if (!fn) {
		gt_seterr("%s: no function runtime.mallocgc", hb->m->path);
		return -ENOENT;
	}
	return add_probe(hb, fn, prog, "ha_alloc");
}

/* ---------------------------------------------------------------- links */

/* Group the probes by program: one link each. */
static void group_links(struct heap_bpf *hb)
{
	for (int i = 0; i < hb->nprobes; i++) {
		struct probe *p = &hb->probes[i];
		struct link *l = NULL;

		for (int k = 0; k < hb->nlinks && !l; k++) {
			if (hb->links[k].prog == p->prog)
				l = &hb->links[k];
		}
		if (!l) {
			/* At most MAX_LINKS programs: ha_refill, ha_large, ha_alloc. */
			l = &hb->links[hb->nlinks++];
			gov_link__init(&l->gl);
			l->prog = p->prog;
			l->first = i;
		}
		l->offs[l->n++] = p->pub.file_off;
	}
}

/* Trap cost per hit: the costliest kind among the probed instructions. */
static void trap_cost(struct heap_bpf *hb)
{
	enum gov_kind worst = GOV_KIND_EMULATED;

	for (int i = 0; i < hb->nprobes; i++) {
		if (gov_trap_ns(hb->probes[i].kind) > gov_trap_ns(worst))
			worst = hb->probes[i].kind;
	}
	hb->trap_ns = gov_trap_ns(worst);
	hb->calibrated = gov_costs()->measured;
	vlog("gotrace: uprobe trap cost per hit (%s): %.0f ns, %s\n", gov_kind_name(worst),
	     hb->trap_ns, hb->calibrated ? "measured" : "built-in");
}

/* BPF run time per hit: the costliest of the programs (0 while unknown). */
static double prog_ns(const struct heap_bpf *hb)
{
	double ns = 0;

	for (int k = 0; k < hb->nlinks; k++)
		ns = fmax(ns, gov_prog_ns(hb->links[k].prog));
	return ns;
}

static double cost_per_hit_ns(const struct heap_bpf *hb)
{
	return hb->trap_ns + hb->prog_ns;
}

static int attach_all(struct heap_bpf *hb)
{
	for (int k = 0; k < hb->nlinks; k++) {
		struct link *l = &hb->links[k];
		const struct heap_bpf_probe *p = &hb->probes[l->first].pub;
		int err;

		err = gov_link__attach(&l->gl, l->prog, hb->pid, hb->m->path, l->offs, l->n);
		if (!err)
			continue;
		if (l->n == 1)
			gt_seterr("cannot attach a uprobe to %s at %#" PRIx64 " in %s: %s",
				  p->func, p->addr, hb->m->path, strerror(-err));
		else
			gt_seterr("cannot attach %d uprobes to %s and %d other functions in %s: %s",
				  l->n, p->func, l->n - 1, hb->m->path, strerror(-err));
		return err;
	}
	return 0;
}

/*
 * Detach every probe without waiting for the RCU grace periods (reaper threads). A
 * perf-event fallback keeps trapping unseen for a while: charge that tail, at the rate
 * while attached, to the bucket and to the cost spent.
 */
static void detach_all(struct heap_bpf *hb)
{
	double tail = 0, charge;

	for (int k = 0; k < hb->nlinks; k++)
		tail = fmax(tail, gov_link__detach(&hb->links[k].gl, &hb->reaper));
	if (tail <= 0)
		return;
	charge = hb->rate * tail * cost_per_hit_ns(hb) / 1e9;
	hb->bucket.level -= charge;
	hb->spent += charge;
	dlog("gotrace: heap bpf: %.1f ms of unseen traps after the detach charged: %.4f "
	     "CPU-s\n", tail * 1e3, charge);
}

/* Detach and wait for every link (teardown, failed starts). */
static void destroy_links(struct heap_bpf *hb)
{
	for (int k = 0; k < hb->nlinks; k++)
		gov_link__destroy(&hb->links[k].gl);
}

/* ---------------------------------------------------------------- governor */

/* Sum the per-CPU counters into HB->sum. 0 or -errno. */
static int read_counters(struct heap_bpf *hb)
{
	/* The counters lead the value; the countdown after them is per CPU, not summed. */
	memset(&hb->sum, 0, sizeof(hb->sum));
	return gov_sum_percpu(hb->skel->maps.counters, hb->pcpu, hb->ncpus, sizeof(*hb->pcpu),
			      HA_CNT__NR, (uint64_t *)hb->sum.c);
}

static bool process_gone(pid_t pid)
{
	char path[32];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	return stat(path, &st) != 0;
}

/* Every probe is in from now: a stretch starts. */
static void stretch_start(struct heap_bpf *hb)
{
	if (!read_counters(hb))
		hb->full0 = hb->sum;
	hb->full_since = now_s();
}

/* The stretch ends at T: add its time and counts (from HB->sum, read at T). */
static void stretch_end(struct heap_bpf *hb, double t)
{
	hb->attached_s += t - hb->full_since;
	for (int k = 0; k < HA_CNT__NR; k++)
		hb->full.c[k] += hb->sum.c[k] - hb->full0.c[k];
	hb->full0 = hb->sum;
	hb->full_since = t;
}

/* One governor step (HB->lock held). */
static void tick(struct heap_bpf *hb)
{
	double t = now_s(), dt = t - hb->last_tick, cost = 0, ns;
	enum gov_action a;
	uint64_t dh;

	hb->last_tick = t;
	if (read_counters(hb))
		return;
	dh = hb->sum.c[HA_CNT_HITS] - hb->hits_prev;
	hb->hits_prev = hb->sum.c[HA_CNT_HITS];
	/*
	 * The rate a detach's tail is charged at: the attached stretch's mean (a detach
	 * follows a burst more often than not: the last tick alone overstates it).
	 */
	if (hb->attached && t - hb->full_since > dt)
		hb->rate = (double)(hb->sum.c[HA_CNT_HITS] - hb->full0.c[HA_CNT_HITS]) /
			   (t - hb->full_since);
	else
		hb->rate = dt > 0 ? (double)dh / dt : 0;
	/* The programs' own run time, per hit, when the kernel keeps it. */
	ns = prog_ns(hb);
	if (ns > 0) {
		hb->prog_ns = ns;
		hb->prog_ns_measured = true;
	}
	cost = (double)dh * cost_per_hit_ns(hb) / 1e9;
	hb->spent += cost;
	if (hb->stopped)
		return;
	a = gov_bucket__tick(&hb->bucket, dt, cost, hb->attached);
	if (a == GOV_DETACH) {
		stretch_end(hb, t);
		detach_all(hb);
		hb->attached = false;
		hb->ever_detached = true;
		dlog("gotrace: heap bpf: detached: %.0f hits/s cost %.3f CPU-s/s\n",
		     dt > 0 ? (double)dh / dt : 0, dt > 0 ? cost / dt : 0);
	} else if (a == GOV_ATTACH) {
		double ta = now_s();

		if (process_gone(hb->pid)) {
			hb->target_exited = true;
			hb->stopped = true;
			return;
		}
		if (attach_all(hb)) {
			vlog("gotrace: heap bpf: re-attach failed: %s\n", gt_lasterr());
			detach_all(hb);
			if (process_gone(hb->pid))
				hb->target_exited = true;
			hb->stopped = true;
			return;
		}
		hb->attached = true;
		hb->attaches++;
		stretch_start(hb);
		dlog("gotrace: heap bpf: attached %d probes in %.1f ms\n", hb->nprobes,
		     (hb->full_since - ta) * 1e3);
	}
}

static void *governor_main(void *arg)
{
	struct heap_bpf *hb = arg;

	if (gov_set_rt(true))
		vlog("gotrace: heap bpf governor: no real-time priority\n");
	pthread_mutex_lock(&hb->lock);
	while (!hb->stopping) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += TICK_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&hb->wake, &hb->lock, &ts);
		if (!hb->stopping)
			tick(hb);
	}
	pthread_mutex_unlock(&hb->lock);
	return NULL;
}

/* ---------------------------------------------------------------- lifecycle */

int heap_bpf__start(const struct go_model *m, pid_t pid, const struct heap_bpf_opts *o,
		    struct heap_bpf **out)
{
	pthread_condattr_t ca;
	struct heap_bpf *hb;
	struct stat st;
	int err;

	*out = NULL;
	if (elf_file__machine(m->ef) != EM_X86_64) {
		gt_seterr("%s: allocation sampling in BPF is implemented for x86-64 only",
			  m->path);
		return -ENOTSUP;
	}
	err = bpf_support__check();
	if (err)
		return err;
	/* Trap costs and the kind of links, before any BPF object of ours is loaded. */
	err = gov_init(o && o->no_calibrate);
	if (err)
		return err;
	hb = calloc(1, sizeof(*hb));
	if (!hb)
		return -ENOMEM;
	hb->m = m;
	hb->pid = pid;
	pthread_mutex_init(&hb->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&hb->wake, &ca);
	pthread_condattr_destroy(&ca);
	if (o)
		hb->o = *o;
	if (!hb->o.budget_pct)
		hb->o.budget_pct = HEAP_BPF_DEFAULT_BUDGET_PCT;
	if (!hb->o.period)
		hb->o.period = HEAP_BPF_DEFAULT_PERIOD;
	if (!hb->o.max_stacks)
		hb->o.max_stacks = DEFAULT_MAX_STACKS;
	hb->at = hb->o.at;
	if (hb->at == HEAP_BPF_AT_DEFAULT) {
		uint32_t tmp[4];

		hb->at = refill_offsets(m->bi.minor, tmp) ? HEAP_BPF_AT_MALLOCGC
							  : HEAP_BPF_AT_REFILL;
	}
	hb->ncpus = libbpf_num_possible_cpus();
	if (hb->ncpus <= 0) {
		err = hb->ncpus ? hb->ncpus : -EINVAL;
		gt_seterr("cannot count the CPUs: %s", strerror(-err));
		goto fail;
	}
	hb->pcpu = calloc(hb->ncpus, sizeof(*hb->pcpu));
	if (!hb->pcpu) {
		err = -ENOMEM;
		goto fail;
	}
	hb->skel = heapalloc_bpf__open();
	if (!hb->skel) {
		err = -errno;
		gt_seterr("cannot open the BPF object: %s", strerror(-err));
		goto fail;
	}
	err = hb->at == HEAP_BPF_AT_REFILL ? resolve_refill(hb) : resolve_mallocgc(hb);
	if (err)
		goto fail;
	/* One link per program, made by the governor: their attach type is set before load. */
	group_links(hb);
	for (int k = 0; k < hb->nlinks; k++)
		gov_prepare_prog(hb->links[k].prog);
	/* Our PID is the kernel's only in the initial PID namespace (count.c). */
	if (!stat("/proc/self/ns/pid", &st) && st.st_ino == 0xEFFFFFFCU)
		hb->skel->rodata->targ_tgid = pid;
	hb->skel->rodata->cfg_period = hb->o.period;
	err = bpf_map__set_max_entries(hb->skel->maps.stacks, hb->o.max_stacks);
	if (err) {
		gt_seterr("cannot size the BPF stack table: %s", strerror(-err));
		goto fail;
	}
	err = heapalloc_bpf__load(hb->skel);
	if (err) {
		gt_seterr("cannot load the allocation-sampling BPF programs: %s (run with -vv for "
			  "the verifier log)", strerror(-err));
		goto fail;
	}
	trap_cost(hb);

	gov_bucket__init(&hb->bucket, hb->o.budget_pct < 0 ? -1 : hb->o.budget_pct / 100.0,
			 BURST_S);
	hb->t0 = now_s();
	err = attach_all(hb);
	if (err) {
		destroy_links(hb);
		if (process_gone(pid))
			gt_seterr("process %d exited before the probes were attached", pid);
		goto fail;
	}
	hb->last_tick = now_s();
	stretch_start(hb);
	vlog("gotrace: heap bpf: %d probes attached in %.1f ms\n", hb->nprobes,
	     (hb->last_tick - hb->t0) * 1e3);
	hb->attached = true;
	hb->attaches = 1;
	err = -pthread_create(&hb->thread, NULL, governor_main, hb);
	if (err) {
		gt_seterr("cannot start the governor thread: %s", strerror(-err));
		destroy_links(hb);
		goto fail;
	}
	hb->thread_started = true;
	*out = hb;
	return 0;
fail:
	heap_bpf__free(hb);
	return err;
}

void heap_bpf__stop(struct heap_bpf *hb)
{
	if (!hb)
		return;
	pthread_mutex_lock(&hb->lock);
	if (!hb->stopped) {
		tick(hb); /* account the last stretch */
		if (hb->attached) {
			stretch_end(hb, hb->last_tick);
			detach_all(hb);
		}
		hb->attached = false;
		hb->stopped = true;
	}
	hb->stopping = true;
	pthread_cond_signal(&hb->wake);
	pthread_mutex_unlock(&hb->lock);
	if (hb->thread_started) {
		pthread_join(hb->thread, NULL);
		hb->thread_started = false;
	}
	/* The breakpoints are gone; the reapers finish their grace periods later. */
	gov_reaper__reap(&hb->reaper, false);
}

/* The stretches so far, the current one included: *S seconds, counts in *C. */
static void stretches(const struct heap_bpf *hb, double *s, struct ha_counters *c)
{
	*s = hb->attached_s;
	*c = hb->full;
	if (hb->attached && !hb->stopped) {
		*s += hb->last_tick - hb->full_since;
		for (int k = 0; k < HA_CNT__NR; k++)
			c->c[k] += hb->sum.c[k] - hb->full0.c[k];
	}
}

/* CPU-s per s the probes cost while attached. */
static double cost_attached(const struct heap_bpf *hb)
{
	struct ha_counters c;
	double s;

	stretches(hb, &s, &c);
	return s > 0 ? (double)c.c[HA_CNT_HITS] * cost_per_hit_ns(hb) / 1e9 / s : 0;
}

static void governor_text(struct heap_bpf *hb, char *buf, size_t len, double elapsed)
{
	struct ha_counters c;
	double rate, s;

	stretches(hb, &s, &c);
	rate = s > 0 ? (double)c.c[HA_CNT_HITS] / s : 0;

	if (hb->bucket.budget < 0)
		snprintf(buf, len, "probes attached the whole time (no budget): %.0f hits/s "
			 "cost about %.2f%% of one CPU", rate, 100 * cost_attached(hb));
	else if (!hb->ever_detached)
		snprintf(buf, len, "probes attached the whole time: %.0f hits/s cost about "
			 "%.2f%% of one CPU, within the %g%% budget", rate, 100 * cost_attached(hb),
			 hb->o.budget_pct);
	else
		snprintf(buf, len, "duty-cycled: %.0f hits/s x %.1f us per hit cost %.1f%% of one "
			 "CPU while attached, over the %g%% budget, so the probes were attached "
			 "%.1f%% of the time (%" PRIu64 " windows)", rate,
			 cost_per_hit_ns(hb) / 1e3, 100 * cost_attached(hb),
			 hb->o.budget_pct, elapsed > 0 ? 100 * s / elapsed : 0,
			 hb->attaches);
}

int heap_bpf__stats(struct heap_bpf *hb, struct heap_bpf_stats *st)
{
	double t;

	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&hb->lock);
	if (!hb->stopped)
		tick(hb);
	else
		read_counters(hb);
	t = (hb->stopped ? hb->last_tick : now_s()) - hb->t0;
	st->at = heap_bpf__at_name(hb->at);
	st->nprobes = hb->nprobes;
	st->period = hb->o.period;
	st->hits = hb->sum.c[HA_CNT_HITS];
	st->bytes = hb->sum.c[HA_CNT_BYTES];
	st->objects = hb->sum.c[HA_CNT_OBJECTS];
	st->samples = hb->sum.c[HA_CNT_SAMPLES];
	st->empty = hb->sum.c[HA_CNT_EMPTY];
	st->read_errors = hb->sum.c[HA_CNT_READ_ERR];
	st->stack_errors = hb->sum.c[HA_CNT_STACK_ERR];
	st->stacks_full = hb->sum.c[HA_CNT_STACKS_FULL];
	st->elapsed_s = t;
	{
		struct ha_counters c;

		stretches(hb, &st->attached_s, &c);
		st->attached_hits = c.c[HA_CNT_HITS];
		st->attached_bytes = c.c[HA_CNT_BYTES];
		st->attached_objects = c.c[HA_CNT_OBJECTS];
	}
	st->attaches = hb->attaches;
	st->trap_ns = hb->trap_ns;
	st->prog_ns = hb->prog_ns;
	st->calibrated = hb->calibrated;
	st->multi_links = gov_costs()->multi;
	st->prog_ns_measured = hb->prog_ns_measured;
	st->budget_pct = hb->bucket.budget < 0 ? -1 : hb->o.budget_pct;
	st->cost_pct_attached = 100 * cost_attached(hb);
	st->cost_pct_avg = t > 0 ? 100 * hb->spent / t : 0;
	st->attached = hb->attached;
	st->target_exited = hb->target_exited;
	governor_text(hb, st->governor, sizeof(st->governor), t);
	pthread_mutex_unlock(&hb->lock);
	st->probes = hb->pub;
	return 0;
}

int heap_bpf__foreach_stack(struct heap_bpf *hb,
			    int (*cb)(void *ctx, const uint64_t *pcs, uint32_t n, uint64_t samples,
				      uint64_t bytes, uint64_t objects),
			    void *ctx)
{
	int fd = bpf_map__fd(hb->skel->maps.stacks);
	struct ha_stack key, next;
	struct ha_site v;
	void *prev = NULL;
	int ret;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		uint32_t n = 0;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &v))
			continue;
		while (n < HA_MAX_DEPTH && key.pcs[n])
			n++;
		ret = cb(ctx, (const uint64_t *)key.pcs, n, v.samples, v.bytes, v.objects);
		if (ret)
			return ret;
	}
	return 0;
}

void heap_bpf__free(struct heap_bpf *hb)
{
	if (!hb)
		return;
	heap_bpf__stop(hb);
	gov_reaper__reap(&hb->reaper, true);
	destroy_links(hb);
	heapalloc_bpf__destroy(hb->skel);
	free(hb->pcpu);
	pthread_cond_destroy(&hb->wake);
	pthread_mutex_destroy(&hb->lock);
	free(hb);
}
