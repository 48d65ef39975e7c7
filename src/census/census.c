// SPDX-License-Identifier: MIT
/*
 * The goroutine census. The snapshot runs in chunks of goroutines so that memory stays
 * bounded whatever the goroutine count: for each chunk, one batch of reads brings the g
 * structs, one brings the top of every parked goroutine's stack, each stack is unwound
 * locally, and one last batch re-reads the status and saved context to catch goroutines
 * that moved meanwhile. Those are redone one by one, a bounded number of times.
 *
 * Reading order follows the runtime's atomicAllG (allglen, then allgptr): allgs only
 * grows, and the array at allgptr always holds at least allglen entries.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "census/census.h"
#include "util/hash.h"
#include "util/log.h"

#define CHUNK 1024		/* goroutines per batch: one process_vm_readv each way */
#define STACK_WINDOW 4096	/* stack bytes read up front per goroutine (above sched.sp) */
#define MAX_STACK (1ULL << 30)	/* runtime.maxstacksize on 64-bit */
#define MAX_GOID (1ULL << 56)
#define LIST_TRIES 5		/* re-reads of allglen/allgptr/array */
#define G_TRIES 3		/* reads of one goroutine before it is declared unreadable */

/* Offsets of the fields read, from the model (link-time independent). */
struct g_layout {
	int64_t stack_lo, stack_hi, sched_sp, sched_pc, status, goid, waitreason, parent_goid,
		gopc, startpc, waitsince;
	size_t len;			/* bytes read per g: [0, len) */
	size_t hdr_off, hdr_len;	/* re-read window: goid, status, sched.sp/pc */
};

/* What a function is to the unwinder, found by name (the linker's funcID rule). */
enum fkind {
	FK_NORMAL,
	FK_TOP,		/* goexit, mstart, rt0_go, cgocallback: the goroutine's stack ends here */
	FK_TRAP,	/* sigpanic, asyncPreempt: the caller's PC is not a return address */
	FK_SWITCH,	/* systemstack, mcall, morestack: only on a g0 stack; stop */
};

struct frame_info {
	uint64_t pc; /* link-time; 0 = empty slot */
	const struct go_func *fn;
	int32_t spdelta;
	uint8_t kind;
	bool ok; /* fn found and pcsp known at pc */
};

struct frame_cache {
	struct frame_info *slot;
	size_t cap, n;
	uint64_t top[5], trap[2], sw[3]; /* function entries by kind */
};

/* Interned stacks: open addressing over census->stacks indexes. */
struct stack_set {
	int32_t *slot; /* -1 empty */
	uint32_t *hash;
	size_t cap;
};

struct census_ctx {
	const struct go_model *m;
	struct proc_mem *mem;
	const struct census_opts *opts;
	struct census *c;
	struct g_layout L;
	struct frame_cache fc;
	struct stack_set ss;
	size_t gs_cap, stacks_cap;
	uint64_t runfinq[2], run_cleanups, keep_user[3]; /* isSystemGoroutine special cases */
	int nreasons;
};

/* One goroutine being read. */
struct g_read {
	uint64_t addr;
	uint8_t *raw;	   /* L.len bytes */
	uint8_t *hdr;	   /* L.hdr_len bytes, re-read */
	uint8_t *win;	   /* STACK_WINDOW bytes */
	size_t win_len;
	int err;
	struct census_g g;
	uint64_t lo, hi, sp, pc;
	uint64_t pcs[CENSUS_MAX_DEPTH];
	uint32_t depth;
	bool truncated;
	bool dead;	/* _Gdead: on a free list, or exited */
	bool sane;	/* struct passed the checks */
	bool need_stack;
};

static uint64_t rd64(const uint8_t *p, int64_t off)
{
	uint64_t v;

	memcpy(&v, p + off, sizeof(v));
	return v;
}

