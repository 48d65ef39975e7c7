// SPDX-License-Identifier: MIT
/*
 * gotrace count: attach plain uprobes (never uretprobes) to Go functions at the
 * sites gotrace resolves (entry, after the stack-check prologue, each RET),
 * count hits in the kernel and print them. The check that a probe placed at an
 * offset gotrace found really fires, and the tool to measure per-hit probe cost.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <elf.h>
#include <json-c/json.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "gotrace/events.h"
#include "count.skel.h"

#include "bpf/bpf_support.h"
#include "cmd/cmds.h"
#include "goruntime/model.h"
#include "goruntime/probes.h"
#include "util/log.h"

static const char count_help[] =
	"Usage: gotrace count [OPTIONS] FUNC... [-- CMD [ARGS...]]\n"
	"\n"
	"Count how often Go functions run, with one uprobe per probe site, counted in the\n"
	"kernel. FUNC is a function name as in the binary's pclntab (runtime.gcStart,\n"
	"main.work, github.com/x/y.(*T).M) or a prefix ending in '*' (runtime.mallocgc*).\n"
	"\n"
	"  -- CMD ARGS   run CMD, held before exec until the probes are attached, and count\n"
	"                until it exits (or -d expires). CMD's binary is traced unless -e.\n"
	"  -p PID        count in a running process until Ctrl-C, -d, or its exit.\n"
	"  -e BINARY     the binary to probe; alone, count in every process running it.\n"
	"                With a CMD that runs BINARY in a child (a wrapper script), every\n"
	"                process running BINARY is counted, not only CMD.\n"
	"The report follows CMD's own output on stdout; -o FILE keeps them apart.\n"
	"\n"
	"Options:\n"
	"  -p, --pid PID        process to trace\n"
	"  -e, --exe BINARY     binary to probe (default: CMD's, or PID's executable)\n"
	"  -d, --duration SECS  stop after SECS seconds (fractions allowed)\n"
	"  -a, --at SITES       where to probe: entry, after-prologue (default), ret, all,\n"
	"                       or a comma-separated list of them\n"
	"  -o, --output FILE    write the report to FILE instead of stdout\n"
	"  -j, --json           JSON report\n"
	"      --no-cookie      identify sites by address, as on kernels before 5.15\n"
	"  -v, --verbose        more diagnostics (-vv: libbpf debug output)\n"
	"  -h, --help           this help\n"
	"\n"
	"Sites: 'entry' is the function's first instruction; Go's stack-growth path runs it\n"
	"again after copying the stack, so it can count a call twice. 'after-prologue' is\n"
	"the instruction after the stack check (the entry for functions without one): one\n"
	"hit per call. 'ret' probes every RET instruction (no uretprobes: they crash Go).\n"
	"\n"
	"Examples:\n"
	"  gotrace count main.work -- ./server --port 8080\n"
	"  gotrace count -p 1234 -d 10 --at all runtime.gcStart 'runtime.mallocgc*'\n";

enum { OPT_NO_COOKIE = 1000 };

enum site_kind {
	SITE_ENTRY = 1 << 0,
	SITE_PROLOGUE = 1 << 1,
	SITE_RET = 1 << 2,
};

/* One uprobe: a function and a place in it. */
struct site {
	const struct go_func *fn;
	enum site_kind kind;
	uint32_t off;	   /* from the function's entry */
	uint64_t vaddr;	   /* link-time */
	uint64_t file_off; /* what the uprobe is attached at */
	uint64_t hits;
	int same_as; /* index of an earlier site at the same address, which is probed; or -1 */
	struct bpf_link *link;
};

struct count_env {
	pid_t pid;
	const char *exe;
	double duration; /* seconds; 0 = no limit */
	unsigned int at;
	const char *output;
	bool no_cookie;
	char **funcs;
	int nfuncs;
	char **cmd; /* NULL-terminated, or NULL */
};

struct count_run {
	struct go_model *model;
	const char *binary;	   /* path given to the kernel for the uprobes */
	const char *display;	   /* the binary as the user knows it */
	char cmd_path[PATH_MAX];   /* CMD resolved through PATH */
	struct site *sites;
	int nsites;
	uint64_t unmatched;
	pid_t child;		   /* CMD's pid, 0 without a command */
	int go_fd, err_fd;	   /* child's release pipe and exec-error pipe */
	pid_t filter_pid;	   /* -1: every process running the binary */
	bool child_exited;
	int child_status;
	bool target_gone;	   /* -p: the process exited */
	double elapsed;
};

