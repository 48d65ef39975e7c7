// SPDX-License-Identifier: MIT
/*
 * Goroutine lifecycle: creation, exit, park and ready, from plain uprobes on Go
 * runtime functions (never uretprobes). Hot events only update maps in the kernel:
 * counters, creations per site (gopc) and per creator stack, and a table of the
 * goroutines created while tracing, keyed by (tgid, goid). The ring buffer carries
 * new creation sites, and every event only in the explicit per-event mode. Nothing
 * is dropped silently: each failure has a counter.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "go_abi.bpf.h"
#include "gotrace/lifecycle.h"

/* Knobs, set in rodata before load. */
const volatile __u32 targ_tgid = 0;	   /* 0: no check (the uprobes are pid-filtered anyway) */
const volatile __u32 cfg_per_event = 0;	   /* every event through the ring buffer */
const volatile __u32 cfg_stack_depth = 0;  /* creator frames to keep, <= LC_MAX_STACK */
const volatile __u32 cfg_track = 1;	   /* keep the goroutine table */

/* runtime.g / runtime.m offsets of the target's Go version (src/goruntime/offsets.c). */
const volatile __s32 off_g_goid = -1;
const volatile __s32 off_g_parentgoid = -1; /* 1.21+ */
const volatile __s32 off_g_gopc = -1;
const volatile __s32 off_g_startpc = -1;
const volatile __s32 off_g_m = -1;
const volatile __s32 off_m_curg = -1;
const volatile __s32 off_g_sched_bp = -1;
const volatile __s32 off_g_stack_lo = -1;
const volatile __s32 off_g_stack_hi = -1;
/*
 * Fields of one g read at once (a read of target memory costs more than its bytes): the
 * new g's goid, gopc, startpc and parent goid from GWIN_OFF, GWIN_LEN bytes; the
 * creator's stack bounds and saved frame pointer from SWIN_OFF, SWIN_LEN bytes. A length
 * of 0: the fields do not fit in LC_GWIN bytes, read one by one.
 */
const volatile __u32 gwin_off = 0;
const volatile __u32 gwin_len = 0;
const volatile __u32 swin_off = 0;
const volatile __u32 swin_len = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lc_counters);
} counters SEC(".maps");

/* Sized by userspace before load. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct lc_gkey);
	__type(value, struct lc_goroutine);
} goroutines SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct lc_site_key);
	__type(value, struct lc_site);
} sites SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct lc_stack_key);
	__type(value, __u64);
} stacks SEC(".maps");

/* A window of a g, and a stack key: too large for comfort on the 512-byte BPF stack. */
struct lc_scratch {
	__u8 g[LC_GWIN];
	struct lc_stack_key key;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lc_scratch);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

static __always_inline struct lc_counters *counters_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&counters, &zero);
}

/* Atomic even per CPU: uprobe programs can be preempted by another on the same CPU. */
static __always_inline void inc(struct lc_counters *c, int slot)
{
	if (slot >= 0 && slot < LC_CNT__NR)
		__sync_fetch_and_add(&c->c[slot], 1);
}

static __always_inline bool other_process(__u32 tgid)
{
	return targ_tgid && tgid != targ_tgid;
}

/* One word of target memory; counts the failure. */
static __always_inline int read_u64(struct lc_counters *c, __u64 addr, __u64 *val)
{
	if (bpf_probe_read_user(val, sizeof(*val), (const void *)addr)) {
		*val = 0;
		inc(c, LC_CNT_READ_ERR);
		return -1;
	}
	return 0;
}

/* Read LEN bytes of the g at G + OFF into S->g. 0, or -1 (counted). */
static __always_inline int read_window(struct lc_counters *c, struct lc_scratch *s, __u64 g,
				       __u32 off, __u32 len)
{
	if (!len || len > LC_GWIN)
		return -1;
	if (bpf_probe_read_user(s->g, len, (const void *)(g + off))) {
		inc(c, LC_CNT_READ_ERR);
		return -1;
	}
	return 0;
}

