// SPDX-License-Identifier: MIT
/*
 * Goroutine lifecycle tracing of one process, under an overhead governor.
 *
 * The cost of a uprobe is paid by the target: a trap per hit, a few microseconds
 * when the kernel emulates the probed instruction (push rbp) and about four times
 * that when it must single-step it out of line (RET, the stack-check cmp, sub rsp),
 * plus the BPF program's own run time; engine/governor.c measures both. The governor
 * thread turns hits per second into CPU-seconds per second and keeps the average
 * under the budget with the shared token bucket. The policy on top of it is this
 * engine's: when the bucket runs dry it detaches the costliest probes one by one; a
 * detached probe comes back for a sampling window when the bucket is full again, and
 * stays if its cost then fits the budget. Each probe is one gov_link, whatever its
 * number of sites (newproc1's RETs).
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
#include <elf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <capstone/capstone.h>

#include "engine/lifecycle.h"
#include "lifecycle.skel.h"

#include "bpf/bpf_support.h"
#include "engine/governor.h"
#include "goruntime/probes.h"
#include "proc/mem.h"
#include "util/log.h"

#define DEFAULT_STACK_DEPTH 12
#define DEFAULT_MAX_GOROUTINES 65536
#define DEFAULT_RINGBUF_KB 4096
#define DEFAULT_TICK_MS 20
#define FAST_TICK_MS 5		/* right after attach and during sampling windows */
#define BUCKET_SECONDS 2.0	/* burst allowance: this many seconds of budget */
#define MAX_SAMPLE_S 0.2	/* longest sampling window of a detached probe */
#define KEEP_FRACTION 0.8	/* a sampled probe stays on below this share of the budget */
#define SWEEP_PERIOD_S 2.0
#define SWEPT_SLOTS 4096

struct lc_probe {
	const char *name, *func, *site;
	bool wanted;
	enum gov_kind kind;
	struct bpf_program *prog;
	int nsites;
	uint64_t file_off[GO_PROBE_MAX_RETS];
	struct gov_link link; /* every site at once */
	enum lifecycle_probe_state state;
	uint64_t hits, hits_prev;
	double prog_ns;		     /* BPF run time per hit, 0 unknown */
	double rate_on, cost_on;     /* last measurement while attached */
	double win_start;	     /* sampling window */
	double win_len;
	uint64_t win_hits0;
	double on_s, off_s, off_since;
	uint64_t off_windows;
	bool throttled;		     /* ever detached by the governor */
};

struct swept_site {
	uint64_t gopc, n;
};

struct lifecycle {
	const struct go_model *m;
	pid_t pid;
	struct lifecycle_opts o;
	struct lifecycle_bpf *skel;
	struct ring_buffer *rb;
	struct proc_mem *mem;
	struct lc_probe probes[LC_PROBE__CNT];
	int ncpus;
	struct lc_counters *pcpu; /* ncpus values for one lookup */
	struct lc_counters sum;	  /* last read, summed over CPUs */

	pthread_t thread;
	bool thread_started;
	int stop_fd;
	pthread_mutex_t lock; /* everything below, and probe states */
	double t0, last_tick, last_sweep, last_prog_stats;
	struct gov_bucket bucket;
	double spent;
	double est_now;	      /* CPU-s/s of the attached probes, last tick */
	uint64_t events_read;
	uint64_t exit_swept;
	bool target_exited;
	bool fast; /* a probe is sampling: tick at FAST_TICK_MS */
	struct swept_site swept[SWEPT_SLOTS];
	uint64_t swept_overflow;
	struct gov_reaper reaper; /* threads closing detached links */
};

