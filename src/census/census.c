// SPDX-License-Identifier: MIT
/*
 * The goroutine census. The snapshot runs in chunks of goroutines so that memory stays
 * bounded whatever the goroutine count. Every goroutine is read the same way: its g
 * struct, then the top of its stack (unwound locally), then its status and saved context
 * again; one that moved meanwhile is redone, with the others that did, a bounded number
 * of times.
 *
 * What that costs is the target's pages: process_vm_readv pins every page of every remote
 * range (~1.5 us a page on a cache the target left cold), far more than the bytes or the
 * syscalls. So a reader kept across censuses remembers what the next census can use: the
 * allgs entries (the list only grows), the g structs' order in memory (neighbours share a
 * remote range), where each goroutine's context was and how much stack its unwind read.
 * In the usual case, one syscall then reads a chunk: the g structs, the stack each
 * goroutine had last time (used only if its context is still there), and the headers
 * again; goroutines found elsewhere take one more. The unwind of a goroutine whose
 * context and stack words are unchanged is replayed, not walked.
 *
 * Reading order follows the runtime's atomicAllG (allglen, then allgptr): allgs only
 * grows, and the array at allgptr always holds at least allglen entries.
 */
#define _GNU_SOURCE /* qsort_r */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "census/census.h"
#include "util/hash.h"
#include "util/log.h"

#define CHUNK 1024		/* goroutines per batch */
#define STACK_WINDOW 4096	/* stack bytes read up front per goroutine (above sched.sp) */
#define MAX_STACK (1ULL << 30)	/* runtime.maxstacksize on 64-bit */
#define MAX_GOID (1ULL << 56)
#define LIST_TRIES 5		/* re-reads of allglen/allgptr/array */
#define G_TRIES 3		/* reads of one goroutine before it is declared unreadable */
#define MEMO_BUDGET (32 << 20)	/* bytes of unwind memos kept (~100k goroutines' worth) */
/*
 * Goroutines (by address) whose g structs, stacks and headers are read back to back in
 * a syscall: the less time between a goroutine's first read and its re-read, the fewer
 * are found to have moved (a third of the retries of a whole chunk at once, on net/http
 * under load), and a group's g structs still share remote ranges.
 */
#define GROUP 16

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

/* What is_system() makes of a function, found once per PC. */
enum fclass {
	FC_UNKNOWN,
	FC_USER,	/* not the runtime's (or, as a start, one that starts user goroutines) */
	FC_SYSTEM,	/* the runtime's */
	FC_BY_STACK,	/* finalizer and cleanup goroutines: the user's while in user code */
};

struct frame_info {
	uint64_t pc; /* link-time; 0 = empty slot */
	uint64_t entry; /* fn->entry, kept here: fn is one more cache miss per frame */
	const struct go_func *fn;
	int32_t spdelta;
	uint8_t kind;
	uint8_t start_cls; /* enum fclass of fn as a goroutine's start function */
	uint8_t frame_cls; /* enum fclass of fn as a frame (FC_USER or FC_SYSTEM) */
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
	/*
	 * allgs as read by earlier censuses: the runtime only ever appends to it ("allgs
	 * contains all Gs ever created ... and thus never shrinks", proc.go, 1.17-1.27), so
	 * while allgptr stays the same only the entries past the ones known are read.
	 */
	uint64_t *gaddr, gptr;
	size_t ngaddr, gaddr_cap;
	struct g_seen *seen;	/* per allgs entry, gaddr_cap of them */
	uint32_t *order;	/* per chunk: its readable entries by address (chunk_load) */
	size_t norder;		/* entries of gaddr the order was made for */
	/*
	 * What a chunk reads, packed: the censuses run on a cold cache (a CPU that ran the
	 * target meanwhile), where every page and cache line touched counts.
	 */
	uint8_t *raws, *hdrs;	/* CHUNK g structs, CHUNK re-read headers */
	uint8_t *wins;		/* stack windows of one batch, one after the other */
	uint64_t *pcs;		/* unwound PCs of one chunk, one stack after the other */
	size_t npcs;
	uint32_t *tmp;		/* CHUNK: which goroutine each request of a batch is for */
	size_t memo_bytes;	/* held by the memos in seen */
	uint64_t takes;		/* censuses taken: a one-shot reader keeps no memo */
	uint32_t nwords;	/* stack words the running unwind read from its window */
	uint32_t word_off[CENSUS_MAX_DEPTH];
	uint64_t word[CENSUS_MAX_DEPTH];
	uint64_t runfinq[2], run_cleanups, keep_user[3]; /* isSystemGoroutine special cases */
	int nreasons;
};

