/* SPDX-License-Identifier: MIT */
/*
 * The goroutine census: every goroutine of a live Go process, read from the runtime's
 * own list (runtime.allgs) in the target's memory. No probe, no signal, no stop: the
 * target keeps running, so every value read is validated, racing reads are retried,
 * and what still fails is counted as unreadable, never guessed.
 *
 * Per goroutine: goid, status, wait reason, creation site (gopc, parent goid on 1.21+),
 * start function and, for a goroutine that is not on a CPU, its stack, unwound from the
 * context saved in g.sched with the pclntab's SP-delta tables (the runtime's own
 * unwinder), which needs no frame pointers and stops where the runtime's does.
 */
#ifndef GOTRACE_CENSUS_H
#define GOTRACE_CENSUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "census/locate.h"
#include "goruntime/model.h"
#include "proc/mem.h"

#define CENSUS_MAX_DEPTH 64

/* Goroutine status values (runtime2.go, unchanged from 1.17 to 1.27). */
enum go_gstatus {
	GO_GIDLE = 0,
	GO_GRUNNABLE = 1,
	GO_GRUNNING = 2,
	GO_GSYSCALL = 3,
	GO_GWAITING = 4,
	GO_GMORIBUND_UNUSED = 5,
	GO_GDEAD = 6,
	GO_GENQUEUE_UNUSED = 7,
	GO_GCOPYSTACK = 8,
	GO_GPREEMPTED = 9,
	GO_GLEAKED = 10,    /* 1.26+: parked forever, found by the GC's leak detector */
	GO_GDEADEXTRA = 11, /* 1.26+: dead g kept for a cgo callback's extra M */
	GO_GSCAN = 0x1000,  /* OR-ed in while the GC scans the stack */
};

enum census_stack_state {
	CENSUS_STACK_OK,	 /* unwound to the goroutine's first frame */
	CENSUS_STACK_TRUNCATED,	 /* CENSUS_MAX_DEPTH reached, or a frame could not be unwound */
	CENSUS_STACK_RUNNING,	 /* on a CPU: its saved context is stale, the stack unknown */
	CENSUS_STACK_CHANGED,	 /* kept moving while it was read (retries exhausted) */
	CENSUS_STACK_NONE,	 /* not attempted (status without a saved context) */
};

/* A distinct stack: symbolization PCs (runtime addresses), innermost first. */
struct census_stack {
	uint32_t depth;
	bool truncated;
	uint64_t pcs[];
};

struct census_g {
	uint64_t addr;	      /* of the g in the target */
	uint64_t goid;
	uint64_t parent_goid; /* 0 when unknown (Go < 1.21) */
	uint64_t gopc;	      /* runtime address of the go statement (return address) */
	uint64_t startpc;     /* runtime address of the goroutine's function */
	int64_t waitsince;    /* g.waitsince: CLOCK_MONOTONIC ns when a GC first saw it
			       * blocked (the runtime sets it only then); 0 unknown */
	uint32_t status;      /* enum go_gstatus, _Gscan bit removed */
	uint8_t waitreason;   /* raw value; go_waitreason() names it */
	bool scan;	      /* the _Gscan bit was set */
	bool system;	      /* a runtime goroutine: not counted by runtime.NumGoroutine */
	uint8_t stack_state;  /* enum census_stack_state */
	int32_t stack;	      /* index in census->stacks, -1 when none */
};

struct census_opts {
	bool keep_system; /* keep system goroutines in ->gs (they are always counted) */
};

struct census {
	int go_minor;
	struct census_vars vars;
	uint64_t allglen;  /* entries of allgs read */
	size_t ng;	   /* goroutines kept in gs (live; user, plus system with keep_system) */
	struct census_g *gs;
	size_t nstacks;
	struct census_stack **stacks;
	/* Counts over all of allgs. */
	uint64_t user;	      /* what runtime.NumGoroutine would count */
	uint64_t system;
	uint64_t dead;	      /* _Gdead entries (free list, exited) */
	uint64_t unreadable;  /* could not be read, or failed sanity checks after retries */
	uint64_t stack_unknown; /* live goroutines whose stack could not be unwound */
	uint64_t retries;     /* re-reads caused by concurrent changes */
	double elapsed_ms;    /* wall time of the snapshot */
	struct proc_mem_stats mem; /* reads it took */
};

/*
 * Snapshot the goroutines of the process M was opened on (go_model__open_pid), reading
 * through MEM. Returns 0 with *OUT set (free with census__free), or -errno with
 * gt_lasterr() set: -ENOTSUP (version without offsets, not x86-64), -ENOENT (the list
 * cannot be located), -EINVAL (memory does not hold a goroutine list), -ESRCH (exited).
 */
int census__take(const struct go_model *m, struct proc_mem *mem, const struct census_opts *opts,
		 struct census **out);
void census__free(struct census *c);

/*
 * The same, repeatedly: a reader finds the list, the layout and its caches once (the
 * decoding and checks census__take repeats on every call). Errors as census__take.
 */
struct census_reader;
int census_reader__new(const struct go_model *m, struct proc_mem *mem,
		       const struct census_opts *opts, struct census_reader **out);
int census_reader__take(struct census_reader *r, struct census **out);
void census_reader__free(struct census_reader *r);

/* "idle", "runnable", "running", "syscall", "waiting", ..., or "???" like the runtime. */
const char *census__status_name(uint32_t status);
/* The bracketed state the runtime prints: the wait reason for a waiting goroutine. */
const char *census__state(const struct census *c, const struct census_g *g);

#endif