/* The word at g offset OFF from a window read at WOFF (its bounds checked by userspace). */
static __always_inline __u64 window_u64(const struct lc_scratch *s, __s32 off, __u32 woff)
{
	__u32 i = (__u32)(off - (__s32)woff);

	if (i > LC_GWIN - 8)
		return 0;
	return *(const __u64 *)(s->g + i);
}

static __always_inline void emit(struct lc_counters *c, __u32 type, __u32 tgid, __u64 goid,
				 __u64 arg, __u64 gopc, __u64 startpc)
{
	struct lc_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		inc(c, LC_CNT_RB_LOST);
		return;
	}
	e->type = type;
	e->tgid = tgid;
	e->ts_ns = bpf_ktime_get_ns();
	e->goid = goid;
	e->arg = arg;
	e->gopc = gopc;
	e->startpc = startpc;
	/* Userspace drains on a timer: waking it per record would cost the target. */
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	inc(c, LC_CNT_EVENTS);
}

static __always_inline void count_site(struct lc_counters *c, __u32 tgid, __u64 gopc,
				       __u64 startpc)
{
	struct lc_site_key key = { .tgid = tgid, .gopc = gopc };
	struct lc_site *s, init = { .startpc = startpc, .created = 1 };

	s = bpf_map_lookup_elem(&sites, &key);
	if (s) {
		__sync_fetch_and_add(&s->created, 1);
		return;
	}
	if (!bpf_map_update_elem(&sites, &key, &init, BPF_NOEXIST)) {
		emit(c, LC_EV_NEW_SITE, tgid, 0, 0, gopc, startpc);
		return;
	}
	/* Lost a race with another CPU, or the table is full. */
	s = bpf_map_lookup_elem(&sites, &key);
	if (s)
		__sync_fetch_and_add(&s->created, 1);
	else
		inc(c, LC_CNT_SITES_FULL);
}

/*
 * The creator's stack. newproc ran systemstack(), which saved the creator's frame
 * pointer in g.sched.bp (gosave_systemstack_switch, asm_amd64.s): newproc's frame,
 * or systemstack's own where the assembler gave it one (Go 1.21+). Walk the
 * frame-pointer chain, bounded by g.stack, from the frame whose return address is
 * the go statement (gopc). Returns a hash of the stack, 0 if none.
 */
#define LC_SKIP_FRAMES 3

static __always_inline __u32 count_stack(struct lc_counters *c, struct lc_scratch *s,
					 __u32 tgid, __u64 curg, __u64 gopc)
{
	struct lc_stack_key *key = &s->key;
	__u64 bp, lo, hi, frame[2], *cnt, one = 1;
	__u32 hash = 2166136261u, depth = 0;
	int skipped = 0;

	if (!cfg_stack_depth || !curg || off_g_sched_bp < 0)
		return 0;
	if (swin_len) {
		if (read_window(c, s, curg, swin_off, swin_len))
			return 0;
		bp = window_u64(s, off_g_sched_bp, swin_off);
		lo = window_u64(s, off_g_stack_lo, swin_off);
		hi = window_u64(s, off_g_stack_hi, swin_off);
	} else if (read_u64(c, curg + off_g_sched_bp, &bp) ||
		   read_u64(c, curg + off_g_stack_lo, &lo) ||
		   read_u64(c, curg + off_g_stack_hi, &hi)) {
		return 0;
	}
	__builtin_memset(key, 0, sizeof(*key));
	key->tgid = tgid;

	for (int i = 0; i < LC_MAX_STACK + LC_SKIP_FRAMES; i++) {
		/* Frames live at increasing addresses inside the goroutine's stack. */
		if (bp < lo || bp + 16 > hi)
			break;
		if (bpf_probe_read_user(frame, sizeof(frame), (const void *)bp))
			break;
		if (!frame[1])
			break;
		if (!depth && frame[1] != gopc) {
			/* systemstack's and newproc's own frames. */
			if (++skipped >= LC_SKIP_FRAMES)
				break;
		} else {
			if (depth >= cfg_stack_depth || depth >= LC_MAX_STACK)
				break;
			key->pcs[depth & (LC_MAX_STACK - 1)] = frame[1];
			depth++;
			hash = (hash ^ (__u32)frame[1]) * 16777619u;
			hash = (hash ^ (__u32)(frame[1] >> 32)) * 16777619u;
		}
		if (frame[0] <= bp)
			break;
		bp = frame[0];
	}
	/* A stale sched.bp (newproc called on the system stack) does not lead to gopc. */
	if (!depth) {
		inc(c, LC_CNT_STACK_BAD);
		key->pcs[0] = gopc;
		depth = 1;
		hash = (2166136261u ^ (__u32)gopc) * 16777619u;
		hash = (hash ^ (__u32)(gopc >> 32)) * 16777619u;
	}
	key->depth = depth;

	cnt = bpf_map_lookup_elem(&stacks, key);
	if (cnt) {
		__sync_fetch_and_add(cnt, 1);
	} else if (bpf_map_update_elem(&stacks, key, &one, BPF_NOEXIST)) {
		cnt = bpf_map_lookup_elem(&stacks, key);
		if (cnt)
			__sync_fetch_and_add(cnt, 1);
		else
			inc(c, LC_CNT_STACKS_FULL);
	}
	return hash ? hash : 1;
}