static const struct {
	const char *name, *func, *site;
	enum go_probe_role role;
	const char *prog;
} probe_specs[LC_PROBE__CNT] = {
	[LC_PROBE_NEWPROC1] = { "newproc1", "runtime.newproc1", "ret", GO_PROBE_NEWPROC1,
				"lc_newproc1_ret" },
	[LC_PROBE_GOEXIT] = { "goexit1", "runtime.goexit1", "after-prologue", GO_PROBE_GOEXIT1,
			      "lc_goexit" },
	[LC_PROBE_GOPARK] = { "gopark", "runtime.gopark", "after-prologue", GO_PROBE_GOPARK,
			      "lc_gopark" },
	[LC_PROBE_READY] = { "ready", "runtime.ready", "after-prologue", GO_PROBE_READY,
			     "lc_ready" },
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

const char *lifecycle__probe_state_name(enum lifecycle_probe_state s)
{
	switch (s) {
	case LIFECYCLE_PROBE_ON:
		return "on";
	case LIFECYCLE_PROBE_SAMPLING:
		return "sampling";
	case LIFECYCLE_PROBE_OFF:
		return "off";
	case LIFECYCLE_PROBE_FAILED:
		return "failed";
	default:
		return "unused";
	}
}

static double probe_cost_ns(const struct lc_probe *p)
{
	return gov_trap_ns(p->kind) + p->prog_ns;
}

/* ---------------------------------------------------------------- probes */

/* Attach every site of P as one link. 0, or -errno with the probe left detached. */
static int probe_attach(struct lifecycle *lc, struct lc_probe *p)
{
	return gov_link__attach(&p->link, p->prog, lc->pid, lc->m->path, p->file_off, p->nsites);
}

/*
 * Detach P without waiting, and charge what it may still cost unseen: the tail of a
 * perf-event uprobe (0 with uprobe_multi links) at RATE hits/s.
 */
static void probe_detach(struct lifecycle *lc, struct lc_probe *p, double rate)
{
	double tail = gov_link__detach(&p->link, &lc->reaper);
	double c = rate * tail * probe_cost_ns(p) * 1e-9;

	if (c <= 0)
		return;
	lc->bucket.level -= c;
	lc->spent += c;
	dlog("gotrace: governor: %s may trap %.0f ms more unseen: %.5f CPU-s charged\n", p->name,
	     tail * 1e3, c);
}

static bool probe_attached(const struct lc_probe *p)
{
	return p->state == LIFECYCLE_PROBE_ON || p->state == LIFECYCLE_PROBE_SAMPLING;
}

/*
 * The go statement's closure, runtime.newproc.func1 (src/runtime/proc.go newproc):
 *   newg := newproc1(fn, gp, pc, ...); runqput(pp, newg, true)
 * Find the call of runqput where RBX (its second argument) still holds newproc1's
 * result: decoded, checking that RAX and RBX are not rewritten in between. The probe
 * goes on the 5-byte nop the assembler often pads the call with (cheapest), else on
 * the call (emulated). Returns the offset from FN's entry, or -ENOENT.
 */
static int find_runqput_site(const struct elf_file *ef, const struct go_func *fn,
			     uint64_t newproc1, uint64_t runqput, uint32_t *off)
{
	uint64_t size = fn->end > fn->entry ? fn->end - fn->entry : 0, addr = fn->entry;
	const uint8_t *code = size ? elf_file__vaddr_ptr(ef, fn->entry, size) : NULL;
	bool after_newproc1 = false, rax_newg = false, rbx_newg = false;
	uint64_t prev_addr = 0;
	uint16_t prev_size = 0;
	const uint8_t *prev = NULL, *p = code;
	size_t left = size;
	int err = -ENOENT;
	cs_insn *insn;
	csh h;

	if (!code || elf_file__machine(ef) != EM_X86_64)
		return -ENOENT;
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &h) != CS_ERR_OK)
		return -ENOENT;
	cs_option(h, CS_OPT_DETAIL, CS_OPT_ON);
	insn = cs_malloc(h);
	while (insn && cs_disasm_iter(h, &p, &left, &addr, insn)) {
		const cs_x86 *x = &insn->detail->x86;
		cs_regs rd, wr;
		uint8_t nrd = 0, nwr = 0;
		bool call_imm = insn->id == X86_INS_CALL && x->op_count == 1 &&
				x->operands[0].type == X86_OP_IMM;

		if (call_imm && (uint64_t)x->operands[0].imm == newproc1) {
			after_newproc1 = rax_newg = true;
			rbx_newg = false;
		} else if (call_imm && (uint64_t)x->operands[0].imm == runqput && after_newproc1) {
			if (!rbx_newg)
				break;
			*off = (uint32_t)(insn->address - fn->entry);
			if (prev && prev_size == 5 && prev_addr + 5 == insn->address &&
			    gov_site_kind(EM_X86_64, prev, 5) == GOV_KIND_NOP5)
				*off = (uint32_t)(prev_addr - fn->entry);
			err = 0;
			break;
		} else if (after_newproc1) {
			if (insn->id == X86_INS_CALL || cs_insn_group(h, insn, X86_GRP_JUMP) ||
			    cs_insn_group(h, insn, X86_GRP_RET))
				break;
			if (insn->id == X86_INS_MOV && x->op_count == 2 &&
			    x->operands[0].type == X86_OP_REG && x->operands[0].reg == X86_REG_RBX &&
			    x->operands[1].type == X86_OP_REG && x->operands[1].reg == X86_REG_RAX) {
				rbx_newg = rax_newg;
			} else if (cs_regs_access(h, insn, rd, &nrd, wr, &nwr) == CS_ERR_OK) {
				for (int i = 0; i < nwr; i++) {
					if (wr[i] == X86_REG_RAX || wr[i] == X86_REG_EAX)
						rax_newg = false;
					if (wr[i] == X86_REG_RBX || wr[i] == X86_REG_EBX ||
					    wr[i] == X86_REG_BX || wr[i] == X86_REG_BL)
						rbx_newg = false;
				}
			} else {
				break;
			}
		}
		prev = code + (insn->address - fn->entry);
		prev_addr = insn->address;
		prev_size = insn->size;
	}
	if (insn)
		cs_free(insn, 1);
	cs_close(&h);
	return err;
}

/* The cheap creation site, if this binary has it: fills P. 0 or -ENOENT. */
static int resolve_create_site(struct lifecycle *lc, struct lc_probe *p)
{
	const struct elf_file *ef = lc->m->ef;
	const struct go_func *fn, *np1, *rq;
	uint64_t file_off;
	uint32_t off;

	fn = pclntab__func_by_name(lc->m->pcln, "runtime.newproc.func1");
	np1 = pclntab__func_by_name(lc->m->pcln, "runtime.newproc1");
	rq = pclntab__func_by_name(lc->m->pcln, "runtime.runqput");
	if (!fn || !np1 || !rq) {
		vlog("gotrace: no runtime.newproc.func1/newproc1/runqput: creations at newproc1's "
		     "RETs\n");
		return -ENOENT;
	}
	if (find_runqput_site(ef, fn, np1->entry, rq->entry, &off) ||
	    elf_file__vaddr_to_offset(ef, fn->entry + off, &file_off)) {
		vlog("gotrace: %s: no call of runqput with the new g: creations at newproc1's "
		     "RETs\n", fn->name);
		return -ENOENT;
	}
	p->file_off[0] = file_off;
	p->nsites = 1;
	p->kind = gov_site_kind(elf_file__machine(ef),
				elf_file__vaddr_ptr(ef, fn->entry + off, 5), 5);
	p->func = fn->name;
	p->site = p->kind == GOV_KIND_NOP5 ? "nop before runqput" : "call of runqput";
	p->prog = lc->skel->progs.lc_newproc_runqput;
	vlog("gotrace: creations at %s+0x%x (%s, %s; file offset %#" PRIx64 ")\n", fn->name,
	     off, p->site, gov_kind_name(p->kind), file_off);
	return 0;
}