static volatile sig_atomic_t exiting;

static void sig_handler(int sig)
{
	exiting = 1;
}

static const char *kind_name(enum site_kind k)
{
	switch (k) {
	case SITE_ENTRY:
		return "entry";
	case SITE_PROLOGUE:
		return "after-prologue";
	case SITE_RET:
		return "ret";
	}
	return "?";
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* "entry,ret" -> SITE_ENTRY|SITE_RET. 0 or -EINVAL. */
static int parse_at(const char *arg, unsigned int *at)
{
	char buf[128], *tok, *save = NULL;

	if (snprintf(buf, sizeof(buf), "%s", arg) >= (int)sizeof(buf))
		return -EINVAL;
	*at = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!strcmp(tok, "entry"))
			*at |= SITE_ENTRY;
		else if (!strcmp(tok, "after-prologue") || !strcmp(tok, "prologue"))
			*at |= SITE_PROLOGUE;
		else if (!strcmp(tok, "ret"))
			*at |= SITE_RET;
		else if (!strcmp(tok, "all"))
			*at |= SITE_ENTRY | SITE_PROLOGUE | SITE_RET;
		else
			return -EINVAL;
	}
	return *at ? 0 : -EINVAL;
}

/* execvp's search, done up front so the probed binary is the one that runs. */
static int resolve_cmd(const char *name, char *out, size_t len)
{
	const char *path = getenv("PATH");
	const char *p, *end;

	if (strchr(name, '/')) {
		if (access(name, X_OK))
			return -errno;
		snprintf(out, len, "%s", name);
		return 0;
	}
	for (p = path ? path : "/usr/local/bin:/usr/bin:/bin"; *p; p = *end ? end + 1 : end) {
		struct stat st;
		int dlen, n;

		end = strchrnul(p, ':');
		dlen = (int)(end - p);
		/* An empty PATH entry means the current directory. */
		n = snprintf(out, len, "%.*s/%s", dlen ? dlen : 1, dlen ? p : ".", name);
		if (n >= (int)len)
			continue;
		if (!stat(out, &st) && S_ISREG(st.st_mode) && !access(out, X_OK))
			return 0;
	}
	return -ENOENT;
}

static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	return !stat(a, &sa) && !stat(b, &sb) && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static int add_site(struct count_run *r, const struct go_func *fn, enum site_kind kind,
		    uint32_t off)
{
	const struct elf_file *ef = r->model->ef;
	struct site *s;
	uint64_t file_off;

	if (elf_file__vaddr_to_offset(ef, fn->entry + off, &file_off)) {
		gt_seterr("%s+0x%x (0x%" PRIx64 ") is not backed by the file", fn->name, off,
			  fn->entry + off);
		return -ENOENT;
	}
	if (r->nsites >= COUNT_MAX_SITES) {
		gt_seterr("too many probe sites (more than %d): name fewer functions",
			  COUNT_MAX_SITES);
		return -E2BIG;
	}
	if (!(r->nsites & 63)) {
		s = realloc(r->sites, (r->nsites + 64) * sizeof(*s));
		if (!s)
			return -ENOMEM;
		r->sites = s;
	}
	s = &r->sites[r->nsites++];
	memset(s, 0, sizeof(*s));
	s->fn = fn;
	s->kind = kind;
	s->off = off;
	s->vaddr = fn->entry + off;
	s->file_off = file_off;
	s->same_as = -1;
	return 0;
}

