/* SPDX-License-Identifier: MIT */
/*
 * Allocation sampling in BPF (bpf/heapalloc.bpf.c): the fallback of `gotrace heap` when
 * the Go runtime samples no allocation into its heap profile.
 *
 * Where (HEAP_BPF_AT_*):
 *   refill    runtime.(*mcache).refill, when a P's span of one size class is full (each
 *             hit stands for the span's allocations since it was cached, 1 to 1024
 *             objects), and runtime.(*mcache).allocLarge, every allocation over 32 KiB.
 *             The allocation that finds the span full is a uniform pick among the
 *             allocations of that size class on that P: its stack gets the span's bytes.
 *             Hits are several to a hundred times rarer than allocations.
 *   mallocgc  every allocation: runtime.mallocgc up to 1.23; from 1.24 the functions it
 *             dispatches to (mallocgcTiny, mallocgcSmallNoscan, ...ScanNoHeader,
 *             ...ScanHeader, mallocgcLarge); in 1.27 also the size-specialized routines
 *             compiled code calls directly (mallocgcSmallNoScanSC<n>, ...): each
 *             allocation hits exactly one probe. Bytes are the requested sizes.
 * Frees are not seen (the sweeper frees spans, not objects): only allocation figures.
 *
 * Every hit is a trap in the target (microseconds: bench/README.md), so a governor thread
 * keeps the probes' cost under a budget (% of one CPU) with engine/governor.h: cost = hits
 * x (trap cost of the probed instruction's kind + the BPF program's run time). Over budget
 * it detaches every probe and re-attaches when the budget has refilled (duty cycling);
 * the figures then cover the attached time only, and the stats say how much that was.
 */
#ifndef GOTRACE_HEAP_BPFSAMPLE_H
#define GOTRACE_HEAP_BPFSAMPLE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "goruntime/model.h"

#define HEAP_BPF_DEFAULT_BUDGET_PCT 1.0
#define HEAP_BPF_DEFAULT_PERIOD (512 * 1024)
#define HEAP_BPF_MAX_PROBES 48

enum heap_bpf_at {
	HEAP_BPF_AT_DEFAULT, /* refill where its offsets are known, else mallocgc */
	HEAP_BPF_AT_REFILL,
	HEAP_BPF_AT_MALLOCGC,
};

struct heap_bpf_opts {
	enum heap_bpf_at at;
	double budget_pct;	 /* % of one CPU; 0: the default; < 0: no limit */
	uint64_t period;	 /* mean bytes between sample points; 0: 512 KiB */
	unsigned int max_stacks; /* stack table size; 0: 8192 */
	bool no_calibrate;	 /* trap costs from the built-in table (gov_init: the first
				  * engine started in the process decides) */
};

struct heap_bpf_probe {
	const char *func;      /* "runtime.(*mcache).refill" */
	const char *prog;      /* "ha_refill" */
	uint64_t addr;	       /* link-time address of the probed instruction */
	uint64_t file_off;
	const char *insn_kind; /* "emulated", "single-step" or "nop5" (gov_kind_name) */
};

struct heap_bpf_stats {
	const char *at; /* "refill" or "mallocgc" */
	int nprobes;
	const struct heap_bpf_probe *probes;
	uint64_t period;
	/* Every hit: */
	uint64_t hits, bytes, objects;
	uint64_t samples;	/* sample points */
	uint64_t empty, read_errors, stack_errors, stacks_full;
	double elapsed_s;	/* since start */
	/*
	 * The stretches with every probe attached (from the end of an attach to a detach),
	 * the base of the rates while attached: their time and hits, bytes, objects.
	 */
	double attached_s;
	uint64_t attached_hits, attached_bytes, attached_objects;
	uint64_t attaches;	/* attach windows (1 when never detached) */
	double trap_ns, prog_ns; /* cost per hit: trap (timed or built-in), BPF program */
	bool calibrated;	/* trap costs timed here (gov_costs()->measured) */
	bool multi_links;	/* uprobe_multi links, else perf-event uprobes */
	bool prog_ns_measured;	/* from the kernel's BPF run-time statistics */
	double budget_pct;	/* < 0: none */
	double cost_pct_attached; /* % of one CPU the probes cost while attached */
	double cost_pct_avg;	/* % of one CPU, averaged since start */
	bool attached;		/* now */
	bool target_exited;
	char governor[320];	/* what the governor did, one sentence */
};

struct heap_bpf;

/*
 * Load the BPF programs and attach them to PID (M describes PID's executable and must
 * outlive the handle); start the governor. 0, or -errno with gt_lasterr() set (no BPF,
 * no probe site in the binary, an unsupported version for the refill offsets).
 */
int heap_bpf__start(const struct go_model *m, pid_t pid, const struct heap_bpf_opts *o,
		    struct heap_bpf **out);
/* Detach every probe (at once) and stop the governor; the counts stay readable. */
void heap_bpf__stop(struct heap_bpf *hb);
/* The counts and the governor's state so far. 0 or -errno. */
int heap_bpf__stats(struct heap_bpf *hb, struct heap_bpf_stats *st);
/*
 * Each allocation stack sampled: PCS[0..N) runtime return addresses, innermost first;
 * SAMPLES points; BYTES and OBJECTS their estimates (points x period). CB returning
 * non-zero stops and is returned.
 */
int heap_bpf__foreach_stack(struct heap_bpf *hb,
			    int (*cb)(void *ctx, const uint64_t *pcs, uint32_t n, uint64_t samples,
				      uint64_t bytes, uint64_t objects),
			    void *ctx);
void heap_bpf__free(struct heap_bpf *hb);

const char *heap_bpf__at_name(enum heap_bpf_at at);

#endif