/* Resolve the sites of every wanted probe in the binary. 0 or -errno. */
static int resolve_probes(struct lifecycle *lc)
{
	const struct elf_file *ef = lc->m->ef;
	uint16_t machine = elf_file__machine(ef);
	struct go_probe_site *sites = NULL;
	int n = 0, err, found = 0;

	err = go_probes__resolve(ef, lc->m->pcln, lc->m->bi.minor, &sites, &n);
	if (err) {
		if (!gt_lasterr())
			gt_seterr("cannot resolve the runtime functions: %s", strerror(-err));
		return err;
	}
	for (int id = 0; id < LC_PROBE__CNT; id++) {
		struct lc_probe *p = &lc->probes[id];
		const struct go_probe_site *s = NULL;
		uint64_t at;

		p->name = probe_specs[id].name;
		p->func = probe_specs[id].func;
		p->site = probe_specs[id].site;
		p->prog = bpf_object__find_program_by_name(lc->skel->obj, probe_specs[id].prog);
		if (!p->wanted)
			continue;
		if (id == LC_PROBE_NEWPROC1 && !lc->o.create_at_ret && !resolve_create_site(lc, p)) {
			found++;
			continue;
		}
		for (int i = 0; i < n; i++) {
			if (sites[i].role == probe_specs[id].role && sites[i].present) {
				s = &sites[i];
				break;
			}
		}
		if (!s) {
			vlog("gotrace: %s not found: %s is not traced\n", p->func, p->name);
			p->wanted = false;
			continue;
		}
		if (id == LC_PROBE_NEWPROC1) {
			if (!s->nret || s->rets_truncated) {
				vlog("gotrace: runtime.newproc1 has %s RET: creations not traced\n",
				     s->nret ? "too many" : "no");
				p->wanted = false;
				continue;
			}
			for (int i = 0; i < s->nret; i++)
				p->file_off[i] = s->file_offset + s->ret_offsets[i];
			p->nsites = s->nret;
			at = s->addr + s->ret_offsets[0];
			p->kind = gov_site_kind(machine, elf_file__vaddr_ptr(ef, at, 1), 1);
		} else {
			p->file_off[0] = s->file_offset + s->attach_offset;
			p->nsites = 1;
			at = s->addr + s->attach_offset;
			p->kind = gov_site_kind(machine, elf_file__vaddr_ptr(ef, at, 5), 5);
			if (s->attach_kind == GO_ATTACH_EMULATED && p->kind == GOV_KIND_SINGLESTEP)
				p->kind = GOV_KIND_EMULATED;
		}
		p->func = s->name;
		found++;
	}
	free(sites);
	if (!found) {
		gt_seterr("%s: none of runtime.newproc1, goexit1, gopark, ready can be probed",
			  lc->m->path);
		return -ENOENT;
	}
	return 0;
}

/* ---------------------------------------------------------------- counters */

static int read_counters(struct lifecycle *lc)
{
	/* Every field is a 64-bit counter. */
	int err = gov_sum_percpu(lc->skel->maps.counters, lc->pcpu, lc->ncpus, sizeof(*lc->pcpu),
				 sizeof(lc->sum) / sizeof(uint64_t), (uint64_t *)&lc->sum);

	if (err)
		return err;
	for (int id = 0; id < LC_PROBE__CNT; id++)
		lc->probes[id].hits = lc->sum.c[LC_CNT_HITS + id];
	return 0;
}

/* BPF run time per hit of each program (needs kernel BPF stats, else stays 0). */
static void read_prog_stats(struct lifecycle *lc)
{
	for (int id = 0; id < LC_PROBE__CNT; id++) {
		struct lc_probe *p = &lc->probes[id];
		double ns;

		if (!p->wanted || !p->prog)
			continue;
		ns = gov_prog_ns(p->prog);
		if (ns > 0)
			p->prog_ns = ns;
	}
}

static int handle_event(void *ctx, void *data, size_t len)
{
	struct lifecycle *lc = ctx;

	if (len < sizeof(struct lc_event))
		return 0;
	lc->events_read++;
	if (lc->o.on_event)
		lc->o.on_event(lc->o.ctx, data);
	return 0;
}

/* ---------------------------------------------------------------- sweep */

static void swept_add(struct lifecycle *lc, uint64_t gopc)
{
	uint64_t h = (gopc * 0x9e3779b97f4a7c15ULL) >> 52;

	for (int i = 0; i < SWEPT_SLOTS; i++) {
		struct swept_site *s = &lc->swept[(h + i) % SWEPT_SLOTS];

		if (!s->n || s->gopc == gopc) {
			s->gopc = gopc;
			s->n++;
			return;
		}
	}
	lc->swept_overflow++;
}

static uint64_t swept_get(const struct lifecycle *lc, uint64_t gopc)
{
	uint64_t h = (gopc * 0x9e3779b97f4a7c15ULL) >> 52;

	for (int i = 0; i < SWEPT_SLOTS; i++) {
		const struct swept_site *s = &lc->swept[(h + i) % SWEPT_SLOTS];

		if (!s->n)
			return 0;
		if (s->gopc == gopc)
			return s->n;
	}
	return 0;
}

/*
 * Exits missed while goexit1 was detached leave entries behind: drop those whose g
 * now holds another goroutine or is dead. Reads the target's memory (free for it), in
 * batches. Runs without lc->lock (map operations are atomic) but for the bookkeeping:
 * a large table takes a while and the governor must not wait for it.
 */
#define SWEEP_BATCH 1024

struct sweep_ent {
	struct lc_gkey key;
	uint64_t g, gopc;
	uint64_t goid;
	uint32_t status;
};