/* The sites of one function for the kinds in AT. Returns the number added or -errno. */
static int func_sites(struct count_run *r, const struct go_func *fn, unsigned int at)
{
	const struct elf_file *ef = r->model->ef;
	uint16_t machine = elf_file__machine(ef);
	uint64_t size = fn->end > fn->entry ? fn->end - fn->entry : 0;
	const uint8_t *code = size ? elf_file__vaddr_ptr(ef, fn->entry, size) : NULL;
	int before = r->nsites, err;

	if (!code) {
		gt_seterr("cannot read the code of %s at 0x%" PRIx64, fn->name, fn->entry);
		return -ENOENT;
	}
	if (at & SITE_ENTRY) {
		err = add_site(r, fn, SITE_ENTRY, 0);
		if (err)
			return err;
	}
	if (at & SITE_PROLOGUE) {
		enum go_attach_kind akind;
		bool stack_check;
		char insn[64];
		uint32_t off;

		err = insn__attach_point(machine, code, size, fn->entry, &off, insn, sizeof(insn),
					 &akind, &stack_check);
		if (err) {
			if (!gt_lasterr())
				gt_seterr("cannot find the end of %s's prologue: %s", fn->name,
					  strerror(-err));
			return err;
		}
		vlog("gotrace: %s: after-prologue +0x%x: %s (%s%s)\n", fn->name, off, insn,
		     go_probes__attach_kind_name(akind), stack_check ? "" : ", no stack check");
		err = add_site(r, fn, SITE_PROLOGUE, off);
		if (err)
			return err;
	}
	if (at & SITE_RET) {
		uint32_t stack_offs[GO_PROBE_MAX_RETS], *offs = stack_offs;
		int n;

		n = insn__find_rets(machine, code, size, fn->entry, offs, GO_PROBE_MAX_RETS);
		if (n > GO_PROBE_MAX_RETS) {
			offs = calloc(n, sizeof(*offs));
			if (!offs)
				return -ENOMEM;
			n = insn__find_rets(machine, code, size, fn->entry, offs, n);
		}
		if (n < 0) {
			if (!gt_lasterr())
				gt_seterr("cannot decode %s: %s", fn->name, strerror(-n));
			err = n;
		} else {
			if (n == 0)
				vlog("gotrace: %s has no RET (tail call or no return)\n", fn->name);
			err = 0;
			for (int i = 0; i < n && !err; i++)
				err = add_site(r, fn, SITE_RET, offs[i]);
		}
		if (offs != stack_offs)
			free(offs);
		if (err)
			return err;
	}
	return r->nsites - before;
}

/* func_sites(), adding none of FN's sites when one of them fails. */
static int add_func_sites(struct count_run *r, const struct go_func *fn, unsigned int at)
{
	int before = r->nsites, n = func_sites(r, fn, at);

	if (n < 0)
		r->nsites = before;
	return n;
}

static const struct site *sort_sites;

static int cmp_site_idx(const void *a, const void *b)
{
	const struct site *x = &sort_sites[*(const int *)a], *y = &sort_sites[*(const int *)b];

	if (x->vaddr != y->vaddr)
		return x->vaddr < y->vaddr ? -1 : 1;
	return *(const int *)a - *(const int *)b;
}

/*
 * One uprobe per address: an entry that is also the after-prologue point (no stack
 * check), or a function named twice, shares the probe of the first site there.
 */
static int link_same_sites(struct count_run *r)
{
	int *idx = calloc(r->nsites, sizeof(*idx));

	if (!idx)
		return -ENOMEM;
	for (int i = 0; i < r->nsites; i++)
		idx[i] = i;
	sort_sites = r->sites;
	qsort(idx, r->nsites, sizeof(*idx), cmp_site_idx);
	for (int i = 1; i < r->nsites; i++) {
		struct site *prev = &r->sites[idx[i - 1]], *s = &r->sites[idx[i]];

		if (s->vaddr == prev->vaddr)
			s->same_as = prev->same_as >= 0 ? prev->same_as : idx[i - 1];
	}
	free(idx);
	return 0;
}

/* Was FN named already (twice on the command line, or by two patterns)? */
static bool func_added(const struct count_run *r, const struct go_func *fn)
{
	for (int i = r->nsites - 1; i >= 0; i--) {
		if (r->sites[i].fn->entry == fn->entry)
			return true;
	}
	return false;
}

/* Turn the FUNC arguments into probe sites. 0 or -errno with gt_lasterr() set. */
static int resolve_sites(struct count_run *r, const struct count_env *env)
{
	const struct pclntab *p = r->model->pcln;
	size_t nfuncs = pclntab__func_cnt(p);
	int err;

	for (int i = 0; i < env->nfuncs; i++) {
		const char *pat = env->funcs[i];
		size_t len = strlen(pat);
		int matched = 0;

		if (len && pat[len - 1] == '*') {
			uint64_t last_entry = UINT64_MAX;

			len--;
			for (size_t k = 0; k < nfuncs; k++) {
				const struct go_func *fn = pclntab__func(p, k);

				if (!fn || strncmp(fn->name, pat, len) || fn->entry == last_entry)
					continue;
				last_entry = fn->entry;
				if (func_added(r, fn)) {
					matched++;
					continue;
				}
				gt_clearerr();
				err = add_func_sites(r, fn, env->at);
				if (err == -E2BIG || err == -ENOMEM)
					return err;
				if (err < 0) {
					/* A prefix may match assembly oddities: skip them. */
					vlog("gotrace: skipping %s: %s\n", fn->name,
					     gt_lasterr() ? gt_lasterr() : strerror(-err));
					continue;
				}
				matched++;
			}
		} else {
			const struct go_func *fn = pclntab__func_by_name(p, pat);

			if (fn && func_added(r, fn)) {
				matched = 1;
			} else if (fn) {
				gt_clearerr();
				err = add_func_sites(r, fn, env->at);
				if (err < 0)
					return err;
				matched = 1;
			}
		}
		if (!matched) {
			gt_seterr("function not found in %s: %s (not in its function table: "
				  "misspelled, or always inlined)", r->model->path, pat);
			return -ENOENT;
		}
	}
	if (!r->nsites) {
		gt_seterr("nothing to probe: the functions have no %s site",
			  env->at == SITE_RET ? "RET" : "probe");
		return -ENOENT;
	}
	return link_same_sites(r);
}

