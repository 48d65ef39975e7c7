// SPDX-License-Identifier: MIT
/*
 * The governor's calibration (src/engine/governor.c): a probe on a function of
 * gotrace's own code that only counts its hits, to time one trap by instruction kind.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

const volatile __u32 self_tgid = 0; /* gotrace's own process */

__u64 hits;

SEC("uprobe")
int gov_calib(struct pt_regs *ctx)
{
	if ((__u32)(bpf_get_current_pid_tgid() >> 32) == self_tgid)
		__sync_fetch_and_add(&hits, 1);
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
