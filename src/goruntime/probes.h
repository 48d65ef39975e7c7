/* SPDX-License-Identifier: MIT */
/*
 * The runtime functions gotrace hooks, resolved in one binary: where each
 * lives, every return instruction (decoded, never byte-scanned), and the
 * entry attach point after the stack-check prologue.
 */
#ifndef GOTRACE_PROBES_H
#define GOTRACE_PROBES_H

#include <stdbool.h>
#include <stdint.h>
#include "elf/elf_file.h"
#include "gosym/pclntab.h"

#define GO_PROBE_MAX_RETS 64

enum go_probe_role {
	GO_PROBE_NEWPROC1,
	GO_PROBE_GOEXIT1,
	GO_PROBE_GOEXIT0,
	GO_PROBE_GDESTROY,
	GO_PROBE_GOPARK,
	GO_PROBE_READY,
	GO_PROBE_GOREADY,
	GO_PROBE_CASGSTATUS,
	GO_PROBE_EXECUTE,
	GO_PROBE_MALLOCGC,
	GO_PROBE_MALLOCGC_VARIANT, /* 1.24+ split bodies and 1.27 size-specialized routines */
	GO_PROBE_PROFILEALLOC,
	GO_PROBE_MPROF_MALLOC,
	GO_PROBE_FREESPECIAL,
	GO_PROBE_GCSTART,
	GO_PROBE_STW_START, /* stopTheWorldWithSema */
	GO_PROBE_STW_DONE,  /* startTheWorldWithSema */
	GO_PROBE_MUTEX_LOCKSLOW,
	GO_PROBE__CNT,
};

enum go_attach_kind {
	GO_ATTACH_NONE = 0,
	GO_ATTACH_EMULATED,	/* the kernel emulates the instruction: one trap */
	GO_ATTACH_SINGLESTEP,	/* must be single-stepped out of line: two traps */
};

struct go_probe_site {
	enum go_probe_role role;
	const char *role_name;	/* "newproc1" */
	const char *name;	/* resolved function name, or the first candidate when absent */
	bool present;
	uint64_t addr;		/* link-time vaddr of the entry */
	uint64_t size;
	uint64_t file_offset;	/* of the entry, for uprobe attachment */
	bool has_stack_check;	/* prologue compares SP with g.stackguard0 */
	uint32_t attach_offset; /* from entry: where the entry probe goes */
	char attach_insn[48];	/* disassembly of the instruction there */
	enum go_attach_kind attach_kind;
	int nret;		/* entries of ret_offsets (at most GO_PROBE_MAX_RETS) */
	uint32_t ret_offsets[GO_PROBE_MAX_RETS]; /* from entry */
	bool rets_truncated;	/* the function has more RETs than that */
	uint32_t undecoded;	/* bytes of [addr, addr+size) the disassembler skipped */
	const char *fallback;	/* what gotrace does when absent, or NULL */
};

const char *go_probes__role_name(enum go_probe_role role);
const char *go_probes__attach_kind_name(enum go_attach_kind k); /* "emulated", "single-step" */
/* One of Go 1.27's size-specialized allocators ("runtime.mallocgcTinySC3"). */
bool go_probes__is_sc_variant(const char *name);

/*
 * Resolve every hooked function for Go 1.MINOR in EF. *SITES is a malloc'd array
 * (free with free()), *N its length (one entry per role, plus one per extra
 * variant function found). Returns 0 or -errno.
 */
int go_probes__resolve(const struct elf_file *ef, const struct pclntab *p, int minor,
		       struct go_probe_site **sites, int *n);

/*
 * Decode one function's code (amd64; arm64 where supported) with capstone.
 * find_rets: offsets of every RET from ADDR; returns count (may exceed MAX: then only
 * MAX are written) or -errno.
 * attach_point: the instruction right after the stack-check prologue (cmp/jbe to
 * morestack), or the entry for nosplit functions; fills OFF, INSN text and KIND.
 */
int insn__find_rets(uint16_t machine, const uint8_t *code, size_t len, uint64_t addr,
		    uint32_t *offs, int max);
int insn__attach_point(uint16_t machine, const uint8_t *code, size_t len, uint64_t addr,
		       uint32_t *off, char *insn, size_t insn_len, enum go_attach_kind *kind,
		       bool *has_stack_check);

/* What one linear sweep over a function saw. */
struct insn_sweep_stats {
	uint32_t ninsn;	    /* instructions decoded */
	uint32_t nlen_only; /* of which only their length (VEX/EVEX unknown to capstone 4) */
	uint32_t nbad;	    /* bytes skipped because they did not decode */
	uint32_t first_bad; /* offset of the first of them (valid when nbad) */
};
/* insn__find_rets(), also reporting the sweep's counts in *ST (may be NULL). */
int insn__find_rets_stats(uint16_t machine, const uint8_t *code, size_t len, uint64_t addr,
			  uint32_t *offs, int max, struct insn_sweep_stats *st);
/* The kernel's handling of a uprobe on the one instruction at CODE (machine EM_*). */
enum go_attach_kind insn__attach_kind(uint16_t machine, const uint8_t *code, size_t len);

#endif
