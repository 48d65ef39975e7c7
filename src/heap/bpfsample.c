// SPDX-License-Identifier: MIT
/*
 * Allocation sampling in BPF under a CPU budget (see bpfsample.h).
 *
 * The governor thread ticks every few milliseconds at the lowest real-time priority (a
 * target that keeps both CPUs busy trapping must not starve it): it reads the hit count,
 * charges hits x cost per hit to a token bucket, and detaches every probe when the bucket
 * runs dry; they come back when it is full again. Detaching closes each uprobe in a
 * thread of its own: closing removes the breakpoint at once but then waits for an RCU
 * grace period, and in sequence the last probes would keep trapping all that time.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "gotrace/heapalloc.h"
#include "heapalloc.skel.h"

#include "bpf/bpf_support.h"
#include "goruntime/probes.h"
#include "heap/bpfsample.h"
#include "util/log.h"

/* Trap cost per hit when calibration is off or fails (bench/README.md, kernel 6.18). */
#define COST_EMULATED_NS 5400.0
#define COST_SINGLESTEP_NS 19000.0
#define TICK_MS 5
#define BURST_S 0.5	   /* the bucket holds this many seconds of budget */
#define DEFAULT_MAX_STACKS 8192
#define CALIB_CALLS 200
#define CALIB_ROUNDS 3

struct probe {
	struct heap_bpf_probe pub; /* copied to heap_bpf.pub for the stats */
	struct bpf_program *prog;
	enum go_attach_kind kind;
	struct bpf_link *link;
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
	int ncpus;
	struct ha_counters *pcpu;
	int stats_fd;
	double trap_ns;
	bool calibrated;

