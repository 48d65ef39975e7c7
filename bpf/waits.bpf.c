// SPDX-License-Identifier: MIT
/*
 * Exact blocked time: every park-to-ready interval of one process, measured and
 * aggregated in the kernel. runtime.gopark records the parking goroutine's goid, park
 * time, wait reason and stack; runtime.ready closes the interval of the readied g and
 * charges it to (parked stack, reason) and to (waker stack, parked stack, reason). Only
 * maps are updated: userspace reads them at the end. Every interval that cannot be
 * charged is counted in wt_counters, never dropped silently.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "go_abi.bpf.h"
#include "go_stack.bpf.h"
#include "gotrace/waits.h"

/* Knobs, set in rodata before load. */
const volatile __u32 targ_tgid = 0;	  /* 0: no check (the uprobes are pid-filtered anyway) */
const volatile __u32 cfg_stack_depth = WT_MAX_STACK;

/* runtime.g / runtime.m offsets of the target's Go version (src/goruntime/offsets.c). */
const volatile __s32 off_g_goid = -1;
const volatile __s32 off_g_m = -1;
const volatile __s32 off_m_curg = -1;
const volatile __s32 off_g_stack_lo = -1;
const volatile __s32 off_g_stack_hi = -1;
const volatile __s32 off_g_sched_sp = -1;
const volatile __s32 off_g_sched_bp = -1;
/*
 * Windows of a g read at once (one read of target memory costs about as much as a few
 * hundred bytes): PWIN for the parking g (goid, stack bounds), CWIN for the waker's g
 * (stack bounds, sched.sp/bp). Length 0: read field by field.
 */
const volatile __u32 pwin_off = 0;
const volatile __u32 pwin_len = 0;
const volatile __u32 cwin_off = 0;
const volatile __u32 cwin_len = 0;

/* Attach generation, bumped by userspace before each (re-)attach. */
volatile __u32 gen = 0;

#define WT_GWIN 256

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct wt_counters);
} counters SEC(".maps");

/* Sized by userspace before load. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct wt_gkey);
	__type(value, struct wt_parked);
} parked SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct wt_site_key);
	__type(value, struct wt_site);
} sites SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct wt_waker_key);
	__type(value, struct wt_waker);
} wakers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct wt_stack);
} stacks SEC(".maps");

/* Too large for the 512-byte BPF stack: a window of a g, a stack. */
struct wt_scratch {
	__u8 g[WT_GWIN];
	struct wt_stack st;
};

/* A fresh site (all zero), too large to build on the stack. */
const struct wt_site zero_site = {};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct wt_scratch);
} scratch SEC(".maps");

static __always_inline struct wt_counters *counters_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&counters, &zero);
}

/* Atomic even per CPU: a uprobe program can be preempted by another on the same CPU. */
static __always_inline void inc(struct wt_counters *c, int slot)
{
	if (slot >= 0 && slot < WT_CNT__NR)
		__sync_fetch_and_add(&c->c[slot], 1);
}

static __always_inline bool other_process(__u32 tgid)
{
	return targ_tgid && tgid != targ_tgid;
}

static __always_inline int read_u64(struct wt_counters *c, __u64 addr, __u64 *val)
{
	if (bpf_probe_read_user(val, sizeof(*val), (const void *)addr)) {
		*val = 0;
		inc(c, WT_CNT_READ_ERR);
		return -1;
	}
	return 0;
}

/* The word at g offset OFF of a window read at WOFF (bounds checked by userspace). */
static __always_inline __u64 win_u64(const struct wt_scratch *s, __s32 off, __u32 woff)
{
	__u32 i = (__u32)(off - (__s32)woff);

	if (i > WT_GWIN - 8)
		return 0;
	return *(const __u64 *)(s->g + i);
}

/* Read the fields at OFFS of the g at G through window (WOFF, WLEN), or one by one. */
static __always_inline int read_g(struct wt_counters *c, struct wt_scratch *s, __u64 g,
				  __u32 woff, __u32 wlen, const __s32 *offs, __u64 *vals, int n)
{
	if (wlen && wlen <= WT_GWIN) {
		if (bpf_probe_read_user(s->g, wlen, (const void *)(g + woff))) {
			inc(c, WT_CNT_READ_ERR);
			return -1;
		}
		for (int i = 0; i < n; i++)
			vals[i] = win_u64(s, offs[i], woff);
		return 0;
	}
	for (int i = 0; i < n; i++) {
		if (read_u64(c, g + offs[i], &vals[i]))
			return -1;
	}
	return 0;
}

/*
 * Walk the stack into S->st from PC0 and BP inside [LO, HI), and keep it in the stack
 * table. Returns its hash, 0 when there is no stack.
 */
