// SPDX-License-Identifier: MIT
/* One traced process: model, memory reader, censuses and cached symbolization. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/session.h"
#include "util/hash.h"
#include "util/log.h"

#define CENSUS_TRIES 3

/* PC -> frames, open addressing; grows at half load. */
struct symcache {
	struct sym_pc *slot; /* pc == 0: empty */
	size_t cap, n;
};

int64_t session__mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Executable (dev, inode) and start time (field 22 of /proc/PID/stat). 0 or -errno. */
static int identity(pid_t pid, uint64_t *dev, uint64_t *ino, uint64_t *start)
{
	char path[64], buf[1024], *p;
	struct stat st;
	FILE *f;
	int n;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	if (stat(path, &st))
		return -errno;
	*dev = st.st_dev;
	*ino = st.st_ino;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	n = (int)fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n > 0 ? n : 0] = 0;
	/* After the command's closing parenthesis: state is field 3, start time field 22. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d "
			 "%*d %*d %*d %" SCNu64, start) != 1)
		return -EINVAL;
	return 0;
}

int session__check(struct session *s)
{
	uint64_t dev, ino, start;
	int err = identity(s->pid, &dev, &ino, &start);

	if (err == -ENOENT || err == -ESRCH) {
		gt_seterr("process %d exited", (int)s->pid);
		return -ESRCH;
	}
	if (err)
		return 0; /* unreadable identity (permissions): the census will tell */
	if (start != s->start_time) {
		gt_seterr("process %d exited (its PID now belongs to another process)", (int)s->pid);
		return -ESTALE;
	}
	if (dev != s->exe_dev || ino != s->exe_ino) {
		gt_seterr("process %d replaced its program (exec): %s is no longer running",
			  (int)s->pid, s->m->path);
		return -ESTALE;
	}
	return 0;
}