/* A new goroutine NEWG, fully set up by newproc1 (goid, parent, gopc, startpc). */
static __always_inline int on_create(struct pt_regs *ctx, __u64 newg)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct lc_goroutine gs = {};
	struct lc_counters *c;
	struct lc_scratch *s;
	struct lc_gkey key = {};
	__u64 m = 0, curg = 0;
	__u32 zero = 0;

	if (other_process(tgid))
		return 0;
	c = counters_get();
	s = bpf_map_lookup_elem(&scratch, &zero);
	if (!c || !s)
		return 0;
	inc(c, LC_CNT_HITS + LC_PROBE_NEWPROC1);
	if (!newg)
		return 0;
	if (gwin_len) {
		if (read_window(c, s, newg, gwin_off, gwin_len))
			return 0;
		key.goid = window_u64(s, off_g_goid, gwin_off);
		gs.gopc = window_u64(s, off_g_gopc, gwin_off);
		gs.startpc = window_u64(s, off_g_startpc, gwin_off);
		if (off_g_parentgoid >= 0)
			gs.parent_goid = window_u64(s, off_g_parentgoid, gwin_off);
	} else {
		if (read_u64(c, newg + off_g_goid, &key.goid))
			return 0;
		read_u64(c, newg + off_g_gopc, &gs.gopc);
		read_u64(c, newg + off_g_startpc, &gs.startpc);
		if (off_g_parentgoid >= 0)
			read_u64(c, newg + off_g_parentgoid, &gs.parent_goid);
	}
	inc(c, LC_CNT_CREATED);
	key.tgid = tgid;

	/*
	 * newproc1 runs on the system stack (newproc -> systemstack), so the g register is
	 * g0 and the creator is g0.m.curg, needed for its stack, and for its goid before Go
	 * 1.21 (which stores it in newg.parentGoid).
	 */
	if ((cfg_stack_depth && off_g_sched_bp >= 0) || off_g_parentgoid < 0) {
		if (!read_u64(c, GOROUTINE(ctx) + off_g_m, &m) && m)
			read_u64(c, m + off_m_curg, &curg);
		if (off_g_parentgoid < 0 && curg)
			read_u64(c, curg + off_g_goid, &gs.parent_goid);
	}

	count_site(c, tgid, gs.gopc, gs.startpc);
	gs.stack_hash = count_stack(c, s, tgid, curg, gs.gopc);
	if (cfg_track) {
		gs.g = newg;
		gs.created_ns = bpf_ktime_get_ns();
		gs.since_ns = gs.created_ns;
		gs.state = LC_G_RUNNABLE;
		if (bpf_map_update_elem(&goroutines, &key, &gs, BPF_ANY))
			inc(c, LC_CNT_GTAB_FULL);
	}
	if (cfg_per_event)
		emit(c, LC_EV_CREATE, tgid, key.goid, gs.parent_goid, gs.gopc, gs.startpc);
	return 0;
}

/* runtime.newproc1 at a RET: the first result is the new g. Every creation. */
SEC("uprobe")
int lc_newproc1_ret(struct pt_regs *ctx)
{
	return on_create(ctx, GO_PARAM1(ctx));
}