static uint32_t rd32(const uint8_t *p, int64_t off)
{
	uint32_t v;

	memcpy(&v, p + off, sizeof(v));
	return v;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

const char *census__status_name(uint32_t status)
{
	static const char *const names[] = {
		"idle", "runnable", "running", "syscall", "waiting", "moribund_unused", "dead",
		"enqueue_unused", "copystack", "preempted", "leaked", "deadextra",
	};

	return status < sizeof(names) / sizeof(names[0]) ? names[status] : "???";
}

const char *census__state(const struct census *c, const struct census_g *g)
{
	const char *r;

	if (g->status == GO_GWAITING && g->waitreason) {
		r = go_waitreason(c->go_minor, g->waitreason);
		if (r && *r)
			return r;
	}
	return census__status_name(g->status);
}

static int layout_init(const struct go_model *m, struct g_layout *L)
{
	const int64_t *v = m->off.val;
	int64_t lo = INT64_MAX, hi = 0, end = 0;
	const int64_t hdr[] = { v[GO_OFF_G_GOID], v[GO_OFF_G_ATOMICSTATUS], v[GO_OFF_G_SCHED_SP],
				v[GO_OFF_G_SCHED_PC] };
	const enum go_off_id need[] = { GO_OFF_G_STACK_LO, GO_OFF_G_STACK_HI, GO_OFF_G_SCHED_SP,
					GO_OFF_G_SCHED_PC, GO_OFF_G_ATOMICSTATUS, GO_OFF_G_GOID,
					GO_OFF_G_WAITREASON, GO_OFF_G_GOPC, GO_OFF_G_STARTPC };

	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		if (v[need[i]] < 0 || v[need[i]] > 4096) {
			gt_seterr("%s (%s): no offset for %s", m->path, m->bi.version,
				  go_offsets__desc(need[i])->name);
			return -ENOTSUP;
		}
		if (v[need[i]] + 8 > end)
			end = v[need[i]] + 8;
	}
	L->stack_lo = v[GO_OFF_G_STACK_LO];
	L->stack_hi = v[GO_OFF_G_STACK_HI];
	L->sched_sp = v[GO_OFF_G_SCHED_SP];
	L->sched_pc = v[GO_OFF_G_SCHED_PC];
	L->status = v[GO_OFF_G_ATOMICSTATUS];
	L->goid = v[GO_OFF_G_GOID];
	L->waitreason = v[GO_OFF_G_WAITREASON];
	L->parent_goid = v[GO_OFF_G_PARENTGOID];
	L->gopc = v[GO_OFF_G_GOPC];
	L->startpc = v[GO_OFF_G_STARTPC];
	L->waitsince = v[GO_OFF_G_WAITSINCE] >= 0 && v[GO_OFF_G_WAITSINCE] <= 4096 ?
			       v[GO_OFF_G_WAITSINCE] : -1;
	if (L->parent_goid >= 0 && L->parent_goid + 8 > end)
		end = L->parent_goid + 8;
	if (L->waitsince >= 0 && L->waitsince + 8 > end)
		end = L->waitsince + 8;
	L->len = (size_t)end;
	for (size_t i = 0; i < sizeof(hdr) / sizeof(hdr[0]); i++) {
		lo = hdr[i] < lo ? hdr[i] : lo;
		hi = hdr[i] + 8 > hi ? hdr[i] + 8 : hi;
	}
	L->hdr_off = (size_t)lo;
	L->hdr_len = (size_t)(hi - lo);
	return 0;
}

/* ---- functions and frames */

static uint64_t func_entry(const struct go_model *m, const char *name)
{
	char abi0[128];
	const struct go_func *f = pclntab__func_by_name(m->pcln, name);

	if (!f) {
		snprintf(abi0, sizeof(abi0), "%s.abi0", name);
		f = pclntab__func_by_name(m->pcln, abi0);
	}
	return f ? f->entry : 0;
}

