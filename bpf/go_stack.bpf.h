/* SPDX-License-Identifier: MIT */
/*
 * Goroutine stacks from BPF, along Go's frame-pointer chain (amd64 keeps frame pointers
 * in every function with a frame since Go 1.7): each frame at BP holds the caller's BP
 * at [BP] and the return address at [BP + 8]. The walk stays inside the goroutine's
 * stack [lo, hi) and only goes up, so a stale or foreign BP ends it instead of reading
 * elsewhere.
 */
#ifndef GOTRACE_GO_STACK_BPF_H
#define GOTRACE_GO_STACK_BPF_H

/* 64-bit mix of one word into a running hash (splitmix64's finalizer). */
static __always_inline __u64 go_hash_mix(__u64 h, __u64 v)
{
	h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h;
}

/*
 * Fill PCS[0..MAX) (MAX a power of two, a constant) with PC0, unless 0, then the return
 * addresses up the chain from BP, bounded by [LO, HI). *TRUNC is set when frames
 * remained. Returns the depth; *READ_ERR counts failed reads of target memory.
 */
static __always_inline __u32 go_fp_walk(__u64 *pcs, const __u32 max, __u64 pc0, __u64 bp,
					__u64 lo, __u64 hi, __u32 *trunc, __u32 *read_err)
{
	__u64 frame[2];
	__u32 n = 0;

	*trunc = 0;
	if (pc0)
		pcs[n++] = pc0;
	for (__u32 i = 0; i < max; i++) {
		if (n >= max)
			break;
		/* Frames live at increasing, 8-aligned addresses inside the goroutine's stack. */
		if (bp < lo || bp + 16 > hi || (bp & 7))
			return n;
		if (bpf_probe_read_user(frame, sizeof(frame), (const void *)bp)) {
			(*read_err)++;
			return n;
		}
		if (!frame[1])
			return n;
		pcs[n & (max - 1)] = frame[1];
		n++;
		if (frame[0] <= bp)
			return n;
		bp = frame[0];
	}
	/* Out of room: more frames if the next one is still a plausible frame. */
	if (bp >= lo && bp + 16 <= hi)
		*trunc = 1;
	return n;
}

#endif
