// SPDX-License-Identifier: MIT
/*
 * Unit tests of src/heap/profile.c: the walk of the runtime's profile buckets, built here
 * in this process's own memory in the layouts of Go 1.21 (four-word memRecordCycle) and
 * 1.27 (two words) and read back through process_vm_readv, the three views of a bucket's
 * counts, pprof's unsampling, the runtime's allocation total (memstats.heapStats) and the
 * GC words, all from synthetic bytes.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "goruntime/model.h"
#include "heap/locate.h"
#include "heap/profile.h"
#include "proc/mem.h"
#include "util/log.h"

#define BUCKET_HDR_WORDS 6
#define MEM_PROFILE 1

/* A fake go_model: no process, so link-time and runtime addresses are the same. */
static struct go_model model;

/* One synthetic bucket list and the words the reader needs. */
struct fixture {
	uint64_t words[4096];
	size_t used;
	uint64_t head;	     /* runtime.mbuckets */
	uint32_t cycle;	     /* runtime.mProfCycle */
	struct heap_vars v;
	struct proc_mem *mem;
	struct heap_reader *r;
};

/*
 * Append a bucket to F: SIZE-byte objects, the NSTK PCs from PCS, counts REC[cycle][0..1]
 * (active, future[0..2]) in RW-word records; it links to ALLNEXT. Returns its address.
 */
static uint64_t add_bucket(struct fixture *f, uint64_t allnext, uint64_t size, int nstk,
			   const uint64_t *pcs, int rw, const uint64_t rec[4][2])
{
	uint64_t *b = &f->words[f->used];

	b[0] = 0; /* next (hash chain): not followed */
	b[1] = allnext;
	b[2] = MEM_PROFILE;
	b[3] = 0x1234;
	b[4] = size;
	b[5] = (uint64_t)nstk;
	for (int i = 0; i < nstk; i++)
		b[BUCKET_HDR_WORDS + i] = pcs[i];
	for (int c = 0; c < 4; c++) {
		uint64_t *r = &b[BUCKET_HDR_WORDS + nstk + c * rw];

		r[0] = rec[c][0];
		r[1] = rec[c][1];
		if (rw == 4) {
			/* alloc_bytes, free_bytes: the reader ignores them (count * size). */
			r[2] = rec[c][0] * size;
			r[3] = rec[c][1] * size;
		}
	}
	f->used += BUCKET_HDR_WORDS + (size_t)nstk + 4 * (size_t)rw;
	return (uint64_t)(uintptr_t)b;
}

static struct fixture *fixture_new(int minor)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(heap_locate__layout(minor, &f->v.lay), 0);
	f->v.addr[HV_MBUCKETS] = (uint64_t)(uintptr_t)&f->head;
	f->v.addr[HV_MPROF_CYCLE] = (uint64_t)(uintptr_t)&f->cycle;
	f->mem = proc_mem__open(getpid());
	assert_non_null(f->mem);
	f->r = heap_reader__new_vars(&model, f->mem, &f->v);
	assert_non_null(f->r);
	return f;
}

static void fixture_free(struct fixture *f)
{
	heap_reader__free(f->r);
	proc_mem__free(f->mem);
	free(f);
}

/* Three buckets, newest first as the runtime prepends them, read back exactly. */
static void walk_three(int minor)
{
	static const uint64_t pcs_a[] = { 0x401000, 0x402000, 0x403000 };
	static const uint64_t pcs_b[] = { 0x404000 };
	static const uint64_t pcs_c[] = { 0x405000, 0x406000 };
	static const uint64_t rec_a[4][2] = { { 10, 4 }, { 1, 0 }, { 2, 1 }, { 3, 2 } };
	static const uint64_t rec_b[4][2] = { { 0, 0 }, { 7, 0 }, { 0, 0 }, { 0, 0 } };
	static const uint64_t rec_c[4][2] = { { 5, 5 }, { 0, 0 }, { 0, 0 }, { 1, 0 } };
	struct fixture *f = fixture_new(minor);
	int rw = f->v.lay.rec_words;
	struct heap_snapshot s = { 0 };
	uint64_t a, b, c;

	assert_int_equal(rw, minor >= 27 ? 2 : 4);
	c = add_bucket(f, 0, 4096, 2, pcs_c, rw, rec_c);
	b = add_bucket(f, c, 16, 1, pcs_b, rw, rec_b);
	a = add_bucket(f, b, 65536, 3, pcs_a, rw, rec_a);
	f->head = a;
	f->cycle = 7 << 1 | 1;

	assert_int_equal(heap_reader__snapshot(f->r, &s), 0);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.cycle_raw, 7 << 1 | 1);
	assert_int_equal(s.retries, 0);
	assert_false(s.none_published);
	assert_int_equal(s.b[0].addr, a);
	assert_int_equal(s.b[1].addr, b);
	assert_int_equal(s.b[2].addr, c);
	assert_int_equal(s.b[0].size, 65536);
	assert_int_equal(s.b[1].size, 16);
	assert_int_equal(s.b[2].size, 4096);
	assert_int_equal(s.npcs, 6);
	assert_int_equal(s.b[0].nstk, 3);
	assert_memory_equal(s.pcs + s.b[0].stk, pcs_a, sizeof(pcs_a));
	assert_memory_equal(s.pcs + s.b[1].stk, pcs_b, sizeof(pcs_b));
	assert_memory_equal(s.pcs + s.b[2].stk, pcs_c, sizeof(pcs_c));
	assert_int_equal(s.b[0].active[0], 10);
	assert_int_equal(s.b[0].active[1], 4);
	for (int k = 0; k < 3; k++) {
		assert_int_equal(s.b[0].future[k][0], rec_a[k + 1][0]);
		assert_int_equal(s.b[0].future[k][1], rec_a[k + 1][1]);
	}
	assert_int_equal(s.b[1].future[0][0], 7);
	assert_int_equal(s.b[2].future[2][0], 1);

	/* Walked again into the same arrays: the same answer. */
	assert_int_equal(heap_reader__snapshot(f->r, &s), 0);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.npcs, 6);
	heap_snapshot__free(&s);
	fixture_free(f);
}

