/* SPDX-License-Identifier: MIT */
/* Can this process use BPF and uprobes here? Checked up front, with one-line reasons. */
#ifndef GOTRACE_BPF_SUPPORT_H
#define GOTRACE_BPF_SUPPORT_H

#include <stdbool.h>

/*
 * Check that BPF programs can be loaded and uprobes attached: privileges (root, or
 * CAP_BPF and CAP_PERFMON), kernel BTF, uprobe support and a working bpf() syscall.
 * Also raises RLIMIT_MEMLOCK (kernels before 5.11 charge BPF memory to it) and routes
 * libbpf's messages to vlog/dlog. Returns 0, or -errno with gt_lasterr() set.
 */
int bpf_support__check(void);

/* Send libbpf's warnings to vlog (-v) and its debug output to dlog (-vv). Idempotent. */
void bpf_support__init_logging(void);

/* True when uprobe programs can call bpf_get_attach_cookie() (kernel 5.15+). */
bool bpf_support__has_attach_cookie(void);

#endif
