/* SPDX-License-Identifier: MIT */
/* A target process: its executable (through /proc/PID/exe or /proc/PID/root), mappings and load bias. */
#ifndef GOTRACE_PROC_H
#define GOTRACE_PROC_H

#include <stdint.h>
#include <sys/types.h>
#include "elf/elf_file.h"

#define PROC_MAX_MAPS 64

struct proc_map {
	uint64_t start, end, offset;
	char perms[5];
};

struct proc_target {
	pid_t pid;
	char comm[32];
	char exe_path[4096];  /* path as the target sees it (readlink /proc/PID/exe) */
	char open_path[4096]; /* path gotrace opened: /proc/PID/exe */
	uint64_t load_bias;   /* runtime vaddr - link-time vaddr (0 for ET_EXEC) */
	int nmaps;
	struct proc_map maps[PROC_MAX_MAPS]; /* mappings of the executable */
};

/*
 * Resolve PID's executable and mappings. Returns 0 or -errno with gt_lasterr() set:
 * -ESRCH no such process, -EPERM not permitted, -EINVAL kernel thread.
 */
int proc__open(pid_t pid, struct proc_target *t);
/* Open the target's executable with libelf and compute load_bias from its maps. */
struct elf_file *proc__open_elf(struct proc_target *t);

#endif