static void test_walk_go121(void **state)
{
	walk_three(21);
}

static void test_walk_go127(void **state)
{
	walk_three(27);
}

static void test_walk_empty_and_unpublished(void **state)
{
	static const uint64_t pcs[] = { 0x401000 };
	static const uint64_t rec[4][2] = { { 0, 0 }, { 3, 0 }, { 0, 0 }, { 2, 1 } };
	struct fixture *f = fixture_new(24);
	struct heap_snapshot s = { 0 };

	f->head = 0;
	assert_int_equal(heap_reader__snapshot(f->r, &s), 0);
	assert_int_equal(s.n, 0);
	/* No active counts anywhere: nothing published yet (no GC so far). */
	f->head = add_bucket(f, 0, 32, 1, pcs, f->v.lay.rec_words, rec);
	assert_int_equal(heap_reader__snapshot(f->r, &s), 0);
	assert_int_equal(s.n, 1);
	assert_true(s.none_published);
	heap_snapshot__free(&s);
	fixture_free(f);
}

/* What is not a memory-profile bucket list is refused, never guessed at. */
static void test_walk_rejects(void **state)
{
	static const uint64_t pcs[] = { 0x401000 };
	static const uint64_t rec[4][2] = { { 1, 0 } };
	struct fixture *f = fixture_new(22);
	struct heap_snapshot s = { 0 };
	uint64_t *b;

	f->head = add_bucket(f, 0, 32, 1, pcs, f->v.lay.rec_words, rec);
	b = (uint64_t *)(uintptr_t)f->head;

	b[2] = 2; /* a block profile bucket */
	gt_clearerr();
	assert_int_equal(heap_reader__snapshot(f->r, &s), -EINVAL);
	assert_non_null(gt_lasterr());
	assert_non_null(strstr(gt_lasterr(), "does not hold a heap profile bucket list"));
	b[2] = MEM_PROFILE;

	b[5] = 0; /* no stack */
	assert_int_equal(heap_reader__snapshot(f->r, &s), -EINVAL);
	b[5] = HEAP_MAX_STACK + 1;
	assert_int_equal(heap_reader__snapshot(f->r, &s), -EINVAL);
	b[5] = 1;

	b[1] = f->head + 4; /* a misaligned link */
	assert_int_equal(heap_reader__snapshot(f->r, &s), -EINVAL);
	b[1] = 0;

	f->head = 8; /* unmapped */
	assert_true(heap_reader__snapshot(f->r, &s) < 0);
	gt_clearerr();
	heap_snapshot__free(&s);
	fixture_free(f);
}