/* The goroutine table into *V (grown as needed), SWEEP_BATCH entries a syscall. 0 or -errno. */
static int snapshot_table(struct lifecycle *lc, struct sweep_ent **v, size_t *n, size_t *cap)
{
	int fd = bpf_map__fd(lc->skel->maps.goroutines);
	struct lc_gkey keys[SWEEP_BATCH];
	struct lc_goroutine vals[SWEEP_BATCH];
	__u64 batch[2] = { 0 }; /* the kernel's cursor (a bucket index for hash maps) */
	bool first = true;

	for (;;) {
		__u32 cnt = SWEEP_BATCH;
		int err = bpf_map_lookup_batch(fd, first ? NULL : batch, batch, keys, vals, &cnt,
					       NULL);

		if (err && errno != ENOENT)
			return -errno;
		first = false;
		if (*n + cnt > *cap) {
			size_t ncap = *cap ? 2 * *cap : 1024;
			struct sweep_ent *nv;

			while (ncap < *n + cnt)
				ncap *= 2;
			nv = realloc(*v, ncap * sizeof(*nv));
			if (!nv)
				return 0; /* sweep what we have */
			*v = nv;
			*cap = ncap;
		}
		for (__u32 i = 0; i < cnt; i++)
			(*v)[(*n)++] = (struct sweep_ent){ .key = keys[i], .g = vals[i].g,
							   .gopc = vals[i].gopc };
		if (err)
			return 0; /* ENOENT: the last batch */
	}
}

static uint64_t sweep(struct lifecycle *lc)
{
	int64_t off_goid = lc->m->off.val[GO_OFF_G_GOID];
	int64_t off_status = lc->m->off.val[GO_OFF_G_ATOMICSTATUS];
	int fd = bpf_map__fd(lc->skel->maps.goroutines);
	struct lc_gkey key, next, *prev = NULL;
	struct sweep_ent *v = NULL;
	struct proc_mem_req *reqs = NULL;
	size_t n = 0, cap = 0;
	uint64_t swept = 0;

	if (!lc->mem || off_goid < 0 || off_status < 0)
		return 0;
	/* Snapshot the table first: deleting while walking restarts the walk (htab). */
	if (snapshot_table(lc, &v, &n, &cap) < 0) {
		/* No batch lookups (before Linux 5.6): one key at a time. */
		n = 0;
		while (!bpf_map_get_next_key(fd, prev, &next)) {
			struct lc_goroutine gs;

			key = next;
			prev = &key;
			if (bpf_map_lookup_elem(fd, &key, &gs))
				continue;
			if (n == cap) {
				size_t ncap = cap ? 2 * cap : 1024;
				struct sweep_ent *nv = realloc(v, ncap * sizeof(*nv));

				if (!nv)
					break;
				v = nv;
				cap = ncap;
			}
			v[n++] = (struct sweep_ent){ .key = key, .g = gs.g, .gopc = gs.gopc };
		}
	}
	reqs = calloc(2 * SWEEP_BATCH, sizeof(*reqs));
	for (size_t base = 0; reqs && base < n; base += SWEEP_BATCH) {
		size_t k = n - base < SWEEP_BATCH ? n - base : SWEEP_BATCH;

		for (size_t i = 0; i < k; i++) {
			struct sweep_ent *e = &v[base + i];

			reqs[2 * i] = (struct proc_mem_req){ e->g + off_goid, &e->goid, 8, 0 };
			reqs[2 * i + 1] =
				(struct proc_mem_req){ e->g + off_status, &e->status, 4, 0 };
		}
		if (proc_mem__readv(lc->mem, reqs, 2 * k) < 0)
			break;
		for (size_t i = 0; i < k; i++) {
			struct sweep_ent *e = &v[base + i];

			if (reqs[2 * i].err || reqs[2 * i + 1].err)
				continue;
			/* _Gdead = 6, with the _Gscan bit (0x1000) removed. */
			if (e->goid == e->key.goid && (e->status & ~0x1000u) != 6)
				continue;
			/* An exit seen meanwhile already deleted it: not a sweep. */
			if (bpf_map_delete_elem(fd, &e->key))
				continue;
			pthread_mutex_lock(&lc->lock);
			lc->exit_swept++;
			swept_add(lc, e->gopc);
			pthread_mutex_unlock(&lc->lock);
			swept++;
		}
	}
	free(reqs);
	free(v);
	return swept;
}

uint64_t lifecycle__sweep(struct lifecycle *lc)
{
	bool gone;

	pthread_mutex_lock(&lc->lock);
	gone = lc->target_exited;
	pthread_mutex_unlock(&lc->lock);
	return gone ? 0 : sweep(lc);
}

/* ---------------------------------------------------------------- governor */

/* The governor detaches P (attached at p->rate_on hits/s). */
static void throttle(struct lifecycle *lc, struct lc_probe *p, double now)
{
	probe_detach(lc, p, p->rate_on);
	p->state = LIFECYCLE_PROBE_OFF;
	p->off_since = now;
	p->off_windows++;
	p->throttled = true;
}

