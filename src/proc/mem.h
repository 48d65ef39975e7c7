/* SPDX-License-Identifier: MIT */
/*
 * Reading a live process's memory without stopping it: process_vm_readv (batched,
 * many iovecs per call), falling back to pread on /proc/PID/mem where the syscall is
 * unavailable (ENOSYS, or refused by a seccomp filter). A small direct-mapped page
 * cache serves scattered small reads. Every failure is counted, never hidden: the
 * target keeps running, so reads can fail (unmapped) or be torn (changed meanwhile).
 */
#ifndef GOTRACE_MEM_H
#define GOTRACE_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct proc_mem;

struct proc_mem_stats {
	uint64_t requests;     /* reads asked for (each element of a batch counts) */
	uint64_t syscalls;     /* process_vm_readv or pread calls */
	uint64_t bytes;	       /* bytes copied from the target */
	uint64_t pages;	       /* target pages pinned: most of what a read costs */
	uint64_t failures;     /* requests not read in full */
	uint64_t cache_hits;   /* page-cache lookups served from the cache */
	uint64_t cache_misses; /* page-cache lookups that read the target */
	bool fallback;	       /* reading through /proc/PID/mem */
};

/* One element of a batched read; ERR is set by proc_mem__readv() (0 or -errno). */
struct proc_mem_req {
	uint64_t addr;
	void *buf;
	size_t len;
	int err;
};

/*
 * Open PID's memory for reading. Returns NULL with errno and gt_lasterr() set
 * (ESRCH: no such process, EPERM/EACCES: not permitted to read it).
 */
struct proc_mem *proc_mem__open(pid_t pid);
void proc_mem__free(struct proc_mem *pm);

/* Read LEN bytes at ADDR straight from the target. 0, or -EFAULT (unmapped), -ESRCH (gone). */
int proc_mem__read(struct proc_mem *pm, uint64_t addr, void *buf, size_t len);
/* Like proc_mem__read(), through the page cache (for small, scattered, repeated reads). */
int proc_mem__read_cached(struct proc_mem *pm, uint64_t addr, void *buf, size_t len);
/* Read one little-endian 64-bit word through the page cache. 0 or -errno. */
int proc_mem__read_u64(struct proc_mem *pm, uint64_t addr, uint64_t *val);
/*
 * Read every request of REQS, in as few syscalls as the kernel allows (up to IOV_MAX
 * iovecs each); a request that cannot be read in full gets ERR < 0 and the others go on.
 * Returns how many requests were read in full, or -ESRCH when the process is gone.
 */
long proc_mem__readv(struct proc_mem *pm, struct proc_mem_req *reqs, size_t n);
/* Forget cached pages: the target changed (used between retries of a snapshot). */
void proc_mem__drop_cache(struct proc_mem *pm);
const struct proc_mem_stats *proc_mem__stats(const struct proc_mem *pm);
pid_t proc_mem__pid(const struct proc_mem *pm);

#endif
