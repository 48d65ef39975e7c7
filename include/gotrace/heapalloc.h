/* SPDX-License-Identifier: MIT */
/*
 * Allocation sampling in BPF (bpf/heapalloc.bpf.c), the fallback of `gotrace heap` when
 * the Go runtime samples no allocation: records and limits shared with
 * src/heap/bpfsample.c. Plain fixed-width types only.
 *
 * Every hit carries a weight in bytes (and objects), by program:
 *   ha_refill  runtime.(*mcache).refill(c, spc): the span being replaced served
 *              allocCount - allocCountBeforeCache objects of elemsize bytes since it was
 *              cached, exactly what refill adds to the runtime's heap statistics
 *   ha_large   runtime.(*mcache).allocLarge(c, size, noscan): size rounded up to pages
 *   ha_alloc   runtime.mallocgc and its 1.24+/1.27 variants: the requested size (arg 1)
 * A per-CPU countdown of bytes puts sample points on the byte axis, one per cfg_period
 * bytes on average (random gaps); each point inside a hit's bytes adds cfg_period bytes
 * to the hit's allocation stack, so the sums are unbiased estimates of bytes by stack.
 */
#ifndef GOTRACE_HEAPALLOC_H
#define GOTRACE_HEAPALLOC_H

#define HA_MAX_DEPTH 64 /* return addresses kept per allocation stack */

/* Slots of struct ha_counters.c: totals over every hit, sampled or not. */
enum ha_counter {
	HA_CNT_HITS,	    /* probe hits */
	HA_CNT_BYTES,	    /* bytes allocated (sum of the weights) */
	HA_CNT_OBJECTS,	    /* objects allocated */
	HA_CNT_SAMPLES,	    /* sample points (stack walks) */
	HA_CNT_EMPTY,	    /* hits of weight 0 (refill of the empty placeholder span) */
	HA_CNT_READ_ERR,    /* reads of the target's memory that failed */
	HA_CNT_STACK_ERR,   /* stack walks that failed */
	HA_CNT_STACKS_FULL, /* sample points lost: the stack table was full */
	HA_CNT__NR,
};

/* Per CPU, one element. */
struct ha_counters {
	__u64 c[HA_CNT__NR];
	__s64 countdown; /* bytes to the next sample point */
	__u64 pad;
};

/* Key of the stack table: runtime return addresses, innermost first, zero padded. */
struct ha_stack {
	__u64 pcs[HA_MAX_DEPTH];
};

/* Value of the stack table: estimates from the sample points that fell on this stack. */
struct ha_site {
	__u64 samples; /* sample points */
	__u64 bytes;   /* samples * cfg_period */
	__u64 objects; /* sum over points of cfg_period / (bytes per object of the hit) */
};

_Static_assert(sizeof(struct ha_counters) == 8 * (HA_CNT__NR + 2), "ha_counters layout");
_Static_assert(sizeof(struct ha_stack) == 8 * HA_MAX_DEPTH, "ha_stack layout");
_Static_assert(sizeof(struct ha_site) == 24, "ha_site layout");

#endif
