// SPDX-License-Identifier: MIT
/*
 * Allocation sampling for `gotrace heap` when the Go runtime samples nothing (memory
 * profiling disabled by the linker, or MemProfileRate = 0). Plain uprobes after the
 * stack-check prologue of the runtime's allocation paths (never uretprobes); each hit
 * has a weight in bytes (see include/gotrace/heapalloc.h). Totals are counted for every
 * hit; a per-CPU byte countdown picks sample points, and only those walk the
 * frame-pointer stack and update the stack table. Frees are not seen: the allocator
 * frees by sweeping whole spans, with no call per object.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "go_abi.bpf.h"
#include "gotrace/heapalloc.h"

/* Knobs, set in rodata before load. */
const volatile __u32 targ_tgid = 0;   /* 0: no check (the uprobes are pid-filtered anyway) */
const volatile __u64 cfg_period = 524288; /* mean bytes between sample points, > 0 */

/* runtime.mcache / runtime.mspan offsets of the target's Go version (src/heap/bpfsample.c). */
const volatile __u32 off_mcache_alloc = 0;	 /* [numSpanClasses]*mspan */
const volatile __u32 off_span_alloc_count = 0;	 /* uint16 */
const volatile __u32 off_span_count_before = 0; /* uint16 allocCountBeforeCache */
const volatile __u32 off_span_elemsize = 0;	 /* uintptr */

#define NUM_SPAN_CLASSES 136 /* 68 size classes x {scan, noscan}, Go 1.19-1.27 */
#define PAGE_SIZE_GO 8192
#define MAX_POINTS_LOOP 16   /* sample points drawn one by one per hit; more: by division */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ha_counters);
} counters SEC(".maps");

/* Sized by userspace before load. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct ha_stack);
	__type(value, struct ha_site);
} stacks SEC(".maps");

/* A stack being built: too large for the 512-byte BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ha_stack);
} scratch SEC(".maps");

/* Atomic even per CPU: uprobe programs can be preempted by another on the same CPU. */
static __always_inline void add(struct ha_counters *c, int slot, __u64 v)
{
	if (slot >= 0 && slot < HA_CNT__NR)
		__sync_fetch_and_add(&c->c[slot], v);
}

static __always_inline bool other_process(void)
{
	return targ_tgid && (__u32)(bpf_get_current_pid_tgid() >> 32) != targ_tgid;
}

/* A random gap between sample points, uniform in [1, 2 * cfg_period]: mean ~cfg_period. */
static __always_inline __s64 gap(void)
{
	__u64 p = cfg_period ? cfg_period : 1;

	return (__s64)(bpf_get_prandom_u32() % (2 * p) + 1);
}

/*
 * The allocation stack: the return address at SP (the allocating function's caller: the
 * probe runs before the callee pushed its frame pointer), then the frame-pointer chain
 * from BP, which bpf_get_stack() walks after the probed IP (overwritten here).
 */
static __always_inline int walk_stack(struct pt_regs *ctx, struct ha_stack *st)
{
	__u64 ret = 0;
	long n;

	n = bpf_get_stack(ctx, st->pcs, sizeof(st->pcs), BPF_F_USER_STACK);
	if (n < 8)
		return -1;
	if (bpf_probe_read_user(&ret, sizeof(ret), (const void *)PT_REGS_SP(ctx)) || !ret)
		return -1;
	st->pcs[0] = ret;
	return 0;
}

/* Add POINTS sample points, each worth cfg_period bytes, to the current stack. */
static __always_inline void sample(struct pt_regs *ctx, struct ha_counters *c, __u64 points,
				   __u64 bytes, __u64 objects)
{
	struct ha_site *s, init = {};
	struct ha_stack *st;
	__u32 zero = 0;
	__u64 per_obj;

	add(c, HA_CNT_SAMPLES, points);
	st = bpf_map_lookup_elem(&scratch, &zero);
	if (!st)
		return;
	if (walk_stack(ctx, st)) {
		add(c, HA_CNT_STACK_ERR, 1);
		return;
	}
	/* Objects stood for by the points: cfg_period bytes / bytes per object of this hit. */
	per_obj = objects ? bytes / objects : bytes;
	if (!per_obj)
		per_obj = 1;
	s = bpf_map_lookup_elem(&stacks, st);
	if (!s) {
		bpf_map_update_elem(&stacks, st, &init, BPF_NOEXIST);
		s = bpf_map_lookup_elem(&stacks, st);
		if (!s) {
			add(c, HA_CNT_STACKS_FULL, points);
			return;
		}
	}
	__sync_fetch_and_add(&s->samples, points);
	__sync_fetch_and_add(&s->bytes, points * cfg_period);
	__sync_fetch_and_add(&s->objects, points * cfg_period / per_obj);
}

