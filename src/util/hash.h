/* SPDX-License-Identifier: MIT */
/* The 64-bit finalizer of MurmurHash3: spreads addresses and ids over open-addressing tables. */
#ifndef GOTRACE_HASH_H
#define GOTRACE_HASH_H

#include <stdint.h>

static inline uint64_t hash64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

#endif
