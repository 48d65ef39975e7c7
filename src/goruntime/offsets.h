/* SPDX-License-Identifier: MIT */
/*
 * Runtime struct offsets and wait-reason names per Go minor version.
 * Sources: the binary's DWARF when present, else the built-in table for the
 * detected minor version. A version outside the table is refused, never guessed.
 */
#ifndef GOTRACE_OFFSETS_H
#define GOTRACE_OFFSETS_H

#include <stdint.h>
#include "elf/elf_file.h"

#define GO_MIN_MINOR 17
#define GO_MAX_MINOR 27

enum go_off_id {
	GO_OFF_G_STACK_LO,
	GO_OFF_G_STACK_HI,
	GO_OFF_G_M,
	GO_OFF_G_SCHED_SP,
	GO_OFF_G_SCHED_PC,
	GO_OFF_G_SCHED_BP,
	GO_OFF_G_ATOMICSTATUS,
	GO_OFF_G_GOID,
	GO_OFF_G_WAITSINCE,
	GO_OFF_G_WAITREASON,
	GO_OFF_G_PARENTGOID, /* 1.21+; -1 before */
	GO_OFF_G_GOPC,
	GO_OFF_G_STARTPC,
	GO_OFF_G_LABELS,
	GO_OFF_G_SIZE,
	GO_OFF_GOBUF_SIZE,
	GO_OFF_M_G0,
	GO_OFF_M_PROCID,
	GO_OFF_M_CURG,
	GO_OFF_M_P,
	GO_OFF_MODULEDATA_TEXT,
	GO_OFF_MODULEDATA_ETEXT,
	GO_OFF_MODULEDATA_GOFUNC, /* 1.18+; -1 before */
	GO_OFF__CNT,
};

enum go_off_src {
	GO_OFF_SRC_NONE = 0, /* not available for this version */
	GO_OFF_SRC_TABLE,    /* built-in table for the minor version */
	GO_OFF_SRC_DWARF,    /* read from the binary's DWARF */
};

struct go_offset_desc {
	const char *name;	/* "g.goid" as printed by inspect */
	const char *dwarf_type; /* "runtime.g" */
	const char *dwarf_path; /* "goid", "sched.sp", or "" for the struct's size */
};

struct go_offsets {
	int go_minor;
	int64_t val[GO_OFF__CNT];  /* -1 when not available */
	uint8_t src[GO_OFF__CNT];  /* enum go_off_src */
};

const struct go_offset_desc *go_offsets__desc(enum go_off_id id);
const char *go_offsets__src_name(enum go_off_src src); /* "table", "dwarf", "none" */

/*
 * Fill O from the built-in table for Go 1.MINOR. Returns 0, or -ENOTSUP when the
 * minor is outside [GO_MIN_MINOR, GO_MAX_MINOR] (gt_lasterr(): "unsupported: go1.28,
 * newest known go1.27").
 */
int go_offsets__from_table(int minor, struct go_offsets *o);
/*
 * Overwrite the entries of O found in EF's DWARF (marking them GO_OFF_SRC_DWARF).
 * Returns how many were found (0 when the binary has no DWARF), or -errno.
 */
int go_offsets__from_dwarf(const struct elf_file *ef, struct go_offsets *o);

/*
 * The smallest span of a g holding the 8-byte fields IDS[0..N), for a BPF program to read
 * at once: *OFF and *LEN, or *LEN 0 when it is longer than MAX or a field is unknown
 * (parentGoid, which Go has only from 1.21, is left out when unknown).
 */
void go_offsets__window(const struct go_offsets *o, const enum go_off_id *ids, int n,
			uint32_t max, uint32_t *off, uint32_t *len);

/* Wait-reason names for Go 1.MINOR: *TAB gets the array, returns its length (0 unknown). */
int go_waitreasons(int minor, const char *const **tab);
/* Name of wait reason R for Go 1.MINOR, or NULL. */
const char *go_waitreason(int minor, unsigned r);

#endif