/* One hit of BYTES in OBJECTS objects: count it, and sample its stack at each point. */
static __always_inline void hit(struct pt_regs *ctx, __u64 bytes, __u64 objects)
{
	struct ha_counters *c;
	__u32 zero = 0;
	__u64 points = 0;
	__s64 left;

	c = bpf_map_lookup_elem(&counters, &zero);
	if (!c)
		return;
	add(c, HA_CNT_HITS, 1);
	if (!bytes) {
		add(c, HA_CNT_EMPTY, 1);
		return;
	}
	add(c, HA_CNT_BYTES, bytes);
	add(c, HA_CNT_OBJECTS, objects);
	/* A fresh countdown starts at a random point of its gap. */
	left = c->countdown;
	if (!left)
		left = gap();
	left -= (__s64)bytes;
	for (int i = 0; i < MAX_POINTS_LOOP && left <= 0; i++) {
		points++;
		left += gap();
	}
	if (left <= 0) {
		/* A huge allocation: the remaining points at the mean gap. */
		__u64 more = (__u64)(-left) / cfg_period + 1;

		points += more;
		left += (__s64)(more * cfg_period);
	}
	c->countdown = left;
	if (points)
		sample(ctx, c, points, bytes, objects);
}

/* runtime.mallocgc and its variants: (size uintptr, typ *_type, ...). */
SEC("uprobe")
int ha_alloc(struct pt_regs *ctx)
{
	if (other_process())
		return 0;
	hit(ctx, GO_PARAM1(ctx), 1);
	return 0;
}

/* runtime.(*mcache).allocLarge(c, size, noscan): npages * pageSize, as heap stats count. */
SEC("uprobe")
int ha_large(struct pt_regs *ctx)
{
	__u64 size = GO_PARAM2(ctx);

	if (other_process())
		return 0;
	hit(ctx, (size + PAGE_SIZE_GO - 1) & ~(__u64)(PAGE_SIZE_GO - 1), 1);
	return 0;
}

/*
 * runtime.(*mcache).refill(c, spc): c.alloc[spc] is the full span being replaced; the
 * objects allocated from it since it was cached are allocCount - allocCountBeforeCache
 * (what refill adds to the heap statistics). The hit's stack is the allocation that found
 * the span full: a uniform pick among the allocations of that size class on that P.
 */
SEC("uprobe")
int ha_refill(struct pt_regs *ctx)
{
	__u64 c = GO_PARAM1(ctx), spc = GO_PARAM2(ctx) & 0xff, span = 0, elemsize = 0;
	__u16 cnt = 0, before = 0;
	struct ha_counters *k;
	__u32 zero = 0;

	if (other_process())
		return 0;
	if (spc >= NUM_SPAN_CLASSES ||
	    bpf_probe_read_user(&span, sizeof(span),
				(const void *)(c + off_mcache_alloc + spc * 8)) || !span ||
	    bpf_probe_read_user(&cnt, sizeof(cnt), (const void *)(span + off_span_alloc_count)) ||
	    bpf_probe_read_user(&before, sizeof(before),
				(const void *)(span + off_span_count_before)) ||
	    bpf_probe_read_user(&elemsize, sizeof(elemsize),
				(const void *)(span + off_span_elemsize))) {
		k = bpf_map_lookup_elem(&counters, &zero);
		if (k) {
			add(k, HA_CNT_HITS, 1);
			add(k, HA_CNT_READ_ERR, 1);
		}
		return 0;
	}
	/* The placeholder emptymspan (elemsize 0) and impossible counts weigh nothing. */
	if (cnt < before || elemsize > (1 << 20))
		cnt = before;
	hit(ctx, (__u64)(cnt - before) * elemsize, cnt - before);
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
