// SPDX-License-Identifier: MIT
/*
 * pprof profile encoding (github.com/google/pprof proto/profile.proto, field numbers):
 *   Profile:  1 sample_type, 2 sample, 3 mapping, 4 location, 5 function, 6 string_table,
 *             9 time_nanos, 10 duration_nanos, 11 period_type, 12 period, 13 comment,
 *             14 default_sample_type
 *   ValueType: 1 type, 2 unit             Sample:   1 location_id, 2 value, 3 label
 *   Label:    1 key, 2 str, 3 num, 4 num_unit
 *   Mapping:  1 id, 2 memory_start, 3 memory_limit, 4 file_offset, 5 filename, 6 build_id,
 *             7 has_functions, 8 has_filenames, 9 has_line_numbers, 10 has_inline_frames
 *   Location: 1 id, 2 mapping_id, 3 address, 4 line     Line: 1 function_id, 2 line
 *   Function: 1 id, 2 name, 3 system_name, 4 filename, 5 start_line
 * Strings are indexes into string_table, whose entry 0 is "". Repeated scalars are packed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "pprof/pprof.h"
#include "util/log.h"

struct vt {
	int64_t type, unit;
};

struct pp_label {
	int64_t key, str, num, unit;
};

struct pp_sample {
	uint64_t *locs;
	size_t nlocs;
	int64_t *values;
	struct pp_label *labels;
	size_t nlabels;
};

struct pp_mapping {
	uint64_t start, limit, offset;
	int64_t file, build_id;
};

struct pp_function {
	int64_t name, file, start_line;
};

struct pp_location {
	uint64_t mapping, addr;
	struct pprof_line *lines;
	size_t nlines;
};

/* A growable array of fixed-size elements. */
#define VEC(T)                \
	struct {              \
		T *v;         \
		size_t n, cap; \
	}

struct hidx {
	int64_t *slot; /* element index + 1; 0 empty */
	size_t cap;
};

struct pprof {
	VEC(char *) strs;
	struct hidx str_idx;
	VEC(struct vt) types;
	struct vt period_type;
	int64_t period, time_nanos, duration_nanos, default_type;
	VEC(int64_t) comments;
	VEC(struct pp_mapping) mappings;
	VEC(struct pp_function) funcs;
	struct hidx func_idx;
	VEC(struct pp_location) locs;
	struct hidx loc_idx;
	VEC(struct pp_sample) samples;
};

static int vec_grow(void **v, size_t *cap, size_t n, size_t elem)
{
	size_t ncap;
	void *nv;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 16;
	nv = realloc(*v, ncap * elem);
	if (!nv)
		return -ENOMEM;
	*v = nv;
	*cap = ncap;
	return 0;
}

#define VEC_PUSH(vec, val)                                                                   \
	(vec_grow((void **)&(vec).v, &(vec).cap, (vec).n, sizeof(*(vec).v)) ? -ENOMEM :         \
									       ((vec).v[(vec).n++] = (val), 0))

