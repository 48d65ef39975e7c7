/* SPDX-License-Identifier: MIT */
/*
 * Where the Go runtime keeps its list of goroutines, found without a symbol table:
 * runtime.allgs (a []*g slice header), runtime.allglen and runtime.allgptr (the length
 * and array that atomicAllG reads without the lock). Sources, best first:
 *   - decoding runtime.allgadd (located through .gopclntab, present even in stripped
 *     binaries) with capstone: its RIP-relative operands name the three variables;
 *   - .symtab, when the binary has one: a bonus, and a cross-check of the decoding.
 */
#ifndef GOTRACE_CENSUS_LOCATE_H
#define GOTRACE_CENSUS_LOCATE_H

#include <stdbool.h>
#include <stdint.h>
#include "goruntime/model.h"
#include "proc/mem.h"

enum locate_symtab {
	LOCATE_SYMTAB_ABSENT = 0, /* no .symtab (stripped) or no such symbols */
	LOCATE_SYMTAB_AGREES,	  /* .symtab and the decoding give the same addresses */
	LOCATE_SYMTAB_DIFFERS,	  /* they disagree: .symtab wins, the decoder has a bug */
	LOCATE_SYMTAB_ONLY,	  /* the decoding failed; .symtab alone */
};

struct census_vars {
	/* Link-time vaddrs (add the load bias to read them in a PIE process). */
	uint64_t allgs;	  /* slice header {ptr, len, cap} */
	uint64_t allglen; /* uintptr, stored atomically after allgs grows */
	uint64_t allgptr; /* **g, stored atomically when the array moves */
	const char *decoded_from; /* "runtime.allgadd", or NULL when not decoded */
	uint64_t decoded[3];	  /* what the decoder found: allgs, allglen, allgptr */
	enum locate_symtab symtab;
};

/*
 * Find the goroutine-list variables of M's binary (amd64). Returns 0, or -ENOENT /
 * -ENOTSUP with gt_lasterr() saying why ("cannot locate runtime.allgs in BIN: ...").
 */
int census_locate__find(const struct go_model *m, struct census_vars *v);
/*
 * Check V against the live process M->proc: the slice header is sane, allgptr is its
 * array and allglen fits in it. Retries a few times (the target keeps running).
 * Returns 0, or -EINVAL with gt_lasterr() set when the memory does not look like a
 * goroutine list, or the read error.
 */
int census_locate__check(const struct go_model *m, struct proc_mem *mem,
			 const struct census_vars *v);
const char *census_locate__symtab_name(enum locate_symtab s); /* "agrees", "absent", ... */

#endif
