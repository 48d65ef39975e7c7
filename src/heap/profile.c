// SPDX-License-Identifier: MIT
/*
 * Reading the runtime's heap profile buckets and GC statistics from a live process.
 *
 * Buckets come from persistentalloc (chunks of 256 KiB, filled upwards), so the newest-first
 * list walks mostly downwards through a few large regions: the walk reads 64 KiB windows,
 * a few dozen of them kept per walk, and falls back to exact reads where a window is not
 * mapped whole. 50,000 buckets are a few hundred reads.
 *
 * bucket (mprof.go, 1.19-1.27): next, allnext, typ, hash, size, nstk (48 bytes), then nstk
 * PCs, then memRecord {active, future[3]} of memRecordCycle {allocs, frees[, alloc_bytes,
 * free_bytes]} (the byte counts were dropped in 1.27; they always were count * size).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "heap/profile.h"
#include "util/log.h"

#define WIN_SHIFT 16
#define WIN_SIZE (1ULL << WIN_SHIFT)
#define NWIN 64		   /* 4 MiB of windows */
#define BUCKET_HDR 48
#define MEM_PROFILE 1	   /* bucketType memProfile */
#define MAX_BUCKETS 20000000 /* a loop guard far above any real profile */
#define WALK_TRIES 5
#define SWEEP_DRAINED (1U << 31)

struct win {
	uint64_t base; /* window address; valid when ok */
	bool ok, bad;  /* read whole / not readable whole (use exact reads) */
	uint8_t data[WIN_SIZE];
};

struct heap_reader {
	const struct go_model *m;
	struct proc_mem *mem;
	struct heap_vars v;
	struct win *win; /* NWIN, direct-mapped by window number */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

struct heap_reader *heap_reader__new(const struct go_model *m, struct proc_mem *mem)
{
	struct heap_reader *r = calloc(1, sizeof(*r));
	int err;