static uint64_t hash_bytes(const void *p, size_t n, uint64_t h)
{
	const uint8_t *b = p;

	h ^= 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* Open addressing: find the slot for key hash H where EQ(element) holds, or an empty one. */
static int hidx_reserve(struct hidx *x, size_t n, uint64_t (*rehash)(const struct pprof *, int64_t),
			const struct pprof *p)
{
	size_t ncap;
	int64_t *ns;

	if (n * 2 < x->cap)
		return 0;
	ncap = x->cap ? x->cap * 2 : 256;
	ns = calloc(ncap, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	for (size_t k = 0; k < x->cap; k++) {
		size_t i;

		if (!x->slot[k])
			continue;
		for (i = rehash(p, x->slot[k] - 1) & (ncap - 1); ns[i]; i = (i + 1) & (ncap - 1))
			;
		ns[i] = x->slot[k];
	}
	free(x->slot);
	x->slot = ns;
	x->cap = ncap;
	return 0;
}

static uint64_t str_rehash(const struct pprof *p, int64_t i)
{
	return hash_bytes(p->strs.v[i], strlen(p->strs.v[i]), 0);
}

/* Index of S in the string table, added when new; -1 on ENOMEM. */
static int64_t str_id(struct pprof *p, const char *s)
{
	uint64_t h;
	size_t i;
	char *d;

	if (!s || !*s)
		return 0;
	if (hidx_reserve(&p->str_idx, p->strs.n, str_rehash, p))
		return -1;
	h = hash_bytes(s, strlen(s), 0);
	for (i = h & (p->str_idx.cap - 1); p->str_idx.slot[i]; i = (i + 1) & (p->str_idx.cap - 1)) {
		if (!strcmp(p->strs.v[p->str_idx.slot[i] - 1], s))
			return p->str_idx.slot[i] - 1;
	}
	d = strdup(s);
	if (!d || VEC_PUSH(p->strs, d)) {
		free(d);
		return -1;
	}
	p->str_idx.slot[i] = (int64_t)p->strs.n;
	return (int64_t)p->strs.n - 1;
}

struct pprof *pprof__new(void)
{
	struct pprof *p = calloc(1, sizeof(*p));
	char *empty = strdup("");

	if (!p || !empty || VEC_PUSH(p->strs, empty)) {
		free(empty);
		free(p);
		errno = ENOMEM;
		return NULL;
	}
	return p;
}

void pprof__free(struct pprof *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->strs.n; i++)
		free(p->strs.v[i]);
	free(p->strs.v);
	free(p->str_idx.slot);
	free(p->types.v);
	free(p->comments.v);
	free(p->mappings.v);
	free(p->funcs.v);
	free(p->func_idx.slot);
	for (size_t i = 0; i < p->locs.n; i++)
		free(p->locs.v[i].lines);
	free(p->locs.v);
	free(p->loc_idx.slot);
	for (size_t i = 0; i < p->samples.n; i++) {
		free(p->samples.v[i].locs);
		free(p->samples.v[i].values);
		free(p->samples.v[i].labels);
	}
	free(p->samples.v);
	free(p);
}

int pprof__add_sample_type(struct pprof *p, const char *type, const char *unit)
{
	struct vt v = { str_id(p, type), str_id(p, unit) };

	if (v.type < 0 || v.unit < 0 || p->samples.n)
		return p->samples.n ? -EINVAL : -ENOMEM;
	return VEC_PUSH(p->types, v);
}

int pprof__set_period(struct pprof *p, const char *type, const char *unit, int64_t period)
{
	p->period_type = (struct vt){ str_id(p, type), str_id(p, unit) };
	p->period = period;
	return p->period_type.type < 0 || p->period_type.unit < 0 ? -ENOMEM : 0;
}

void pprof__set_time(struct pprof *p, int64_t time_nanos, int64_t duration_nanos)
{
	p->time_nanos = time_nanos;
	p->duration_nanos = duration_nanos;
}

int pprof__set_default_sample_type(struct pprof *p, const char *type)
{
	p->default_type = str_id(p, type);
	return p->default_type < 0 ? -ENOMEM : 0;
}

int pprof__add_comment(struct pprof *p, const char *comment)
{
	int64_t s = str_id(p, comment);

	return s < 0 ? -ENOMEM : VEC_PUSH(p->comments, s);
}

uint64_t pprof__add_mapping(struct pprof *p, uint64_t start, uint64_t limit, uint64_t offset,
			    const char *file, const char *build_id)
{
	struct pp_mapping m = { start, limit, offset, str_id(p, file), str_id(p, build_id) };

	if (m.file < 0 || m.build_id < 0 || VEC_PUSH(p->mappings, m))
		return 0;
	return p->mappings.n;
}

static uint64_t func_hash(const struct pp_function *f)
{
	int64_t k[2] = { f->name, f->file };

	return hash_bytes(k, sizeof(k), 1);
}

static uint64_t func_rehash(const struct pprof *p, int64_t i)
{
	return func_hash(&p->funcs.v[i]);
}

uint64_t pprof__function(struct pprof *p, const char *name, const char *file, int64_t start_line)
{
	struct pp_function f = { str_id(p, name), str_id(p, file), start_line };
	size_t i;

	if (f.name < 0 || f.file < 0 || hidx_reserve(&p->func_idx, p->funcs.n, func_rehash, p))
		return 0;
	for (i = func_hash(&f) & (p->func_idx.cap - 1); p->func_idx.slot[i];
	     i = (i + 1) & (p->func_idx.cap - 1)) {
		const struct pp_function *g = &p->funcs.v[p->func_idx.slot[i] - 1];

		if (g->name == f.name && g->file == f.file)
			return (uint64_t)p->func_idx.slot[i];
	}
	if (VEC_PUSH(p->funcs, f))
		return 0;
	p->func_idx.slot[i] = (int64_t)p->funcs.n;
	return p->funcs.n;
}

static uint64_t loc_rehash(const struct pprof *p, int64_t i)
{
	return hash_bytes(&p->locs.v[i].addr, 8, 2);
}

uint64_t pprof__location(struct pprof *p, uint64_t mapping_id, uint64_t addr,
			 const struct pprof_line *lines, size_t n)
{
	struct pp_location l = { mapping_id, addr, NULL, n };
	size_t i = 0;

	if (addr) {
		if (hidx_reserve(&p->loc_idx, p->locs.n, loc_rehash, p))
			return 0;
		for (i = hash_bytes(&addr, 8, 2) & (p->loc_idx.cap - 1); p->loc_idx.slot[i];
		     i = (i + 1) & (p->loc_idx.cap - 1)) {
			if (p->locs.v[p->loc_idx.slot[i] - 1].addr == addr)
				return (uint64_t)p->loc_idx.slot[i];
		}
	}
	if (n) {
		l.lines = malloc(n * sizeof(*lines));
		if (!l.lines)
			return 0;
		memcpy(l.lines, lines, n * sizeof(*lines));
	}
	if (VEC_PUSH(p->locs, l)) {
		free(l.lines);
		return 0;
	}
	if (addr)
		p->loc_idx.slot[i] = (int64_t)p->locs.n;
	return p->locs.n;
}

int pprof__add_sample(struct pprof *p, const uint64_t *locs, size_t nlocs, const int64_t *values,
		      size_t nvalues, const struct pprof_label *labels, size_t nlabels)
{
	struct pp_sample s = { 0 };

	if (nvalues != p->types.n)
		return -EINVAL;
	s.locs = malloc((nlocs ? nlocs : 1) * sizeof(*locs));
	s.values = malloc((nvalues ? nvalues : 1) * sizeof(*values));
	s.labels = calloc(nlabels ? nlabels : 1, sizeof(*s.labels));
	if (!s.locs || !s.values || !s.labels)
		goto nomem;
	memcpy(s.locs, locs, nlocs * sizeof(*locs));
	memcpy(s.values, values, nvalues * sizeof(*values));
	s.nlocs = nlocs;
	for (size_t i = 0; i < nlabels; i++) {
		struct pp_label *l = &s.labels[i];

		l->key = str_id(p, labels[i].key);
		l->str = labels[i].str ? str_id(p, labels[i].str) : 0;
		l->num = labels[i].str ? 0 : labels[i].num;
		l->unit = labels[i].str ? 0 : str_id(p, labels[i].unit);
		if (l->key < 0 || l->str < 0 || l->unit < 0)
			goto nomem;
	}
	s.nlabels = nlabels;
	if (VEC_PUSH(p->samples, s))
		goto nomem;
	return 0;
nomem:
	free(s.locs);
	free(s.values);
	free(s.labels);
	return -ENOMEM;
}

/* ---- protobuf encoding */

struct buf {
	uint8_t *d;
	size_t n, cap;
	bool oom;
};

static void put(struct buf *b, const void *p, size_t n)
{
	if (b->oom)
		return;
	if (b->n + n > b->cap) {
		size_t ncap = b->cap ? b->cap : 4096;
		uint8_t *nd;

		while (ncap < b->n + n)
			ncap *= 2;
		nd = realloc(b->d, ncap);
		if (!nd) {
			b->oom = true;
			return;
		}
		b->d = nd;
		b->cap = ncap;
	}
	memcpy(b->d + b->n, p, n);
	b->n += n;
}

static void varint(struct buf *b, uint64_t v)
{
	uint8_t t[10];
	size_t n = 0;

	do {
		t[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	put(b, t, n);
}

/* Varint field NUM = V; zero values are left out (proto3 defaults). */
static void fvar(struct buf *b, int num, uint64_t v)
{
	if (!v)
		return;
	varint(b, (uint64_t)num << 3);
	varint(b, v);
}

static void fbytes(struct buf *b, int num, const void *p, size_t n)
{
	varint(b, (uint64_t)num << 3 | 2);
	varint(b, n);
	put(b, p, n);
}

/* Embedded message NUM from the scratch buffer M (then emptied). */
static void fmsg(struct buf *b, int num, struct buf *m)
{
	b->oom |= m->oom;
	fbytes(b, num, m->d, m->n);
	m->n = 0;
}

static void fpacked(struct buf *b, int num, const uint64_t *v, size_t n, struct buf *tmp)
{
	if (!n)
		return;
	tmp->n = 0;
	for (size_t i = 0; i < n; i++)
		varint(tmp, v[i]);
	fmsg(b, num, tmp);
}

static void valuetype(struct buf *b, int num, const struct vt *v, struct buf *m)
{
	fvar(m, 1, (uint64_t)v->type);
	fvar(m, 2, (uint64_t)v->unit);
	fmsg(b, num, m);
}

int pprof__encode(const struct pprof *p, uint8_t **out, size_t *len)
{
	struct buf b = { 0 }, m = { 0 }, t = { 0 }, t2 = { 0 };

	for (size_t i = 0; i < p->types.n; i++)
		valuetype(&b, 1, &p->types.v[i], &m);
	for (size_t i = 0; i < p->samples.n; i++) {
		const struct pp_sample *s = &p->samples.v[i];

		fpacked(&m, 1, s->locs, s->nlocs, &t);
		fpacked(&m, 2, (const uint64_t *)s->values, p->types.n, &t);
		for (size_t k = 0; k < s->nlabels; k++) {
			fvar(&t, 1, (uint64_t)s->labels[k].key);
			fvar(&t, 2, (uint64_t)s->labels[k].str);
			fvar(&t, 3, (uint64_t)s->labels[k].num);
			fvar(&t, 4, (uint64_t)s->labels[k].unit);
			fmsg(&m, 3, &t);
		}
		fmsg(&b, 2, &m);
	}
	for (size_t i = 0; i < p->mappings.n; i++) {
		const struct pp_mapping *mp = &p->mappings.v[i];

		fvar(&m, 1, i + 1);
		fvar(&m, 2, mp->start);
		fvar(&m, 3, mp->limit);
		fvar(&m, 4, mp->offset);
		fvar(&m, 5, (uint64_t)mp->file);
		fvar(&m, 6, (uint64_t)mp->build_id);
		/* Symbolized: pprof must not go looking for the binary. */
		fvar(&m, 7, 1);
		fvar(&m, 8, 1);
		fvar(&m, 9, 1);
		fvar(&m, 10, 1);
		fmsg(&b, 3, &m);
	}
	for (size_t i = 0; i < p->locs.n; i++) {
		const struct pp_location *l = &p->locs.v[i];

		fvar(&m, 1, i + 1);
		fvar(&m, 2, l->mapping);
		fvar(&m, 3, l->addr);
		for (size_t k = 0; k < l->nlines; k++) {
			fvar(&t2, 1, l->lines[k].function_id);
			fvar(&t2, 2, (uint64_t)l->lines[k].line);
			fmsg(&m, 4, &t2);
		}
		fmsg(&b, 4, &m);
	}
	for (size_t i = 0; i < p->funcs.n; i++) {
		const struct pp_function *f = &p->funcs.v[i];

		fvar(&m, 1, i + 1);
		fvar(&m, 2, (uint64_t)f->name);
		fvar(&m, 3, (uint64_t)f->name);
		fvar(&m, 4, (uint64_t)f->file);
		fvar(&m, 5, (uint64_t)f->start_line);
		fmsg(&b, 5, &m);
	}
	for (size_t i = 0; i < p->strs.n; i++)
		fbytes(&b, 6, p->strs.v[i], strlen(p->strs.v[i]));
	fvar(&b, 9, (uint64_t)p->time_nanos);
	fvar(&b, 10, (uint64_t)p->duration_nanos);
	if (p->period_type.type)
		valuetype(&b, 11, &p->period_type, &m);
	fvar(&b, 12, (uint64_t)p->period);
	if (p->comments.n)
		fpacked(&b, 13, (const uint64_t *)p->comments.v, p->comments.n, &t);
	fvar(&b, 14, (uint64_t)p->default_type);
	free(m.d);
	free(t.d);
	free(t2.d);
	if (b.oom) {
		free(b.d);
		return -ENOMEM;
	}
	*out = b.d;
	*len = b.n;
	return 0;
}

int pprof__write(const struct pprof *p, const char *path)
{
	uint8_t *raw = NULL;
	size_t len = 0;
	gzFile gz;
	int err, fd;

	err = pprof__encode(p, &raw, &len);
	if (err) {
		gt_seterr("cannot encode the profile: %s", strerror(-err));
		return err;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		err = -errno;
		gt_seterr("cannot write %s: %s", path, strerror(errno));
		free(raw);
		return err;
	}
	gz = gzdopen(fd, "wb");
	if (!gz) {
		close(fd);
		free(raw);
		gt_seterr("cannot write %s: out of memory", path);
		return -ENOMEM;
	}
	/* gzwrite takes an unsigned int length: write in chunks. */
	for (size_t off = 0; off < len;) {
		unsigned int n = len - off > (1U << 30) ? 1U << 30 : (unsigned int)(len - off);

		if (gzwrite(gz, raw + off, n) != (int)n) {
			err = -EIO;
			break;
		}
		off += n;
	}
	if (gzclose(gz) != Z_OK && !err)
		err = -EIO;
	free(raw);
	if (err)
		gt_seterr("cannot write %s: I/O error", path);
	return err;
}
