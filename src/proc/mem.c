// SPDX-License-Identifier: MIT
/*
 * Target memory reads. process_vm_readv copies straight from the target's pages with
 * no stop and no signal; it needs the same permission as ptrace attach (root, or
 * CAP_SYS_PTRACE, or a same-user target under yama ptrace_scope 0).
 */
#define _GNU_SOURCE /* process_vm_readv */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "proc/mem.h"
#include "util/log.h"

#define MEM_PAGE_SIZE 4096ULL
#define MEM_CACHE_PAGES 64 /* 256 KiB: enough for the runtime globals and a few stacks */
#define MEM_MAX_IOV 1024   /* IOV_MAX on Linux */
/*
 * Requests closer than this share one remote iovec, the bytes between them going to a
 * scratch buffer: the kernel pins (and unpins) the pages of every remote iovec anew,
 * ~0.3 us per iovec over pages already pinned (more on a cold page), against ~0.1-0.2 us
 * per KiB copied. A gap under a page only touches pages the requests around it touch
 * already, so it cannot fault where they would not.
 */
#define MEM_COALESCE_GAP 2048

struct mem_page {
	uint64_t addr; /* page address; valid when gen is the cache's */
	uint64_t gen;
	uint8_t data[MEM_PAGE_SIZE];
};

struct proc_mem {
	pid_t pid;
	int mem_fd; /* /proc/PID/mem, opened on fallback */
	struct proc_mem_stats st;
	struct mem_page *cache; /* MEM_CACHE_PAGES, direct-mapped by page number */
	uint64_t gen;		/* cached pages of an older generation are stale */
	struct iovec liov[MEM_MAX_IOV], riov[MEM_MAX_IOV];
	/* Per request of the syscall being built: where it ends in the copied stream. */
	size_t stream_end[MEM_MAX_IOV];
	uint32_t range_of[MEM_MAX_IOV]; /* its remote iovec */
	size_t range_last[MEM_MAX_IOV];  /* per remote iovec: index of its last request */
	uint8_t gap[MEM_COALESCE_GAP];	 /* bytes between coalesced requests, discarded */
};

struct proc_mem *proc_mem__open(pid_t pid)
{
	struct proc_mem *pm;
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d", pid);
	if (pid <= 0 || access(path, F_OK)) {
		gt_seterr("no such process: PID %d", pid);
		errno = ESRCH;
		return NULL;
	}
	pm = calloc(1, sizeof(*pm));
	if (!pm)
		return NULL;
	pm->cache = calloc(MEM_CACHE_PAGES, sizeof(*pm->cache));
	if (!pm->cache) {
		free(pm);
		errno = ENOMEM;
		return NULL;
	}
	pm->pid = pid;
	pm->mem_fd = -1;
	pm->gen = 1; /* pages start at generation 0: none valid */
	return pm;
}

void proc_mem__free(struct proc_mem *pm)
{
	if (!pm)
		return;
	if (pm->mem_fd >= 0)
		close(pm->mem_fd);
	free(pm->cache);
	free(pm);
}

pid_t proc_mem__pid(const struct proc_mem *pm)
{
	return pm->pid;
}

const struct proc_mem_stats *proc_mem__stats(const struct proc_mem *pm)
{
	return &pm->st;
}

void proc_mem__drop_cache(struct proc_mem *pm)
{
	/* One store instead of a write to every page (64 TLB misses on each census). */
	pm->gen++;
}

/*
 * process_vm_readv refused as a whole (not a bad address): switch to /proc/PID/mem.
 * Returns 0 when the fallback is usable, else -errno with gt_lasterr() set.
 */