	pthread_t thread;
	bool thread_started, stopping;
	pthread_mutex_t lock; /* everything below */
	pthread_cond_t wake;
	struct heap_bpf_bucket bucket;
	bool attached, target_exited, ever_detached, stopped;
	double t0, last_tick, spent;
	/*
	 * The rates while attached come from the stretches between the end of an attach
	 * (every probe in) and a detach: attaching can take long on a busy target, and
	 * probes come out one by one after a detach. Counters at the stretch's start:
	 */
	double attached_s, full_since;
	struct ha_counters full0, full; /* full: sums over the finished stretches */
	uint64_t attaches, hits_prev;
	uint64_t prog_ns_prev, prog_cnt_prev;
	double prog_ns;	     /* per hit */
	bool prog_ns_measured;
	struct ha_counters sum;
	pthread_t *reapers;
	int nreapers, capreapers;
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

/* ---------------------------------------------------------------- bucket */

enum heap_bpf_action heap_bpf_bucket__tick(struct heap_bpf_bucket *b, double dt, double cost,
					   bool attached)
{
	double cap = b->budget * b->burst_s;

	if (b->budget < 0)
		return attached ? HEAP_BPF_KEEP : HEAP_BPF_ATTACH;
	b->level += b->budget * dt - cost;
	if (b->level > cap)
		b->level = cap;
	if (attached && b->level < 0)
		return HEAP_BPF_DETACH;
	/* Back once the budget has refilled: on average on budget / cost of the time. */
	if (!attached && b->level >= cap)
		return HEAP_BPF_ATTACH;
	return HEAP_BPF_KEEP;
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
				 &p->kind, &check);
	if (!err && elf_file__vaddr_to_offset(hb->m->ef, fn->entry + off, &p->pub.file_off))
		err = -ENOENT;
	if (err) {
		gt_seterr("%s: cannot find where to probe %s", hb->m->path, fn->name);
		return err;
	}
	p->pub.func = fn->name;
	p->pub.prog = prog_name;
	p->pub.addr = fn->entry + off;
	p->pub.insn_kind = go_probes__attach_kind_name(p->kind);
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

/* 1.27 size-specialized allocators: PREFIX then a size class number. */
static bool is_sc(const char *name)
{
	static const char *const pfx[] = { "runtime.mallocgcSmallScanNoHeaderSC",
					   "runtime.mallocgcSmallNoScanSC",
					   "runtime.mallocgcTinySC" };

	for (size_t i = 0; i < sizeof(pfx) / sizeof(pfx[0]); i++) {
		size_t l = strlen(pfx[i]);
		const char *d = name + l;

		if (strncmp(name, pfx[i], l) || !*d)
			continue;
		while (*d >= '0' && *d <= '9')
			d++;
		if (!*d)
			return true;
	}
	return false;
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
		if (fn && fn->name && is_sc(fn->name))
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
			if (fn && fn->name && is_sc(fn->name)) {
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

/* ---------------------------------------------------------------- calibration */

/*
 * Two functions of gotrace's own whose first instruction the kernel handles like the
 * probed ones: "push %rbp" is emulated (Go 1.21+ after the stack check), "sub $8, %rsp"
 * is single-stepped out of line (Go 1.19's "sub $N, %rsp"), arch/x86/kernel/uprobes.c.
 */
#if defined(__x86_64__)
__asm__(".pushsection .text.ha_calib,\"ax\",@progbits\n"
	".p2align 4\n"
	".globl ha_calib_push\n"
	".hidden ha_calib_push\n"
	".type ha_calib_push,@function\n"
	"ha_calib_push:\n"
	"	push %rbp\n"
	"	pop %rbp\n"
	"	ret\n"
	".size ha_calib_push, .-ha_calib_push\n"
	".p2align 4\n"
	".globl ha_calib_step\n"
	".hidden ha_calib_step\n"
	".type ha_calib_step,@function\n"
	"ha_calib_step:\n"
	"	sub $8, %rsp\n"
	"	add $8, %rsp\n"
	"	ret\n"
	".size ha_calib_step, .-ha_calib_step\n"
	".popsection\n");
void ha_calib_push(void);
void ha_calib_step(void);
#endif

static double thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
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

/*
 * The file offset of our own code at ADDR, from /proc/self/maps, and a path to the file:
 * /proc/PID/exe, which stays our binary even when a build replaced the file meanwhile.
 */
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
		snprintf(path, len, "/proc/%d/exe", (int)getpid());
		err = 0;
		break;
	}
	fclose(f);
	return err;
}

static uint64_t counter_sum(struct heap_bpf *hb, enum ha_counter k)
{
	__u32 zero = 0;
	uint64_t n = 0;

	if (bpf_map__lookup_elem(hb->skel->maps.counters, &zero, sizeof(zero), hb->pcpu,
				 hb->ncpus * sizeof(*hb->pcpu), 0))
		return 0;
	for (int i = 0; i < hb->ncpus; i++)
		n += hb->pcpu[i].c[k];
	return n;
}

/* Trap cost of one hit on FN's first instruction, ns; < 0 on failure. */
static double calibrate_one(struct heap_bpf *hb, void (*fn)(void))
{
	struct bpf_link *link;
	uint64_t off = 0, h0, h1;
	double base, traced;
	char path[4096];

	if (self_file_offset((uint64_t)(uintptr_t)fn, path, sizeof(path), &off))
		return -1;
	base = time_calls(fn);
	link = bpf_program__attach_uprobe_opts(hb->skel->progs.ha_calib, getpid(), path, off,
					       NULL);
	if (!link)
		return -1;
	h0 = counter_sum(hb, HA_CNT_CALIB);
	traced = time_calls(fn);
	h1 = counter_sum(hb, HA_CNT_CALIB);
	bpf_link__destroy(link);
	/* Every call must have hit: otherwise the timing measured something else. */
	if (h1 - h0 != CALIB_CALLS * CALIB_ROUNDS || traced <= base)
		return -1;
	return traced - base;
}

/* The trap cost per hit of the probes' instruction kind (the costliest if they differ). */
static void calibrate(struct heap_bpf *hb)
{
	bool step = false;
	double ns = -1;

	for (int i = 0; i < hb->nprobes; i++)
		step |= hb->probes[i].kind != GO_ATTACH_EMULATED;
	hb->trap_ns = step ? COST_SINGLESTEP_NS : COST_EMULATED_NS;
#if defined(__x86_64__)
	if (!hb->o.no_calibrate)
		ns = calibrate_one(hb, step ? ha_calib_step : ha_calib_push);
#endif
	if (ns > 0) {
		hb->trap_ns = ns;
		hb->calibrated = true;
	}
	vlog("gotrace: uprobe trap cost per hit (%s): %.0f ns, %s\n",
	     step ? "single-stepped" : "emulated", hb->trap_ns,
	     hb->calibrated ? "measured" : "built-in");
}

/* ---------------------------------------------------------------- attach, detach */

static int attach_all(struct heap_bpf *hb)
{
	for (int i = 0; i < hb->nprobes; i++) {
		struct probe *p = &hb->probes[i];

		if (p->link)
			continue;
		p->link = bpf_program__attach_uprobe_opts(p->prog, hb->pid, hb->m->path,
							  p->pub.file_off, NULL);
		if (!p->link) {
			int err = -errno;

			gt_seterr("cannot attach a uprobe to %s at %#" PRIx64 " in %s: %s",
				  p->pub.func, p->pub.addr, hb->m->path, strerror(-err));
			return err;
		}
	}
	return 0;
}

static void *reap_main(void *arg)
{
	struct sched_param sp = { 0 };

	/* The wait for the grace period needs no real-time priority. */
	pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp);
	bpf_link__destroy(arg);
	return NULL;
}