/* The views of one bucket's counts at each cycle (see profile.h). */
static void test_counts_views(void **state)
{
	struct heap_bucket b = {
		.size = 8,
		.active = { 100, 40 },
		.future = { { 1, 10 }, { 2, 20 }, { 3, 30 } },
	};
	struct heap_snapshot s = { .n = 1, .b = &b };
	uint64_t al, fr;

	for (uint32_t cyc = 0; cyc < 6; cyc++) {
		uint32_t c = cyc % 3, c1 = (cyc + 1) % 3;

		s.cycle_raw = cyc << 1;
		s.none_published = false;
		heap_snapshot__counts(&s, &b, HEAP_VIEW_PUBLISHED, &al, &fr);
		assert_int_equal(al, 100 + b.future[c][0]);
		assert_int_equal(fr, 40 + b.future[c][1]);
		heap_snapshot__counts(&s, &b, HEAP_VIEW_AS_OF_GC, &al, &fr);
		assert_int_equal(al, 100 + b.future[c][0] + b.future[c1][0]);
		assert_int_equal(fr, 40 + b.future[c][1] + b.future[c1][1]);
		heap_snapshot__counts(&s, &b, HEAP_VIEW_TOTAL, &al, &fr);
		assert_int_equal(al, 106);
		assert_int_equal(fr, 100);
		/* Nothing published yet: the published view takes every cycle. */
		s.none_published = true;
		heap_snapshot__counts(&s, &b, HEAP_VIEW_PUBLISHED, &al, &fr);
		assert_int_equal(al, 106);
	}
	/* A torn read showing more frees than allocations is clamped. */
	b.active[1] = 1000;
	heap_snapshot__counts(&s, &b, HEAP_VIEW_TOTAL, &al, &fr);
	assert_int_equal(fr, al);
}

/* runtime/pprof scaleHeapSample. */
static void test_scale(void **state)
{
	double o, t, rate = 512 * 1024, want;

	heap_scale(0, 0, 512 * 1024, &o, &t);
	assert_true(o == 0 && t == 0);
	heap_scale(3, 3 * 4096, 1, &o, &t);
	assert_true(o == 3 && t == 3 * 4096);
	heap_scale(3, 3 * 4096, 0, &o, &t);
	assert_true(o == 3 && t == 3 * 4096);
	heap_scale(4, 4 * 4096, (int64_t)rate, &o, &t);
	want = 1 / (1 - exp(-4096 / rate));
	assert_true(fabs(o - 4 * want) < 1e-6 && fabs(t - 4 * 4096 * want) < 1e-3);
	/* Objects far larger than the rate are all sampled: scale ~1. */
	heap_scale(2, 2 * (64 << 20), (int64_t)rate, &o, &t);
	assert_true(fabs(o - 2) < 1e-9);
}

/* memstats.heapStats offsets agree with the DWARF of go1.24 / go1.25 builds. */
static void test_heapstats_layout(void **state)
{
	struct heap_layout l;

	assert_int_equal(heap_locate__layout(24, &l), 0);
	assert_int_equal(l.hs_stride, 1176);
	assert_int_equal(l.hs_large_alloc, 56);
	assert_int_equal(l.hs_small_count, 72);
	assert_int_equal(l.hs_gen, 3528);
	assert_int_equal(heap_locate__layout(25, &l), 0);
	assert_int_equal(l.hs_stride, 1168);
	assert_int_equal(l.hs_large_alloc, 48);
	assert_int_equal(l.hs_small_count, 64);
	assert_int_equal(l.hs_gen, 3504);
	assert_int_equal(heap_locate__layout(20, &l), -ENOTSUP);
	assert_int_equal(heap_locate__layout(28, &l), -ENOTSUP);
}

/* Fill generation G of a heapStats copy: LARGE bytes in NLARGE objects, N of class 5. */
static void put_gen(uint8_t *buf, const struct heap_layout *l, int g, uint64_t large,
		    uint64_t nlarge, uint64_t tiny, uint64_t n5)
{
	uint8_t *d = buf + (size_t)g * l->hs_stride;

	memcpy(d + l->hs_large_alloc, &large, 8);
	memcpy(d + l->hs_large_count, &nlarge, 8);
	memcpy(d + l->hs_tiny_count, &tiny, 8);
	memcpy(d + l->hs_small_count + 5 * 8, &n5, 8); /* size class 5: 48 bytes */
}

static void test_alloc_total(void **state)
{
	static uint64_t memstats[8192 / 8];
	struct heap_layout l;
	uint64_t bytes, objects;

	for (int minor = 24; minor <= 25; minor++) {
		uint8_t *buf = (uint8_t *)memstats;
		struct heap_vars v = { 0 };
		struct heap_reader *r;
		struct proc_mem *mem;

		memset(memstats, 0, sizeof(memstats));
		assert_int_equal(heap_locate__layout(minor, &l), 0);
		/* The three generations are summed, as readmemstats_m does. */
		put_gen(buf, &l, 0, 81920, 2, 7, 10);
		put_gen(buf, &l, 1, 0, 0, 0, 5);
		put_gen(buf, &l, 2, 40960, 1, 1, 0);
		heap_alloc_total(&l, buf, &bytes, &objects);
		assert_int_equal(bytes, 81920 + 40960 + 15 * 48);
		assert_int_equal(objects, 3 + 8 + 15);
		/* And through a reader of a synthetic memstats. */
		v.lay = l;
		v.addr[HV_MEMSTATS] = (uint64_t)(uintptr_t)memstats;
		mem = proc_mem__open(getpid());
		assert_non_null(mem);
		r = heap_reader__new_vars(&model, mem, &v);
		assert_non_null(r);
		assert_int_equal(heap_reader__read_alloc_total(r, &bytes, &objects), 0);
		assert_int_equal(bytes, 81920 + 40960 + 15 * 48);
		heap_reader__free(r);
		/* Without memstats located: said. */
		v.addr[HV_MEMSTATS] = 0;
		r = heap_reader__new_vars(&model, mem, &v);
		assert_int_equal(heap_reader__read_alloc_total(r, &bytes, &objects), -ENOENT);
		heap_reader__free(r);
		proc_mem__free(mem);
	}
}