int session__open(pid_t pid, struct session **out)
{
	struct go_model_opts mo = { 0 };
	struct session *s;
	int err;

	*out = NULL;
	if (pid <= 0) {
		gt_seterr("invalid PID %d", (int)pid);
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->pid = pid;
	s->syms = calloc(1, sizeof(*s->syms));
	if (!s->syms) {
		err = -ENOMEM;
		goto fail;
	}
	err = go_model__open_pid(pid, &mo, &s->m);
	if (err)
		goto fail;
	s->go_version = s->m->bi.version[0] ? s->m->bi.version : "go?";
	if (identity(pid, &s->exe_dev, &s->exe_ino, &s->start_time)) {
		s->exe_dev = s->exe_ino = s->start_time = 0;
	}
	s->mem = proc_mem__open(pid);
	if (!s->mem) {
		err = -errno;
		goto fail;
	}
	*out = s;
	return 0;
fail:
	session__close(s);
	return err;
}

void session__close(struct session *s)
{
	if (!s)
		return;
	if (s->syms)
		free(s->syms->slot);
	free(s->syms);
	census_reader__free(s->readers[0]);
	census_reader__free(s->readers[1]);
	proc_mem__free(s->mem);
	go_model__free(s->m);
	free(s);
}

bool session__alive(const struct session *s)
{
	return kill(s->pid, 0) == 0 || errno == EPERM;
}

int session__census(struct session *s, const struct census_opts *o, struct census **out)
{
	int err = -EINVAL;

	if (s->start_time) {
		err = session__check(s);
		if (err) {
			s->st.census_failed++;
			return err;
		}
	}
	/* A list caught mid-growth fails the checks: read it again, a few times. */
	for (int t = 0; t < CENSUS_TRIES; t++) {
		struct census_reader **rd = &s->readers[o && o->keep_system];

		proc_mem__drop_cache(s->mem);
		err = *rd ? 0 : census_reader__new(s->m, s->mem, o, rd);
		if (!err)
			err = census_reader__take(*rd, out);
		if (err && err != -ENOMEM) {
			/* Found again from scratch next time: the list may have moved. */
			census_reader__free(*rd);
			*rd = NULL;
		}
		if (!err || err == -ENOTSUP || err == -ENOENT || err == -ENOMEM)
			break;
		if (!session__alive(s)) {
			gt_seterr("process %d exited", (int)s->pid);
			err = -ESRCH;
			break;
		}
		if (s->start_time && session__check(s)) {
			err = session__check(s);
			break;
		}
	}
	if (err) {
		s->st.census_failed++;
		return err;
	}
	s->st.censuses++;
	s->st.unreadable += (*out)->unreadable;
	s->st.stack_unknown += (*out)->stack_unknown;
	s->st.last_census_ms = (*out)->elapsed_ms;
	return 0;
}

static bool runtime_func(const char *name)
{
	return !strncmp(name, "runtime.", 8) || !strncmp(name, "internal/runtime/", 17) ||
	       !strncmp(name, "runtime/internal/", 17);
}

static void sym_fill(struct session *s, uint64_t pc, struct sym_pc *e)
{
	struct go_frame fr[SESSION_MAX_FRAMES];
	int n = pclntab__symbolize(s->m->pcln, go_model__to_link(s->m, pc), fr,
				   SESSION_MAX_FRAMES);

	memset(e, 0, sizeof(*e));
	e->pc = pc;
	if (n <= 0) {
		e->nframes = 1;
		e->frames[0] = (struct site){ "?", "?", 0 };
		return;
	}
	e->nframes = n;
	for (int i = 0; i < n; i++)
		e->frames[i] = (struct site){ fr[i].func, fr[i].file, fr[i].line };
	e->runtime = runtime_func(fr[n - 1].func);
	{
		const struct go_func *f =
			pclntab__find_func(s->m->pcln, go_model__to_link(s->m, pc));

		e->wrapper = f && pclntab__is_wrapper(s->m->pcln, f);
	}
}

static int sym_grow(struct symcache *c)
{
	size_t ncap = c->cap ? c->cap * 2 : 1024;
	struct sym_pc *ns = calloc(ncap, sizeof(*ns));

	if (!ns)
		return -ENOMEM;
	for (size_t i = 0; i < c->cap; i++) {
		size_t j;

		if (!c->slot[i].pc)
			continue;
		for (j = hash64(c->slot[i].pc) & (ncap - 1); ns[j].pc; j = (j + 1) & (ncap - 1))
			;
		ns[j] = c->slot[i];
	}
	free(c->slot);
	c->slot = ns;
	c->cap = ncap;
	return 0;
}

const struct sym_pc *session__sym(struct session *s, uint64_t pc)
{
	static struct sym_pc unknown = { .nframes = 1, .frames = { { "?", "?", 0 } } };
	struct symcache *c = s->syms;
	size_t j;

	if (!pc)
		return &unknown;
	if ((c->n + 1) * 2 > c->cap && sym_grow(c))
		return &unknown;
	for (j = hash64(pc) & (c->cap - 1); c->slot[j].pc; j = (j + 1) & (c->cap - 1))
		if (c->slot[j].pc == pc)
			return &c->slot[j];
	sym_fill(s, pc, &c->slot[j]);
	c->n++;
	return &c->slot[j];
}

struct site session__created_at(struct session *s, uint64_t gopc)
{
	const struct sym_pc *e;

	if (!gopc)
		return (struct site){ "?", "?", 0 };
	/* gopc is the return address of the call to newproc: the go statement is before it. */
	e = session__sym(s, gopc - 1);
	return e->frames[0];
}

/*
 * GOROOT's source directory as the binary records it: the file of runtime.gopark
 * ("/usr/lib/go-1.22/src/runtime/proc.go") less "runtime/proc.go". Empty when the
 * paths are trimmed or unknown: then the package path tells (no dot in its first
 * element, and not main).
 */
static void goroot_init(struct session *s)
{
	const struct go_func *f = pclntab__func_by_name(s->m->pcln, "runtime.gopark");
	const char *file = NULL, *tail;
	int line;

	s->goroot_done = true;
	if (!f || pclntab__line(s->m->pcln, f, f->entry, &file, &line) || !file)
		return;
	tail = strstr(file, "runtime/proc.go");
	if (tail && tail > file && (size_t)(tail - file) < sizeof(s->goroot)) {
		memcpy(s->goroot, file, tail - file);
		s->goroot[tail - file] = 0;
	}
}

/* A runtime file under another package's name (internal/poll.runtime_pollWait...). */
static bool runtime_file(struct session *s, const char *file)
{
	size_t n = strlen(s->goroot);

	return n && file && !strncmp(file, s->goroot, n) && !strncmp(file + n, "runtime/", 8);
}

bool session__is_std(struct session *s, const struct site *f)
{
	const char *slash, *dot, *end;

	if (!s->goroot_done)
		goroot_init(s);
	if (s->goroot[0] && f->file && f->file[0] != '?')
		return !strncmp(f->file, s->goroot, strlen(s->goroot));
	if (!strncmp(f->func, "main.", 5))
		return false;
	/* The first element of the import path: "net" of net/http, "github.com" of ... */
	slash = strchr(f->func, '/');
	dot = strchr(f->func, '.');
	end = slash && (!dot || slash < dot) ? slash : dot;
	return end && !memchr(f->func, '.', end - f->func);
}

struct site session__blocked_at(struct session *s, const struct census_stack *stack,
			       uint64_t *pc)
{
	struct site first_nonrt = { 0 };
	uint64_t nonrt_pc = 0;

	if (pc)
		*pc = 0;
	if (!stack || !stack->depth)
		return (struct site){ "?", "?", 0 };
	for (uint32_t i = 0; i < stack->depth; i++) {
		const struct sym_pc *e = session__sym(s, stack->pcs[i]);

		if (e->wrapper)
			continue;
		/* Inlined frames first: user code inlined into a library function counts. */
		for (int k = 0; k < e->nframes; k++) {
			if (!session__is_std(s, &e->frames[k])) {
				if (pc)
					*pc = stack->pcs[i];
				return e->frames[k];
			}
			if (!first_nonrt.func && !runtime_func(e->frames[k].func) &&
			    !runtime_file(s, e->frames[k].file)) {
				first_nonrt = e->frames[k];
				nonrt_pc = stack->pcs[i];
			}
		}
	}
	if (pc)
		*pc = first_nonrt.func ? nonrt_pc : stack->pcs[0];
	if (first_nonrt.func)
		return first_nonrt;
	return session__sym(s, stack->pcs[0])->frames[0];
}

const char *session__func_name(struct session *s, uint64_t pc)
{
	const struct sym_pc *e = session__sym(s, pc);

	return e->frames[e->nframes - 1].func;
}