/* Join the link-closing threads (those done, or all with WAIT). */
static void reap(struct heap_bpf *hb, bool wait)
{
	int k = 0;

	for (int i = 0; i < hb->nreapers; i++) {
		if (wait)
			pthread_join(hb->reapers[i], NULL);
		else if (pthread_tryjoin_np(hb->reapers[i], NULL))
			hb->reapers[k++] = hb->reapers[i];
	}
	hb->nreapers = k;
}

/* Detach every probe without waiting for the grace periods (one thread per link). */
static void detach_all(struct heap_bpf *hb)
{
	reap(hb, false);
	for (int i = 0; i < hb->nprobes; i++) {
		struct bpf_link *link = hb->probes[i].link;

		if (!link)
			continue;
		hb->probes[i].link = NULL;
		if (hb->nreapers == hb->capreapers) {
			int cap = hb->capreapers ? 2 * hb->capreapers : 16;
			pthread_t *r = realloc(hb->reapers, cap * sizeof(*r));

			if (!r) {
				bpf_link__destroy(link);
				continue;
			}
			hb->reapers = r;
			hb->capreapers = cap;
		}
		if (pthread_create(&hb->reapers[hb->nreapers], NULL, reap_main, link))
			bpf_link__destroy(link);
		else
			hb->nreapers++;
	}
}

/* ---------------------------------------------------------------- governor */

/* Sum the per-CPU counters into HB->sum. 0 or -errno. */
static int read_counters(struct heap_bpf *hb)
{
	__u32 zero = 0;
	int err;

	err = bpf_map__lookup_elem(hb->skel->maps.counters, &zero, sizeof(zero), hb->pcpu,
				   hb->ncpus * sizeof(*hb->pcpu), 0);
	if (err)
		return err;
	memset(&hb->sum, 0, sizeof(hb->sum));
	for (int i = 0; i < hb->ncpus; i++) {
		for (int k = 0; k < HA_CNT__NR; k++)
			hb->sum.c[k] += hb->pcpu[i].c[k];
	}
	return 0;
}