static __always_inline __u64 keep_stack(struct wt_counters *c, struct wt_scratch *s, __u64 pc0,
					__u64 bp, __u64 lo, __u64 hi)
{
	struct wt_stack *st = &s->st;
	__u32 trunc = 0, rerr = 0, depth;
	__u64 h = 0x5bd1e995;

	depth = go_fp_walk(st->pcs, WT_MAX_STACK, pc0, bp, lo, hi, &trunc, &rerr);
	if (rerr)
		inc(c, WT_CNT_READ_ERR);
	if (depth > cfg_stack_depth) {
		depth = cfg_stack_depth;
		trunc = 1;
	}
	if (!depth)
		return 0;
	if (trunc)
		inc(c, WT_CNT_STACK_TRUNC);
	st->depth = depth;
	st->truncated = trunc;
	for (__u32 i = 0; i < WT_MAX_STACK; i++) {
		if (i >= depth)
			break;
		h = go_hash_mix(h, st->pcs[i]);
	}
	h = go_hash_mix(h, depth | ((__u64)trunc << 32));
	if (!h)
		h = 1;
	if (bpf_map_lookup_elem(&stacks, &h))
		return h;
	/* Unused slots are zero, so equal stacks are equal keys' values too. */
	for (__u32 i = 0; i < WT_MAX_STACK; i++) {
		if (i >= depth)
			st->pcs[i] = 0;
	}
	if (bpf_map_update_elem(&stacks, &h, st, BPF_NOEXIST) && !bpf_map_lookup_elem(&stacks, &h))
		inc(c, WT_CNT_STACKS_FULL);
	return h;
}

/* Histogram slot of D ns (see WT_HIST_*). */
static __always_inline __u32 hist_slot(__u64 d)
{
	__u32 b = 0;
	__u64 v = d;

	if (d < (1ULL << WT_HIST_MIN_BIT))
		return 0;
	if (d >= (1ULL << WT_HIST_MAX_BIT))
		return WT_HIST_SLOTS - 1;
	/* Index of the highest set bit. */
	if (v >> 32) { b += 32; v >>= 32; }
	if (v >> 16) { b += 16; v >>= 16; }
	if (v >> 8) { b += 8; v >>= 8; }
	if (v >> 4) { b += 4; v >>= 4; }
	if (v >> 2) { b += 2; v >>= 2; }
	if (v >> 1) b += 1;
	return 1 + (b - WT_HIST_MIN_BIT) * WT_HIST_SUB + (__u32)((d >> (b - 2)) & 3);
}

/* runtime.gopark(unlockf, lock, reason waitReason, ...), after the prologue. */
SEC("uprobe")
int wt_gopark(struct pt_regs *ctx)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	const __s32 offs[3] = { off_g_goid, off_g_stack_lo, off_g_stack_hi };
	struct wt_gkey key = { .tgid = tgid };
	struct wt_parked rec = {};
	struct wt_counters *c;
	struct wt_scratch *s;
	struct wt_parked *old;
	__u64 v[3], pc0 = 0;
	__u32 zero = 0;

	if (other_process(tgid))
		return 0;
	c = counters_get();
	s = bpf_map_lookup_elem(&scratch, &zero);
	if (!c || !s)
		return 0;
	inc(c, WT_CNT_HITS + WT_PROBE_GOPARK);
	if (read_g(c, s, GOROUTINE(ctx), pwin_off, pwin_len, offs, v, 3))
		return 0;
	key.goid = v[0];
	rec.ts_ns = now;
	rec.reason = (__u8)GO_PARAM3(ctx);
	rec.gen = gen;
	/* gopark has not pushed its frame yet: its return address is at SP, BP is the caller's. */
	read_u64(c, PT_REGS_SP(ctx), &pc0);
	rec.stack = keep_stack(c, s, pc0, PT_REGS_FP(ctx), v[1], v[2]);

	old = bpf_map_lookup_elem(&parked, &key);
	if (old) {
		/* Parked again without a ready in between: woken by a path we do not see. */
		if (old->gen == rec.gen) {
			__u32 r = old->reason < WT_MAX_WAITREASONS ? old->reason
								  : WT_MAX_WAITREASONS - 1;

			inc(c, WT_CNT_UNSEEN_WAKE);
			__sync_fetch_and_add(&c->unseen_reason[r], 1);
		} else {
			inc(c, WT_CNT_STALE);
		}
		*old = rec;
		inc(c, WT_CNT_PARKED);
		return 0;
	}
	if (bpf_map_update_elem(&parked, &key, &rec, BPF_NOEXIST)) {
		old = bpf_map_lookup_elem(&parked, &key);
		if (!old) {
			inc(c, WT_CNT_PARKED_FULL);
			return 0;
		}
		*old = rec;
	}
	inc(c, WT_CNT_PARKED);
	return 0;
}