/* Lowest vaddr of an executable PT_LOAD: where the kernel's mm->start_code points. */
static uint64_t code_start(const struct elf_file *ef)
{
	uint64_t lo = UINT64_MAX;

	for (size_t i = 0; i < elf_file__segment_cnt(ef); i++) {
		const struct elf_segment *s = elf_file__segment_at(ef, i);

		if ((s->flags & PF_X) && s->vaddr < lo)
			lo = s->vaddr;
	}
	return lo == UINT64_MAX ? 0 : lo;
}

/*
 * Fork CMD held before exec (BCC memleak's fork_sync_exec, with pipes): it execs
 * once release_child() writes to GO_FD; exec errors come back on ERR_FD (O_CLOEXEC).
 */
static int fork_held(struct count_run *r, char **argv)
{
	int go[2], ex[2];
	pid_t pid;

	if (pipe2(go, O_CLOEXEC))
		return -errno;
	if (pipe2(ex, O_CLOEXEC)) {
		close(go[0]);
		close(go[1]);
		return -errno;
	}
	pid = fork();
	if (pid < 0) {
		int err = -errno;

		close(go[0]);
		close(go[1]);
		close(ex[0]);
		close(ex[1]);
		return err;
	}
	if (pid == 0) {
		char c;
		int e;

		close(go[1]);
		close(ex[0]);
		/* EOF without a byte: gotrace failed before attaching, do not run. */
		if (read(go[0], &c, 1) != 1)
			_exit(127);
		execv(r->cmd_path, argv);
		e = errno;
		if (write(ex[1], &e, sizeof(e)) < 0)
			_exit(127);
		_exit(127);
	}
	close(go[0]);
	close(ex[1]);
	r->child = pid;
	r->go_fd = go[1];
	r->err_fd = ex[0];
	return 0;
}

/* Let the held child exec. 0, or -errno with gt_lasterr() set when exec failed. */
static int release_child(struct count_run *r, const char *name)
{
	ssize_t n;
	int e = 0;

	if (write(r->go_fd, "g", 1) != 1) {
		gt_seterr("cannot start %s: %s", name, strerror(errno));
		return -errno;
	}
	close(r->go_fd);
	r->go_fd = -1;
	do {
		n = read(r->err_fd, &e, sizeof(e));
	} while (n < 0 && errno == EINTR);
	close(r->err_fd);
	r->err_fd = -1;
	if (n == sizeof(e)) {
		gt_seterr("cannot run %s: %s", name, strerror(e));
		waitpid(r->child, NULL, 0);
		r->child = 0;
		return -e;
	}
	return 0;
}

static int pidfd_open_compat(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	errno = ENOSYS;
	return -1;
#endif
}

/* Has the traced process (child or -p PID) exited? Reaps the child. */
static bool target_exited(struct count_run *r)
{
	if (r->child) {
		int status;

		if (waitpid(r->child, &status, WNOHANG) == r->child) {
			r->child_exited = true;
			r->child_status = status;
			return true;
		}
		return false;
	}
	if (r->filter_pid > 0 && kill(r->filter_pid, 0) && errno == ESRCH) {
		r->target_gone = true;
		return true;
	}
	return false;
}

/*
 * Count until the target exits, DURATION passes or SIGINT/SIGTERM arrives.
 * Signals are blocked except inside ppoll(), so none is lost between checks.
 */