/* One governor step: account the last tick, then detach or re-attach probes. */
static void govern(struct lifecycle *lc, double now)
{
	double dt = now - lc->last_tick, cap, on_cost = 0, tick_cost = 0;
	struct gov_bucket *b = &lc->bucket;
	struct lc_probe *next_sample = NULL;
	bool sampling = false, attached = false;

	if (dt <= 0)
		return;
	if (now - lc->last_prog_stats > 0.5) {
		read_prog_stats(lc);
		lc->last_prog_stats = now;
	}
	/* What the attached probes cost the target during the tick. */
	for (int id = 0; id < LC_PROBE__CNT; id++) {
		struct lc_probe *p = &lc->probes[id];
		uint64_t dh = p->hits - p->hits_prev;

		p->hits_prev = p->hits;
		if (probe_attached(p)) {
			double c = dh * probe_cost_ns(p) * 1e-9;

			attached = true;
			p->on_s += dt;
			tick_cost += c;
			if (p->state == LIFECYCLE_PROBE_ON) {
				p->rate_on = dh / dt;
				p->cost_on = c / dt;
				on_cost += p->cost_on;
			}
		} else if (p->state == LIFECYCLE_PROBE_OFF) {
			p->off_s += dt;
		}
	}
	lc->spent += tick_cost;
	lc->est_now = tick_cost / dt;
	lc->last_tick = now;
	/*
	 * The bucket's own action is all-or-nothing: this engine acts probe by probe on
	 * the level instead (detach the costliest, sample one detached probe at a time).
	 */
	gov_bucket__tick(b, dt, tick_cost, attached);
	if (b->budget < 0)
		return;
	cap = gov_bucket__cap(b);

	/*
	 * A sampling window ended, or spent the bucket already (the probe's rate was
	 * measured while others were on and slowed the target): keep the probe if it
	 * fits, else back off.
	 */
	for (int id = 0; id < LC_PROBE__CNT; id++) {
		struct lc_probe *p = &lc->probes[id];
		double len;

		if (p->state != LIFECYCLE_PROBE_SAMPLING)
			continue;
		len = now - p->win_start;
		if (len < p->win_len && b->level >= 0) {
			sampling = true;
			continue;
		}
		p->rate_on = (p->hits - p->win_hits0) / len;
		p->cost_on = p->rate_on * probe_cost_ns(p) * 1e-9;
		dlog("gotrace: governor: %s sampled %.0f ms: %.0f hits/s, %.4f CPU-s/s, bucket "
		     "%.4f\n", p->name, len * 1e3, p->rate_on, p->cost_on, b->level);
		if (on_cost + p->cost_on <= KEEP_FRACTION * b->budget) {
			p->state = LIFECYCLE_PROBE_ON;
			on_cost += p->cost_on;
		} else {
			probe_detach(lc, p, p->rate_on);
			p->state = LIFECYCLE_PROBE_OFF;
			p->off_since = now;
			p->off_windows++;
		}
	}

	/* Over budget: detach the costliest probes until the rest fit. */
	while (b->level < 0 && on_cost > b->budget) {
		struct lc_probe *worst = NULL;

		for (int id = 0; id < LC_PROBE__CNT; id++) {
			struct lc_probe *p = &lc->probes[id];

			if (p->state == LIFECYCLE_PROBE_ON && (!worst || p->cost_on > worst->cost_on))
				worst = p;
		}
		if (!worst)
			break;
		on_cost -= worst->cost_on;
		throttle(lc, worst, now);
		dlog("gotrace: governor: detaching %s took %.1f ms, %.1f ms after attach\n",
		     worst->name, (now_s() - now) * 1e3, (now - lc->t0) * 1e3);
		vlog("gotrace: governor: %s detached: %.0f hits/s, %.3f CPU-s/s > budget %.3f\n",
		     worst->name, worst->rate_on, worst->cost_on, b->budget);
	}

	/* Bucket full again: sample the probe that has been off the longest. */
	if (sampling || b->level < cap * 0.999 || lc->target_exited)
		return;
	for (int id = 0; id < LC_PROBE__CNT; id++) {
		struct lc_probe *p = &lc->probes[id];

		if (p->state == LIFECYCLE_PROBE_OFF &&
		    (!next_sample || p->off_since < next_sample->off_since))
			next_sample = p;
	}
	if (next_sample) {
		struct lc_probe *p = next_sample;
		double tick = lc->o.tick_ms / 1000.0, len = MAX_SAMPLE_S;

		/* Spend at most the bucket, but see at least one tick. */
		if (p->cost_on > 0)
			len = b->level / p->cost_on;
		if (len > MAX_SAMPLE_S)
			len = MAX_SAMPLE_S;
		if (len < tick)
			len = tick;
		if (probe_attach(lc, p)) {
			p->state = LIFECYCLE_PROBE_FAILED;
			return;
		}
		p->state = LIFECYCLE_PROBE_SAMPLING;
		p->win_start = now;
		p->win_len = len;
		p->win_hits0 = p->hits;
		dlog("gotrace: governor: sampling %s for %.0f ms at %.0f ms (bucket %.4f)\n",
		     p->name, len * 1e3, (now - lc->t0) * 1e3, b->level);
	}
}

static void *governor_main(void *arg)
{
	struct lifecycle *lc = arg;
	struct pollfd pfd = { .fd = lc->stop_fd, .events = POLLIN };
	sigset_t all;

	/* Signals are for the caller's thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	if (gov_set_rt(true))
		vlog("gotrace: governor thread: no real-time priority\n");
	for (;;) {
		int tick = lc->o.tick_ms;
		bool do_sweep;
		double now;

		/* React fast right after attach and while sampling: rates not known yet. */
		if ((now_s() - lc->t0 < 0.1 || lc->fast) && tick > FAST_TICK_MS)
			tick = FAST_TICK_MS;
		if (poll(&pfd, 1, tick) > 0)
			break;
		pthread_mutex_lock(&lc->lock);
		now = now_s();
		if (lc->rb)
			ring_buffer__consume(lc->rb);
		if (!lc->target_exited && kill(lc->pid, 0) && errno == ESRCH)
			lc->target_exited = true;
		if (!read_counters(lc))
			govern(lc, now);
		do_sweep = false;
		if (!lc->target_exited && now - lc->last_sweep > SWEEP_PERIOD_S) {
			/* Only exits missed while goexit1 was off leave stale entries. */
			do_sweep = lc->probes[LC_PROBE_GOEXIT].throttled ||
				   lc->probes[LC_PROBE_GOEXIT].state == LIFECYCLE_PROBE_FAILED;
			lc->last_sweep = now;
		}
		lc->fast = false;
		for (int id = 0; id < LC_PROBE__CNT; id++)
			lc->fast |= lc->probes[id].state == LIFECYCLE_PROBE_SAMPLING;
		pthread_mutex_unlock(&lc->lock);
		if (do_sweep) {
			/* Bulk work: not at real-time priority (it would displace the target). */
			gov_set_rt(false);
			sweep(lc);
			gov_set_rt(true);
		}
	}
	return NULL;
}

/* ---------------------------------------------------------------- API */