	if (!r) {
		errno = ENOMEM;
		return NULL;
	}
	r->m = m;
	r->mem = mem;
	err = heap_locate__find(m, &r->v);
	if (!err) {
		r->win = calloc(NWIN, sizeof(*r->win));
		if (!r->win)
			err = -ENOMEM;
	}
	if (err) {
		free(r);
		errno = -err;
		return NULL;
	}
	return r;
}

struct heap_reader *heap_reader__new_vars(const struct go_model *m, struct proc_mem *mem,
					  const struct heap_vars *v)
{
	struct heap_reader *r = calloc(1, sizeof(*r));

	if (r)
		r->win = calloc(NWIN, sizeof(*r->win));
	if (!r || !r->win) {
		free(r);
		errno = ENOMEM;
		return NULL;
	}
	r->m = m;
	r->mem = mem;
	r->v = *v;
	return r;
}

void heap_reader__free(struct heap_reader *r)
{
	if (!r)
		return;
	free(r->win);
	free(r);
}

const struct heap_vars *heap_reader__vars(const struct heap_reader *r)
{
	return &r->v;
}

static uint64_t rt(const struct heap_reader *r, enum heap_var i, uint32_t off)
{
	return go_model__to_runtime(r->m, r->v.addr[i] + off);
}

int heap_reader__read_gc(struct heap_reader *r, struct heap_gc *gc)
{
	const struct heap_layout *l = &r->v.lay;
	uint64_t cgoal = 0, cdist = 0, ctrig = 0;
	uint8_t disabled = 0;
	struct proc_mem_req q[16];
	int n = 0;

	memset(gc, 0, sizeof(*gc));
	/* One batch: every word, wherever it was found. */
#define REQ(var, off, dst)                                                        \
	do {                                                                      \
		if (r->v.addr[var])                                               \
			q[n++] = (struct proc_mem_req){ rt(r, var, off), &(dst),  \
							sizeof(dst), 0 };         \
	} while (0)
	REQ(HV_MPROF_CYCLE, 0, gc->cycle_raw);
	REQ(HV_MEMSTATS, l->ms_numgc, gc->numgc);
	REQ(HV_MEMSTATS, l->ms_numforcedgc, gc->numforcedgc);
	REQ(HV_MEMSTATS, l->ms_pause_total_ns, gc->pause_total_ns);
	REQ(HV_MEMSTATS, l->ms_last_gc_unix, gc->last_gc_unix_ns);
	REQ(HV_GC_CONTROLLER, l->gc_heap_live, gc->heap_live);
	REQ(HV_GC_CONTROLLER, l->gc_heap_marked, gc->heap_marked);
	REQ(HV_GC_CONTROLLER, l->gc_percent_heap_goal, cgoal);
	REQ(HV_GC_CONTROLLER, l->gc_sweep_dist_min_trigger, cdist);
	REQ(HV_GC_CONTROLLER, l->gc_triggered, ctrig);
	REQ(HV_GC_CONTROLLER, l->gc_memory_limit, gc->memory_limit);
	REQ(HV_MEM_PROFILE_RATE, 0, gc->mem_profile_rate);
	REQ(HV_DISABLE_MEM_PROF, 0, disabled);
#undef REQ
	{
		uint32_t sweep = 0;
		int si = -1;

		if (r->v.addr[HV_SWEEP_STATE]) {
			si = n;
			q[n++] = (struct proc_mem_req){ rt(r, HV_SWEEP_STATE, 0), &sweep,
							sizeof(sweep), 0 };
		}
		if (proc_mem__readv(r->mem, q, n) == -ESRCH) {
			gt_seterr("process %d exited", proc_mem__pid(r->mem));
			return -ESRCH;
		}
		gc->have_sweep = si >= 0 && !q[si].err;
		gc->sweep_done = sweep == SWEEP_DRAINED;
	}
	for (int i = 0; i < n; i++) {
		if (q[i].err) {
			gt_seterr("cannot read the runtime's GC state at %#" PRIx64 ": %s",
				  q[i].addr, strerror(-q[i].err));
			return q[i].err;
		}
	}
	gc->have_memstats = r->v.addr[HV_MEMSTATS] != 0;
	gc->have_controller = r->v.addr[HV_GC_CONTROLLER] != 0;
	gc->have_rate = r->v.addr[HV_MEM_PROFILE_RATE] != 0;
	gc->have_disabled = r->v.addr[HV_DISABLE_MEM_PROF] != 0;
	gc->disabled = disabled != 0;
	/*
	 * heapGoalInternal (mgcpacer.go, 1.19-1.27) outside the memory-limit regime: the GOGC
	 * goal, raised to the sweep-distance trigger and to 64 KiB past the trigger point.
	 */
	gc->heap_goal = cgoal;
	if (cdist > gc->heap_goal)
		gc->heap_goal = cdist;
	if (ctrig != UINT64_MAX && gc->heap_goal < ctrig + (64 << 10))
		gc->heap_goal = ctrig + (64 << 10);
	return 0;
}

int heap_reader__read_pauses(struct heap_reader *r, uint64_t pause_ns[HEAP_PAUSE_RING],
			     uint64_t pause_end[HEAP_PAUSE_RING])
{
	struct proc_mem_req q[2];

	if (!r->v.addr[HV_MEMSTATS])
		return -ENOENT;
	q[0] = (struct proc_mem_req){ rt(r, HV_MEMSTATS, r->v.lay.ms_pause_ns), pause_ns,
				      HEAP_PAUSE_RING * 8, 0 };
	q[1] = (struct proc_mem_req){ rt(r, HV_MEMSTATS, r->v.lay.ms_pause_end), pause_end,
				      HEAP_PAUSE_RING * 8, 0 };
	if (proc_mem__readv(r->mem, q, 2) == -ESRCH)
		return -ESRCH;
	return q[0].err ? q[0].err : q[1].err;
}

/* ---- total allocations */

#define NUM_SIZE_CLASSES 68
#define HS_MAX_BYTES (3 * 1176 + 8)

/* Object size of each size class, identical in Go 1.19-1.27 (runtime/sizeclasses.go). */
static const uint16_t class_size[NUM_SIZE_CLASSES] = {
	0, 8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256,
	288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408,
	1536, 1792, 2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912,
	8192, 9472, 9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760,
	24576, 27264, 28672, 32768,
};

static uint64_t word_at(const uint8_t *buf, size_t off)
{
	uint64_t v;

	memcpy(&v, buf + off, sizeof(v));
	return v;
}

void heap_alloc_total(const struct heap_layout *l, const uint8_t *buf, uint64_t *bytes,
		      uint64_t *objects)
{
	*bytes = *objects = 0;
	/* readmemstats_m: every generation merged, small counts times their class size. */
	for (int g = 0; g < 3; g++) {
		const uint8_t *d = buf + (size_t)g * l->hs_stride;

		*bytes += word_at(d, l->hs_large_alloc);
		*objects += word_at(d, l->hs_large_count) + word_at(d, l->hs_tiny_count);
		for (int i = 0; i < NUM_SIZE_CLASSES; i++) {
			uint64_t n = word_at(d, l->hs_small_count + (size_t)i * 8);

			*bytes += n * class_size[i];
			*objects += n;
		}
	}
}

int heap_reader__read_alloc_total(struct heap_reader *r, uint64_t *bytes, uint64_t *objects)
{
	const struct heap_layout *l = &r->v.lay;
	uint8_t buf[HS_MAX_BYTES];
	uint32_t gen;
	int err;

	*bytes = *objects = 0;
	if (!r->v.addr[HV_MEMSTATS] || !l->hs_stride || l->hs_gen + 4 > sizeof(buf))
		return -ENOENT;
	/*
	 * consistentHeapStats.read() (runtime/metrics) swaps gen, then merges the previous
	 * generation into the current one and clears it: a read that saw gen move may have
	 * counted a generation twice or not at all.
	 */
	for (int tries = 0; tries < 3; tries++) {
		err = proc_mem__read(r->mem, rt(r, HV_MEMSTATS, 0), buf, l->hs_gen + 4);
		if (err)
			return err;
		memcpy(&gen, buf + l->hs_gen, sizeof(gen));
		err = proc_mem__read(r->mem, rt(r, HV_MEMSTATS, l->hs_gen), &gen, sizeof(gen));
		if (err)
			return err;
		if (!memcmp(&gen, buf + l->hs_gen, sizeof(gen))) {
			heap_alloc_total(l, buf, bytes, objects);
			return 0;
		}
	}
	return -EAGAIN;
}

/* ---- the bucket walk */

/* LEN bytes at ADDR through the windows (exact reads where a window is not whole). */
static int rd(struct heap_reader *r, uint64_t addr, void *buf, size_t len)
{
	uint64_t base = addr & ~(WIN_SIZE - 1);
	struct win *w = &r->win[(addr >> WIN_SHIFT) % NWIN];

	if (addr + len > base + WIN_SIZE)
		return proc_mem__read(r->mem, addr, buf, len);
	if (!(w->base == base && (w->ok || w->bad))) {
		int err = proc_mem__read(r->mem, base, w->data, WIN_SIZE);

		if (err == -ESRCH)
			return err;
		w->base = base;
		w->ok = !err;
		w->bad = !!err;
	}
	if (w->bad)
		return proc_mem__read(r->mem, addr, buf, len);
	memcpy(buf, w->data + (addr - base), len);
	return 0;
}

static void forget_windows(struct heap_reader *r)
{
	for (int i = 0; i < NWIN; i++)
		r->win[i].ok = r->win[i].bad = false;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t n = *cap ? *cap : 1024;
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

/* Walk the list once. 0, -ESRCH, -EINVAL (not a bucket list), -EFAULT, -ENOMEM. */
static int walk(struct heap_reader *r, struct heap_snapshot *s, size_t *bcap, size_t *pcap)
{
	const int rw = r->v.lay.rec_words;
	uint64_t head, rec[4 * 4];
	int err;

	s->n = 0;
	s->npcs = 0;
	err = proc_mem__read(r->mem, rt(r, HV_MBUCKETS, 0), &head, sizeof(head));
	if (err)
		return err;
	for (uint64_t a = head; a; ) {
		uint64_t hdr[6];
		struct heap_bucket *b;

		if (s->n >= MAX_BUCKETS || (a & 7))
			return -EINVAL;
		err = rd(r, a, hdr, sizeof(hdr));
		if (err)
			return err;
		/* hdr: next, allnext, typ, hash, size, nstk */
		if (hdr[2] != MEM_PROFILE || !hdr[5] || hdr[5] > HEAP_MAX_STACK || (hdr[1] & 7)) {
			dlog("gotrace: heap bucket %#" PRIx64 ": typ %" PRIu64 " nstk %" PRIu64
			     ": not a memory profile bucket\n", a, hdr[2], hdr[5]);
			return -EINVAL;
		}
		if (grow((void **)&s->b, bcap, s->n + 1, sizeof(*s->b)) ||
		    grow((void **)&s->pcs, pcap, s->npcs + hdr[5], sizeof(*s->pcs)))
			return -ENOMEM;
		b = &s->b[s->n];
		b->addr = a;
		b->size = hdr[4];
		b->nstk = (uint32_t)hdr[5];
		b->stk = (uint32_t)s->npcs;
		err = rd(r, a + BUCKET_HDR, s->pcs + s->npcs, hdr[5] * 8);
		if (!err)
			err = rd(r, a + BUCKET_HDR + hdr[5] * 8, rec, (size_t)rw * 4 * 8);
		if (err)
			return err;
		/* active, then future[0..2]: allocs and frees lead each memRecordCycle. */
		b->active[0] = rec[0];
		b->active[1] = rec[1];
		for (int c = 0; c < 3; c++) {
			b->future[c][0] = rec[(c + 1) * rw];
			b->future[c][1] = rec[(c + 1) * rw + 1];
		}
		s->npcs += hdr[5];
		s->n++;
		a = hdr[1];
	}
	return 0;
}

int heap_reader__snapshot(struct heap_reader *r, struct heap_snapshot *s)
{
	uint64_t t0 = now_ns();
	uint32_t c0, c1;
	int err = 0;

	for (s->retries = 0; s->retries < WALK_TRIES; s->retries++) {
		forget_windows(r);
		err = proc_mem__read(r->mem, rt(r, HV_MPROF_CYCLE, 0), &c0, sizeof(c0));
		if (!err)
			err = walk(r, s, &s->cap_b, &s->cap_pcs);
		if (!err)
			err = proc_mem__read(r->mem, rt(r, HV_MPROF_CYCLE, 0), &c1, sizeof(c1));
		if (err == -ESRCH || err == -ENOMEM)
			break;
		if (!err && c0 == c1)
			break;
		dlog("gotrace: heap profile walk %d: %s\n", s->retries + 1,
		     err ? strerror(-err) : "a GC cycle was published meanwhile");
	}
	s->walk_ns = now_ns() - t0;
	s->mono_ns = now_ns();
	if (err) {
		if (err == -ESRCH)
			gt_seterr("process %d exited", proc_mem__pid(r->mem));
		else if (err == -EINVAL)
			gt_seterr("process %d: the memory at runtime.mbuckets does not hold a heap "
				  "profile bucket list", proc_mem__pid(r->mem));
		else
			gt_seterr("cannot read the heap profile of process %d: %s",
				  proc_mem__pid(r->mem), strerror(-err));
		return err;
	}
	s->cycle_raw = c1;
	s->none_published = true;
	for (size_t i = 0; i < s->n && s->none_published; i++)
		s->none_published = !s->b[i].active[0] && !s->b[i].active[1];
	return 0;
}

void heap_snapshot__free(struct heap_snapshot *s)
{
	if (!s)
		return;
	free(s->b);
	free(s->pcs);
	memset(s, 0, sizeof(*s));
}

void heap_snapshot__counts(const struct heap_snapshot *s, const struct heap_bucket *b,
			   enum heap_view view, uint64_t *allocs, uint64_t *frees)
{
	uint32_t c = (s->cycle_raw >> 1) % 3;

	*allocs = b->active[0];
	*frees = b->active[1];
	for (uint32_t k = 0; k < 3; k++) {
		bool add;

		switch (view) {
		case HEAP_VIEW_PUBLISHED:
			/* memProfileInternal: flush C; with nothing published, take it all. */
			add = k == c || s->none_published;
			break;
		case HEAP_VIEW_AS_OF_GC:
			add = k == c || k == (c + 1) % 3;
			break;
		default:
			add = true;
		}
		if (add) {
			*allocs += b->future[k][0];
			*frees += b->future[k][1];
		}
	}
	/* A torn read can show a free before its allocation: never negative. */
	if (*frees > *allocs)
		*frees = *allocs;
}

void heap_scale(uint64_t count, uint64_t bytes, int64_t rate, double *objects, double *total)
{
	double avg, scale;

	if (!count || !bytes) {
		*objects = *total = 0;
		return;
	}
	if (rate <= 1) {
		*objects = (double)count;
		*total = (double)bytes;
		return;
	}
	avg = (double)bytes / (double)count;
	scale = 1 / (1 - exp(-avg / (double)rate));
	*objects = (double)count * scale;
	*total = (double)bytes * scale;
}
