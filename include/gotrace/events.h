/* SPDX-License-Identifier: MIT */
/*
 * Records and limits shared by the BPF programs under bpf/ and userspace.
 * Plain fixed-width types only; every shared struct has its size asserted.
 */
#ifndef GOTRACE_EVENTS_H
#define GOTRACE_EVENTS_H

/*
 * gotrace count (bpf/count.bpf.c): one uprobe per probe site, each site known by
 * an id 0..N-1 (its bpf_cookie, or through count_ip_key without cookies).
 * Hits go to a per-CPU array of __u64 with N + 1 slots: slot N counts hits the
 * program could not attribute to a site (a bug if ever non-zero).
 */
#define COUNT_MAX_SITES 8192

/*
 * Key of the site table used when the kernel has no bpf_get_attach_cookie()
 * (before 5.15): the probed address minus the start of the executable's code
 * (mm->start_code), which is also "link-time vaddr - lowest PF_X PT_LOAD vaddr",
 * so it does not depend on where a PIE was loaded.
 */
struct count_ip_key {
	__u64 code_off;
};

_Static_assert(sizeof(struct count_ip_key) == 8, "count_ip_key layout");

#endif