static int set_offsets(struct lifecycle *lc)
{
	const struct go_offsets *off = &lc->m->off;
	struct lifecycle_bpf *s = lc->skel;
	static const enum go_off_id need[] = { GO_OFF_G_GOID, GO_OFF_G_GOPC, GO_OFF_G_STARTPC,
					       GO_OFF_G_M, GO_OFF_M_CURG };

	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		if (off->val[need[i]] < 0) {
			gt_seterr("%s: no offset of %s for %s", lc->m->path,
				  go_offsets__desc(need[i])->name, lc->m->bi.version);
			return -ENOTSUP;
		}
	}
	s->rodata->off_g_goid = off->val[GO_OFF_G_GOID];
	s->rodata->off_g_parentgoid = off->val[GO_OFF_G_PARENTGOID];
	s->rodata->off_g_gopc = off->val[GO_OFF_G_GOPC];
	s->rodata->off_g_startpc = off->val[GO_OFF_G_STARTPC];
	s->rodata->off_g_m = off->val[GO_OFF_G_M];
	s->rodata->off_m_curg = off->val[GO_OFF_M_CURG];
	s->rodata->off_g_sched_bp = off->val[GO_OFF_G_SCHED_BP];
	s->rodata->off_g_stack_lo = off->val[GO_OFF_G_STACK_LO];
	s->rodata->off_g_stack_hi = off->val[GO_OFF_G_STACK_HI];
	{
		const enum go_off_id gfields[] = { GO_OFF_G_GOID, GO_OFF_G_GOPC, GO_OFF_G_STARTPC,
						   GO_OFF_G_PARENTGOID };
		const enum go_off_id sfields[] = { GO_OFF_G_STACK_LO, GO_OFF_G_STACK_HI,
						   GO_OFF_G_SCHED_BP };

		go_offsets__window(off, gfields, 4, LC_GWIN, &s->rodata->gwin_off,
				   &s->rodata->gwin_len);
		go_offsets__window(off, sfields, 3, LC_GWIN, &s->rodata->swin_off,
				   &s->rodata->swin_len);
	}
	return 0;
}

int lifecycle__attach(const struct go_model *m, pid_t pid, const struct lifecycle_opts *o,
		      struct lifecycle **out)
{
	struct lifecycle *lc;
	unsigned int rb_bytes;
	struct stat st;
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
	lc = calloc(1, sizeof(*lc));
	if (!lc)
		return -ENOMEM;
	lc->m = m;
	lc->pid = pid;
	lc->stop_fd = -1;
	for (int id = 0; id < LC_PROBE__CNT; id++)
		gov_link__init(&lc->probes[id].link);
	pthread_mutex_init(&lc->lock, NULL);
	if (o)
		lc->o = *o;
	if (!lc->o.budget_pct)
		lc->o.budget_pct = LIFECYCLE_DEFAULT_BUDGET_PCT;
	gov_bucket__init(&lc->bucket, lc->o.budget_pct < 0 ? -1 : lc->o.budget_pct / 100.0,
			 BUCKET_SECONDS);
	if (!lc->o.probes)
		lc->o.probes = (1u << LC_PROBE__CNT) - 1;
	if (!lc->o.stack_depth)
		lc->o.stack_depth = DEFAULT_STACK_DEPTH;
	if (lc->o.stack_depth > LC_MAX_STACK)
		lc->o.stack_depth = LC_MAX_STACK;
	if (!lc->o.max_goroutines)
		lc->o.max_goroutines = DEFAULT_MAX_GOROUTINES;
	if (!lc->o.ringbuf_kb)
		lc->o.ringbuf_kb = DEFAULT_RINGBUF_KB;
	if (!lc->o.tick_ms)
		lc->o.tick_ms = DEFAULT_TICK_MS;
	for (int id = 0; id < LC_PROBE__CNT; id++)
		lc->probes[id].wanted = lc->o.probes & (1u << id);

	lc->ncpus = libbpf_num_possible_cpus();
	if (lc->ncpus <= 0) {
		err = lc->ncpus ? lc->ncpus : -EINVAL;
		gt_seterr("cannot count the CPUs: %s", strerror(-err));
		goto fail;
	}
	lc->pcpu = calloc(lc->ncpus, sizeof(*lc->pcpu));
	if (!lc->pcpu) {
		err = -ENOMEM;
		goto fail;
	}

	/* Trap costs and the kind of links, once per gotrace process, before our load. */
	err = gov_init(lc->o.no_calibrate);
	if (err)
		goto fail;
	lc->skel = lifecycle_bpf__open();
	if (!lc->skel) {
		err = -errno;
		gt_seterr("cannot open the BPF object: %s", strerror(-err));
		goto fail;
	}
	err = set_offsets(lc);
	if (err)
		goto fail;
	err = resolve_probes(lc);
	if (err)
		goto fail;
	for (int id = 0; id < LC_PROBE__CNT; id++) {
		if (lc->probes[id].wanted)
			gov_prepare_prog(lc->probes[id].prog);
	}
	/* Our PID is the kernel's only in the initial PID namespace (count.c). */
	if (!stat("/proc/self/ns/pid", &st) && st.st_ino == 0xEFFFFFFCU)
		lc->skel->rodata->targ_tgid = pid;
	lc->skel->rodata->cfg_per_event = lc->o.per_event;
	lc->skel->rodata->cfg_stack_depth = lc->o.stack_depth < 0 ? 0 : lc->o.stack_depth;
	lc->skel->rodata->cfg_track = 1;
	/* A power of two number of pages, as the kernel wants. */
	rb_bytes = 4096;
	while (rb_bytes < lc->o.ringbuf_kb * 1024u && rb_bytes < (1u << 30))
		rb_bytes <<= 1;
	err = bpf_map__set_max_entries(lc->skel->maps.events, rb_bytes);
	if (!err)
		err = bpf_map__set_max_entries(lc->skel->maps.goroutines, lc->o.max_goroutines);
	if (err) {
		gt_seterr("cannot size the BPF maps: %s", strerror(-err));
		goto fail;
	}
	err = lifecycle_bpf__load(lc->skel);
	if (err) {
		gt_seterr("cannot load the lifecycle BPF programs: %s (run with -vv for the "
			  "verifier log)", strerror(-err));
		goto fail;
	}
	lc->rb = ring_buffer__new(bpf_map__fd(lc->skel->maps.events), handle_event, lc, NULL);
	if (!lc->rb) {
		err = -errno;
		gt_seterr("cannot open the ring buffer: %s", strerror(-err));
		goto fail;
	}
	lc->mem = proc_mem__open(pid);
	if (!lc->mem)
		vlog("gotrace: cannot read process %d's memory: no sweep of missed exits\n", pid);

