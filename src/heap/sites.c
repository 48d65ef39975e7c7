// SPDX-License-Identifier: MIT
/*
 * Symbolized, interned allocation stacks (see sites.h). Three tables of the same kind, an
 * open-addressing hash of variable-length word arrays to dense ids: raw PC stacks, shown
 * stacks (arrays of frame ids) and frames (hashes of function, file and line). A PC cache
 * keeps symbolization to once per distinct PC.
 */
#define _GNU_SOURCE /* asprintf */
#include <errno.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "heap/sites.h"
#include "util/log.h"

#define MAX_INLINE 64

/* Word arrays -> dense ids. */
struct intern {
	uint64_t *words;     /* every array, back to back */
	size_t nwords, capwords;
	struct ent {
		size_t off;
		uint32_t n;
	} *ents;
	size_t nents, capents;
	uint32_t *slots;     /* id + 1, 0 empty */
	size_t nslots;
};

struct heap_sites {
	const struct go_model *m;
	struct intern raw, shown, frames;
	struct heap_frame *fr; /* by frame id */
	size_t capfr;
	int32_t *raw_shown;    /* raw id -> shown id + 1 (0: not computed) */
	size_t cap_raw_shown;
	uint64_t *ids;	       /* scratch: a shown stack being built */
	size_t capids;
	struct pcc {
		uint64_t pc;
		uint32_t fid;
		bool used;
	} *pcc;		       /* PC -> frame id */
	size_t npcc, cappcc;
	struct go_frame tmp[MAX_INLINE];
	char **names;	       /* generic names rewritten for printing (owned) */
	size_t nnames, capnames;
};

static uint64_t mix(uint64_t h, uint64_t w)
{
	h ^= w + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	return h * 0xff51afd7ed558ccdULL;
}

static uint64_t hash_words(const uint64_t *w, uint32_t n)
{
	uint64_t h = n;

	for (uint32_t i = 0; i < n; i++)
		h = mix(h, w[i]);
	return h ^ (h >> 29);
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; s && *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ULL;
	return h;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t n = *cap ? *cap : 256;
	void *q;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	q = realloc(*p, n * elem);
	if (!q)
		return -ENOMEM;
	memset((char *)q + *cap * elem, 0, (n - *cap) * elem);
	*p = q;
	*cap = n;
	return 0;
}

static int rehash(struct intern *t, size_t nslots)
{
	uint32_t *s = calloc(nslots, sizeof(*s));

	if (!s)
		return -ENOMEM;
	for (size_t id = 0; id < t->nents; id++) {
		const struct ent *e = &t->ents[id];
		size_t i = hash_words(t->words + e->off, e->n) & (nslots - 1);

		while (s[i])
			i = (i + 1) & (nslots - 1);
		s[i] = (uint32_t)id + 1;
	}
	free(t->slots);
	t->slots = s;
	t->nslots = nslots;
	return 0;
}

/* The id of W[0..N) in T, added when new. Id or -ENOMEM. */
static long intern(struct intern *t, const uint64_t *w, uint32_t n)
{
	uint64_t h = hash_words(w, n);
	size_t i;

	if ((t->nents + 1) * 2 > t->nslots && rehash(t, t->nslots ? t->nslots * 2 : 1024))
		return -ENOMEM;
	for (i = h & (t->nslots - 1); t->slots[i]; i = (i + 1) & (t->nslots - 1)) {
		const struct ent *e = &t->ents[t->slots[i] - 1];

		if (e->n == n && !memcmp(t->words + e->off, w, n * sizeof(*w)))
			return t->slots[i] - 1;
	}
	if (grow((void **)&t->words, &t->capwords, t->nwords + n, sizeof(*w)) ||
	    grow((void **)&t->ents, &t->capents, t->nents + 1, sizeof(*t->ents)))
		return -ENOMEM;
	memcpy(t->words + t->nwords, w, n * sizeof(*w));
	t->ents[t->nents] = (struct ent){ t->nwords, n };
	t->nwords += n;
	t->slots[i] = (uint32_t)++t->nents;
	return (long)t->nents - 1;
}

static void intern_free(struct intern *t)
{
	free(t->words);
	free(t->ents);
	free(t->slots);
}

struct heap_sites *heap_sites__new(const struct go_model *m)
{
	struct heap_sites *hs = calloc(1, sizeof(*hs));

	if (!hs)
		return NULL;
	hs->m = m;
	return hs;
}

void heap_sites__free(struct heap_sites *hs)
{
	if (!hs)
		return;
	intern_free(&hs->raw);
	intern_free(&hs->shown);
	intern_free(&hs->frames);
	free(hs->fr);
	free(hs->raw_shown);
	free(hs->ids);
	for (size_t i = 0; i < hs->nnames; i++)
		free(hs->names[i]);
	free(hs->names);
	free(hs->pcc);
	free(hs);
}

static int pcc_rehash(struct heap_sites *hs, size_t cap)
{
	struct pcc *n = calloc(cap, sizeof(*n));

	if (!n)
		return -ENOMEM;
	for (size_t i = 0; i < hs->cappcc; i++) {
		size_t k;

		if (!hs->pcc[i].used)
			continue;
		for (k = mix(0, hs->pcc[i].pc) & (cap - 1); n[k].used; k = (k + 1) & (cap - 1))
			;
		n[k] = hs->pcc[i];
	}
	free(hs->pcc);
	hs->pcc = n;
	hs->cappcc = cap;
	return 0;
}

