// SPDX-License-Identifier: MIT
/*
 * Speed of the binary-introspection core on real Go binaries:
 *   - open: ELF + build info + index every function of .gopclntab (ms, ms per MB)
 *   - symbolize: function + file:line + inline frames for random PCs (PCs/s),
 *     first pass (decodes tables on first touch) and second pass (warm)
 *   - find_func and func_by_name alone
 * Usage: bench_gosym [-n PCS] BINARY...
 * Targets (task brief): index <= 10 ms/MB of .gopclntab; symbolize >= 2M PCs/s.
 */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "elf/elf_file.h"
#include "gosym/buildinfo.h"
#include "gosym/pclntab.h"
#include "util/log.h"

#define OPEN_RUNS 5

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* xorshift64*: a fixed, reproducible PC sequence. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Runs one symbolize pass; returns seconds, adds frames and known lines to the counters. */
static double symbolize_pass(const struct pclntab *p, const uint64_t *pcs, size_t n,
			     uint64_t *frames_out, uint64_t *lines_out)
{
	struct go_frame fr[32];
	uint64_t frames = 0, lines = 0;
	double t0 = now_s();

	for (size_t i = 0; i < n; i++) {
		int k = pclntab__symbolize(p, pcs[i], fr, 32);

		if (k > 0) {
			frames += k;
			lines += fr[0].line > 0;
		}
	}
	*frames_out = frames;
	*lines_out = lines;
	return now_s() - t0;
}

static int bench_one(const char *path, size_t npcs)
{
	double t_open[OPEN_RUNS], t, mb;
	struct pclntab_opts opts = { .go_minor = -1 };
	uint64_t lo, hi, seed = 0x9e3779b97f4a7c15ull, frames, lines, found = 0;
	struct go_buildinfo bi;
	struct elf_file *ef = NULL;
	struct pclntab *p = NULL;
	uint64_t *pcs = NULL;
	size_t nf, heap0;
	int err = 0;

	/* Open the whole stack several times; keep the median. */
	for (int r = 0; r < OPEN_RUNS; r++) {
		pclntab__free(p);
		elf_file__free(ef);
		p = NULL;
		t = now_s();
		ef = elf_file__open(path);
		if (!ef) {
			fprintf(stderr, "bench: %s\n", gt_lasterr());
			return -errno;
		}
		if (!buildinfo__read(ef, &bi)) {
			opts.go_minor = bi.minor;
			buildinfo__free(&bi);
		}
		p = pclntab__open(ef, &opts);
		t_open[r] = now_s() - t;
		if (!p) {
			fprintf(stderr, "bench: %s\n", gt_lasterr());
			elf_file__free(ef);
			return -errno;
		}
	}
	qsort(t_open, OPEN_RUNS, sizeof(t_open[0]), cmp_dbl);
	nf = pclntab__func_cnt(p);
	mb = pclntab__size(p) / 1048576.0;
	printf("%s\n", path);
	printf("  .gopclntab %.1f MB, %zu functions, format %d, text_start from %s\n", mb, nf,
	       pclntab__format(p), pclntab__text_start_source(p));
	printf("  open+index: %.2f ms median of %d (%.2f ms/MB; target <= 10)\n",
	       t_open[OPEN_RUNS / 2] * 1e3, OPEN_RUNS, t_open[OPEN_RUNS / 2] * 1e3 / mb);

	/* Random PCs spread uniformly over the Go text. */
	lo = pclntab__func(p, 0)->entry;
	hi = pclntab__func(p, nf - 1)->end;
	pcs = malloc(npcs * sizeof(*pcs));
	if (!pcs) {
		err = -ENOMEM;
		goto cleanup;
	}
	for (size_t i = 0; i < npcs; i++)
		pcs[i] = lo + rnd(&seed) % (hi - lo);

	t = now_s();
	for (size_t i = 0; i < npcs; i++)
		found += pclntab__find_func(p, pcs[i]) != NULL;
	t = now_s() - t;
	printf("  find_func:  %.1f M PCs/s (%" PRIu64 " of %zu in a function)\n", npcs / t / 1e6,
	       found, npcs);

	heap0 = mallinfo2().uordblks;
	t = symbolize_pass(p, pcs, npcs, &frames, &lines);
	printf("  symbolize, first pass:  %.2f M PCs/s (%.2f frames/PC, %.1f%% with a line)\n",
	       npcs / t / 1e6, (double)frames / npcs, 100.0 * lines / npcs);
	printf("  decoded-table cache after it: %.1f MB\n",
	       (double)(mallinfo2().uordblks - heap0) / 1048576.0);
	t = symbolize_pass(p, pcs, npcs, &frames, &lines);
	printf("  symbolize, second pass: %.2f M PCs/s (target >= 2)\n", npcs / t / 1e6);

	t = now_s();
	found = 0;
	for (size_t i = 0; i < npcs; i++)
		found += pclntab__func_by_name(p, pclntab__func(p, rnd(&seed) % nf)->name) != NULL;
	t = now_s() - t;
	printf("  func_by_name: %.1f M lookups/s (first call builds the index)\n", npcs / t / 1e6);
cleanup:
	free(pcs);
	pclntab__free(p);
	elf_file__free(ef);
	return err;
}

int main(int argc, char **argv)
{
	size_t npcs = 2000000;
	int c, err = 0;

	while ((c = getopt(argc, argv, "n:h")) != -1) {
		switch (c) {
		case 'n':
			npcs = strtoul(optarg, NULL, 10);
			break;
		default:
			fprintf(stderr, "Usage: %s [-n PCS] BINARY...\n", argv[0]);
			return 2;
		}
	}
	if (optind >= argc || npcs == 0) {
		fprintf(stderr, "Usage: %s [-n PCS] BINARY...\n", argv[0]);
		return 2;
	}
	for (int i = optind; i < argc; i++)
		err |= bench_one(argv[i], npcs);
	return err ? 1 : 0;
}