static void frame_cache_init(const struct go_model *m, struct frame_cache *fc)
{
	fc->top[0] = func_entry(m, "runtime.goexit");
	fc->top[1] = func_entry(m, "runtime.mstart");
	fc->top[2] = func_entry(m, "runtime.rt0_go");
	fc->top[3] = func_entry(m, "runtime.mstart0");
	fc->top[4] = func_entry(m, "runtime.cgocallback");
	fc->trap[0] = func_entry(m, "runtime.sigpanic");
	fc->trap[1] = func_entry(m, "runtime.asyncPreempt");
	/*
	 * Not systemstack_switch: g.sched points there while a goroutine runs on the
	 * system stack, and its frame is laid out to unwind like systemstack's.
	 */
	fc->sw[0] = func_entry(m, "runtime.systemstack");
	fc->sw[1] = func_entry(m, "runtime.mcall");
	fc->sw[2] = func_entry(m, "runtime.morestack");
}

static bool in_list(const uint64_t *l, size_t n, uint64_t e)
{
	for (size_t i = 0; i < n; i++) {
		if (l[i] && l[i] == e)
			return true;
	}
	return false;
}

/* What the unwinder needs about link-time PC; cached: goroutines share their PCs. */
static const struct frame_info *frame_at(struct census_ctx *x, uint64_t pc)
{
	struct frame_cache *fc = &x->fc;
	struct frame_info *f;
	size_t i;

	if (fc->n * 2 >= fc->cap) {
		size_t ncap = fc->cap ? fc->cap * 2 : 4096;
		struct frame_info *ns = calloc(ncap, sizeof(*ns));

		if (!ns)
			return NULL;
		for (size_t k = 0; k < fc->cap; k++) {
			if (!fc->slot[k].pc)
				continue;
			for (i = hash64(fc->slot[k].pc) & (ncap - 1); ns[i].pc; i = (i + 1) & (ncap - 1))
				;
			ns[i] = fc->slot[k];
		}
		free(fc->slot);
		fc->slot = ns;
		fc->cap = ncap;
	}
	for (i = hash64(pc) & (fc->cap - 1); fc->slot[i].pc; i = (i + 1) & (fc->cap - 1)) {
		if (fc->slot[i].pc == pc)
			return &fc->slot[i];
	}
	f = &fc->slot[i];
	f->pc = pc;
	fc->n++;
	f->fn = pclntab__find_func(x->m->pcln, pc);
	if (!f->fn)
		return f;
	if (in_list(fc->top, 5, f->fn->entry))
		f->kind = FK_TOP;
	else if (in_list(fc->trap, 2, f->fn->entry))
		f->kind = FK_TRAP;
	else if (in_list(fc->sw, 3, f->fn->entry))
		f->kind = FK_SWITCH;
	f->ok = !pclntab__pcvalue(x->m->pcln, f->fn, PCTAB_SP, pc, &f->spdelta) &&
		f->spdelta >= 0 && f->spdelta < (1 << 24);
	return f;
}

/* A stack word: from the window read up front, else through the page cache. */
static int stack_word(struct census_ctx *x, const struct g_read *r, uint64_t addr, uint64_t *val)
{
	if (addr < r->lo || addr + 8 > r->hi)
		return -EFAULT;
	if (addr >= r->sp && addr + 8 <= r->sp + r->win_len) {
		memcpy(val, r->win + (addr - r->sp), 8);
		return 0;
	}
	return proc_mem__read_u64(x->mem, addr, val);
}

/*
 * Unwind R from its saved context the way the runtime's unwinder does on amd64: the
 * caller's frame starts at sp + spdelta(pc) + 8, the return address just below it.
 * Records symbolization PCs (return address - 1, except where the PC is exact).
 * Returns 0, or -EINVAL when even the first frame is not Go code (a torn read).
 */
