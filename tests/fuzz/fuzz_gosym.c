// SPDX-License-Identifier: MIT
/*
 * libFuzzer target over the parsers that read untrusted binaries: ELF,
 * .go.buildinfo, .gopclntab (function table, pc-value tables, inline tree).
 * Built with ASan+UBSan by `make fuzz`; run for a bounded time by `make check-fuzz`.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "elf/elf_file.h"
#include "gosym/buildinfo.h"
#include "gosym/pclntab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pclntab_opts opts = { .go_minor = -1 };
	struct go_frame frames[16];
	struct go_buildinfo bi;
	struct elf_file *ef;
	struct pclntab *p;

	ef = elf_file__open_mem(data, size, "fuzz");
	if (!ef)
		return 0;
	memset(&bi, 0, sizeof(bi));
	if (buildinfo__read(ef, &bi) == 0)
		opts.go_minor = bi.minor;
	buildinfo__free(&bi);

	p = pclntab__open(ef, &opts);
	if (p) {
		size_t n = pclntab__func_cnt(p);

		/* Walk a bounded sample of functions through every table. */
		for (size_t i = 0; i < n && i < 64; i++) {
			const struct go_func *fn = pclntab__func(p, i * (n / 64 + 1) % n);
			const char *file;
			int32_t v;
			int line;

			if (!fn)
				continue;
			pclntab__line(p, fn, fn->entry, &file, &line);
			pclntab__pcvalue(p, fn, PCTAB_SP, fn->entry + (fn->end - fn->entry) / 2, &v);
			pclntab__symbolize(p, fn->entry + (fn->end - fn->entry) / 2, frames, 16);
			pclntab__start_line(p, fn);
			pclntab__func_by_name(p, fn->name);
		}
		pclntab__symbolize(p, 0, frames, 16);
		pclntab__symbolize(p, UINT64_MAX, frames, 16);
		pclntab__free(p);
	}
	elf_file__free(ef);
	return 0;
}