/* BPF run time of the sampling programs so far (kernel BPF stats), ns and runs. */
static void prog_runtime(struct heap_bpf *hb, uint64_t *ns, uint64_t *cnt)
{
	struct bpf_program *progs[] = { hb->skel->progs.ha_alloc, hb->skel->progs.ha_large,
					hb->skel->progs.ha_refill };

	*ns = *cnt = 0;
	for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);

		if (!bpf_obj_get_info_by_fd(bpf_program__fd(progs[i]), &info, &len)) {
			*ns += info.run_time_ns;
			*cnt += info.run_cnt;
		}
	}
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
	double t = now_s(), dt = t - hb->last_tick, cost = 0;
	uint64_t dh, ns, cnt;
	enum heap_bpf_action a;

	hb->last_tick = t;
	if (read_counters(hb))
		return;
	dh = hb->sum.c[HA_CNT_HITS] - hb->hits_prev;
	hb->hits_prev = hb->sum.c[HA_CNT_HITS];
	/* The program's own run time, per hit, when the kernel keeps it. */
	if (hb->stats_fd >= 0) {
		prog_runtime(hb, &ns, &cnt);
		if (cnt > hb->prog_cnt_prev + 100) {
			hb->prog_ns = (double)(ns - hb->prog_ns_prev) /
				      (double)(cnt - hb->prog_cnt_prev);
			hb->prog_ns_prev = ns;
			hb->prog_cnt_prev = cnt;
			hb->prog_ns_measured = true;
		}
	}
	cost = (double)dh * (hb->trap_ns + hb->prog_ns) / 1e9;
	hb->spent += cost;
	if (hb->stopped)
		return;
	a = heap_bpf_bucket__tick(&hb->bucket, dt, cost, hb->attached);
	if (a == HEAP_BPF_DETACH) {
		stretch_end(hb, t);
		detach_all(hb);
		hb->attached = false;
		hb->ever_detached = true;
		dlog("gotrace: heap bpf: detached: %.0f hits/s cost %.3f CPU-s/s\n",
		     dt > 0 ? (double)dh / dt : 0, dt > 0 ? cost / dt : 0);
	} else if (a == HEAP_BPF_ATTACH) {
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
	struct sched_param sp = { .sched_priority = 1 };

	if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp))
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
	hb = calloc(1, sizeof(*hb));
	if (!hb)
		return -ENOMEM;
	hb->m = m;
	hb->pid = pid;
	hb->stats_fd = -1;
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
	/* Our PID is the kernel's only in the initial PID namespace (count.c). */
	if (!stat("/proc/self/ns/pid", &st) && st.st_ino == 0xEFFFFFFCU) {
		hb->skel->rodata->targ_tgid = pid;
		hb->skel->rodata->calib_tgid = getpid();
	}
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
	/* Optional: the programs' run time, for the cost per hit. */
	hb->stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	calibrate(hb);

	hb->bucket.budget = hb->o.budget_pct < 0 ? -1 : hb->o.budget_pct / 100.0;
	hb->bucket.burst_s = BURST_S;
	hb->bucket.level = hb->bucket.budget > 0 ? hb->bucket.budget * hb->bucket.burst_s : 0;
	hb->t0 = now_s();
	err = attach_all(hb);
	if (err) {
		detach_all(hb);
		reap(hb, true);
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
		detach_all(hb);
		reap(hb, true);
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
	/* The breakpoints are gone; the closing threads finish their grace periods later. */
	reap(hb, false);
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
	return s > 0 ? (double)c.c[HA_CNT_HITS] * (hb->trap_ns + hb->prog_ns) / 1e9 / s : 0;
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
			 (hb->trap_ns + hb->prog_ns) / 1e3, 100 * cost_attached(hb),
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
	reap(hb, true);
	for (int i = 0; i < hb->nprobes; i++)
		bpf_link__destroy(hb->probes[i].link);
	heapalloc_bpf__destroy(hb->skel);
	if (hb->stats_fd >= 0)
		close(hb->stats_fd);
	free(hb->reapers);
	free(hb->pcpu);
	pthread_cond_destroy(&hb->wake);
	pthread_mutex_destroy(&hb->lock);
	free(hb);
}