/*
 * What the last read of one allgs entry saw: where its saved context was, and how many
 * stack bytes above it the unwind read. The next read of that g asks for those bytes in
 * the same syscall as the g struct; they are used only if the g is found there again.
 */
struct g_seen {
	uint64_t sp;	/* 0: nothing to expect */
	uint32_t need;	/* 0: unknown, read room */
	uint32_t room;	/* bytes from sp to the stack's top, at most STACK_WINDOW */
	bool dead;	/* found dead: its header is not read again with the others */
	bool text_ok;	/* gopc and startpc below were found in the text */
	uint8_t system;	/* 1 + is_system() of startpc below, when not judged by the stack */
	bool memo_ok;	/* memo holds an unwind from memo_pc (here: one cache miss less) */
	uint64_t gopc, startpc, memo_pc;
	struct unwind_memo *memo;
};

/*
 * The last unwind of one g, to be replayed instead of walked again: an unwind is a pure
 * function of the context (pc, sp, stack bounds) and of the stack words it read, so when
 * those are the same, read again in this census, so are its frames. Only unwinds that
 * read every word from the window are kept.
 */
struct unwind_memo {
	uint64_t sp, lo, hi;	/* and pc: g_seen.memo_pc */
	uint32_t depth, need, nwords, cap;
	bool truncated;
	uint64_t *pcs;	  /* depth */
	uint32_t *off;	  /* nwords: where each word was read, from sp */
	uint64_t *word;	  /* nwords: what it held */
};

/* One goroutine being read. */
struct g_read {
	uint64_t addr;
	size_t idx;	   /* in allgs */
	uint8_t *raw;	   /* L.len bytes */
	uint8_t *hdr;	   /* L.hdr_len bytes, re-read */
	uint8_t *win;	   /* win_len bytes, in x->wins */
	size_t win_len;
	uint64_t spec_sp;  /* window read ahead with the g struct: spec_len bytes at spec_sp */
	size_t spec_len;
	size_t need;	   /* stack bytes above sp the unwind read */
	int err;
	struct census_g g;
	uint64_t lo, hi, sp, pc;
	uint64_t *pcs;	   /* depth of them, in x->pcs */
	uint32_t depth;
	bool truncated;
	bool dead;	/* _Gdead: on a free list, or exited */
	bool sane;	/* struct passed the checks */
	bool need_stack;
	bool outside;	/* the unwind read stack words past the window */
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
static struct frame_info *frame_at(struct census_ctx *x, uint64_t pc)
{
	struct frame_cache *fc = &x->fc;
	struct frame_info *f;
	size_t i;