/*
 * The waker: the goroutine that called ready. ready usually runs on the system stack
 * (goready -> systemstack), whose switch saved the goroutine's SP and frame pointer in
 * its g.sched. From Go 1.21 systemstack has a frame of its own: sched.bp is that frame
 * (and sched.sp points at it too), whose return address leads into its caller; before,
 * sched.bp is the caller's frame and the return address into the caller is at sched.sp.
 * Called on the goroutine's own stack, the registers are the walk's start.
 */
static __always_inline __u64 waker_stack(struct pt_regs *ctx, struct wt_counters *c,
					 struct wt_scratch *s)
{
	const __s32 offs[4] = { off_g_stack_lo, off_g_stack_hi, off_g_sched_sp, off_g_sched_bp };
	__u64 g = GOROUTINE(ctx), m = 0, curg = 0, v[4], pc0 = 0;

	if (read_u64(c, g + off_g_m, &m) || !m || read_u64(c, m + off_m_curg, &curg))
		return 0;
	if (!curg) {
		/* The scheduler itself (timers run from schedule, GC). */
		inc(c, WT_CNT_WAKER_NONE);
		return 0;
	}
	if (read_g(c, s, curg, cwin_off, cwin_len, offs, v, 4))
		return 0;
	if (curg == g) {
		read_u64(c, PT_REGS_SP(ctx), &pc0);
		return keep_stack(c, s, pc0, PT_REGS_FP(ctx), v[0], v[1]);
	}
	if (!v[2])
		return 0;
	if (v[2] != v[3] && read_u64(c, v[2], &pc0))
		return 0;
	return keep_stack(c, s, pc0, v[3], v[0], v[1]);
}

/* runtime.ready(gp *g, traceskip int, next bool), after the prologue. */
SEC("uprobe")
int wt_ready(struct pt_regs *ctx)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct wt_gkey key = { .tgid = tgid };
	struct wt_site_key sk = { .tgid = tgid };
	struct wt_waker_key wk = { .tgid = tgid };
	struct wt_waker *w, wnew = {};
	struct wt_counters *c;
	struct wt_scratch *s;
	struct wt_parked *p, rec;
	struct wt_site *site;
	__u64 d, gp = GO_PARAM1(ctx);
	__u32 zero = 0, slot;

	if (other_process(tgid))
		return 0;
	c = counters_get();
	s = bpf_map_lookup_elem(&scratch, &zero);
	if (!c || !s)
		return 0;
	inc(c, WT_CNT_HITS + WT_PROBE_READY);
	if (!gp || read_u64(c, gp + off_g_goid, &key.goid))
		return 0;
	p = bpf_map_lookup_elem(&parked, &key);
	if (!p) {
		inc(c, WT_CNT_READY_NO_PARK);
		return 0;
	}
	rec = *p;
	bpf_map_delete_elem(&parked, &key);
	if (rec.gen != gen) {
		/* Parked before a detached period: it may have woken and parked again unseen. */
		inc(c, WT_CNT_STALE);
		return 0;
	}
	d = now > rec.ts_ns ? now - rec.ts_ns : 0;
	slot = hist_slot(d);

	sk.reason = rec.reason;
	sk.stack = rec.stack;
	site = bpf_map_lookup_elem(&sites, &sk);
	if (!site) {
		bpf_map_update_elem(&sites, &sk, &zero_site, BPF_NOEXIST);
		site = bpf_map_lookup_elem(&sites, &sk);
		if (!site) {
			inc(c, WT_CNT_SITES_FULL);
			return 0;
		}
	}
	__sync_fetch_and_add(&site->count, 1);
	__sync_fetch_and_add(&site->total_ns, d);
	if (slot < WT_HIST_SLOTS)
		__sync_fetch_and_add(&site->hist[slot], 1);
	/* A race between CPUs can lose a larger max: the histogram keeps it anyway. */
	if (d > site->max_ns)
		site->max_ns = d;
	inc(c, WT_CNT_WOKEN);

	wk.reason = rec.reason;
	wk.wakee = rec.stack;
	wk.waker = waker_stack(ctx, c, s);
	w = bpf_map_lookup_elem(&wakers, &wk);
	if (!w) {
		bpf_map_update_elem(&wakers, &wk, &wnew, BPF_NOEXIST);
		w = bpf_map_lookup_elem(&wakers, &wk);
		if (!w) {
			inc(c, WT_CNT_WAKERS_FULL);
			return 0;
		}
	}
	__sync_fetch_and_add(&w->count, 1);
	__sync_fetch_and_add(&w->total_ns, d);
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