/*
 * NAME as Go 1.21+ prints it (runtime funcNameForPrint): the type arguments of a generic
 * function, from the first '[' to the last ']', become "[...]". Go 1.19 prints the full
 * shape names, as the pclntab has them. NULL on ENOMEM.
 */
static const char *name_for_print(struct heap_sites *hs, const char *name)
{
	const char *i = strchr(name, '['), *j = strrchr(name, ']');
	char *n;

	if (hs->m->bi.minor < 21 || !i || !j || j <= i)
		return name;
	if (grow((void **)&hs->names, &hs->capnames, hs->nnames + 1, sizeof(*hs->names)))
		return NULL;
	if (asprintf(&n, "%.*s[...]%s", (int)(i - name), name, j + 1) < 0)
		return NULL;
	hs->names[hs->nnames++] = n;
	return n;
}

/* The frame id of return address PC: the innermost frame at PC - 1. Id or -ENOMEM. */
static long frame_of(struct heap_sites *hs, uint64_t pc)
{
	struct heap_frame f = { "?", "?", 0, pc };
	uint64_t key[3];
	size_t k;
	long id;
	int n;

	if ((hs->npcc + 1) * 2 > hs->cappcc && pcc_rehash(hs, hs->cappcc ? hs->cappcc * 2 : 4096))
		return -ENOMEM;
	for (k = mix(0, pc) & (hs->cappcc - 1); hs->pcc[k].used; k = (k + 1) & (hs->cappcc - 1)) {
		if (hs->pcc[k].pc == pc)
			return hs->pcc[k].fid;
	}
	n = pclntab__symbolize(hs->m->pcln, go_model__to_link(hs->m, pc) - 1, hs->tmp, MAX_INLINE);
	if (n > 0) {
		f.func = name_for_print(hs, hs->tmp[0].func);
		if (!f.func)
			return -ENOMEM;
		f.file = hs->tmp[0].file;
		f.line = hs->tmp[0].line;
	}
	key[0] = hash_str(f.func);
	key[1] = hash_str(f.file);
	key[2] = (uint64_t)f.line;
	id = intern(&hs->frames, key, 3);
	if (id < 0)
		return id;
	if (grow((void **)&hs->fr, &hs->capfr, (size_t)id + 1, sizeof(*hs->fr)))
		return -ENOMEM;
	if (!hs->fr[id].func)
		hs->fr[id] = f;
	hs->pcc[k] = (struct pcc){ pc, (uint32_t)id, true };
	hs->npcc++;
	return id;
}

static bool is_runtime(const char *fn)
{
	return !strncmp(fn, "runtime.", 8) || !strncmp(fn, "internal/runtime/", 17);
}

long heap_sites__shown(struct heap_sites *hs, const uint64_t *pcs, uint32_t n)
{
	bool all = false;
	uint32_t k;
	long fid;

	if (grow((void **)&hs->ids, &hs->capids, n ? n : 1, sizeof(*hs->ids)))
		return -ENOMEM;
again:
	k = 0;
	for (uint32_t i = 0; i < n; i++) {
		const struct heap_frame *f;

		fid = frame_of(hs, pcs[i]);
		if (fid < 0)
			return fid;
		f = &hs->fr[fid];
		/* Hide runtime.goexit, and the runtime frames before the first other one. */
		if (!strcmp(f->func, "runtime.goexit") || (!all && !k && is_runtime(f->func)))
			continue;
		hs->ids[k++] = (uint64_t)fid;
	}
	if (!k && !all && n) {
		all = true;
		goto again;
	}
	return intern(&hs->shown, hs->ids, k);
}

long heap_sites__raw(struct heap_sites *hs, const uint64_t *pcs, uint32_t n)
{
	return intern(&hs->raw, pcs, n);
}

long heap_sites__shown_of_raw(struct heap_sites *hs, uint32_t raw_id)
{
	const struct ent *e;
	long id;

	if (raw_id >= hs->raw.nents)
		return -EINVAL;
	if (grow((void **)&hs->raw_shown, &hs->cap_raw_shown, (size_t)raw_id + 1,
		 sizeof(*hs->raw_shown)))
		return -ENOMEM;
	if (hs->raw_shown[raw_id])
		return hs->raw_shown[raw_id] - 1;
	e = &hs->raw.ents[raw_id];
	id = heap_sites__shown(hs, hs->raw.words + e->off, e->n);
	if (id >= 0)
		hs->raw_shown[raw_id] = (int32_t)id + 1;
	return id;
}

const uint64_t *heap_sites__raw_pcs(const struct heap_sites *hs, uint32_t raw_id, uint32_t *n)
{
	const struct ent *e = &hs->raw.ents[raw_id];

	*n = e->n;
	return hs->raw.words + e->off;
}

long heap_sites__frame_of(struct heap_sites *hs, uint64_t pc)
{
	return frame_of(hs, pc);
}

size_t heap_sites__shown_cnt(const struct heap_sites *hs)
{
	return hs->shown.nents;
}

size_t heap_sites__raw_cnt(const struct heap_sites *hs)
{
	return hs->raw.nents;
}

void heap_sites__stack(const struct heap_sites *hs, uint32_t shown_id, struct heap_stack *st)
{
	const struct ent *e = &hs->shown.ents[shown_id];

	st->n = e->n;
	st->frames = hs->shown.words + e->off;
}

const struct heap_frame *heap_sites__frame(const struct heap_sites *hs, uint32_t frame_id)
{
	return &hs->fr[frame_id];
}