	if (fc->n * 2 >= fc->cap) {
		/* Small to start with: a census touches every page of it while cold. */
		size_t ncap = fc->cap ? fc->cap * 2 : 256;
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
	f->entry = f->fn->entry;
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
static int stack_word(struct census_ctx *x, struct g_read *r, uint64_t addr, uint64_t *val)
{
	if (addr < r->lo || addr + 8 > r->hi)
		return -EFAULT;
	if (addr >= r->sp && addr + 8 - r->sp > r->need)
		r->need = addr + 8 - r->sp;
	if (addr >= r->sp && addr + 8 <= r->sp + r->win_len) {
		memcpy(val, r->win + (addr - r->sp), 8);
		/* At most one word per frame: CENSUS_MAX_DEPTH of them. */
		x->word_off[x->nwords] = (uint32_t)(addr - r->sp);
		x->word[x->nwords++] = *val;
		return 0;
	}
	r->outside = true;
	return proc_mem__read_u64(x->mem, addr, val);
}

/*
 * Unwind R from its saved context the way the runtime's unwinder does on amd64: the
 * caller's frame starts at sp + spdelta(pc) + 8, the return address just below it.
 * Records symbolization PCs (return address - 1, except where the PC is exact).
 * Returns 0, or -EINVAL when even the first frame is not Go code (a torn read).
 * Sets *KEEP when the result may be replayed (see struct unwind_memo).
 */
static int unwind_walk(struct census_ctx *x, struct g_read *r, bool *keep)
{
	uint64_t bias = x->m->has_proc ? x->m->proc.load_bias : 0;
	uint64_t pc = r->pc, sp = r->sp;
	bool exact = false; /* PC is not a return address (new goroutine, after a trap) */

	*keep = true;
	x->nwords = 0;
	r->outside = false;
	r->depth = 0;
	r->truncated = false;
	r->need = 0;
	for (;;) {
		const struct frame_info *f = frame_at(x, pc - bias);
		uint64_t fp, lr;

		if (!f || !f->fn) {
			*keep = f != NULL; /* not after ENOMEM */
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
		r->pcs[r->depth++] = pc - bias > f->entry && !exact ? pc - 1 : pc;
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

/* R's unwind as the memo of its g says, if its context and the words read are the same. */
static bool unwind_replay(struct census_ctx *x, struct g_read *r)
{
	const struct g_seen *s = &x->seen[r->idx];
	const struct unwind_memo *mm = s->memo;

	if (!s->memo_ok || s->memo_pc != r->pc || mm->sp != r->sp || mm->lo != r->lo ||
	    mm->hi != r->hi || mm->need > r->win_len)
		return false;
	for (uint32_t i = 0; i < mm->nwords; i++) {
		if (memcmp(r->win + mm->off[i], &mm->word[i], 8))
			return false;
	}
	memcpy(r->pcs, mm->pcs, mm->depth * sizeof(*mm->pcs));
	r->depth = mm->depth;
	r->truncated = mm->truncated;
	r->need = mm->need;
	r->outside = false;
	return true;
}

/* Keep R's unwind (just walked) in the memo of its g. */
static void unwind_keep(struct census_ctx *x, const struct g_read *r)
{
	struct unwind_memo *mm = x->seen[r->idx].memo;
	uint32_t cap = r->depth > x->nwords ? r->depth : x->nwords;

	if (!mm || mm->cap < cap) {
		size_t ncap = cap < 16 ? 16 : CENSUS_MAX_DEPTH, old = mm ? mm->cap : 0;
		size_t grow = (ncap - old) * (8 + 4 + 8) + (mm ? 0 : sizeof(*mm));
		struct unwind_memo *nm = NULL;

		/* Within a budget: a program with millions of goroutines walks the rest. */
		if (x->memo_bytes + grow <= MEMO_BUDGET)
			nm = realloc(mm, sizeof(*nm) + ncap * (8 + 4 + 8));
		if (!nm) {
			x->seen[r->idx].memo_ok = false;
			return;
		}
		x->memo_bytes += grow;
		mm = nm;
		mm->cap = (uint32_t)ncap;
		mm->pcs = (uint64_t *)(mm + 1);
		mm->word = mm->pcs + ncap;
		mm->off = (uint32_t *)(mm->word + ncap);
		x->seen[r->idx].memo = mm;
	}
	mm->sp = r->sp;
	mm->lo = r->lo;
	mm->hi = r->hi;
	mm->depth = r->depth;
	mm->truncated = r->truncated;
	mm->need = (uint32_t)r->need;
	mm->nwords = x->nwords;
	memcpy(mm->pcs, r->pcs, r->depth * sizeof(*mm->pcs));
	memcpy(mm->off, x->word_off, x->nwords * sizeof(*mm->off));
	memcpy(mm->word, x->word, x->nwords * sizeof(*mm->word));
	x->seen[r->idx].memo_ok = true;
	x->seen[r->idx].memo_pc = r->pc;
}

/* Unwind R (see unwind_walk): replayed when nothing it depends on changed. */
static int unwind(struct census_ctx *x, struct g_read *r)
{
	bool keep;
	int err;

	r->pcs = x->pcs + x->npcs;
	if (unwind_replay(x, r))
		return 0;
	err = unwind_walk(x, r, &keep);
	if (!err && keep && !r->outside && x->takes)
		unwind_keep(x, r);
	else
		x->seen[r->idx].memo_ok = false;
	return err;
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
	struct g_seen *s = &x->seen[r->idx];
	bool pc_ok;

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
	/* What an earlier read of this g found in the text still is. */
	if (!s->text_ok || s->gopc != g->gopc || s->startpc != g->startpc) {
		if ((g->startpc && !in_text(x, g->startpc)) || (g->gopc && !in_text(x, g->gopc)))
			return true;
		s->text_ok = true;
		s->system = 0;
		s->gopc = g->gopc;
		s->startpc = g->startpc;
	}
	pc_ok = s->memo_ok && s->memo_pc == r->pc;
	if (parked_status(st)) {
		if (r->sp <= r->lo || r->sp > r->hi || !(pc_ok || in_text(x, r->pc)))
			return true;
		r->need_stack = true;
	} else if (st == GO_GSYSCALL) {
		/* Saved by entersyscall; a syscall g whose context is off only loses its stack. */
		r->need_stack = r->sp > r->lo && r->sp <= r->hi && (pc_ok || in_text(x, r->pc));
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
static bool runtime_name(const char *name)
{
	return !strncmp(name, "runtime.", 8) || !strncmp(name, "internal/runtime/", 17);
}

static bool is_system(struct census_ctx *x, const struct census_g *g, bool *by_stack)
{
	struct frame_info *f;
	uint64_t entry;

	*by_stack = false;
	if (!g->startpc)
		return false;
	f = frame_at(x, go_model__to_link(x->m, g->startpc));
	*by_stack = !f; /* ENOMEM: not to be remembered */
	if (!f || !f->fn)
		return false;
	if (f->start_cls == FC_UNKNOWN) {
		entry = f->entry;
		if (in_list(x->keep_user, 3, entry))
			f->start_cls = FC_USER;
		else if (in_list(x->runfinq, 2, entry) ||
			 (x->run_cleanups && entry == x->run_cleanups))
			f->start_cls = FC_BY_STACK;
		else
			f->start_cls = !strncmp(f->fn->name, "runtime.", 8) ? FC_SYSTEM : FC_USER;
	}
	if (f->start_cls == FC_BY_STACK) {
		const struct census_stack *s = g->stack >= 0 ? x->c->stacks[g->stack] : NULL;

		*by_stack = true;
		for (uint32_t i = 0; s && i < s->depth; i++) {
			struct frame_info *ff = frame_at(x, go_model__to_link(x->m, s->pcs[i]));

			if (!ff || !ff->fn)
				continue;
			if (ff->frame_cls == FC_UNKNOWN)
				ff->frame_cls = runtime_name(ff->fn->name) ? FC_SYSTEM : FC_USER;
			if (ff->frame_cls == FC_USER)
				return false;
		}
		return true;
	}
	return f->start_cls == FC_SYSTEM;
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

/*
 * The window of stack to read for R: from sched.sp up, at most STACK_WINDOW bytes, and
 * only what the last unwind from the same sp read (a parked goroutine is usually found
 * parked at the same place again: the same frames). A stack that changed beneath the
 * same sp only costs word reads past the window.
 */
static size_t window_len(const struct census_ctx *x, const struct g_read *r)
{
	const struct g_seen *s = &x->seen[r->idx];
	uint64_t n = r->hi - r->sp;

	if (s->need && s->sp == r->sp && s->need < n)
		n = s->need;
	return n < STACK_WINDOW ? (size_t)n : STACK_WINDOW;
}

/* Has R moved since it was read? Compares the re-read header with the first read. */
static bool moved(const struct census_ctx *x, const struct g_read *r)
{
	const struct g_layout *L = &x->L;

	return memcmp(r->hdr, r->raw + L->hdr_off, L->hdr_len) != 0;
}

/* The stack bytes to read ahead for R: what its last read found, where it found it. */
static size_t expected_window(const struct census_ctx *x, const struct g_read *r)
{
	const struct g_seen *s = &x->seen[r->idx];
	uint32_t n = !s->sp ? 0 : s->need ? s->need : s->room;

	return n < STACK_WINDOW ? n : STACK_WINDOW;
}

/* After a read of R: where to expect its context next time, and how much stack. */
static void remember(struct census_ctx *x, const struct g_read *r, uint64_t sp, uint32_t need)
{
	struct g_seen *s = &x->seen[r->idx];
	uint64_t room = r->hi - sp;

	s->dead = false;
	if (!sp || sp <= r->lo || sp > r->hi) {
		s->sp = 0;
		return;
	}
	s->sp = sp;
	s->need = need;
	s->room = room < STACK_WINDOW ? (uint32_t)room : STACK_WINDOW;
}

/* R could not be read, or is dead: nothing to expect of it. */
static void forget(struct census_ctx *x, const struct g_read *r)
{
	struct g_seen *s = &x->seen[r->idx];

	s->sp = 0;
	s->dead = r->dead;
	s->text_ok = false;
	s->system = 0;
	s->memo_ok = false;
}

/* R's re-read header (HDR_ERR: its read) against the first read: still where it was? */
static void check_moved(struct census_ctx *x, struct g_read *r, int hdr_err)
{
	const struct g_layout *L = &x->L;

	if (!r->sane || r->g.status == GO_GRUNNING)
		return;
	if (!hdr_err && !moved(x, r))
		return;
	r->sane = false;
	/* Its retry reads the stack where the context is now. */
	if (!hdr_err)
		remember(x, r, rd64(r->hdr, L->sched_sp - (int64_t)L->hdr_off), 0);
}

/*
 * Read, check and unwind the goroutines RS[ORD[0..N)]; ORD lists them by address, so that
 * neighbouring g structs share a remote iovec. Each goroutine is read, then its stack,
 * then its header again, and kept only if the header did not change.
 *
 * Usually in one syscall: HEAD[0..NHEAD) (the list's header, when the caller has it read
 * along), the g structs, the stack window each goroutine had at its last read, and the
 * headers again. A goroutine whose context is elsewhere, or whose unwind needs more
 * stack than that, is then read the slow way: its window, its unwind (words past the
 * window through the page cache), its header again. REQS holds 2 + 3 * N.
 * Returns 0, or -ESRCH.
 */
static int read_batch(struct census_ctx *x, struct g_read *rs, const uint32_t *ord,
		      struct proc_mem_req *reqs, size_t n, struct proc_mem_req *head,
		      size_t nhead)
{
	const struct g_layout *L = &x->L;
	size_t nr = 0, off = 0, m = 0;

	/*
	 * 1: the header; then by GROUP, the g structs, the windows expected, the g headers
	 * again: in a group of GL goroutines, the requests of the K-th are K, GL + K and
	 * 2 * GL + K from the group's first.
	 */
	for (size_t h = 0; h < nhead; h++)
		reqs[nr++] = head[h];
	for (size_t g0 = 0; g0 < n; g0 += GROUP) {
		size_t g1 = g0 + GROUP < n ? g0 + GROUP : n;

		for (size_t i = g0; i < g1; i++) {
			struct g_read *r = &rs[ord[i]];

			reqs[nr++] = (struct proc_mem_req){ r->addr, r->raw, L->len, 0 };
		}
		for (size_t i = g0; i < g1; i++) {
			struct g_read *r = &rs[ord[i]];

			r->spec_sp = x->seen[r->idx].sp;
			r->spec_len = expected_window(x, r);
			r->win = x->wins + off;
			off += (r->spec_len + 7) & ~(size_t)7;
			reqs[nr++] = (struct proc_mem_req){ r->spec_sp, r->win, r->spec_len, 0 };
		}
		for (size_t i = g0; i < g1; i++) {
			struct g_read *r = &rs[ord[i]];
			size_t len = x->seen[r->idx].dead ? 0 : L->hdr_len;

			reqs[nr++] = (struct proc_mem_req){ r->addr + L->hdr_off, r->hdr, len, 0 };
		}
	}
	if (proc_mem__readv(x->mem, reqs, nr) == -ESRCH)
		return -ESRCH;
	for (size_t h = 0; h < nhead; h++)
		head[h].err = reqs[h].err;
	/* 2: check them; unwind from the windows read ahead where the context was expected. */
	for (size_t i = 0; i < n; i++) {
		struct g_read *r = &rs[ord[i]];
		size_t g0 = i - i % GROUP, gl = n - g0 < GROUP ? n - g0 : GROUP;
		const struct proc_mem_req *rg = &reqs[nhead + 3 * g0 + i % GROUP];
		int hdr_err = rg[2 * gl].err;
		bool hdr_read = rg[2 * gl].len;
		size_t wl;

		r->err = rg->err;
		if (rg[gl].err)
			r->spec_len = 0;
		r->sane = false;
		r->need_stack = false;
		r->win_len = 0;
		r->dead = !r->err && !g_parse(x, r);
		if (r->dead || r->err)
			forget(x, r);
		if (r->err || r->dead)
			continue;
		x->seen[r->idx].dead = false;
		if (!r->need_stack && hdr_read) {
			check_moved(x, r, hdr_err);
			continue;
		}
		wl = r->need_stack ? window_len(x, r) : 0;
		if (r->need_stack && hdr_read && r->spec_len && r->spec_sp == r->sp &&
		    r->spec_len >= wl) {
			r->win_len = wl;
			if (unwind(x, r))
				r->sane = false;
			if (!r->outside) {
				x->npcs += r->depth;
				remember(x, r, r->sp, (uint32_t)r->need);
				check_moved(x, r, hdr_err);
				continue;
			}
			/* Read past the window after the header: redone the slow way. */
			remember(x, r, r->sp, (uint32_t)r->need);
		}
		x->tmp[m++] = ord[i];
	}
	if (!m)
		return 0;
	/*
	 * 3: the others, in one more syscall: the window where the context is now, then the
	 * header again.
	 */
	for (size_t j = 0; j < m; j++) {
		struct g_read *r = &rs[x->tmp[j]];
		bool again = r->sane && r->g.status != GO_GRUNNING;

		r->win_len = r->need_stack ? window_len(x, r) : 0;
		r->win = x->wins + off;
		off += (r->win_len + 7) & ~(size_t)7;
		reqs[j] = (struct proc_mem_req){ r->sp, r->win, r->win_len, 0 };
		reqs[m + j] = (struct proc_mem_req){ r->addr + L->hdr_off, r->hdr,
						     again ? L->hdr_len : 0, 0 };
	}
	if (proc_mem__readv(x->mem, reqs, 2 * m) == -ESRCH)
		return -ESRCH;
	nr = 0;
	for (size_t j = 0; j < m; j++) {
		struct g_read *r = &rs[x->tmp[j]];

		if (r->need_stack) {
			if (reqs[j].err)
				r->win_len = 0; /* unwind() falls back to word reads */
			if (unwind(x, r))
				r->sane = false;
			x->npcs += r->depth;
			remember(x, r, r->sp, (uint32_t)r->need);
			if (r->outside) {
				x->tmp[nr++] = x->tmp[j];
				continue;
			}
		}
		if (reqs[m + j].len)
			check_moved(x, r, reqs[m + j].err);
	}
	if (!nr)
		return 0;
	/* 4: unwinds that read words past their window: the header once more, after them. */
	for (size_t j = 0; j < nr; j++) {
		struct g_read *r = &rs[x->tmp[j]];

		reqs[j] = (struct proc_mem_req){ r->addr + L->hdr_off, r->hdr,
						 r->sane ? L->hdr_len : 0, 0 };
	}
	if (proc_mem__readv(x->mem, reqs, nr) == -ESRCH)
		return -ESRCH;
	for (size_t j = 0; j < nr; j++) {
		if (reqs[j].len)
			check_moved(x, &rs[x->tmp[j]], reqs[j].err);
	}
	return 0;
}

/* Record a goroutine read successfully. */
static int commit(struct census_ctx *x, struct g_read *r)
{
	struct census_g *g = &r->g;
	struct g_seen *s = &x->seen[r->idx];

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
	/* Judged once per start function and g, unless by the stack. */
	if (s->text_ok && s->startpc == g->startpc && s->system) {
		g->system = s->system - 1;
	} else {
		bool by_stack;

		g->system = is_system(x, g, &by_stack);
		if (s->text_ok && s->startpc == g->startpc && !by_stack)
			s->system = 1 + g->system;
	}
	if (g->system)
		x->c->system++;
	else
		x->c->user++;
	return keep(x, g);
}

static int alloc_reads(struct census_ctx *x, struct g_read **rs)
{
	size_t rlen = (x->L.len + 7) & ~(size_t)7, hlen = (x->L.hdr_len + 7) & ~(size_t)7;

	*rs = calloc(CHUNK, sizeof(**rs));
	x->raws = malloc(CHUNK * rlen);
	x->hdrs = malloc(CHUNK * hlen);
	/* Windows read ahead, then those found elsewhere: twice a chunk's at most. */
	x->wins = malloc(2 * CHUNK * STACK_WINDOW);
	x->tmp = malloc(CHUNK * sizeof(*x->tmp));
	/* Every goroutine of a chunk may be unwound G_TRIES times. */
	x->pcs = malloc(G_TRIES * CHUNK * CENSUS_MAX_DEPTH * sizeof(*x->pcs));
	if (!*rs || !x->raws || !x->hdrs || !x->wins || !x->pcs || !x->tmp)
		return -ENOMEM;
	for (size_t i = 0; i < CHUNK; i++) {
		(*rs)[i].raw = x->raws + i * rlen;
		(*rs)[i].hdr = x->hdrs + i * hlen;
	}
	return 0;
}

/* Room for N entries of allgs in the caches kept across censuses. */
static int gaddr_reserve(struct census_ctx *x, size_t n)
{
	size_t ncap = x->gaddr_cap ? x->gaddr_cap : 1024;
	uint64_t *ga;
	struct g_seen *se;
	uint32_t *ord;

	if (n <= x->gaddr_cap)
		return 0;
	while (ncap < n)
		ncap *= 2;
	ga = realloc(x->gaddr, ncap * sizeof(*ga));
	if (ga)
		x->gaddr = ga;
	se = realloc(x->seen, ncap * sizeof(*se));
	if (se)
		x->seen = se;
	ord = realloc(x->order, ncap * sizeof(*ord));
	if (ord)
		x->order = ord;
	if (!ga || !se || !ord)
		return -ENOMEM;
	memset(se + x->gaddr_cap, 0, (ncap - x->gaddr_cap) * sizeof(*se));
	x->gaddr_cap = ncap;
	return 0;
}

/*
 * allglen, then allgptr (one syscall reads them in that order), then the array, like
 * atomicAllG: of the array, only the entries past those already known while allgptr has
 * not moved. Retried while inconsistent. Sets *LEN to allglen; the list is in x->gaddr.
 */
static int read_list(struct census_ctx *x, uint64_t *len)
{
	const struct census_vars *v = &x->c->vars;
	uint64_t n = 0, ptr = 0;
	int err = -EINVAL;

	for (int t = 0; t < LIST_TRIES; t++) {
		struct proc_mem_req rq[2] = {
			{ go_model__to_runtime(x->m, v->allglen), &n, 8, 0 },
			{ go_model__to_runtime(x->m, v->allgptr), &ptr, 8, 0 },
		};
		long got = proc_mem__readv(x->mem, rq, 2);
		size_t from;

		err = got < 0 ? (int)got : rq[0].err ? rq[0].err : rq[1].err;
		if (err == -ESRCH)
			break;
		if (!err && (!n || n > (1ULL << 28) || !ptr || (ptr & 7)))
			err = -EINVAL;
		if (!err) {
			from = ptr == x->gptr && n >= x->ngaddr ? x->ngaddr : 0;
			if (gaddr_reserve(x, n))
				return -ENOMEM;
			if (!from)
				x->ngaddr = 0; /* overwritten: known again once read in full */
			if (from < n) {
				x->norder = 0;
				err = proc_mem__read(x->mem, ptr + from * 8, x->gaddr + from,
						     (n - from) * 8);
			}
		}
		if (!err) {
			x->ngaddr = n;
			x->gptr = ptr;
			*len = n;
			return 0;
		}
		x->c->retries++;
	}
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
	free(x->gaddr);
	for (size_t i = 0; x->seen && i < x->gaddr_cap; i++)
		free(x->seen[i].memo);
	free(x->seen);
	free(x->order);
	free(x->raws);
	free(x->hdrs);
	free(x->wins);
	free(x->pcs);
	free(x->tmp);
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
	uint32_t *redo; /* CHUNK: the goroutines of a chunk read again, by address */
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
		err = alloc_reads(&r->x, &r->rs);
	if (!err) {
		r->reqs = calloc(2 + 3 * CHUNK, sizeof(*r->reqs));
		r->redo = calloc(CHUNK, sizeof(*r->redo));
		if (!r->reqs || !r->redo)
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
	free(r->redo);
	free(r->rs);
	free(r);
}

/* qsort_r order of g_read indexes by g address. */
static int by_addr(const void *a, const void *b, void *arg)
{
	const struct g_read *rs = arg;
	uint64_t x = rs[*(const uint32_t *)a].addr, y = rs[*(const uint32_t *)b].addr;

	return x < y ? -1 : x > y;
}

/*
 * The goroutines of allgs[BASE..BASE+N) into RS: the readable entries (*K of them), in
 * allgs order, and the chunk's order by address (sorted again only when not ORDERED).
 * Returns how many entries cannot be read (null or misaligned).
 */
static uint64_t chunk_load(struct census_ctx *x, struct g_read *rs, uint64_t base, size_t n,
			   bool ordered, size_t *k)
{
	uint32_t *ord = x->order + base;
	uint64_t bad = 0;

	*k = 0;
	x->npcs = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t a = x->gaddr[base + i];

		if (!a || (a & 7)) {
			bad++;
			continue;
		}
		rs[*k].addr = a;
		rs[(*k)++].idx = base + i;
	}
	if (!ordered) {
		for (size_t i = 0; i < *k; i++)
			ord[i] = (uint32_t)i;
		qsort_r(ord, *k, sizeof(*ord), by_addr, rs);
	}
	return bad;
}

int census_reader__take(struct census_reader *r, struct census **out)
{
	struct census_ctx *x = &r->x;
	struct g_read *rs = r->rs;
	struct proc_mem_req *reqs = r->reqs;
	uint64_t ng = 0, bad = 0, len = 0, ptr = 0;
	double t0 = now_ms();
	struct census *c;
	bool ordered, first_read = false;
	size_t k = 0;
	int err;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	/* Per census: a fresh result and stack set; the frame cache is kept, the pages not. */
	proc_mem__drop_cache(x->mem);
	free(x->ss.slot);
	free(x->ss.hash);
	memset(&x->ss, 0, sizeof(x->ss));
	x->gs_cap = x->stacks_cap = 0;
	x->c = c;
	c->go_minor = x->m->bi.minor;
	c->vars = r->vars;

	/*
	 * The list as the last census left it: allglen and allgptr are read in the syscall
	 * that reads the first chunk (after them). If they did not change, that chunk is
	 * read; else the list is read again and the chunk with it.
	 */
	if (x->ngaddr && x->norder == x->ngaddr) {
		struct proc_mem_req head[2] = {
			{ go_model__to_runtime(x->m, c->vars.allglen), &len, 8, 0 },
			{ go_model__to_runtime(x->m, c->vars.allgptr), &ptr, 8, 0 },
		};

		bad = chunk_load(x, rs, 0, x->ngaddr < CHUNK ? x->ngaddr : CHUNK, true, &k);
		err = read_batch(x, rs, x->order, reqs, k, head, 2);
		if (err)
			goto cleanup;
		first_read = !head[0].err && !head[1].err && len == x->ngaddr && ptr == x->gptr;
		ng = len;
	}
	if (!first_read) {
		err = read_list(x, &ng);
		if (err)
			goto cleanup;
	}
	c->allglen = ng;
	ordered = x->norder == ng;
	for (uint64_t base = 0; base < ng; base += CHUNK) {
		size_t n = ng - base < CHUNK ? (size_t)(ng - base) : CHUNK;
		uint32_t *ord = x->order + base;

		if (base || !first_read) {
			bad = chunk_load(x, rs, base, n, ordered, &k);
			err = read_batch(x, rs, ord, reqs, k, NULL, 0);
			if (err)
				goto cleanup;
		}
		c->unreadable += bad;
		/* Moved or torn: redone together, a few times. */
		for (int t = 1; t < G_TRIES; t++) {
			size_t m = 0;

			for (size_t i = 0; i < k; i++) {
				if (!rs[ord[i]].dead && !rs[ord[i]].sane)
					r->redo[m++] = ord[i];
			}
			if (!m)
				break;
			c->retries += m;
			proc_mem__drop_cache(x->mem);
			err = read_batch(x, rs, r->redo, reqs, m, NULL, 0);
			if (err)
				goto cleanup;
		}
		for (size_t i = 0; i < k; i++) {
			struct g_read *g = &rs[i];

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
	x->norder = ng;
	x->takes++;
	c->elapsed_ms = now_ms() - t0;
	c->mem = *proc_mem__stats(x->mem);
	*out = c;
	c = NULL;
	err = 0;
cleanup:
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
