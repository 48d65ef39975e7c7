/* SPDX-License-Identifier: MIT */
/*
 * Where the Go runtime keeps its heap profile and GC statistics, found without a symbol
 * table by decoding small runtime functions (located through .gopclntab) with capstone:
 *
 *   runtime.mbuckets          the only global mProf_FlushLocked loads (8 bytes)
 *   runtime.mProfCycle        the only global mProf_PostSweep loads (4 bytes)
 *   runtime.MemProfileRate    stored (8 bytes) right after disableMemoryProfiling is tested
 *   runtime.disableMemoryProfiling  in schedinit (1.20+) or runtime.init (1.19), the same
 *                             word being one of the two profilealloc loads
 *   runtime.gcController      the receiver (LEA into RAX) of the call to
 *                             (*gcControllerState).commit in gcControllerCommit
 *   runtime.sweep.active.state  the 4-byte load gcControllerCommit makes for isSweepDone()
 *   runtime.memstats          gcMarkTermination increments numforcedgc and numgc, two
 *                             adjacent uint32s: numgc minus its offset in mstats
 *
 * Field offsets inside those structs come from a table per Go minor (DWARF of go1.19.8 and
 * go1.21.13 ... go1.27.4 builds). When the binary has a .symtab, its addresses are compared
 * with the decoded ones (and win when they differ).
 */
#ifndef GOTRACE_HEAP_LOCATE_H
#define GOTRACE_HEAP_LOCATE_H

#include <stdbool.h>
#include <stdint.h>
#include "goruntime/model.h"

enum heap_var {
	HV_MBUCKETS,
	HV_MPROF_CYCLE,
	HV_MEM_PROFILE_RATE,
	HV_DISABLE_MEM_PROF,
	HV_GC_CONTROLLER,
	HV_SWEEP_STATE,
	HV_MEMSTATS,
	HV__CNT,
};

/* Struct layouts that changed between the supported releases (amd64, bytes). */
struct heap_layout {
	int go_minor;
	int rec_words;		/* words per memRecordCycle: 4 up to 1.26, 2 from 1.27 */
	uint32_t ms_pause_total_ns, ms_numgc, ms_numforcedgc, ms_last_gc_unix; /* in mstats */
	uint32_t ms_gc_pause_dist;	/* mstats.gcPauseDist (1.19-1.21), 0 from 1.22 */
	uint32_t ms_pause_ns, ms_pause_end; /* [256]uint64 rings, by (GC number - 1) % 256 */
	uint32_t gc_memory_limit, gc_percent_heap_goal, gc_sweep_dist_min_trigger, gc_triggered,
		gc_heap_live, gc_heap_marked; /* in gcControllerState */
	uint32_t sweep_active_state; /* sweepdata.active.state */
	/*
	 * mstats.heapStats (at mstats+0): consistentHeapStats {stats [3]heapStatsDelta; gen}.
	 * In a heapStatsDelta: largeAlloc, largeAllocCount, smallAllocCount[68], tinyAllocCount.
	 */
	uint32_t hs_stride, hs_gen, hs_large_alloc, hs_large_count, hs_small_count, hs_tiny_count;
};

struct heap_vars {
	struct heap_layout lay;
	uint64_t addr[HV__CNT];	   /* link-time vaddrs used (0: not found) */
	uint64_t decoded[HV__CNT]; /* what the decoder found (0: not found) */
	uint64_t symtab[HV__CNT];  /* from .symtab (0: stripped or absent) */
	char why[HV__CNT][160];	   /* why a variable was not decoded */
};

/*
 * Fill V for M's binary (amd64, Go 1.19 or 1.21-1.27). Returns 0 when at least the
 * profile buckets and their cycle counter were found (other variables may be 0, with
 * V->why saying why), or -ENOTSUP / -ENOENT with gt_lasterr() set.
 */
int heap_locate__find(const struct go_model *m, struct heap_vars *v);
/* The struct layouts of Go 1.MINOR into L. 0, or -ENOTSUP (1.20, before 1.19, after 1.27). */
int heap_locate__layout(int minor, struct heap_layout *l);
const char *heap_locate__name(enum heap_var i); /* "runtime.mbuckets", ... */
/* "agrees", "differs" (.symtab used), "symtab-only", "decoded" (no .symtab), "missing". */
const char *heap_locate__source(const struct heap_vars *v, enum heap_var i);

#endif
