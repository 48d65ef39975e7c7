/* SPDX-License-Identifier: MIT */
/*
 * One traced process: its runtime model, a reader of its memory, and what every front
 * end asks of it — a goroutine census, symbolized frames, creation and blocking sites.
 * Front ends (goroutines, top, capture, the daemon) hold one session per process; a
 * session never writes into its target and survives the target's exit (census then
 * returns -ESRCH and session__alive() says false).
 */
#ifndef GOTRACE_ENGINE_SESSION_H
#define GOTRACE_ENGINE_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "census/census.h"
#include "goruntime/model.h"
#include "proc/mem.h"

#define SESSION_MAX_FRAMES 8 /* inlined frames kept per PC */

/* One source position: interned strings owned by the binary's pclntab. */
struct site {
	const char *func;
	const char *file;
	int line;
};

/* A PC with its inlined frames, innermost first. */
struct sym_pc {
	uint64_t pc;
	int nframes;
	struct site frames[SESSION_MAX_FRAMES];
	bool runtime; /* the physical function is the runtime's (or internal/runtime) */
	bool wrapper; /* compiler-generated (go statement wrappers...): Go's tracebacks hide it */
};

struct session_stats {
	uint64_t censuses;
	uint64_t census_failed; /* censuses that failed after their retries */
	uint64_t unreadable;	/* goroutines not read, summed over censuses */
	uint64_t stack_unknown; /* live goroutines without a stack, summed */
	double last_census_ms;
};

struct session {
	pid_t pid;
	struct go_model *m;
	struct proc_mem *mem;
	const char *go_version; /* "go1.22.4" */
	struct session_stats st;
	struct symcache *syms;
	struct census_reader *readers[2]; /* without, with the runtime's goroutines */
	char goroot[512]; /* source prefix of the standard library, "" unknown */
	uint64_t exe_dev, exe_ino, start_time; /* identity: an exec or a reused PID changes it */
	bool goroot_done;
};

/*
 * Open process PID for reading. Returns 0 or -errno with gt_lasterr() one line: gone,
 * not permitted, not Go, a Go version without offsets (refused, never guessed).
 */
int session__open(pid_t pid, struct session **out);
void session__close(struct session *s);
bool session__alive(const struct session *s);
/* 0 while PID still runs the program opened; -ESRCH gone; -ESTALE exec'd or reused. */
int session__check(struct session *s);

/*
 * A census, retried when the target moves under it. -ESRCH once the target is gone,
 * -ESTALE when the PID now runs another program (exec, or a PID reused).
 */
int session__census(struct session *s, const struct census_opts *o, struct census **out);

/* PC (a symbolization PC: return addresses already minus 1) to frames; cached. */
const struct sym_pc *session__sym(struct session *s, uint64_t pc);
/* The go statement of gopc (a return address): innermost frame, like Go's "created by". */
struct site session__created_at(struct session *s, uint64_t gopc);
/*
 * Where STACK is blocked, for a human: its innermost frame outside the standard
 * library (the user's line that called into it), else the innermost frame outside
 * the runtime (a library goroutine: net/http's readLoop), else the innermost. *PC (may
 * be NULL) gets the stack's PC of that frame, 0 when STACK is empty.
 */
struct site session__blocked_at(struct session *s, const struct census_stack *stack,
			       uint64_t *pc);
/* True if F is the standard library's (GOROOT's files, else by package path). */
bool session__is_std(struct session *s, const struct site *f);
/* The physical function of a runtime address, "?" when none. */
const char *session__func_name(struct session *s, uint64_t pc);

/* CLOCK_MONOTONIC in ns: the clock of g.waitsince and the runtime's nanotime. */
int64_t session__mono_ns(void);

#endif
