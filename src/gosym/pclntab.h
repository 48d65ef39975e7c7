/* SPDX-License-Identifier: MIT */
/*
 * Go's .gopclntab: the function table, PC -> file:line, and the inline tree,
 * read without symbols or DWARF. Formats: Go 1.16-1.17 (magic 0xfffffffa),
 * 1.18-1.19 (0xfffffff0) and 1.20+ (0xfffffff1; 1.26+ leaves textStart 0).
 *
 * Shape of RS ksyms.h: load once into a sorted array, binary search.
 * All addresses are link-time vaddrs: callers add/subtract a load bias.
 */
#ifndef GOTRACE_PCLNTAB_H
#define GOTRACE_PCLNTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "elf/elf_file.h"

enum pcln_format {
	PCLN_FMT_UNKNOWN = 0,
	PCLN_FMT_116 = 116, /* Go 1.16-1.17 */
	PCLN_FMT_118 = 118, /* Go 1.18-1.19 */
	PCLN_FMT_120 = 120, /* Go 1.20+ */
};

struct go_func {
	uint64_t entry; /* link-time vaddr of the first instruction */
	uint64_t end;	/* entry of the next function (exclusive) */
	const char *name; /* NUL-terminated, points into the mapped file */
	uint32_t idx;	  /* index in the function table */
};

/* One frame of a PC: the innermost (inlined) frame comes first. */
struct go_frame {
	const char *func; /* function name (inlined callee or the physical function) */
	const char *file; /* NUL-terminated, into the mapped file; "?" when unknown */
	int line;	  /* 0 when unknown */
	bool inlined;	  /* true for every frame but the last (the physical function) */
};

/* pc-value tables a function carries (index into _func's pcsp/pcfile/pcln). */
enum pcln_table { PCTAB_SP, PCTAB_FILE, PCTAB_LINE };

struct pclntab;

struct pclntab_opts {
	int go_minor;	     /* from buildinfo, selects moduledata layouts; -1 unknown */
	uint64_t text_start; /* override runtime.text when known (0: find it) */
};

/*
 * Locate and index .gopclntab in EF. Returns NULL with errno (ENOENT: no pclntab,
 * EINVAL: corrupt, EPROTONOSUPPORT: pre-1.16 format) and gt_lasterr() set.
 */
struct pclntab *pclntab__open(const struct elf_file *ef, const struct pclntab_opts *opts);
void pclntab__free(struct pclntab *p);

enum pcln_format pclntab__format(const struct pclntab *p);
uint64_t pclntab__addr(const struct pclntab *p);	/* vaddr of the pcHeader */
uint64_t pclntab__size(const struct pclntab *p);	/* bytes of the table */
uint64_t pclntab__text_start(const struct pclntab *p);	/* runtime.text */
const char *pclntab__text_start_source(const struct pclntab *p); /* "pcheader", "symtab", "moduledata", "opts" */
uint64_t pclntab__moduledata(const struct pclntab *p); /* vaddr of firstmoduledata, 0 unknown */
int pclntab__quantum(const struct pclntab *p);
int pclntab__ptr_size(const struct pclntab *p);
size_t pclntab__nfiles(const struct pclntab *p);

size_t pclntab__func_cnt(const struct pclntab *p);
const struct go_func *pclntab__func(const struct pclntab *p, size_t idx);
/* The function containing PC (link-time vaddr), or NULL. */
const struct go_func *pclntab__find_func(const struct pclntab *p, uint64_t pc);
/* Exact-name lookup ("runtime.gopark"), or NULL. First call builds a name index. */
const struct go_func *pclntab__func_by_name(const struct pclntab *p, const char *name);

/* Value of a pc-value table at PC inside FN. 0 or -ENOENT (no table / pc outside). */
int pclntab__pcvalue(const struct pclntab *p, const struct go_func *fn, enum pcln_table t,
		     uint64_t pc, int32_t *val);
/* File and line recorded for PC in FN: the innermost (inlined) position, as go tool addr2line prints. */
int pclntab__line(const struct pclntab *p, const struct go_func *fn, uint64_t pc,
		  const char **file, int *line);
/* Declared start line of FN (1.20+: _func.startLine; else the line at entry). */
int pclntab__start_line(const struct pclntab *p, const struct go_func *fn);
/*
 * Frames at PC, innermost first, physical function last, at most MAX.
 * Returns the number of frames written (0: PC not in any function), or -errno.
 */
int pclntab__symbolize(const struct pclntab *p, uint64_t pc, struct go_frame *frames, int max);

#endif