static int unwind(struct census_ctx *x, struct g_read *r)
{
	uint64_t bias = x->m->has_proc ? x->m->proc.load_bias : 0;
	uint64_t pc = r->pc, sp = r->sp;
	bool exact = false; /* PC is not a return address (new goroutine, after a trap) */

	r->depth = 0;
	r->truncated = false;
	for (;;) {
		const struct frame_info *f = frame_at(x, pc - bias);
		uint64_t fp, lr;

		if (!f || !f->fn) {
			if (!r->depth)
				return -EINVAL;
			r->truncated = true;
			return 0;
		}
		if (f->kind == FK_TOP)
			return 0;
		if (r->depth == CENSUS_MAX_DEPTH) {
			r->truncated = true;
			return 0;
		}
		r->pcs[r->depth++] = pc - bias > f->fn->entry && !exact ? pc - 1 : pc;
		if (!f->ok || f->kind == FK_SWITCH) {
			r->truncated = true;
			return 0;
		}
		fp = sp + (uint64_t)f->spdelta + 8;
		if (stack_word(x, r, fp - 8, &lr)) {
			r->truncated = true;
			return 0;
		}
		exact = f->kind == FK_TRAP;
		pc = lr;
		sp = fp;
	}
}

/* ---- stacks */

static uint32_t stack_hash(const uint64_t *pcs, uint32_t n)
{
	uint64_t h = n;

	for (uint32_t i = 0; i < n; i++)
		h = hash64(h ^ pcs[i]);
	return (uint32_t)h;
}

/* Index of the interned stack PCS[0..N), adding it when new; -1 on ENOMEM. */
static int32_t stack_intern(struct census_ctx *x, const uint64_t *pcs, uint32_t n, bool trunc)
{
	struct census *c = x->c;
	struct stack_set *ss = &x->ss;
	uint32_t h = stack_hash(pcs, n) ^ trunc;
	struct census_stack *s;
	size_t i;

	if (c->nstacks * 2 >= ss->cap) {
		size_t ncap = ss->cap ? ss->cap * 2 : 1024;
		int32_t *ns = malloc(ncap * sizeof(*ns));
		uint32_t *nh = malloc(ncap * sizeof(*nh));

		if (!ns || !nh) {
			free(ns);
			free(nh);
			return -1;
		}
		memset(ns, 0xff, ncap * sizeof(*ns));
		for (size_t k = 0; k < ss->cap; k++) {
			if (ss->slot[k] < 0)
				continue;
			for (i = ss->hash[k] & (ncap - 1); ns[i] >= 0; i = (i + 1) & (ncap - 1))
				;
			ns[i] = ss->slot[k];
			nh[i] = ss->hash[k];
		}
		free(ss->slot);
		free(ss->hash);
		ss->slot = ns;
		ss->hash = nh;
		ss->cap = ncap;
	}
	for (i = h & (ss->cap - 1); ss->slot[i] >= 0; i = (i + 1) & (ss->cap - 1)) {
		s = c->stacks[ss->slot[i]];
		if (ss->hash[i] == h && s->depth == n && s->truncated == trunc &&
		    !memcmp(s->pcs, pcs, n * sizeof(*pcs)))
			return ss->slot[i];
	}
	if (c->nstacks == x->stacks_cap) {
		size_t ncap = x->stacks_cap ? x->stacks_cap * 2 : 256;
		struct census_stack **nv = realloc(c->stacks, ncap * sizeof(*nv));

		if (!nv)
			return -1;
		c->stacks = nv;
		x->stacks_cap = ncap;
	}
	s = malloc(sizeof(*s) + n * sizeof(*pcs));
	if (!s)
		return -1;
	s->depth = n;
	s->truncated = trunc;
	memcpy(s->pcs, pcs, n * sizeof(*pcs));
	c->stacks[c->nstacks] = s;
	ss->slot[i] = (int32_t)c->nstacks;
	ss->hash[i] = h;
	return (int32_t)c->nstacks++;
}

/* ---- goroutines */

static bool in_text(struct census_ctx *x, uint64_t pc)
{
	const struct frame_info *f = frame_at(x, go_model__to_link(x->m, pc));

	return f && f->fn;
}

static bool parked_status(uint32_t st)
{
	return st == GO_GRUNNABLE || st == GO_GWAITING || st == GO_GPREEMPTED || st == GO_GLEAKED;
}