/*
 * runtime.newproc.func1 (the go statement's systemstack closure) at the call of
 * runqput(pp, newg, true), or the 5-byte nop the assembler put before it: the new g
 * is the second argument. A nop5 probe costs a fraction of a RET's single-step, but
 * only sees go statements (not iter.Pull coroutines or debugger calls).
 */
SEC("uprobe")
int lc_newproc_runqput(struct pt_regs *ctx)
{
	return on_create(ctx, GO_PARAM2(ctx));
}

/* runtime.goexit1, after the prologue: runs on the exiting goroutine. */
SEC("uprobe")
int lc_goexit(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct lc_gkey key = { .tgid = tgid };
	struct lc_counters *c;
	struct lc_goroutine *gs;

	if (other_process(tgid))
		return 0;
	c = counters_get();
	if (!c)
		return 0;
	inc(c, LC_CNT_HITS + LC_PROBE_GOEXIT);
	if (read_u64(c, GOROUTINE(ctx) + off_g_goid, &key.goid))
		return 0;
	inc(c, LC_CNT_EXITED);
	gs = cfg_track ? bpf_map_lookup_elem(&goroutines, &key) : NULL;
	if (gs) {
		struct lc_site_key skey = { .tgid = tgid, .gopc = gs->gopc };
		struct lc_site *s = bpf_map_lookup_elem(&sites, &skey);

		if (s)
			__sync_fetch_and_add(&s->exited, 1);
		bpf_map_delete_elem(&goroutines, &key);
	} else {
		inc(c, LC_CNT_EXIT_UNTRACKED);
	}
	if (cfg_per_event)
		emit(c, LC_EV_EXIT, tgid, key.goid, 0, 0, 0);
	return 0;
}

/* runtime.gopark(unlockf, lock, reason waitReason, ...), after the prologue. */
SEC("uprobe")
int lc_gopark(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct lc_gkey key = { .tgid = tgid };
	__u8 reason = (__u8)GO_PARAM3(ctx);
	struct lc_counters *c;
	struct lc_goroutine *gs;
	__u32 slot;

	if (other_process(tgid))
		return 0;
	c = counters_get();
	if (!c)
		return 0;
	inc(c, LC_CNT_HITS + LC_PROBE_GOPARK);
	inc(c, LC_CNT_PARKED);
	slot = reason < LC_MAX_WAITREASONS ? reason : LC_MAX_WAITREASONS - 1;
	__sync_fetch_and_add(&c->park_reason[slot], 1);
	if (!cfg_track && !cfg_per_event)
		return 0;
	if (read_u64(c, GOROUTINE(ctx) + off_g_goid, &key.goid))
		return 0;
	gs = cfg_track ? bpf_map_lookup_elem(&goroutines, &key) : NULL;
	if (gs) {
		gs->state = LC_G_WAITING;
		gs->waitreason = reason;
		gs->since_ns = bpf_ktime_get_ns();
	}
	if (cfg_per_event)
		emit(c, LC_EV_PARK, tgid, key.goid, reason, 0, 0);
	return 0;
}

/* runtime.ready(gp *g, traceskip int, next bool), after the prologue. */
SEC("uprobe")
int lc_ready(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct lc_gkey key = { .tgid = tgid };
	struct lc_counters *c;
	struct lc_goroutine *gs;

	if (other_process(tgid))
		return 0;
	c = counters_get();
	if (!c)
		return 0;
	inc(c, LC_CNT_HITS + LC_PROBE_READY);
	inc(c, LC_CNT_READIED);
	if (!cfg_track && !cfg_per_event)
		return 0;
	if (!GO_PARAM1(ctx) || read_u64(c, GO_PARAM1(ctx) + off_g_goid, &key.goid))
		return 0;
	gs = cfg_track ? bpf_map_lookup_elem(&goroutines, &key) : NULL;
	if (gs) {
		gs->state = LC_G_RUNNABLE;
		gs->since_ns = bpf_ktime_get_ns();
	}
	if (cfg_per_event)
		emit(c, LC_EV_READY, tgid, key.goid, 0, 0, 0);
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