	/*
	 * The governor runs from the first attach on: attaching takes a while on a busy
	 * target, and a hot probe must not run unaccounted meanwhile.
	 */
	lc->t0 = lc->last_tick = lc->last_sweep = lc->last_prog_stats = now_s();
	lc->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (lc->stop_fd < 0) {
		err = -errno;
		gt_seterr("cannot create an eventfd: %s", strerror(-err));
		goto fail;
	}
	err = -pthread_create(&lc->thread, NULL, governor_main, lc);
	if (err) {
		gt_seterr("cannot start the governor thread: %s", strerror(-err));
		goto fail;
	}
	lc->thread_started = true;

	for (int id = 0; id < LC_PROBE__CNT; id++) {
		struct lc_probe *p = &lc->probes[id];
		double t = now_s();

		if (!p->wanted)
			continue;
		pthread_mutex_lock(&lc->lock);
		err = probe_attach(lc, p);
		if (!err)
			p->state = LIFECYCLE_PROBE_ON;
		pthread_mutex_unlock(&lc->lock);
		dlog("gotrace: %s attached in %.1f ms\n", p->name, (now_s() - t) * 1e3);
		if (err) {
			if (err == -ESRCH || err == -ENOENT)
				gt_seterr("process %d exited before the probes were attached", pid);
			else
				gt_seterr("cannot attach a uprobe to %s (%s in %s): %s", p->func,
					  p->site, lc->m->path, strerror(-err));
			goto fail;
		}
	}
	*out = lc;
	return 0;

fail:
	lifecycle__detach(lc);
	return err;
}

static void governor_text(struct lifecycle *lc, char *buf, size_t len)
{
	size_t n = 0;
	bool any = false;

	buf[0] = 0;
	for (int id = 0; id < LC_PROBE__CNT; id++) {
		struct lc_probe *p = &lc->probes[id];
		double total = p->on_s + p->off_s;
		char rate[32];

		if (!p->wanted || (!p->throttled && p->state != LIFECYCLE_PROBE_FAILED))
			continue;
		if (p->rate_on >= 1e6)
			snprintf(rate, sizeof(rate), "%.1fM", p->rate_on / 1e6);
		else if (p->rate_on >= 1e3)
			snprintf(rate, sizeof(rate), "%.0fk", p->rate_on / 1e3);
		else
			snprintf(rate, sizeof(rate), "%.0f", p->rate_on);
		if (n < len)
			n += snprintf(buf + n, len - n, "%s", any ? "; " : "");
		any = true;
		if (n >= len)
			break;
		if (p->state == LIFECYCLE_PROBE_FAILED)
			n += snprintf(buf + n, len - n, "%s could not be re-attached", p->name);
		else if (p->state == LIFECYCLE_PROBE_ON)
			n += snprintf(buf + n, len - n, "%s on again (was off %.1f s in %" PRIu64
				      " windows)", p->name, p->off_s, p->off_windows);
		else
			n += snprintf(buf + n, len - n,
				      "%s %s: %s hits/s ≈ %.2f CPU-s/s > budget %g%% "
				      "(on %.1f%% of the time, %" PRIu64 " windows off)",
				      p->name, p->state == LIFECYCLE_PROBE_SAMPLING ? "sampling"
										: "detached",
				      rate, p->cost_on, lc->o.budget_pct,
				      total > 0 ? 100.0 * p->on_s / total : 0.0, p->off_windows);
		if (n >= len)
			break;
	}
	if (!any)
		snprintf(buf, len,
			 lc->bucket.budget < 0 ? "all probes on (no budget)" : "all probes on");
}

