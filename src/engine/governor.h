/* SPDX-License-Identifier: MIT */
/*
 * What uprobes cost the traced program, and the means every probing engine (lifecycle,
 * waits, heap BPF sampling) uses to keep that cost within a budget.
 *
 * Cost of a hit: the trap, by the kind of instruction probed (the kernel emulates some,
 * single-steps others out of line, calls a trampoline at a 5-byte nop), timed once per
 * gotrace process on its own code, plus the BPF program's run time (kernel BPF stats).
 *
 * Links: a program at N offsets of one file in one process is one gov_link. It is a
 * uprobe_multi link where the kernel has them (Linux 6.6+): closing it removes the
 * breakpoints at once, before the RCU wait. A perf-event uprobe keeps trapping until
 * an RCU-tasks-trace grace period has passed (40-110 ms measured under load here), hits
 * the BPF program no longer sees: that fallback charges the tail to the bucket.
 *
 * Budget: a token bucket in CPU-seconds, filled at the budget's rate, spent by hits x
 * cost per hit.
 */
#ifndef GOTRACE_ENGINE_GOVERNOR_H
#define GOTRACE_ENGINE_GOVERNOR_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "goruntime/probes.h"

struct bpf_program;
struct bpf_link;

/* How the kernel handles the probed instruction, which sets the trap's cost. */
enum gov_kind {
	GOV_KIND_EMULATED,   /* push rbp, short jumps and nops: emulated, one trap */
	GOV_KIND_SINGLESTEP, /* the rest (cmp, sub rsp, ret): single-stepped out of line */
	GOV_KIND_NOP5,	     /* nopl 0(%rax,%rax,1): a call to a trampoline (Linux 6.17+ x86) */
	GOV_KIND__CNT,
};

const char *gov_kind_name(enum gov_kind k); /* "emulated", "single-step", "nop5" */

/* The kind of the instruction at CODE (LEN bytes readable) in an EM_* binary. */
enum gov_kind gov_site_kind(uint16_t machine, const uint8_t *code, size_t len);
enum gov_kind gov_kind_of(enum go_attach_kind k);

/*
 * Once per process, before any engine loads its BPF object (idempotent, thread-safe):
 * find whether uprobe_multi links work here, and time a trap of each kind on our own
 * code unless NO_CALIBRATE (then, or when timing fails, the built-in table is used).
 * Returns 0 or -errno with gt_lasterr() set (BPF unusable).
 */
int gov_init(bool no_calibrate);

struct gov_costs {
	double trap_ns[GOV_KIND__CNT];
	bool measured; /* timed here, else the built-in table */
	bool multi;    /* uprobe_multi links (else perf-event uprobes) */
};
const struct gov_costs *gov_costs(void);
double gov_trap_ns(enum gov_kind k);

/* Before the object is loaded: let gov_link attach PROG (its expected attach type). */
void gov_prepare_prog(struct bpf_program *prog);

/* The BPF program's mean run time per call since it was loaded, ns; 0 unknown. */
double gov_prog_ns(const struct bpf_program *prog);

struct bpf_map;
/*
 * Key 0 of the per-CPU array MAP, whose values are VSIZE bytes, into PCPU (NCPUS values),
 * and the sum over CPUs of each value's first NWORDS 64-bit words into SUM. 0 or -errno.
 */
int gov_sum_percpu(const struct bpf_map *map, void *pcpu, int ncpus, size_t vsize,
		   size_t nwords, uint64_t *sum);

/* ---------------------------------------------------------------- links */

/* Threads closing links: the kernel's RCU wait happens there, not in the governor. */
struct gov_reaper {
	pthread_t *t;
	int n, cap;
};
/* Join the finished threads, or all of them with WAIT. */
void gov_reaper__reap(struct gov_reaper *r, bool wait);

struct gov_link {
	int fd;			/* uprobe_multi link, -1 none */
	struct bpf_link **perf; /* fallback: one per offset, NULL entries when detached */
	int n;
};

/* A link holding nothing (fd -1). */
void gov_link__init(struct gov_link *l);
bool gov_link__attached(const struct gov_link *l);
/* Attach PROG at the N file offsets OFFS of PATH in process PID. 0 or -errno (nothing). */
int gov_link__attach(struct gov_link *l, struct bpf_program *prog, pid_t pid, const char *path,
		     const uint64_t *offs, int n);
/*
 * Detach without waiting: the breakpoints go now (uprobe_multi), the RCU wait happens in
 * a thread of R. Returns how many seconds the probes may still trap unseen (the
 * perf-event fallback's mean tail so far, 0 with uprobe_multi).
 */
double gov_link__detach(struct gov_link *l, struct gov_reaper *r);
/* Detach and wait (at exit). */
void gov_link__destroy(struct gov_link *l);

/* ---------------------------------------------------------------- budget */

/* Token bucket in CPU-seconds: filled at BUDGET per second up to BUDGET x BURST_S. */
struct gov_bucket {
	double budget;	/* CPU-s/s; < 0: no budget */
	double burst_s;
	double level;
};

enum gov_action { GOV_KEEP, GOV_DETACH, GOV_ATTACH };

/* Start full. */
void gov_bucket__init(struct gov_bucket *b, double budget, double burst_s);
/*
 * Account DT seconds during which the probes cost COST CPU-seconds: DETACH when
 * ATTACHED and the bucket ran dry, ATTACH when detached and it is full again (so on
 * average the probes are on budget / cost of the time), else KEEP.
 */
enum gov_action gov_bucket__tick(struct gov_bucket *b, double dt, double cost, bool attached);
double gov_bucket__cap(const struct gov_bucket *b);

/*
 * The governor thread runs at the lowest real-time priority: on a busy machine a normal
 * thread waits tens of milliseconds for a CPU while hot probes keep trapping (it sleeps
 * almost always). 0, or an errno when not permitted (it stays a normal thread).
 */
int gov_set_rt(bool on);

#endif