static void wait_loop(struct count_run *r, double duration)
{
	struct sigaction sa = { .sa_handler = sig_handler, .sa_flags = SA_RESETHAND };
	sigset_t block, old;
	double start = now_s(), deadline = duration > 0 ? start + duration : 0;
	pid_t watch = r->child ? r->child : r->filter_pid;
	int pidfd = watch > 0 ? pidfd_open_compat(watch) : -1;

	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &old);
	/* SA_RESETHAND: a second Ctrl-C kills gotrace the usual way. */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	while (!exiting && !target_exited(r)) {
		struct pollfd pfd = { .fd = pidfd, .events = POLLIN };
		struct timespec ts, *tsp = NULL;
		double left = 0.2;

		if (deadline) {
			left = deadline - now_s();
			if (left <= 0)
				break;
		}
		/* Without a pidfd (before 5.3), look at the target every 200 ms. */
		if (deadline || pidfd < 0) {
			if (pidfd < 0 && watch > 0 && left > 0.2)
				left = 0.2;
			ts.tv_sec = (time_t)left;
			ts.tv_nsec = (long)((left - ts.tv_sec) * 1e9);
			tsp = &ts;
		}
		ppoll(pidfd >= 0 ? &pfd : NULL, pidfd >= 0 ? 1 : 0, tsp, &old);
	}
	r->elapsed = now_s() - start;

	/* On Ctrl-C the child got the signal too: give it a moment to finish. */
	if (exiting && r->child && !r->child_exited) {
		for (int i = 0; i < 50 && !target_exited(r); i++)
			usleep(10000);
	}
	if (pidfd >= 0)
		close(pidfd);
	sigprocmask(SIG_SETMASK, &old, NULL);
}

/* Load the program, attach one uprobe per site. 0 or -errno with gt_lasterr() set. */
static int attach_sites(struct count_run *r, struct count_bpf *skel, bool use_cookie)
{
	struct bpf_program *prog = use_cookie ? skel->progs.count_site : skel->progs.count_site_ip;
	pid_t self_ns_pid;
	struct stat st;
	int err;

	bpf_program__set_autoload(use_cookie ? skel->progs.count_site_ip : skel->progs.count_site,
				  false);
	/* Slot nsites counts hits no site claims. */
	err = bpf_map__set_max_entries(skel->maps.counts, r->nsites + 1);
	if (!err)
		err = bpf_map__set_max_entries(skel->maps.site_ids, use_cookie ? 1 : r->nsites);
	if (err) {
		gt_seterr("cannot size the BPF maps: %s", strerror(-err));
		return err;
	}
	skel->rodata->cfg_nsites = r->nsites;
	/*
	 * The uprobe is already filtered by process; checking the tgid in BPF as well
	 * only works when our PIDs are the kernel's (the initial PID namespace).
	 */
	self_ns_pid = 0;
	if (r->filter_pid > 0 && !stat("/proc/self/ns/pid", &st) && st.st_ino == 0xEFFFFFFCU)
		self_ns_pid = r->filter_pid;
	skel->rodata->targ_tgid = self_ns_pid;

	err = count_bpf__load(skel);
	if (err) {
		gt_seterr("cannot load the BPF program: %s (run with -vv for the verifier log)",
			  strerror(-err));
		return err;
	}
	if (!use_cookie) {
		uint64_t base = code_start(r->model->ef);

		for (int i = 0; i < r->nsites; i++) {
			struct count_ip_key key = { .code_off = r->sites[i].vaddr - base };
			__u32 id = i;

			if (r->sites[i].same_as >= 0)
				continue;
			err = bpf_map__update_elem(skel->maps.site_ids, &key, sizeof(key), &id,
						   sizeof(id), BPF_NOEXIST);
			if (err) {
				gt_seterr("cannot fill the site table: %s", strerror(-err));
				return err;
			}
		}
	}

	for (int i = 0; i < r->nsites; i++) {
		/* No cookie at all without kernel support: libbpf would refuse to attach. */
		LIBBPF_OPTS(bpf_uprobe_opts, opts, .bpf_cookie = use_cookie ? i : 0,
			    .retprobe = false);
		struct site *s = &r->sites[i];

		if (s->same_as >= 0)
			continue;
		s->link = bpf_program__attach_uprobe_opts(prog, r->filter_pid, r->binary,
							  s->file_off, &opts);
		if (!s->link) {
			err = -errno;
			if (err == -ESRCH && r->filter_pid > 0) {
				gt_seterr("process %d exited before the probes were attached",
					  r->filter_pid);
				return err;
			}
			gt_seterr("cannot attach a uprobe to %s+0x%x (file offset 0x%" PRIx64
				  " in %s): %s", s->fn->name, s->off, s->file_off, r->binary,
				  strerror(-err));
			return err;
		}
		dlog("gotrace: uprobe %s:0x%" PRIx64 " = %s %s+0x%x\n", r->binary, s->file_off,
		     kind_name(s->kind), s->fn->name, s->off);
	}
	return 0;
}