int lifecycle__poll(struct lifecycle *lc, struct lifecycle_stats *st)
{
	double now;
	int err;

	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&lc->lock);
	now = now_s();
	if (lc->rb)
		ring_buffer__consume(lc->rb);
	err = read_counters(lc);
	if (err) {
		pthread_mutex_unlock(&lc->lock);
		gt_seterr("cannot read the lifecycle counters: %s", strerror(-err));
		return err;
	}
	read_prog_stats(lc);
	if (!lc->target_exited && kill(lc->pid, 0) && errno == ESRCH)
		lc->target_exited = true;
	st->elapsed_s = now - lc->t0;
	st->created = lc->sum.c[LC_CNT_CREATED];
	st->exited = lc->sum.c[LC_CNT_EXITED];
	st->parked = lc->sum.c[LC_CNT_PARKED];
	st->readied = lc->sum.c[LC_CNT_READIED];
	st->exit_untracked = lc->sum.c[LC_CNT_EXIT_UNTRACKED];
	st->exit_swept = lc->exit_swept;
	st->lost_events = lc->sum.c[LC_CNT_RB_LOST];
	st->events = lc->sum.c[LC_CNT_EVENTS];
	st->events_read = lc->events_read;
	st->read_errors = lc->sum.c[LC_CNT_READ_ERR];
	st->table_full = lc->sum.c[LC_CNT_GTAB_FULL];
	st->sites_full = lc->sum.c[LC_CNT_SITES_FULL];
	st->stacks_full = lc->sum.c[LC_CNT_STACKS_FULL];
	st->stack_bad = lc->sum.c[LC_CNT_STACK_BAD];
	/* Entries in the table, from the counters (a map walk per poll would cost more). */
	{
		int64_t t = (int64_t)st->created - (int64_t)st->table_full -
			    ((int64_t)st->exited - (int64_t)st->exit_untracked) -
			    (int64_t)st->exit_swept;

		st->tracked = t > 0 ? (uint64_t)t : 0;
	}
	memcpy(st->park_reason, lc->sum.park_reason, sizeof(st->park_reason));
	for (int id = 0; id < LC_PROBE__CNT; id++) {
		struct lc_probe *p = &lc->probes[id];
		struct lifecycle_probe_stats *ps = &st->probes[id];

		ps->name = p->name;
		ps->func = p->func;
		ps->site = p->site;
		ps->insn = p->wanted ? gov_kind_name(p->kind) : "";
		ps->state = p->wanted ? p->state : LIFECYCLE_PROBE_UNUSED;
		ps->nsites = p->wanted ? p->nsites : 0;
		ps->hits = p->hits;
		ps->cost_ns = p->wanted ? probe_cost_ns(p) : 0;
		ps->rate_on = p->rate_on;
		ps->cost_on = p->cost_on;
		ps->on_s = p->on_s;
		ps->off_s = p->off_s;
		ps->off_windows = p->off_windows;
		if (p->throttled || p->state == LIFECYCLE_PROBE_FAILED)
			st->partial = true;
	}
	st->budget_pct = lc->bucket.budget < 0 ? -1 : lc->o.budget_pct;
	st->burst_s = BUCKET_SECONDS;
	st->tick_s = lc->o.tick_ms / 1000.0;
	st->est_cost_pct = 100.0 * lc->est_now;
	st->avg_cost_pct = st->elapsed_s > 0 ? 100.0 * lc->spent / st->elapsed_s : 0;
	st->calib_emulated_ns = gov_trap_ns(GOV_KIND_EMULATED);
	st->calib_singlestep_ns = gov_trap_ns(GOV_KIND_SINGLESTEP);
	st->calib_nop5_ns = gov_trap_ns(GOV_KIND_NOP5);
	st->calibrated = gov_costs()->measured;
	st->multi_links = gov_costs()->multi;
	st->target_exited = lc->target_exited;
	governor_text(lc, st->governor, sizeof(st->governor));
	pthread_mutex_unlock(&lc->lock);
	return 0;
}

int lifecycle__foreach_site(struct lifecycle *lc,
			    int (*cb)(void *ctx, const struct lifecycle_site *s), void *ctx)
{
	int fd = bpf_map__fd(lc->skel->maps.sites);
	struct lc_site_key key, next, *prev = NULL;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		struct lifecycle_site s;
		struct lc_site v;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &v))
			continue;
		s.gopc = key.gopc;
		s.startpc = v.startpc;
		s.created = v.created;
		pthread_mutex_lock(&lc->lock);
		s.exited = v.exited + swept_get(lc, key.gopc);
		pthread_mutex_unlock(&lc->lock);
		if (s.exited > s.created)
			s.exited = s.created;
		if (cb(ctx, &s))
			return 1;
	}
	return 0;
}

int lifecycle__foreach_stack(struct lifecycle *lc,
			     int (*cb)(void *ctx, const struct lifecycle_stack *s), void *ctx)
{
	int fd = bpf_map__fd(lc->skel->maps.stacks);
	struct lc_stack_key key, next, *prev = NULL;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		struct lifecycle_stack s;
		__u64 count;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &count))
			continue;
		s.count = count;
		s.depth = key.depth <= LC_MAX_STACK ? (int)key.depth : LC_MAX_STACK;
		s.pcs = (const uint64_t *)key.pcs;
		if (cb(ctx, &s))
			return 1;
	}
	return 0;
}

static uint64_t ktime_ns(void)
{
	struct timespec ts;

	/* bpf_ktime_get_ns() is CLOCK_MONOTONIC. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

int lifecycle__foreach_goroutine(struct lifecycle *lc,
				 int (*cb)(void *ctx, const struct lifecycle_goroutine *g),
				 void *ctx)
{
	int fd = bpf_map__fd(lc->skel->maps.goroutines);
	struct lc_gkey key, next, *prev = NULL;
	uint64_t now = ktime_ns();

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		struct lifecycle_goroutine g;
		struct lc_goroutine v;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &v))
			continue;
		g.goid = key.goid;
		g.parent_goid = v.parent_goid;
		g.gopc = v.gopc;
		g.startpc = v.startpc;
		g.g = v.g;
		g.state = v.state;
		g.waitreason = v.waitreason;
		g.age_s = now > v.created_ns ? (now - v.created_ns) / 1e9 : 0;
		g.since_s = now > v.since_ns ? (now - v.since_ns) / 1e9 : 0;
		if (cb(ctx, &g))
			return 1;
	}
	return 0;
}

void lifecycle__detach(struct lifecycle *lc)
{
	if (!lc)
		return;
	if (lc->thread_started) {
		uint64_t one = 1;

		if (write(lc->stop_fd, &one, sizeof(one)) != sizeof(one))
			elog("gotrace: BUG: cannot stop the governor thread\n");
		pthread_join(lc->thread, NULL);
	}
	/* All at once: perf-event uprobes keep trapping until their link is destroyed. */
	for (int id = 0; id < LC_PROBE__CNT; id++)
		gov_link__detach(&lc->probes[id].link, &lc->reaper);
	gov_reaper__reap(&lc->reaper, true);
	for (int id = 0; id < LC_PROBE__CNT; id++)
		gov_link__destroy(&lc->probes[id].link);
	ring_buffer__free(lc->rb);
	lifecycle_bpf__destroy(lc->skel);
	proc_mem__free(lc->mem);
	if (lc->stop_fd >= 0)
		close(lc->stop_fd);
	pthread_mutex_destroy(&lc->lock);
	free(lc->pcpu);
	free(lc);
}
