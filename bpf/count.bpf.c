// SPDX-License-Identifier: MIT
/*
 * gotrace count: count hits of plain uprobes on Go functions, one counter per
 * probe site. Userspace attaches one uprobe per site (entry, after the
 * stack-check prologue, or a RET; never a uretprobe) and sums the per-CPU slots.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "gotrace/events.h"

/* Knobs, set in rodata before load. */
const volatile __u32 targ_tgid = 0; /* 0: no check in BPF (the uprobe is pid-filtered anyway) */
const volatile __u32 cfg_nsites = 0;

/* Hits per site id; slot cfg_nsites = unattributed. Sized by userspace before load. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

/* Site ids by code offset, for kernels without bpf_get_attach_cookie(). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct count_ip_key);
	__type(value, __u32);
} site_ids SEC(".maps");

static __always_inline bool other_process(void)
{
	return targ_tgid && (__u32)(bpf_get_current_pid_tgid() >> 32) != targ_tgid;
}

static __always_inline void count_hit(__u32 id)
{
	__u64 *hits = bpf_map_lookup_elem(&counts, &id);

	/* Atomic even per CPU: uprobe programs run with preemption enabled. */
	if (hits)
		__sync_fetch_and_add(hits, 1);
}

/* Site id from the attach cookie (kernel 5.15+). */
SEC("uprobe")
int count_site(struct pt_regs *ctx)
{
	if (other_process())
		return 0;
	count_hit((__u32)bpf_get_attach_cookie(ctx));
	return 0;
}

/* Site id from the probed address, relative to the executable's code start. */
SEC("uprobe")
int count_site_ip(struct pt_regs *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct count_ip_key key;
	__u32 *id;

	if (other_process())
		return 0;
	/* regs->ip is the probed address: the kernel rewinds it past the int3 first. */
	key.code_off = PT_REGS_IP(ctx) - BPF_CORE_READ(task, mm, start_code);
	id = bpf_map_lookup_elem(&site_ids, &key);
	count_hit(id ? *id : cfg_nsites);
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
