/* SPDX-License-Identifier: MIT */
/*
 * The runtime model of one Go binary: its ELF, build info, pclntab, struct
 * offsets and version support. Every command starts here, from a path or a PID.
 */
#ifndef GOTRACE_MODEL_H
#define GOTRACE_MODEL_H

#include <stdbool.h>
#include <sys/types.h>
#include "elf/elf_file.h"
#include "gosym/buildinfo.h"
#include "gosym/pclntab.h"
#include "goruntime/offsets.h"
#include "proc/proc.h"

struct go_model_opts {
	bool no_dwarf;		/* use the built-in offset table even when DWARF is present */
	bool allow_unsupported; /* keep going (without offsets) on a version outside the table */
};

struct go_model {
	const char *path;	/* what was opened */
	struct elf_file *ef;
	struct go_buildinfo bi;
	struct pclntab *pcln;
	bool supported;		 /* version within [GO_MIN_MINOR, GO_MAX_MINOR] */
	char unsupported_reason[128];
	struct go_offsets off;	 /* valid when supported */
	int dwarf_fields;	 /* offsets taken from DWARF */
	bool has_proc;
	struct proc_target proc; /* valid when has_proc */
};

/*
 * Open the binary at PATH (or PID's executable) and build its model.
 * Returns 0, or -errno with gt_lasterr() set to one line saying what is wrong:
 * not ELF, not Go, corrupt, Go too old, or (without allow_unsupported) too new.
 */
int go_model__open_path(const char *path, const struct go_model_opts *opts, struct go_model **out);
int go_model__open_pid(pid_t pid, const struct go_model_opts *opts, struct go_model **out);
void go_model__free(struct go_model *m);

/* Runtime address <-> link-time address (identity unless a PIE process). */
uint64_t go_model__to_link(const struct go_model *m, uint64_t runtime_addr);
uint64_t go_model__to_runtime(const struct go_model *m, uint64_t link_addr);

#endif
