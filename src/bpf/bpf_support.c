// SPDX-License-Identifier: MIT
/*
 * BPF availability checks. Each failure names the missing piece in one line, so
 * users see "run it with sudo" instead of a libbpf error dump.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf/bpf_support.h"
#include "util/log.h"

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

static int libbpf_print_fn(enum libbpf_print_level level, const char *fmt, va_list args)
{
	int need = level == LIBBPF_DEBUG ? 2 : 1;

	if (log_verbosity < need)
		return 0;
	return vfprintf(stderr, fmt, args);
}

void bpf_support__init_logging(void)
{
	libbpf_set_print(libbpf_print_fn);
}

/* Is capability CAP in this process's effective set? */
static bool has_cap(unsigned int cap)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};

	if (cap / 32 >= _LINUX_CAPABILITY_U32S_3 || syscall(SYS_capget, &hdr, data))
		return false;
	return data[cap / 32].effective & (1U << (cap % 32));
}

/* uprobes through the perf PMU (4.17+) or, as libbpf falls back to, tracefs. */
static bool have_uprobes(void)
{
	static const char *const paths[] = {
		"/sys/bus/event_source/devices/uprobe/type",
		"/sys/kernel/tracing/uprobe_events",
		"/sys/kernel/debug/tracing/uprobe_events",
	};

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		if (!access(paths[i], F_OK))
			return true;
	}
	return false;
}

int bpf_support__check(void)
{
	struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };
	int fd;

	bpf_support__init_logging();
	/* Uprobes need CAP_PERFMON, tracing programs CAP_BPF (5.8+); or else CAP_SYS_ADMIN. */
	if (geteuid() != 0 && !has_cap(CAP_SYS_ADMIN) &&
	    !(has_cap(CAP_BPF) && has_cap(CAP_PERFMON))) {
		gt_seterr("BPF needs root or CAP_BPF and CAP_PERFMON: run gotrace with sudo");
		return -EPERM;
	}
	if (access("/sys/kernel/btf/vmlinux", R_OK)) {
		gt_seterr("kernel has no BTF (CONFIG_DEBUG_INFO_BTF): "
			  "gotrace needs Linux 5.8+ with BTF");
		return -EOPNOTSUPP;
	}
	if (!have_uprobes()) {
		gt_seterr("kernel has no uprobes (CONFIG_UPROBE_EVENTS): gotrace needs Linux 5.8+ "
			  "with uprobes");
		return -EOPNOTSUPP;
	}
	/*
	 * Before 5.11 BPF memory counts against RLIMIT_MEMLOCK, often only 64 KiB: lift it,
	 * or at least raise the soft limit to the hard one (containers may forbid more).
	 */
	if (setrlimit(RLIMIT_MEMLOCK, &rl) && !getrlimit(RLIMIT_MEMLOCK, &rl)) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_MEMLOCK, &rl))
			dlog("gotrace: cannot raise RLIMIT_MEMLOCK: %s\n", strerror(errno));
	}

	/* The smallest real bpf() call: create and drop a one-slot array. */
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "gt_probe", sizeof(int), sizeof(int), 1, NULL);
	if (fd < 0) {
		int err = fd;

		if (err == -ENOSYS)
			gt_seterr("kernel has no bpf() system call (CONFIG_BPF_SYSCALL): "
				  "gotrace needs Linux 5.8+ with BPF");
		else if (err == -EPERM || err == -EACCES)
			gt_seterr("bpf() is not permitted (%s): run gotrace as root on the host, "
				  "or give its container CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN",
				  strerror(-err));
		else
			gt_seterr("bpf() does not work here: %s", strerror(-err));
		return err;
	}
	close(fd);
	return 0;
}

bool bpf_support__has_attach_cookie(void)
{
	/* bpf_get_attach_cookie() for kprobe-type programs (uprobes too): 7adfc6c9b315, 5.15. */
	return libbpf_probe_bpf_helper(BPF_PROG_TYPE_KPROBE, BPF_FUNC_get_attach_cookie, NULL) > 0;
}
