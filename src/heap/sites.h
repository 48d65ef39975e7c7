/* SPDX-License-Identifier: MIT */
/*
 * Allocation stacks of heap profile buckets, symbolized the way Go's own profile readers
 * see them, and interned so that buckets can be summed per stack.
 *
 * A bucket's PCs are return addresses with inlined calls already expanded (runtime
 * callers/tracebackPCs store one "virtual" PC per inlined frame), so each PC - 1 stands
 * for exactly one frame: the innermost one at that address, as runtime.CallersFrames
 * gives it. The shown stack drops the leading runtime frames (mallocgc, makeslice...) and
 * runtime.goexit, as runtime/pprof does for heap profiles; a stack made only of runtime
 * frames is shown whole.
 */
#ifndef GOTRACE_HEAP_SITES_H
#define GOTRACE_HEAP_SITES_H

#include <stddef.h>
#include <stdint.h>
#include "goruntime/model.h"

struct heap_frame {
	const char *func; /* "?" when the PC is outside every function */
	const char *file;
	int line;
	uint64_t pc;	  /* a runtime return address giving this frame (its first one) */
};

/* A shown stack: frame ids, innermost first. */
struct heap_stack {
	uint32_t n;
	const uint64_t *frames;
};

struct heap_sites;

/* Symbolization through M's pclntab (M must outlive it). NULL on ENOMEM. */
struct heap_sites *heap_sites__new(const struct go_model *m);
void heap_sites__free(struct heap_sites *hs);

/*
 * Intern the shown stack of PCS[0..N) (runtime return addresses, innermost first).
 * Returns its id (ids count from 0), or -ENOMEM.
 */
long heap_sites__shown(struct heap_sites *hs, const uint64_t *pcs, uint32_t n);
/* Intern the raw stack PCS[0..N) (every PC, as the runtime keys its buckets). Id or -ENOMEM. */
long heap_sites__raw(struct heap_sites *hs, const uint64_t *pcs, uint32_t n);
/* The shown stack of raw stack RAW_ID (interned when first asked), or -ENOMEM. */
long heap_sites__shown_of_raw(struct heap_sites *hs, uint32_t raw_id);
/* The PCs of raw stack RAW_ID (*N of them). */
const uint64_t *heap_sites__raw_pcs(const struct heap_sites *hs, uint32_t raw_id, uint32_t *n);
/* The frame id of return address PC (symbolized once), or -ENOMEM. */
long heap_sites__frame_of(struct heap_sites *hs, uint64_t pc);
size_t heap_sites__shown_cnt(const struct heap_sites *hs);
size_t heap_sites__raw_cnt(const struct heap_sites *hs);
void heap_sites__stack(const struct heap_sites *hs, uint32_t shown_id, struct heap_stack *st);
const struct heap_frame *heap_sites__frame(const struct heap_sites *hs, uint32_t frame_id);

#endif