static int mem_fallback(struct proc_mem *pm, int why)
{
	char path[64];

	if (pm->st.fallback)
		return -why;
	snprintf(path, sizeof(path), "/proc/%d/mem", pm->pid);
	pm->mem_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (pm->mem_fd < 0) {
		int err = errno;

		if (err == ENOENT || err == ESRCH) {
			gt_seterr("process %d exited", pm->pid);
			return -ESRCH;
		}
		gt_seterr("cannot read the memory of process %d: %s%s", pm->pid, strerror(why),
			  why == EPERM || why == EACCES ? ": run gotrace as root (sudo)" : "");
		return -why;
	}
	vlog("gotrace: process_vm_readv unavailable (%s), reading %s\n", strerror(why), path);
	pm->st.fallback = true;
	return 0;
}

/* pread on /proc/PID/mem: one request at a time. */
/* Pages spanned by [ADDR, ADDR + LEN), LEN > 0. */
static uint64_t span_pages(uint64_t addr, uint64_t len)
{
	return (addr + len - 1) / MEM_PAGE_SIZE - addr / MEM_PAGE_SIZE + 1;
}

static int mem_pread(struct proc_mem *pm, uint64_t addr, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n;

		pm->st.syscalls++;
		pm->st.pages += span_pages(addr + done, len - done);
		n = pread(pm->mem_fd, (char *)buf + done, len - done, (off_t)(addr + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == ESRCH ? -ESRCH : -EFAULT;
		if (n == 0)
			return -EFAULT;
		done += (size_t)n;
		pm->st.bytes += (uint64_t)n;
	}
	return 0;
}

long proc_mem__readv(struct proc_mem *pm, struct proc_mem_req *reqs, size_t n)
{
	size_t i = 0, solo_end = 0; /* requests below solo_end are read without coalescing */
	long ok = 0;

	pm->st.requests += n;
	while (i < n) {
		size_t k = 0, kr = 0, q = 0, stream = 0, j;
		uint64_t end = 0;
		ssize_t got;

		if (pm->st.fallback) {
			reqs[i].err = reqs[i].len ? mem_pread(pm, reqs[i].addr, reqs[i].buf, reqs[i].len) : 0;
			if (reqs[i].err == -ESRCH)
				goto gone;
			if (reqs[i].err)
				pm->st.failures++;
			else
				ok++;
			i++;
			continue;
		}
		/*
		 * One syscall for as many requests as the iovec limit allows; empty ones need no
		 * copy. A request starting shortly after the previous one ends extends its remote
		 * iovec: the kernel copies the remote ranges in order into the local buffers.
		 */
		for (j = i; j < n && k + 2 <= MEM_MAX_IOV; j++) {
			uint64_t a = reqs[j].addr;

			reqs[j].err = 0;
			if (!reqs[j].len)
				continue;
			if (kr && j >= solo_end && a >= end && a - end <= MEM_COALESCE_GAP) {
				if (a > end) {
					pm->liov[k].iov_base = pm->gap;
					pm->liov[k++].iov_len = a - end;
					stream += a - end;
				}
				pm->riov[kr - 1].iov_len += (a - end) + reqs[j].len;
			} else {
				pm->riov[kr].iov_base = (void *)(uintptr_t)a;
				pm->riov[kr++].iov_len = reqs[j].len;
			}
			pm->liov[k].iov_base = reqs[j].buf;
			pm->liov[k++].iov_len = reqs[j].len;
			stream += reqs[j].len;
			pm->stream_end[q] = stream;
			pm->range_of[q++] = (uint32_t)(kr - 1);
			pm->range_last[kr - 1] = j;
			end = a + reqs[j].len;
		}
		if (!k) {
			ok += (long)(j - i);
			i = j;
			continue;
		}
		pm->st.syscalls++;
		for (size_t r = 0; r < kr; r++) {
			struct iovec *v = &pm->riov[r];

			pm->st.pages += span_pages((uintptr_t)v->iov_base, v->iov_len);
		}
		got = process_vm_readv(pm->pid, pm->liov, k, pm->riov, kr, 0);
		if (got < 0) {
			int err = errno;

			if (err == ESRCH)
				goto gone;
			if (err == EINTR)
				continue;
			/* EFAULT: the first remote range is unreadable from its start. */
			if (err == EFAULT) {
				got = 0;
			} else {
				/* ENOSYS (old kernel, seccomp), EPERM: try /proc/PID/mem. */
				if (mem_fallback(pm, err) < 0) {
					for (; i < n; i++)
						reqs[i].err = -err;
					return -err;
				}
				continue;
			}
		}
		pm->st.bytes += (uint64_t)got;
		/*
		 * The kernel stops at the first remote range it cannot read: every request
		 * before that point is complete. The one it stopped in has failed if it had its
		 * remote iovec alone; in a coalesced one, the rest of that iovec is read again
		 * request by request (the gap may have been what failed).
		 */
		for (q = 0; i < j; i++) {
			if (!reqs[i].len) {
				ok++;
				continue;
			}
			if ((size_t)got >= pm->stream_end[q]) {
				q++;
				ok++;
				continue;
			}
			break;
		}
		if (i < j) {
			uint32_t r = pm->range_of[q];
			bool alone = (q == 0 || pm->range_of[q - 1] != r) && pm->range_last[r] == i;

			if (alone) {
				reqs[i].err = -EFAULT;
				pm->st.failures++;
				i++;
			} else {
				solo_end = pm->range_last[r] + 1;
			}
		}
	}
	return ok;
gone:
	for (; i < n; i++)
		reqs[i].err = -ESRCH;
	gt_seterr("process %d exited", pm->pid);
	return -ESRCH;
}

int proc_mem__read(struct proc_mem *pm, uint64_t addr, void *buf, size_t len)
{
	struct proc_mem_req r = { .addr = addr, .buf = buf, .len = len };
	long n = proc_mem__readv(pm, &r, 1);

	if (n < 0)
		return (int)n;
	return r.err;
}

/* The cached page holding ADDR, reading it on a miss; NULL when it cannot be read. */
static const struct mem_page *mem_page(struct proc_mem *pm, uint64_t addr)
{
	uint64_t pa = addr & ~(MEM_PAGE_SIZE - 1);
	struct mem_page *p = &pm->cache[(pa / MEM_PAGE_SIZE) % MEM_CACHE_PAGES];

	if (p->gen == pm->gen && p->addr == pa) {
		pm->st.cache_hits++;
		return p;
	}
	pm->st.cache_misses++;
	p->gen = 0;
	if (proc_mem__read(pm, pa, p->data, MEM_PAGE_SIZE))
		return NULL;
	p->addr = pa;
	p->gen = pm->gen;
	return p;
}

int proc_mem__read_cached(struct proc_mem *pm, uint64_t addr, void *buf, size_t len)
{
	uint8_t *out = buf;

	/* Larger reads gain nothing from the cache and would evict it. */
	if (len > 2 * MEM_PAGE_SIZE)
		return proc_mem__read(pm, addr, buf, len);
	while (len) {
		const struct mem_page *p = mem_page(pm, addr);
		size_t off = addr & (MEM_PAGE_SIZE - 1);
		size_t n = MEM_PAGE_SIZE - off < len ? MEM_PAGE_SIZE - off : len;

		if (!p) {
			/* A page may be readable only in part (guard page next to it): retry direct. */
			return proc_mem__read(pm, addr, out, len);
		}
		memcpy(out, p->data + off, n);
		out += n;
		addr += n;
		len -= n;
	}
	return 0;
}

int proc_mem__read_u64(struct proc_mem *pm, uint64_t addr, uint64_t *val)
{
	uint8_t b[8];
	int err = proc_mem__read_cached(pm, addr, b, sizeof(b));

	if (err)
		return err;
	*val = (uint64_t)b[0] | (uint64_t)b[1] << 8 | (uint64_t)b[2] << 16 | (uint64_t)b[3] << 24 |
	       (uint64_t)b[4] << 32 | (uint64_t)b[5] << 40 | (uint64_t)b[6] << 48 |
	       (uint64_t)b[7] << 56;
	return 0;
}