/* GC words at their per-version offsets, and the heap goal the runtime would compute. */
static void test_read_gc(void **state)
{
	static uint64_t memstats[12000 / 8], ctl[512 / 8], sweep[64 / 8];
	static uint32_t cycle = 5 << 1;
	struct heap_vars v = { 0 };
	struct heap_reader *r;
	struct proc_mem *mem;
	struct heap_gc g;
	uint8_t *ms = (uint8_t *)memstats, *gc = (uint8_t *)ctl, *sw = (uint8_t *)sweep;
	uint32_t numgc = 42, forced = 3, drained = 1U << 31;
	uint64_t pause = 123456, live = 3 << 20, marked = 2 << 20, goal = 4 << 20;
	uint64_t dist = 1 << 20, trig = 4 << 20;

	assert_int_equal(heap_locate__layout(22, &v.lay), 0);
	memcpy(ms + v.lay.ms_numgc, &numgc, 4);
	memcpy(ms + v.lay.ms_numforcedgc, &forced, 4);
	memcpy(ms + v.lay.ms_pause_total_ns, &pause, 8);
	memcpy(gc + v.lay.gc_heap_live, &live, 8);
	memcpy(gc + v.lay.gc_heap_marked, &marked, 8);
	memcpy(gc + v.lay.gc_percent_heap_goal, &goal, 8);
	memcpy(gc + v.lay.gc_sweep_dist_min_trigger, &dist, 8);
	memcpy(gc + v.lay.gc_triggered, &trig, 8);
	memcpy(sw + v.lay.sweep_active_state, &drained, 4);
	v.addr[HV_MEMSTATS] = (uint64_t)(uintptr_t)memstats;
	v.addr[HV_GC_CONTROLLER] = (uint64_t)(uintptr_t)ctl;
	v.addr[HV_SWEEP_STATE] = (uint64_t)(uintptr_t)sw + v.lay.sweep_active_state;
	v.addr[HV_MPROF_CYCLE] = (uint64_t)(uintptr_t)&cycle;
	mem = proc_mem__open(getpid());
	assert_non_null(mem);
	r = heap_reader__new_vars(&model, mem, &v);
	assert_non_null(r);
	assert_int_equal(heap_reader__read_gc(r, &g), 0);
	assert_true(g.have_memstats && g.have_controller && g.have_sweep);
	assert_false(g.have_rate);
	assert_int_equal(g.numgc, 42);
	assert_int_equal(g.numforcedgc, 3);
	assert_int_equal(g.pause_total_ns, 123456);
	assert_int_equal(g.heap_live, 3 << 20);
	assert_int_equal(g.heap_marked, 2 << 20);
	assert_int_equal(g.cycle_raw, 5 << 1);
	assert_true(g.sweep_done);
	/* heapGoalInternal: at least 64 KiB past the trigger point. */
	assert_int_equal(g.heap_goal, (4 << 20) + (64 << 10));
	/* A larger sweep distance goal wins; GOGC=off leaves the goal infinite. */
	dist = 8 << 20;
	memcpy(gc + v.lay.gc_sweep_dist_min_trigger, &dist, 8);
	assert_int_equal(heap_reader__read_gc(r, &g), 0);
	assert_int_equal(g.heap_goal, 8 << 20);
	goal = UINT64_MAX;
	trig = UINT64_MAX;
	memcpy(gc + v.lay.gc_percent_heap_goal, &goal, 8);
	memcpy(gc + v.lay.gc_triggered, &trig, 8);
	assert_int_equal(heap_reader__read_gc(r, &g), 0);
	assert_true(g.heap_goal == UINT64_MAX);
	heap_reader__free(r);
	proc_mem__free(mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_walk_go121),
		cmocka_unit_test(test_walk_go127),
		cmocka_unit_test(test_walk_empty_and_unpublished),
		cmocka_unit_test(test_walk_rejects),
		cmocka_unit_test(test_counts_views),
		cmocka_unit_test(test_scale),
		cmocka_unit_test(test_heapstats_layout),
		cmocka_unit_test(test_alloc_total),
		cmocka_unit_test(test_read_gc),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