/*
 * Decode and check R->raw. Sets r->sane, r->need_stack and the census_g fields.
 * Returns true when the g is live (not dead); dead ones are counted, nothing else.
 */
static bool g_parse(struct census_ctx *x, struct g_read *r)
{
	const struct g_layout *L = &x->L;
	struct census_g *g = &r->g;
	uint32_t raw_status = rd32(r->raw, L->status);
	uint32_t st = raw_status & ~(uint32_t)GO_GSCAN;
	uint32_t max_status = x->c->go_minor >= 26 ? GO_GDEADEXTRA : GO_GPREEMPTED;

	memset(g, 0, sizeof(*g));
	g->addr = r->addr;
	g->stack = -1;
	g->status = st;
	g->scan = raw_status & GO_GSCAN;
	r->sane = false;
	r->need_stack = false;
	if (st == GO_GDEAD || st == GO_GDEADEXTRA)
		return false;
	g->goid = rd64(r->raw, L->goid);
	g->waitreason = r->raw[L->waitreason];
	g->gopc = rd64(r->raw, L->gopc);
	g->startpc = rd64(r->raw, L->startpc);
	g->parent_goid = L->parent_goid >= 0 ? rd64(r->raw, L->parent_goid) : 0;
	g->waitsince = L->waitsince >= 0 ? (int64_t)rd64(r->raw, L->waitsince) : 0;
	r->lo = rd64(r->raw, L->stack_lo);
	r->hi = rd64(r->raw, L->stack_hi);
	r->sp = rd64(r->raw, L->sched_sp);
	r->pc = rd64(r->raw, L->sched_pc);

	/* A torn or recycled g fails one of these; it is re-read, never guessed. */
	if (st > max_status || st == GO_GIDLE || st == GO_GMORIBUND_UNUSED ||
	    st == GO_GENQUEUE_UNUSED)
		return true;
	if (!g->goid || g->goid >= MAX_GOID || g->parent_goid >= MAX_GOID)
		return true;
	if (!r->lo || (r->lo & 7) || r->hi <= r->lo || r->hi - r->lo > MAX_STACK)
		return true;
	if (st == GO_GWAITING && x->nreasons && g->waitreason >= x->nreasons)
		return true;
	if ((g->startpc && !in_text(x, g->startpc)) || (g->gopc && !in_text(x, g->gopc)))
		return true;
	if (parked_status(st)) {
		if (r->sp <= r->lo || r->sp > r->hi || !in_text(x, r->pc))
			return true;
		r->need_stack = true;
	} else if (st == GO_GSYSCALL) {
		/* Saved by entersyscall; a syscall g whose context is off only loses its stack. */
		r->need_stack = r->sp > r->lo && r->sp <= r->hi && in_text(x, r->pc);
	}
	g->stack_state = st == GO_GRUNNING ? CENSUS_STACK_RUNNING : CENSUS_STACK_NONE;
	r->sane = true;
	return true;
}

/*
 * isSystemGoroutine (runtime/traceback.go) by the start function, which the linker maps
 * to a funcID by name: runtime.main and corostart goroutines are the user's; the
 * finalizer and cleanup goroutines are the user's while they run user code (judged
 * from the stack: a frame outside the runtime); other runtime.* starts are system.
 */
static bool is_system(struct census_ctx *x, const struct census_g *g)
{
	const struct go_func *f;
	uint64_t entry;

	if (!g->startpc)
		return false;
	f = pclntab__find_func(x->m->pcln, go_model__to_link(x->m, g->startpc));
	if (!f)
		return false;
	entry = f->entry;
	if (in_list(x->keep_user, 3, entry))
		return false;
	if (in_list(x->runfinq, 2, entry) || (x->run_cleanups && entry == x->run_cleanups)) {
		const struct census_stack *s = g->stack >= 0 ? x->c->stacks[g->stack] : NULL;

		for (uint32_t i = 0; s && i < s->depth; i++) {
			const struct go_func *ff =
				pclntab__find_func(x->m->pcln, go_model__to_link(x->m, s->pcs[i]));

			if (ff && strncmp(ff->name, "runtime.", 8) &&
			    strncmp(ff->name, "internal/runtime/", 17))
				return false;
		}
		return true;
	}
	return !strncmp(f->name, "runtime.", 8);
}