static void detach_sites(struct count_run *r)
{
	for (int i = 0; i < r->nsites; i++) {
		bpf_link__destroy(r->sites[i].link);
		r->sites[i].link = NULL;
	}
}

/* Sum each slot over the CPUs. 0 or -errno. */
static int read_counts(struct count_run *r, struct count_bpf *skel)
{
	int ncpus = libbpf_num_possible_cpus();
	__u64 *vals;
	int err = 0;

	if (ncpus <= 0)
		return ncpus ? ncpus : -EINVAL;
	vals = calloc(ncpus, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	for (__u32 k = 0; k <= (__u32)r->nsites; k++) {
		uint64_t sum = 0;

		err = bpf_map__lookup_elem(skel->maps.counts, &k, sizeof(k), vals,
					   ncpus * sizeof(*vals), 0);
		if (err)
			break;
		for (int c = 0; c < ncpus; c++)
			sum += vals[c];
		if (k < (__u32)r->nsites)
			r->sites[k].hits = sum;
		else
			r->unmatched = sum;
	}
	free(vals);
	for (int i = 0; i < r->nsites; i++) {
		if (r->sites[i].same_as >= 0)
			r->sites[i].hits = r->sites[r->sites[i].same_as].hits;
	}
	if (err)
		gt_seterr("cannot read the counters: %s", strerror(-err));
	return err;
}

static uint64_t total_hits(const struct count_run *r)
{
	uint64_t t = 0;

	for (int i = 0; i < r->nsites; i++)
		t += r->sites[i].hits;
	return t;
}

/* Exit code as a shell reports it: the status, or 128 + signal. */
static int shell_status(int status)
{
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void report_json(FILE *f, const struct count_run *r)
{
	struct json_object *o = json_object_new_object(), *arr = json_object_new_array();
	char buf[32];

	json_object_object_add(o, "binary", json_object_new_string(r->display));
	json_object_object_add(o, "go_version", json_object_new_string(r->model->bi.version));
	json_object_object_add(o, "pid", r->filter_pid > 0 ? json_object_new_int(r->filter_pid)
							     : NULL);
	for (int i = 0; i < r->nsites; i++) {
		const struct site *s = &r->sites[i];
		struct json_object *e = json_object_new_object();

		json_object_object_add(e, "function", json_object_new_string(s->fn->name));
		json_object_object_add(e, "kind", json_object_new_string(kind_name(s->kind)));
		json_object_object_add(e, "offset", json_object_new_int64(s->off));
		json_object_object_add(e, "address", json_object_new_int64((int64_t)s->vaddr));
		json_object_object_add(e, "file_offset",
				       json_object_new_int64((int64_t)s->file_off));
		json_object_object_add(e, "hits", json_object_new_int64((int64_t)s->hits));
		json_object_array_add(arr, e);
	}
	json_object_object_add(o, "sites", arr);
	json_object_object_add(o, "total_hits", json_object_new_int64((int64_t)total_hits(r)));
	if (r->unmatched)
		json_object_object_add(o, "unmatched_hits",
				       json_object_new_int64((int64_t)r->unmatched));
	snprintf(buf, sizeof(buf), "%.6f", r->elapsed);
	json_object_object_add(o, "duration_s", json_object_new_double_s(r->elapsed, buf));
	json_object_object_add(o, "exit_code",
			       r->child_exited ? json_object_new_int(shell_status(r->child_status))
					       : NULL);
	if (r->child_exited && WIFSIGNALED(r->child_status))
		json_object_object_add(o, "signal", json_object_new_string(
							    strsignal(WTERMSIG(r->child_status))));
	fprintf(f, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

static void report_text(FILE *f, const struct count_run *r)
{
	int w = (int)strlen("FUNCTION");
	char kind[32], off[16];

	for (int i = 0; i < r->nsites; i++) {
		int l = (int)strlen(r->sites[i].fn->name);

		if (l > w)
			w = l;
	}
	fprintf(f, "%s (%s): %d probe site%s, %.3f s\n", r->display, r->model->bi.version,
		r->nsites, r->nsites == 1 ? "" : "s", r->elapsed);
	fprintf(f, "%-*s  %-14s  %6s  %11s  %12s\n", w, "FUNCTION", "SITE", "OFFSET",
		"FILE OFFSET", "HITS");
	for (int i = 0; i < r->nsites; i++) {
		const struct site *s = &r->sites[i];

		if (s->kind == SITE_RET)
			snprintf(kind, sizeof(kind), "ret@0x%x", s->off);
		else
			snprintf(kind, sizeof(kind), "%s", kind_name(s->kind));
		snprintf(off, sizeof(off), "+0x%x", s->off);
		fprintf(f, "%-*s  %-14s  %6s  %#11" PRIx64 "  %12" PRIu64 "\n", w, s->fn->name,
			kind, off, s->file_off, s->hits);
	}
	fprintf(f, "%-*s  %-14s  %6s  %11s  %12" PRIu64 "\n", w, "total", "", "", "",
		total_hits(r));
	if (r->unmatched)
		fprintf(f, "BUG: %" PRIu64 " hits at addresses no site claims\n", r->unmatched);
	if (r->child_exited) {
		if (WIFSIGNALED(r->child_status))
			fprintf(f, "command killed by signal %d (%s)\n", WTERMSIG(r->child_status),
				strsignal(WTERMSIG(r->child_status)));
		else
			fprintf(f, "command exited with status %d\n",
				WEXITSTATUS(r->child_status));
	} else if (r->child) {
		fprintf(f, "command (pid %d) still running\n", r->child);
	} else if (r->target_gone) {
		fprintf(f, "process %d exited\n", r->filter_pid);
	}
}

/* More uprobes than the default 1024 open files allow need a higher soft limit. */
static void raise_nofile(int need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= (rlim_t)need + 64)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (rlim_t)need + 64
			      ? (rlim_t)need + 64 : rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

static int parse_args(int argc, char **argv, struct count_env *env)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "exe", required_argument, NULL, 'e' },
		{ "duration", required_argument, NULL, 'd' },
		{ "at", required_argument, NULL, 'a' },
		{ "output", required_argument, NULL, 'o' },
		{ "json", no_argument, NULL, 'j' },
		{ "no-cookie", no_argument, NULL, OPT_NO_COOKIE },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int nopts = argc, c, err = 0;

	/* Everything after "--" is CMD: keep getopt away from it. */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--")) {
			nopts = i;
			if (i + 1 < argc)
				env->cmd = &argv[i + 1];
			break;
		}
	}
	while ((c = getopt_long(nopts, argv, "p:e:d:a:o:jvh", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			err = cmd_parse_pid(optarg, &env->pid);
			break;
		case 'e':
			env->exe = optarg;
			break;
		case 'd':
			err = cmd_parse_secs("duration", optarg, CMD_ABOVE_0, 1e7, &env->duration);
			break;
		case 'a':
			if (parse_at(optarg, &env->at))
				return cmd_fail("invalid --at '%s': use entry, after-prologue, "
						"ret or all", optarg);
			break;
		case 'o':
			env->output = optarg;
			break;
		case 'j':
			env_json = true;
			break;
		case OPT_NO_COOKIE:
			env->no_cookie = true;
			break;
		case 'v':
			log_verbosity++;
			break;
		case 'h':
			fputs(count_help, stdout);
			return -1;
		default:
			return cmd_fail("usage: gotrace count [-p PID | -e BINARY] [-d SECONDS] "
					"[--at SITES] FUNC... [-- CMD ARGS...]");
		}
		if (err)
			return err;
	}
	env->funcs = &argv[optind];
	env->nfuncs = nopts - optind;
	if (!env->nfuncs)
		return cmd_fail("no function to count: name at least one (e.g. main.work or "
				"'runtime.mallocgc*')");
	if (env->pid && env->cmd)
		return cmd_fail("-p PID and -- CMD exclude each other");
	if (!env->pid && !env->cmd && !env->exe)
		return cmd_fail("nothing to trace: give -p PID, -e BINARY, or -- CMD ARGS");
	return 0;
}

int cmd_count(int argc, char **argv)
{
	struct count_env env = { .at = SITE_PROLOGUE };
	struct go_model_opts mopts = { .allow_unsupported = true };
	struct count_run r = { .go_fd = -1, .err_fd = -1, .filter_pid = -1 };
	struct count_bpf *skel = NULL;
	FILE *out = stdout;
	bool use_cookie;
	int err, ret = 1;

	err = parse_args(argc, argv, &env);
	if (err)
		return err < 0 ? 0 : err;

	/* The binary: -e, else CMD's (found like execvp does), else the process's. */
	if (env.cmd) {
		err = resolve_cmd(env.cmd[0], r.cmd_path, sizeof(r.cmd_path));
		if (err)
			return cmd_fail("cannot run %s: %s", env.cmd[0], strerror(-err));
	}
	gt_clearerr();
	if (env.exe)
		err = go_model__open_path(env.exe, &mopts, &r.model);
	else if (env.cmd)
		err = go_model__open_path(r.cmd_path, &mopts, &r.model);
	else
		err = go_model__open_pid(env.pid, &mopts, &r.model);
	if (err)
		return cmd_fail("%s", gt_lasterr() ? gt_lasterr() : strerror(-err));
	r.binary = r.model->path;
	r.display = r.model->has_proc ? r.model->proc.exe_path : r.model->path;
	if (env.pid) {
		struct proc_target t;

		/* With -e, still make sure the process exists before attaching. */
		if (env.exe && proc__open(env.pid, &t)) {
			ret = cmd_fail("%s", gt_lasterr());
			goto cleanup;
		}
		r.filter_pid = env.pid;
	}

	err = resolve_sites(&r, &env);
	if (err) {
		ret = cmd_fail("%s", gt_lasterr() ? gt_lasterr() : strerror(-err));
		goto cleanup;
	}
	err = bpf_support__check();
	if (err) {
		ret = cmd_fail("%s", gt_lasterr());
		goto cleanup;
	}
	use_cookie = !env.no_cookie && bpf_support__has_attach_cookie();
	vlog("gotrace: %d probe sites in %s, identified by %s\n", r.nsites, r.binary,
	     use_cookie ? "attach cookie" : "address");
	raise_nofile(2 * r.nsites);

	if (env.output) {
		out = fopen(env.output, "we");
		if (!out) {
			ret = cmd_fail("cannot write %s: %s", env.output, strerror(errno));
			out = stdout;
			goto cleanup;
		}
	}
	/* The command's PID is the uprobe filter: fork it now, exec it once attached. */
	if (env.cmd) {
		err = fork_held(&r, env.cmd);
		if (err) {
			ret = cmd_fail("cannot start %s: %s", env.cmd[0], strerror(-err));
			goto cleanup;
		}
		/* -e naming another binary: CMD will run it in a child, with another PID. */
		if (!env.exe || same_file(env.exe, r.cmd_path))
			r.filter_pid = r.child;
		else
			vlog("gotrace: %s is not %s: counting every process running %s\n", env.exe,
			     r.cmd_path, env.exe);
	}

	skel = count_bpf__open();
	if (!skel) {
		ret = cmd_fail("cannot open the BPF object: %s", strerror(errno));
		goto cleanup;
	}
	err = attach_sites(&r, skel, use_cookie);
	if (err) {
		ret = cmd_fail("%s", gt_lasterr());
		goto cleanup;
	}
	if (env.cmd) {
		err = release_child(&r, env.cmd[0]);
		if (err) {
			ret = cmd_fail("%s", gt_lasterr());
			goto cleanup;
		}
	} else if (r.filter_pid > 0) {
		elog("gotrace: counting %d site%s in process %d; Ctrl-C to stop\n", r.nsites,
		     r.nsites == 1 ? "" : "s", r.filter_pid);
	} else {
		elog("gotrace: counting %d site%s in every process running %s; Ctrl-C to stop\n",
		     r.nsites, r.nsites == 1 ? "" : "s", r.binary);
	}

	wait_loop(&r, env.duration);
	detach_sites(&r);
	err = read_counts(&r, skel);
	if (err) {
		ret = cmd_fail("%s", gt_lasterr());
		goto cleanup;
	}
	if (env_json)
		report_json(out, &r);
	else
		report_text(out, &r);
	ret = 0;

cleanup:
	detach_sites(&r);
	count_bpf__destroy(skel);
	if (r.go_fd >= 0) {
		/* Still held: the child sees EOF and exits without running CMD. */
		close(r.go_fd);
		waitpid(r.child, NULL, 0);
	}
	if (r.err_fd >= 0)
		close(r.err_fd);
	if (out != stdout)
		fclose(out);
	free(r.sites);
	go_model__free(r.model);
	return ret;
}