static int keep(struct census_ctx *x, const struct census_g *g)
{
	struct census *c = x->c;

	if (g->system && !(x->opts && x->opts->keep_system))
		return 0;
	if (c->ng == x->gs_cap) {
		size_t ncap = x->gs_cap ? x->gs_cap * 2 : 1024;
		struct census_g *nv = realloc(c->gs, ncap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		c->gs = nv;
		x->gs_cap = ncap;
	}
	c->gs[c->ng++] = *g;
	return 0;
}

/* The window of stack to read for R: from sched.sp up, at most STACK_WINDOW bytes. */
static size_t window_len(const struct g_read *r)
{
	uint64_t n = r->hi - r->sp;

	return n < STACK_WINDOW ? (size_t)n : STACK_WINDOW;
}

/* Has R moved since it was read? Compares the re-read header with the first read. */
static bool moved(const struct census_ctx *x, const struct g_read *r)
{
	const struct g_layout *L = &x->L;

	return memcmp(r->hdr, r->raw + L->hdr_off, L->hdr_len) != 0;
}

/*
 * Read, check and unwind the goroutines at ADDRS[0..N) in three batched reads.
 * RS holds N reusable buffers. Returns 0, or -ESRCH / -ENOMEM.
 */
static int read_batch(struct census_ctx *x, struct g_read *rs, struct proc_mem_req *reqs,
		      size_t n)
{
	const struct g_layout *L = &x->L;
	long got;

	/* 1: the g structs. */
	for (size_t i = 0; i < n; i++)
		reqs[i] = (struct proc_mem_req){ rs[i].addr, rs[i].raw, L->len, 0 };
	got = proc_mem__readv(x->mem, reqs, n);
	if (got == -ESRCH)
		return -ESRCH;
	/* 2: the top of each parked goroutine's stack. */
	for (size_t i = 0; i < n; i++) {
		rs[i].err = reqs[i].err;
		rs[i].sane = false;
		rs[i].need_stack = false;
		rs[i].win_len = 0;
		rs[i].dead = !rs[i].err && !g_parse(x, &rs[i]);
		if (rs[i].err || rs[i].dead) {
			reqs[i].len = 0;
			continue;
		}
		rs[i].win_len = rs[i].need_stack ? window_len(&rs[i]) : 0;
		reqs[i] = (struct proc_mem_req){ rs[i].sp, rs[i].win, rs[i].win_len, 0 };
	}
	if (proc_mem__readv(x->mem, reqs, n) == -ESRCH)
		return -ESRCH;
	for (size_t i = 0; i < n; i++) {
		if (!rs[i].need_stack)
			continue;
		if (reqs[i].err) {
			rs[i].win_len = 0; /* unwind() falls back to word reads */
		}
		if (unwind(x, &rs[i]))
			rs[i].sane = false;
	}
	/* 3: re-read status and context; a goroutine that moved is redone. */
	for (size_t i = 0; i < n; i++) {
		bool again = rs[i].sane && rs[i].g.status != GO_GRUNNING;

		reqs[i] = (struct proc_mem_req){ rs[i].addr + L->hdr_off, rs[i].hdr,
						 again ? L->hdr_len : 0, 0 };
	}
	if (proc_mem__readv(x->mem, reqs, n) == -ESRCH)
		return -ESRCH;
	for (size_t i = 0; i < n; i++) {
		if (reqs[i].len && (reqs[i].err || moved(x, &rs[i])))
			rs[i].sane = false;
	}
	return 0;
}

/* Record a goroutine read successfully. */
static int commit(struct census_ctx *x, struct g_read *r)
{
	struct census_g *g = &r->g;

	if (r->need_stack) {
		g->stack = stack_intern(x, r->pcs, r->depth, r->truncated);
		if (g->stack < 0)
			return -ENOMEM;
		g->stack_state = r->truncated ? CENSUS_STACK_TRUNCATED : CENSUS_STACK_OK;
	} else if (g->status == GO_GSYSCALL) {
		g->stack_state = CENSUS_STACK_CHANGED;
	}
	if (g->stack < 0)
		x->c->stack_unknown++;
	g->system = is_system(x, g);
	if (g->system)
		x->c->system++;
	else
		x->c->user++;
	return keep(x, g);
}

static int alloc_reads(struct census_ctx *x, struct g_read **rs, uint8_t **arena)
{
	size_t per = x->L.len + x->L.hdr_len + STACK_WINDOW;

	*rs = calloc(CHUNK, sizeof(**rs));
	*arena = malloc(CHUNK * per);
	if (!*rs || !*arena)
		return -ENOMEM;
	for (size_t i = 0; i < CHUNK; i++) {
		(*rs)[i].raw = *arena + i * per;
		(*rs)[i].hdr = (*rs)[i].raw + x->L.len;
		(*rs)[i].win = (*rs)[i].hdr + x->L.hdr_len;
	}
	return 0;
}

/* allglen, then allgptr, then the array, like atomicAllG; retried while inconsistent. */
static int read_list(struct census_ctx *x, uint64_t **gp, uint64_t *len)
{
	const struct census_vars *v = &x->c->vars;
	uint64_t n = 0, ptr = 0, *arr = NULL;
	int err = -EINVAL;

	for (int t = 0; t < LIST_TRIES; t++) {
		err = proc_mem__read(x->mem, go_model__to_runtime(x->m, v->allglen), &n, 8);
		if (!err)
			err = proc_mem__read(x->mem, go_model__to_runtime(x->m, v->allgptr), &ptr, 8);
		if (err == -ESRCH)
			break;
		if (!err && (!n || n > (1ULL << 28) || !ptr || (ptr & 7)))
			err = -EINVAL;
		if (!err) {
			free(arr);
			arr = malloc(n * 8);
			if (!arr)
				return -ENOMEM;
			err = proc_mem__read(x->mem, ptr, arr, n * 8);
		}
		if (!err) {
			*gp = arr;
			*len = n;
			return 0;
		}
		x->c->retries++;
	}
	free(arr);
	if (err == -ESRCH)
		gt_seterr("process %d exited", x->m->proc.pid);
	else
		gt_seterr("process %d: cannot read the goroutine list (allglen %" PRIu64
			  ", allgptr %#" PRIx64 "): %s",
			  x->m->proc.pid, n, ptr, strerror(-err));
	return err;
}

static void census_ctx_fini(struct census_ctx *x)
{
	free(x->fc.slot);
	free(x->ss.slot);
	free(x->ss.hash);
}

/* A reader kept across censuses: what is found once (variables, layout, frame cache). */
struct census_reader {
	struct census_ctx x;
	struct census_opts opts;
	struct census_vars vars;
	struct proc_mem_req *reqs;
	struct g_read *rs;
	uint8_t *arena;
};

int census_reader__new(const struct go_model *m, struct proc_mem *mem,
		       const struct census_opts *opts, struct census_reader **out)
{
	struct census_reader *r;
	const char *const *tab;
	int err;

	*out = NULL;
	if (!m->has_proc) {
		gt_seterr("the goroutine census needs a running process (-p PID)");
		return -EINVAL;
	}
	if (!m->supported) {
		gt_seterr("%s", m->unsupported_reason[0] ? m->unsupported_reason
							: "unsupported Go version");
		return -ENOTSUP;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	if (opts)
		r->opts = *opts;
	r->x.m = m;
	r->x.mem = mem;
	r->x.opts = &r->opts;
	r->x.nreasons = go_waitreasons(m->bi.minor, &tab);
	err = layout_init(m, &r->x.L);
	if (!err)
		err = census_locate__find(m, &r->vars);
	if (!err)
		err = census_locate__check(m, mem, &r->vars);
	if (!err)
		err = alloc_reads(&r->x, &r->rs, &r->arena);
	if (!err) {
		r->reqs = calloc(CHUNK, sizeof(*r->reqs));
		if (!r->reqs)
			err = -ENOMEM;
	}
	if (err) {
		census_reader__free(r);
		return err;
	}
	frame_cache_init(m, &r->x.fc);
	r->x.runfinq[0] = func_entry(m, "runtime.runfinq");
	r->x.runfinq[1] = func_entry(m, "runtime.runFinalizers");
	r->x.run_cleanups = func_entry(m, "runtime.runCleanups");
	r->x.keep_user[0] = func_entry(m, "runtime.main");
	r->x.keep_user[1] = func_entry(m, "runtime.corostart");
	r->x.keep_user[2] = func_entry(m, "runtime.handleAsyncEvent");
	*out = r;
	return 0;
}

void census_reader__free(struct census_reader *r)
{
	if (!r)
		return;
	census_ctx_fini(&r->x);
	free(r->reqs);
	free(r->rs);
	free(r->arena);
	free(r);
}

int census_reader__take(struct census_reader *r, struct census **out)
{
	struct census_ctx *x = &r->x;
	struct g_read *rs = r->rs;
	struct proc_mem_req *reqs = r->reqs;
	uint64_t *gptrs = NULL, ng = 0;
	double t0 = now_ms();
	struct census *c;
	int err;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	/* Per census: a fresh result and stack set; the frame cache is kept. */
	free(x->ss.slot);
	free(x->ss.hash);
	memset(&x->ss, 0, sizeof(x->ss));
	x->gs_cap = x->stacks_cap = 0;
	x->c = c;
	c->go_minor = x->m->bi.minor;
	c->vars = r->vars;

	err = read_list(x, &gptrs, &ng);
	if (err)
		goto cleanup;
	c->allglen = ng;
	for (uint64_t base = 0; base < ng; base += CHUNK) {
		size_t n = ng - base < CHUNK ? (size_t)(ng - base) : CHUNK, k = 0;

		for (size_t i = 0; i < n; i++) {
			if (!gptrs[base + i] || (gptrs[base + i] & 7)) {
				c->unreadable++;
				continue;
			}
			rs[k++].addr = gptrs[base + i];
		}
		err = read_batch(x, rs, reqs, k);
		if (err)
			goto cleanup;
		for (size_t i = 0; i < k; i++) {
			struct g_read *g = &rs[i];

			/* Moved or torn: redo alone, a few times. */
			for (int t = 1; !g->dead && !g->sane && t < G_TRIES; t++) {
				c->retries++;
				proc_mem__drop_cache(x->mem);
				err = read_batch(x, g, reqs, 1);
				if (err)
					goto cleanup;
			}
			if (g->dead) {
				c->dead++;
				continue;
			}
			if (!g->sane) {
				c->unreadable++;
				dlog("gotrace: g %#" PRIx64 " unreadable (%s)\n", g->addr,
				     g->err ? strerror(-g->err) : "failed the sanity checks");
				continue;
			}
			err = commit(x, g);
			if (err)
				goto cleanup;
		}
	}
	c->elapsed_ms = now_ms() - t0;
	c->mem = *proc_mem__stats(x->mem);
	*out = c;
	c = NULL;
	err = 0;
cleanup:
	free(gptrs);
	census__free(c);
	x->c = NULL;
	return err;
}

int census__take(const struct go_model *m, struct proc_mem *mem, const struct census_opts *opts,
		 struct census **out)
{
	struct census_reader *r;
	int err = census_reader__new(m, mem, opts, &r);

	*out = NULL;
	if (err)
		return err;
	err = census_reader__take(r, out);
	census_reader__free(r);
	return err;
}

void census__free(struct census *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nstacks; i++)
		free(c->stacks[i]);
	free(c->stacks);
	free(c->gs);
	free(c);
}
