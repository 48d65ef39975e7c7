// SPDX-License-Identifier: MIT
/*
 * Go's pclntab reader: function table, pc-value tables (pcsp, pcfile, pcln,
 * pcdata) and the inline tree, for the 1.16+ formats (go-runtime-facts §7).
 * Layouts follow src/runtime/symtab.go, runtime2.go (_func) and
 * symtabinl.go (inlinedCall) of each release.
 *
 * Everything read from the file is bounds-checked: the input is untrusted.
 * Queries are safe to run from several threads: the lazily built caches
 * (per-function decoded tables, name index) are published with atomics.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gosym/pclntab.h"
#include "util/log.h"

#define MAGIC_115 0xfffffffbu /* Go 1.2-1.15 */
#define MAGIC_116 0xfffffffau /* Go 1.16-1.17 */
#define MAGIC_118 0xfffffff0u /* Go 1.18-1.19 */
#define MAGIC_120 0xfffffff1u /* Go 1.20+ */

#define PCDATA_INLTREE 2   /* abi.PCDATA_InlTreeIndex */
#define FUNCDATA_INLTREE 3 /* abi.FUNCDATA_InlTree */
#define FUNCDATA_NONE 0xffffffffu
#define MAX_NFUNC (1u << 24)
#define MAX_INLINE_DEPTH 1024
/* Functions sampled to validate a gofunc candidate, and the most looked at. */
#define GOFUNC_SAMPLE 64
#define GOFUNC_BUDGET 4096

/* moduledata word indexes (pointer-sized words; slices take three). */
#define MD_FUNCNAMETAB 1
#define MD_CUTAB 4
#define MD_FILETAB 7
#define MD_PCLNTABLE 13
#define MD_TEXT 22

/* A sub-table of the pclntab: bytes [p, p + len) of the file. */
struct region {
	const uint8_t *p;
	uint64_t len;
	bool nul_tail; /* last byte is NUL: every string that starts inside is terminated */
};

/* Field offsets inside _func, per format. */
struct func_layout {
	unsigned name, pcsp, pcfile, pcln, npcdata, cu, start_line, func_id, nfuncdata, size;
	bool has_start_line;
};

#define NO_FILE 0xffffffffu
#define NO_LINE INT32_MIN

/* What holds for one pc range of a function: pcfile, pcln and the inline index merged. */
struct pcrow {
	uint32_t file; /* offset into filetab (already resolved through cutab), or NO_FILE */
	int32_t line;  /* NO_LINE past the end of the line table */
	int32_t inl;   /* inline tree index, -1 = the physical function */
};

/*
 * The decoded tables of one function, built on first use: row[i] holds for pc
 * offsets in [end[i-1], end[i]). One binary search answers file, line and inline
 * index together, which is what keeps symbolization fast.
 */
struct func_cache {
	uint32_t n;
	const uint32_t *end;
	const struct pcrow *row;
	const uint8_t *inltree; /* first inline entry in the file, or NULL */
	size_t inl_cnt;		/* entries available in the file */
};

struct func_rec {
	struct go_func f;
	const uint8_t *fp; /* the _func record */
};

struct name_index {
	uint32_t mask;
	uint32_t *slot; /* rec index + 1; 0 = empty */
};

struct pclntab {
	const struct elf_file *ef;
	const char *path;
	enum pcln_format fmt;
	const uint8_t *hdr;
	uint64_t size, addr;
	int ptr_size, quantum;
	uint64_t nfunc, nfiles, func_off;
	uint64_t text_start;
	const char *text_src;
	uint64_t moduledata;
	uint64_t gofunc; /* 1.18+: base of funcdata offsets; 0 unknown */
	int wrapper_id;	 /* abi.FuncIDWrapper of this Go version, -1 unknown */
	struct func_layout fl;
	struct region funcname, cutab, filetab, pctab, pcln;
	bool big_endian;
	bool scanned; /* found without a section: size is only an upper bound */
	struct func_rec *recs;
	size_t nrecs;
	/* find_func buckets: bucket[b] = first function covering lo + (b << shift). */
	uint64_t lo, hi;
	unsigned shift;
	uint32_t *bucket;
	size_t nbuckets;
	struct func_cache **cache;
	struct name_index *names;
};

/* ---- small readers --------------------------------------------------------------------- */

static inline uint32_t rd32(const struct pclntab *p, const uint8_t *b)
{
	uint32_t v;

	memcpy(&v, b, sizeof(v));
	return p->big_endian ? __builtin_bswap32(v) : v;
}

static uint64_t rdptr(const struct pclntab *p, const uint8_t *b)
{
	return p->ptr_size == 8 ? elf_file__u64(p->ef, b) : elf_file__u32(p->ef, b);
}

/* Link-time vaddr of a byte inside the table. */
static uint64_t tab_vaddr(const struct pclntab *p, const uint8_t *b)
{
	return p->addr + (uint64_t)(b - p->hdr);
}

/* An absolute address stored in the table (1.16/1.17 functab), honouring PIE relocations. */
static uint64_t rdabs(const struct pclntab *p, const uint8_t *b)
{
	uint64_t v = rdptr(p, b);

	if (!v)
		elf_file__read_addr(p->ef, tab_vaddr(p, b), &v);
	return v;
}

/*
 * True when S (NUL-terminated) is well-formed UTF-8 without control characters, as
 * every name the Go toolchain writes is: anything else comes from a corrupt table, and
 * must not reach text or JSON output.
 */
static bool name_ok(const uint8_t *s)
{
	while (*s) {
		unsigned n;

		if (*s < 0x80) {
			if (*s < 0x20 || *s == 0x7f)
				return false;
			s++;
			continue;
		}
		if ((*s & 0xe0) == 0xc0 && *s >= 0xc2)
			n = 1;
		else if ((*s & 0xf0) == 0xe0)
			n = 2;
		else if ((*s & 0xf8) == 0xf0 && *s <= 0xf4)
			n = 3;
		else
			return false;
		for (unsigned i = 1; i <= n; i++)
			if ((s[i] & 0xc0) != 0x80)
				return false;
		/* Overlong forms, UTF-16 surrogates, beyond U+10FFFF. */
		if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0) ||
		    (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
			return false;
		s += n + 1;
	}
	return true;
}

/* A NUL-terminated, well-formed string at OFF inside region R, or NULL. */
static const char *region_str(const struct region *r, uint64_t off)
{
	if (off >= r->len)
		return NULL;
	if (!r->nul_tail && !memchr(r->p + off, '\0', r->len - off))
		return NULL;
	if (!name_ok(r->p + off))
		return NULL;
	return (const char *)r->p + off;
}

/*
 * Go's varint as read by the runtime (readvarint): 7 bits a byte, at most
 * 5 bytes for a uint32. Returns bytes used, 0 when truncated or too long.
 */
static inline unsigned read_varint(const uint8_t *b, const uint8_t *end, uint32_t *v)
{
	uint32_t x = 0;

	for (unsigned i = 0; i < 5 && b + i < end; i++) {
		x |= (uint32_t)(b[i] & 0x7f) << (7 * i);
		if (!(b[i] & 0x80)) {
			*v = x;
			return i + 1;
		}
	}
	return 0;
}

/*
 * One step of a pc-value table (runtime step()): value delta (zig-zag) then pc
 * delta in units of the quantum. FIRST allows a zero value delta. Returns the
 * new position, or NULL at the end of the table or on malformed input.
 */
static inline const uint8_t *pc_step(const uint8_t *b, const uint8_t *end, int quantum,
				     uint64_t *pc, int32_t *val, bool first)
{
	uint32_t uv, pcd;
	unsigned n;

	if (b >= end || (b[0] == 0 && !first))
		return NULL;
	n = read_varint(b, end, &uv);
	if (!n)
		return NULL;
	b += n;
	n = read_varint(b, end, &pcd);
	if (!n)
		return NULL;
	/* Go's int32 arithmetic wraps: do it unsigned. */
	*val = (int32_t)((uint32_t)*val + (-(uv & 1) ^ (uv >> 1)));
	*pc += (uint64_t)pcd * quantum;
	return b + n;
}

/* ---- _func access ---------------------------------------------------------------------- */

static uint32_t func_u32(const struct pclntab *p, const uint8_t *fp, unsigned off)
{
	return rd32(p, fp + off);
}

/* Bytes of the pcln region from FP on (FP lies inside it). */
static uint64_t func_room(const struct pclntab *p, const uint8_t *fp)
{
	return p->pcln.len - (uint64_t)(fp - p->pcln.p);
}

/* Offset into pctab of pcdata table I of the function, 0 if none. */
static uint32_t func_pcdata(const struct pclntab *p, const uint8_t *fp, uint32_t i)
{
	uint32_t npc = func_u32(p, fp, p->fl.npcdata);

	if (i >= npc || (uint64_t)p->fl.size + 4ull * (i + 1) > func_room(p, fp))
		return 0;
	return rd32(p, fp + p->fl.size + 4 * i);
}

/* Link-time vaddr of funcdata I of the function, 0 if none or unknown. */
static uint64_t func_funcdata(const struct pclntab *p, const uint8_t *fp, uint32_t i)
{
	uint32_t npc = func_u32(p, fp, p->fl.npcdata);
	uint8_t nfd = fp[p->fl.nfuncdata];
	uint64_t pos, v;

	if (i >= nfd || npc > MAX_NFUNC)
		return 0;
	pos = p->fl.size + 4ull * npc;
	if (p->fmt != PCLN_FMT_116) {
		uint32_t off;

		if (pos + 4ull * (i + 1) > func_room(p, fp) || !p->gofunc)
			return 0;
		off = rd32(p, fp + pos + 4 * i);
		return off == FUNCDATA_NONE ? 0 : p->gofunc + off;
	}
	/* 1.16/1.17: pointer-aligned absolute pointers (by address), 0 = none. */
	pos += (tab_vaddr(p, fp) + pos) & (p->ptr_size - 1) ? 4 : 0;
	pos += (uint64_t)i * p->ptr_size;
	if (pos + p->ptr_size > func_room(p, fp))
		return 0;
	v = rdptr(p, fp + pos);
	if (!v)
		elf_file__read_addr(p->ef, tab_vaddr(p, fp + pos), &v);
	return v;
}

/* The name at nameOff OFF (signed in the file), or NULL. */
static const char *name_at(const struct pclntab *p, uint32_t off)
{
	return (int32_t)off < 0 ? NULL : region_str(&p->funcname, off);
}

static size_t rec_index(const struct pclntab *p, const struct go_func *fn)
{
	const struct func_rec *r = (const struct func_rec *)fn;

	/* go_func is the first member of func_rec: accept only pointers we handed out. */
	if (r >= p->recs && r < p->recs + p->nrecs)
		return (size_t)(r - p->recs);
	fn = pclntab__find_func(p, fn->entry);
	return fn ? (size_t)((const struct func_rec *)fn - p->recs) : SIZE_MAX;
}

/* ---- pc-value tables ------------------------------------------------------------------- */

static uint64_t func_size(const struct go_func *fn)
{
	uint64_t sz = fn->end - fn->entry;

	return sz > UINT32_MAX ? UINT32_MAX : sz;
}

int pclntab__pcvalue_decode(const uint8_t *tab, size_t len, int quantum, uint64_t pcoff,
			    int32_t *val)
{
	const uint8_t *b = tab, *end;
	uint64_t pc = 0;
	int32_t v = -1;

	if (!tab || quantum <= 0)
		return -EINVAL;
	end = tab + len;
	while ((b = pc_step(b, end, quantum, &pc, &v, pc == 0))) {
		if (pcoff < pc) {
			*val = v;
			return 0;
		}
	}
	return -ENOENT;
}

/* Walk table OFF of FN up to PCOFF without caching: Go's pcvalue(). */
static int pcvalue_walk(const struct pclntab *p, const struct go_func *fn, uint32_t off,
			uint64_t pcoff, int32_t *out)
{
	if (!off || off >= p->pctab.len || pcoff >= func_size(fn))
		return -ENOENT;
	return pclntab__pcvalue_decode(p->pctab.p + off, p->pctab.len - off, p->quantum, pcoff,
				       out);
}

/* A pc-value table read row by row: the current row holds below pc offset END. */
struct pcstream {
	const uint8_t *b, *lim;
	uint64_t pc, size;
	int32_t val;
	uint32_t end;
	bool done;
};

/* Load the next row; past the function's end there is nothing worth decoding. */
static inline void stream_next(const struct pclntab *p, struct pcstream *s)
{
	if (s->done || s->pc >= s->size ||
	    !(s->b = pc_step(s->b, s->lim, p->quantum, &s->pc, &s->val, s->pc == 0))) {
		s->done = true;
		return;
	}
	s->end = s->pc > UINT32_MAX ? UINT32_MAX : (uint32_t)s->pc;
}

static void stream_init(const struct pclntab *p, struct pcstream *s, uint32_t off, uint64_t size)
{
	memset(s, 0, sizeof(*s));
	s->val = -1;
	s->size = size;
	s->done = !off || off >= p->pctab.len;
	if (s->done)
		return;
	s->b = p->pctab.p + off;
	s->lim = p->pctab.p + p->pctab.len;
	stream_next(p, s);
}

/* filetab offset of file number FNO of the function (per-CU index through cutab). */
static uint32_t file_off(const struct pclntab *p, const uint8_t *fp, int32_t fno)
{
	uint64_t idx;
	uint32_t off;

	if (fno < 0)
		return NO_FILE;
	idx = (uint64_t)func_u32(p, fp, p->fl.cu) + (uint32_t)fno;
	if (idx >= p->cutab.len / 4)
		return NO_FILE;
	off = rd32(p, p->cutab.p + idx * 4);
	if (off == NO_FILE || !region_str(&p->filetab, off))
		return NO_FILE;
	return off;
}

/*
 * Merge pcfile, pcln and the inline-index table of R into rows (ROWS NULL: count
 * only). Each row ends where any of the three tables changes value.
 */
static uint32_t merge_rows(const struct pclntab *p, const struct func_rec *r,
			   const uint32_t offs[3], uint32_t *ends, struct pcrow *rows)
{
	uint64_t size = func_size(&r->f);
	int32_t last_fno = INT32_MIN;
	uint32_t n = 0, prev = 0, last_foff = NO_FILE;
	struct pcstream st[3];

	for (int i = 0; i < 3; i++)
		stream_init(p, &st[i], offs[i], size);
	while (!st[0].done || !st[1].done || !st[2].done) {
		uint32_t e = UINT32_MAX;

		for (int i = 0; i < 3; i++)
			if (!st[i].done && st[i].end < e)
				e = st[i].end;
		/* Empty ranges (a zero pc delta) can never match a pc. */
		if (e > prev) {
			if (rows) {
				int32_t fno = st[0].done ? -1 : st[0].val;

				if (fno != last_fno) {
					last_fno = fno;
					last_foff = file_off(p, r->fp, fno);
				}
				ends[n] = e;
				rows[n].file = last_foff;
				rows[n].line = st[1].done ? NO_LINE : st[1].val;
				rows[n].inl = st[2].done ? -1 : st[2].val;
			}
			n++;
			prev = e;
		}
		if (e >= size || n == UINT32_MAX / sizeof(struct pcrow))
			break;
		for (int i = 0; i < 3; i++)
			if (!st[i].done && st[i].end == e)
				stream_next(p, &st[i]);
	}
	return n;
}

static struct func_cache *build_cache(const struct pclntab *p, const struct func_rec *r)
{
	uint64_t tree;
	uint32_t offs[3], n;
	struct func_cache *c;
	uint32_t *ends;
	size_t avail;

	offs[0] = func_u32(p, r->fp, p->fl.pcfile);
	offs[1] = func_u32(p, r->fp, p->fl.pcln);
	offs[2] = func_pcdata(p, r->fp, PCDATA_INLTREE);
	tree = offs[2] ? func_funcdata(p, r->fp, FUNCDATA_INLTREE) : 0;
	if (!tree)
		offs[2] = 0;
	/* Count, then fill one allocation: the header, the ends, then the rows. */
	n = merge_rows(p, r, offs, NULL, NULL);
	c = malloc(sizeof(*c) + (size_t)n * (sizeof(uint32_t) + sizeof(struct pcrow)) + 8);
	if (!c)
		return NULL;
	memset(c, 0, sizeof(*c));
	ends = (uint32_t *)(c + 1);
	c->row = (const struct pcrow *)(((uintptr_t)(ends + n) + 7) & ~(uintptr_t)7);
	c->end = ends;
	c->n = merge_rows(p, r, offs, ends, (struct pcrow *)c->row);
	if (tree) {
		size_t esz = p->fmt == PCLN_FMT_120 ? 16 : 20;

		c->inltree = elf_file__vaddr_span(p->ef, tree, &avail);
		c->inl_cnt = c->inltree ? avail / esz : 0;
	}
	return c;
}

static const struct func_cache *get_cache(const struct pclntab *p, size_t ri)
{
	struct func_cache *c = __atomic_load_n(&p->cache[ri], __ATOMIC_ACQUIRE), *exp = NULL;

	if (c)
		return c;
	c = build_cache(p, &p->recs[ri]);
	if (!c)
		return NULL;
	/* Another thread may have decoded the same function: keep the first. */
	if (!__atomic_compare_exchange_n(&p->cache[ri], &exp, c, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE)) {
		free(c);
		c = exp;
	}
	return c;
}

/* The row holding PCOFF, or NULL past the last one. */
static inline const struct pcrow *row_at(const struct func_cache *c, uint64_t pcoff)
{
	uint32_t lo = 0, hi = c->n;

	while (lo < hi) {
		uint32_t mid = (lo + hi) >> 1;

		if (c->end[mid] > pcoff)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo < c->n ? &c->row[lo] : NULL;
}

/* ---- inline tree ----------------------------------------------------------------------- */

struct inl_entry {
	uint8_t func_id;
	uint32_t name_off;
	int32_t parent_pc;
	int32_t start_line; /* 1.20+ only */
};

static bool inl_get(const struct pclntab *p, const struct func_cache *c, int32_t ix,
		    struct inl_entry *e)
{
	const uint8_t *b;

	if (ix < 0 || (size_t)ix >= c->inl_cnt)
		return false;
	if (p->fmt == PCLN_FMT_120) {
		b = c->inltree + (size_t)ix * 16;
		e->func_id = b[0];
		e->name_off = rd32(p, b + 4);
		e->parent_pc = (int32_t)rd32(p, b + 8);
		e->start_line = (int32_t)rd32(p, b + 12);
	} else {
		/* parent i16, funcID u8, pad, file i32, line i32, func_ i32, parentPc i32 */
		b = c->inltree + (size_t)ix * 20;
		e->func_id = b[2];
		e->name_off = rd32(p, b + 12);
		e->parent_pc = (int32_t)rd32(p, b + 16);
		e->start_line = 0;
	}
	return true;
}

/* ---- locating the table ---------------------------------------------------------------- */

static int format_of(uint32_t magic, enum pcln_format *fmt)
{
	switch (magic) {
	case MAGIC_116:
		*fmt = PCLN_FMT_116;
		return 0;
	case MAGIC_118:
		*fmt = PCLN_FMT_118;
		return 0;
	case MAGIC_120:
		*fmt = PCLN_FMT_120;
		return 0;
	case MAGIC_115:
		return -EPROTONOSUPPORT;
	default:
		return -EINVAL;
	}
}

/* Header fields; checks everything that can be checked without the functions. */
static int parse_header(struct pclntab *p)
{
	const uint8_t *h = p->hdr;
	uint64_t w[8], offs[5], hdr_len;
	int nw, psz, err;

	if (p->size < 8)
		return -EINVAL;
	err = format_of(rd32(p, h), &p->fmt);
	if (err)
		return err;
	psz = h[7];
	if (h[4] || h[5] || (h[6] != 1 && h[6] != 2 && h[6] != 4) ||
	    psz != elf_file__ptr_size(p->ef))
		return -EINVAL;
	p->quantum = h[6];
	p->ptr_size = psz;
	nw = p->fmt == PCLN_FMT_116 ? 7 : 8;
	hdr_len = 8 + (uint64_t)nw * psz;
	if (p->size < hdr_len)
		return -EINVAL;
	for (int i = 0; i < nw; i++)
		w[i] = rdptr(p, h + 8 + i * psz);
	p->nfunc = w[0];
	p->nfiles = w[1];
	/* funcname, cu, filetab, pctab, pcln offsets; 1.18+ has textStart in between. */
	memcpy(offs, &w[nw - 5], sizeof(offs));
	if (p->nfunc == 0 || p->nfunc > MAX_NFUNC)
		return -EINVAL;
	for (int i = 0; i < 5; i++)
		if (offs[i] < hdr_len || offs[i] > p->size)
			return -EINVAL;

	struct region *r[5] = { &p->funcname, &p->cutab, &p->filetab, &p->pctab, &p->pcln };
	for (int i = 0; i < 5; i++) {
		/* A region ends where the next one (in file order) starts, or at the table's end. */
		uint64_t end = p->size;

		for (int j = 0; j < 5; j++)
			if (offs[j] > offs[i] && offs[j] < end)
				end = offs[j];
		r[i]->p = h + offs[i];
		r[i]->len = end - offs[i];
		r[i]->nul_tail = r[i]->len && r[i]->p[r[i]->len - 1] == '\0';
	}
	/* The function table of nfunc entries plus the end PC must fit. */
	if (p->fmt == PCLN_FMT_116) {
		if ((2 * p->nfunc + 1) * psz > p->pcln.len)
			return -EINVAL;
	} else if ((2 * p->nfunc + 1) * 4 > p->pcln.len) {
		return -EINVAL;
	}
	return 0;
}

static void set_layout(struct pclntab *p)
{
	struct func_layout *l = &p->fl;
	unsigned b = p->fmt == PCLN_FMT_116 ? p->ptr_size : 4;

	/* 1.16/1.17 start with a uintptr entry, 1.18+ with a u32 entryOff. */
	l->name = b;
	l->pcsp = b + 12;
	l->pcfile = b + 16;
	l->pcln = b + 20;
	l->npcdata = b + 24;
	l->cu = b + 28;
	if (p->fmt == PCLN_FMT_120) {
		l->has_start_line = true;
		l->start_line = 36;
		l->func_id = 40;
		l->nfuncdata = 43;
		l->size = 44;
	} else {
		l->func_id = b + 32;
		l->nfuncdata = b + 35;
		l->size = b + 36;
	}
}

/* Try a pcHeader at B with AVAIL bytes following, link-time VADDR. */
static int try_header(struct pclntab *p, const uint8_t *b, uint64_t avail, uint64_t vaddr)
{
	p->hdr = b;
	p->size = avail;
	p->addr = vaddr;
	return parse_header(p);
}

/*
 * Without a .gopclntab section: scan the file-backed PT_LOAD data (read-only
 * segments first) for a pcHeader that validates.
 */
static int scan_for_header(struct pclntab *p)
{
	int pass, old = 0;

	for (pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < elf_file__segment_cnt(p->ef); i++) {
			const struct elf_segment *s = elf_file__segment_at(p->ef, i);
			bool ro = !(s->flags & 2) && !(s->flags & 1);
			const uint8_t *base;
			size_t len;

			if (ro != (pass == 0))
				continue;
			base = elf_file__vaddr_span(p->ef, s->vaddr, &len);
			for (size_t off = 0; base && off + 16 <= len; off += 4) {
				const uint8_t *b = base + off;
				uint32_t m;
				int err;

				/* Cheap pre-check: pad bytes zero, magic's high bytes all 0xff. */
				if (b[4] || b[5] || (b[7] != 4 && b[7] != 8))
					continue;
				m = rd32(p, b);
				if ((m & 0xfffffff0u) != 0xfffffff0u)
					continue;
				err = try_header(p, b, len - off, s->vaddr + off);
				if (!err)
					return 0;
				if (err == -EPROTONOSUPPORT && b[6] >= 1 && b[6] <= 4)
					old = err;
			}
		}
	}
	return old ? old : -ENOENT;
}

static int locate(struct pclntab *p)
{
	static const char *const names[] = { ".gopclntab", ".data.rel.ro.gopclntab" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const struct elf_section *s = elf_file__section(p->ef, names[i]);
		int err;

		if (!s || s->type == 8 /* SHT_NOBITS */)
			continue;
		if (!s->data) {
			gt_seterr("truncated or corrupt ELF file: %s (%s lies beyond the end of the "
				  "file)", p->path, names[i]);
			return -EINVAL;
		}
		err = try_header(p, s->data, s->size, s->addr);
		if (err == -EPROTONOSUPPORT)
			goto old;
		if (err == -EINVAL) {
			uint32_t m = s->size >= 4 ? rd32(p, s->data) : 0;

			if (!format_of(m, &p->fmt)) {
				gt_seterr("corrupt %s in %s", names[i], p->path);
				return -EINVAL;
			}
			gt_seterr("unknown pclntab format (magic 0x%08x) in %s", m, p->path);
			/* A newer Go's magic: say it is unsupported rather than corrupt. */
			return (m & 0xfffffff0u) == 0xfffffff0u ? -EPROTONOSUPPORT : -EINVAL;
		}
		return err;
	}
	switch (scan_for_header(p)) {
	case 0:
		p->scanned = true;
		vlog("gotrace: %s has no .gopclntab section; found a pclntab at 0x%llx\n", p->path,
		     (unsigned long long)p->addr);
		return 0;
	case -EPROTONOSUPPORT:
		goto old;
	default:
		gt_seterr("not a Go binary: no .gopclntab section in %s", p->path);
		return -ENOENT;
	}
old:
	gt_seterr("%s: Go 1.15 or older pclntab format is not supported", p->path);
	return -EPROTONOSUPPORT;
}

/* ---- moduledata, runtime.text, gofunc -------------------------------------------------- */

static bool md_word(const struct pclntab *p, uint64_t md, int idx, uint64_t *v)
{
	return !elf_file__read_addr(p->ef, md + (uint64_t)idx * p->ptr_size, v);
}

/* Does a moduledata start at MD? Its first slices point into this pclntab. */
static bool md_valid(const struct pclntab *p, uint64_t md)
{
	uint64_t w;

	return md_word(p, md, 0, &w) && w == p->addr && md_word(p, md, MD_FUNCNAMETAB, &w) &&
	       w == tab_vaddr(p, p->funcname.p) && md_word(p, md, MD_CUTAB, &w) &&
	       w == tab_vaddr(p, p->cutab.p) && md_word(p, md, MD_FILETAB, &w) &&
	       w == tab_vaddr(p, p->filetab.p);
}

static uint64_t find_moduledata(const struct pclntab *p)
{
	const struct elf_reloc *rel;
	uint64_t md;
	size_t n;

	if (!elf_file__symbol(p->ef, "runtime.firstmoduledata", &md, NULL) && md_valid(p, md))
		return md;
	/* Stripped: a pointer-aligned word holding the pcHeader address, in writable data. */
	for (size_t i = 0; i < elf_file__segment_cnt(p->ef); i++) {
		const struct elf_segment *s = elf_file__segment_at(p->ef, i);
		const uint8_t *base;
		size_t len;

		if (!(s->flags & 2))
			continue;
		base = elf_file__vaddr_span(p->ef, s->vaddr, &len);
		for (size_t off = (-s->vaddr) & (p->ptr_size - 1); base && off + p->ptr_size <= len;
		     off += p->ptr_size) {
			if (rdptr(p, base + off) == p->addr && md_valid(p, s->vaddr + off))
				return s->vaddr + off;
		}
	}
	/* PIE whose pointer slots are only filled by the loader: search the relocations. */
	if (elf_file__is_dyn(p->ef) && !elf_file__relative_relocs(p->ef, &rel, &n)) {
		for (size_t i = 0; i < n; i++)
			if (rel[i].addend == p->addr && md_valid(p, rel[i].offset))
				return rel[i].offset;
	}
	return 0;
}

/*
 * A table found by scanning (externally linked PIE before Go 1.26 merges it into
 * .data.rel.ro) runs to the end of its segment as far as we know; moduledata's
 * pclntable slice says where it really ends.
 */
static void tighten_size(struct pclntab *p)
{
	uint64_t ptr, len, need;

	if (!p->scanned || !p->moduledata || !md_word(p, p->moduledata, MD_PCLNTABLE, &ptr) ||
	    !md_word(p, p->moduledata, MD_PCLNTABLE + 1, &len))
		return;
	need = (2 * p->nfunc + 1) * (p->fmt == PCLN_FMT_116 ? p->ptr_size : 4);
	if (ptr != tab_vaddr(p, p->pcln.p) || len > p->pcln.len || len < need)
		return;
	p->pcln.len = len;
	p->size = (uint64_t)(p->pcln.p - p->hdr) + len;
}

static void find_text_start(struct pclntab *p, const struct pclntab_opts *opts)
{
	const struct elf_section *s;
	uint64_t v;

	if (opts && opts->text_start) {
		p->text_start = opts->text_start;
		p->text_src = "opts";
		return;
	}
	/* pcHeader.textStart: 1.18-1.25 (a relocated word in PIE). 1.26+ writes 0. */
	if (p->fmt != PCLN_FMT_116 && !elf_file__read_addr(p->ef, p->addr + 8 + 2 * p->ptr_size, &v) &&
	    v) {
		p->text_start = v;
		p->text_src = "pcheader";
		return;
	}
	/* With external linking runtime.text is not the start of .text: never guess from it first. */
	if (!elf_file__symbol(p->ef, "runtime.text", &v, NULL) && v) {
		p->text_start = v;
		p->text_src = "symtab";
		return;
	}
	if (p->moduledata && md_word(p, p->moduledata, MD_TEXT, &v) && v) {
		p->text_start = v;
		p->text_src = "moduledata";
		return;
	}
	s = elf_file__section(p->ef, ".text");
	if (s) {
		p->text_start = s->addr;
		p->text_src = "text-section";
		vlog("gotrace: %s: runtime.text not found, assuming the .text section start\n",
		     p->path);
	}
}

/* ---- the function index ---------------------------------------------------------------- */

static int rec_cmp(const void *a, const void *b)
{
	const struct func_rec *x = a, *y = b;

	if (x->f.entry != y->f.entry)
		return x->f.entry < y->f.entry ? -1 : 1;
	return x->f.idx < y->f.idx ? -1 : x->f.idx > y->f.idx;
}

/*
 * Like Go's findfunctab: split [lo, hi) into buckets (4 KiB, or larger when the
 * range is huge) that each record the first function covering their start, so
 * find_func only searches the few functions of one bucket.
 */
static int build_buckets(struct pclntab *p)
{
	uint64_t span, limit = 4 * (uint64_t)p->nrecs + 1024;
	size_t fi = 0;

	p->lo = p->recs[0].f.entry;
	p->hi = p->recs[p->nrecs - 1].f.end;
	span = p->hi - p->lo;
	p->shift = 12;
	while ((span >> p->shift) >= limit)
		p->shift++;
	p->nbuckets = (span >> p->shift) + 1;
	p->bucket = malloc((p->nbuckets + 1) * sizeof(*p->bucket));
	if (!p->bucket)
		return -ENOMEM;
	for (size_t b = 0; b < p->nbuckets; b++) {
		uint64_t start = p->lo + ((uint64_t)b << p->shift);

		while (fi + 1 < p->nrecs && p->recs[fi + 1].f.entry <= start)
			fi++;
		p->bucket[b] = (uint32_t)fi;
	}
	p->bucket[p->nbuckets] = (uint32_t)(p->nrecs - 1);
	return 0;
}

static int build_index(struct pclntab *p)
{
	const uint8_t *ft = p->pcln.p;
	bool sorted = true;
	size_t n = 0;

	/* Bucket indexes are 32-bit. */
	if (p->nfunc > UINT32_MAX / 2)
		return -EINVAL;
	p->recs = malloc(p->nfunc * sizeof(*p->recs));
	if (!p->recs)
		return -ENOMEM;
	for (uint64_t i = 0; i < p->nfunc; i++) {
		struct func_rec *r = &p->recs[n];
		uint64_t entry, end, foff;
		const char *name;

		if (p->fmt == PCLN_FMT_116) {
			const uint8_t *e = ft + 2 * i * p->ptr_size;

			entry = rdabs(p, e);
			foff = rdptr(p, e + p->ptr_size);
			end = rdabs(p, e + 2 * p->ptr_size);
		} else {
			const uint8_t *e = ft + 8 * i;

			entry = p->text_start + rd32(p, e);
			foff = rd32(p, e + 4);
			end = p->text_start + rd32(p, e + 8);
		}
		/* The _func record (fixed part) must lie in the table. */
		if (foff > p->pcln.len || p->fl.size > p->pcln.len - foff)
			continue;
		r->fp = ft + foff;
		name = name_at(p, func_u32(p, r->fp, p->fl.name));
		r->f.entry = entry;
		r->f.end = end > entry ? end : entry;
		r->f.name = name ? name : "?";
		r->f.idx = (uint32_t)i;
		if (n && entry < p->recs[n - 1].f.entry)
			sorted = false;
		n++;
	}
	p->nrecs = n;
	if (!n)
		return -EINVAL;
	if (!sorted) {
		qsort(p->recs, n, sizeof(*p->recs), rec_cmp);
		/* Keep ranges disjoint so a PC has one function. */
		for (size_t i = 0; i + 1 < n; i++)
			if (p->recs[i].f.end > p->recs[i + 1].f.entry)
				p->recs[i].f.end = p->recs[i + 1].f.entry;
	}
	p->cache = calloc(n, sizeof(*p->cache));
	if (!p->cache)
		return -ENOMEM;
	return build_buckets(p);
}

/* ---- gofunc (1.18+) -------------------------------------------------------------------- */

/* Is every inline entry that function R's inline table uses plausible with gofunc = BASE? */
static int check_inltree(struct pclntab *p, const struct func_rec *r, uint64_t base)
{
	uint32_t toff = func_pcdata(p, r->fp, PCDATA_INLTREE);
	size_t esz = p->fmt == PCLN_FMT_120 ? 16 : 20, avail;
	uint64_t size = func_size(&r->f), tree;
	int32_t maxix = -1;
	struct pcstream st;
	const uint8_t *t;
	int ok = 1;

	p->gofunc = base;
	tree = toff ? func_funcdata(p, r->fp, FUNCDATA_INLTREE) : 0;
	p->gofunc = 0;
	if (!tree)
		return -1; /* nothing to judge by */
	for (stream_init(p, &st, toff, size); !st.done; stream_next(p, &st))
		if (st.val > maxix)
			maxix = st.val;
	if (maxix < 0)
		return -1;
	t = elf_file__vaddr_span(p->ef, tree, &avail);
	if (!t || avail / esz <= (size_t)maxix)
		return 0;
	for (int32_t ix = 0; ix <= maxix && ok; ix++) {
		const uint8_t *e = t + (size_t)ix * esz;
		uint32_t name_off = rd32(p, e + (esz == 16 ? 4 : 12));
		int32_t ppc = (int32_t)rd32(p, e + (esz == 16 ? 8 : 16));

		if (esz == 16 && (e[1] || e[2] || e[3]))
			ok = 0;
		else if (esz == 20 && ((int16_t)elf_file__u16(p->ef, e) < -1 || e[3]))
			ok = 0;
		else if (ppc < 0 || (uint64_t)ppc >= size || name_off >= p->funcname.len ||
			 (name_off && p->funcname.p[name_off - 1] != '\0'))
			ok = 0;
	}
	return ok;
}

/* Score a gofunc candidate: 1 valid, 0 invalid, -1 undecided (no inlining seen). */
static int judge_gofunc(struct pclntab *p, uint64_t base)
{
	size_t step = p->nrecs / GOFUNC_SAMPLE + 1;
	int seen = 0, budget = GOFUNC_BUDGET;

	if (!base || !elf_file__vaddr_ptr(p->ef, base, 1))
		return 0;
	for (size_t i = 0; i < p->nrecs && seen < 8; i += step) {
		/* Walk forward to the next function that has an inline tree (bounded work). */
		for (size_t j = i; j < p->nrecs && j < i + step && budget-- > 0; j++) {
			int r = check_inltree(p, &p->recs[j], base);

			if (r == 0)
				return 0;
			if (r == 1) {
				seen++;
				break;
			}
		}
	}
	return seen ? 1 : -1;
}

static void find_gofunc(struct pclntab *p, int go_minor)
{
	uint64_t cand[5];
	int nc = 0, undecided = -1;

	if (p->fmt == PCLN_FMT_116)
		return;
	if (!elf_file__symbol(p->ef, "go:func.*", &cand[nc], NULL) ||
	    !elf_file__symbol(p->ef, "go.func.*", &cand[nc], NULL))
		nc++;
	if (p->moduledata) {
		/* moduledata.gofunc word: 38 (1.18-1.19), 40 (1.20-1.26), 43 (1.27+). */
		static const int idx_by_ver[] = { 38, 40, 43 };
		int first = go_minor >= 27 ? 2 : go_minor >= 20 ? 1 : go_minor >= 18 ? 0 : -1;

		if (first < 0 && p->fmt == PCLN_FMT_118)
			first = 0;
		if (first >= 0 && !md_word(p, p->moduledata, idx_by_ver[first], &cand[nc]))
			cand[nc] = 0;
		if (first >= 0)
			nc++;
		for (int i = 0; i < 3; i++) {
			if (i == first || !md_word(p, p->moduledata, idx_by_ver[i], &cand[nc]))
				continue;
			nc++;
		}
	}
	for (int i = 0; i < nc; i++) {
		int r = judge_gofunc(p, cand[i]);

		if (r == 1) {
			p->gofunc = cand[i];
			return;
		}
		if (r == -1 && undecided < 0)
			undecided = i;
	}
	/* No inlined code to judge by: the first plausible candidate does no harm. */
	if (undecided >= 0)
		p->gofunc = cand[undecided];
	else
		vlog("gotrace: %s: go:func.* not found, inlined frames are not reported\n",
		     p->path);
}

/*
 * FuncIDWrapper is the last abi.FuncID, so its value changes whenever Go adds
 * one (22 in 1.17, 21 in 1.19, 23 in 1.27...). runtime.deferreturn carries it
 * in every version (cmd/internal/objabi/funcid.go) and is in every binary.
 */
static void find_wrapper_id(struct pclntab *p)
{
	p->wrapper_id = -1;
	for (size_t i = 0; i < p->nrecs; i++) {
		if (!strcmp(p->recs[i].f.name, "runtime.deferreturn")) {
			p->wrapper_id = p->recs[i].fp[p->fl.func_id];
			return;
		}
	}
}

/* ---- public API ------------------------------------------------------------------------ */

struct pclntab *pclntab__open(const struct elf_file *ef, const struct pclntab_opts *opts)
{
	int go_minor = opts ? opts->go_minor : -1;
	struct pclntab *p;
	int err;

	p = calloc(1, sizeof(*p));
	if (!p) {
		errno = ENOMEM;
		return NULL;
	}
	p->ef = ef;
	p->big_endian = elf_file__big_endian(ef);
	p->path = elf_file__path(ef);
	p->text_src = "none";
	err = locate(p);
	if (err)
		goto cleanup;
	set_layout(p);
	p->moduledata = find_moduledata(p);
	tighten_size(p);
	find_text_start(p, opts);
	if (p->fmt != PCLN_FMT_116 && !p->text_start) {
		gt_seterr("cannot find the start of the Go text (runtime.text) in %s", p->path);
		err = -EINVAL;
		goto cleanup;
	}
	err = build_index(p);
	if (err == -EINVAL)
		gt_seterr("corrupt .gopclntab in %s: no valid function", p->path);
	if (err)
		goto cleanup;
	if (p->fmt == PCLN_FMT_116 && !p->text_start)
		p->text_start = p->recs[0].f.entry;
	find_gofunc(p, go_minor);
	find_wrapper_id(p);
	return p;
cleanup:
	if (err == -ENOMEM)
		gt_seterr("out of memory reading the pclntab of %s", p->path);
	pclntab__free(p);
	errno = -err;
	return NULL;
}

void pclntab__free(struct pclntab *p)
{
	if (!p)
		return;
	if (p->cache)
		for (size_t i = 0; i < p->nrecs; i++)
			free(p->cache[i]);
	if (p->names) {
		free(p->names->slot);
		free(p->names);
	}
	free(p->cache);
	free(p->bucket);
	free(p->recs);
	free(p);
}

enum pcln_format pclntab__format(const struct pclntab *p)
{
	return p->fmt;
}

uint64_t pclntab__addr(const struct pclntab *p)
{
	return p->addr;
}

uint64_t pclntab__size(const struct pclntab *p)
{
	return p->size;
}

uint64_t pclntab__text_start(const struct pclntab *p)
{
	return p->text_start;
}

const char *pclntab__text_start_source(const struct pclntab *p)
{
	return p->text_src;
}

uint64_t pclntab__moduledata(const struct pclntab *p)
{
	return p->moduledata;
}

uint64_t pclntab__gofunc(const struct pclntab *p)
{
	return p->gofunc;
}

int pclntab__quantum(const struct pclntab *p)
{
	return p->quantum;
}

int pclntab__ptr_size(const struct pclntab *p)
{
	return p->ptr_size;
}

size_t pclntab__nfiles(const struct pclntab *p)
{
	return p->nfiles;
}

size_t pclntab__func_cnt(const struct pclntab *p)
{
	return p->nrecs;
}

const struct go_func *pclntab__func(const struct pclntab *p, size_t idx)
{
	return idx < p->nrecs ? &p->recs[idx].f : NULL;
}

const struct go_func *pclntab__find_func(const struct pclntab *p, uint64_t pc)
{
	size_t lo, hi, b;

	if (pc < p->lo || pc >= p->hi)
		return NULL;
	b = (pc - p->lo) >> p->shift;
	/* The answer lies between this bucket's first function and the next bucket's. */
	lo = p->bucket[b];
	hi = (size_t)p->bucket[b + 1] + 1;

	/* Last function whose entry <= pc. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (p->recs[mid].f.entry <= pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo || pc >= p->recs[lo - 1].f.end)
		return NULL;
	return &p->recs[lo - 1].f;
}

static uint64_t hash_name(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	while (*s)
		h = (h ^ (uint8_t)*s++) * 0x100000001b3ull;
	return h;
}

static struct name_index *build_names(const struct pclntab *p)
{
	struct name_index *ni = calloc(1, sizeof(*ni));
	uint32_t cap = 16;

	if (!ni)
		return NULL;
	while (cap < 2 * p->nrecs)
		cap <<= 1;
	ni->mask = cap - 1;
	ni->slot = calloc(cap, sizeof(*ni->slot));
	if (!ni->slot) {
		free(ni);
		return NULL;
	}
	for (size_t i = 0; i < p->nrecs; i++) {
		uint32_t h = (uint32_t)hash_name(p->recs[i].f.name) & ni->mask;

		while (ni->slot[h])
			h = (h + 1) & ni->mask;
		ni->slot[h] = (uint32_t)i + 1;
	}
	return ni;
}

const struct go_func *pclntab__func_by_name(const struct pclntab *p, const char *name)
{
	struct name_index *ni = __atomic_load_n(&p->names, __ATOMIC_ACQUIRE), *exp = NULL;
	uint32_t h;

	if (!ni) {
		ni = build_names(p);
		if (!ni) {
			errno = ENOMEM;
			return NULL;
		}
		if (!__atomic_compare_exchange_n((struct name_index **)&p->names, &exp, ni, false,
						 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			free(ni->slot);
			free(ni);
			ni = exp;
		}
	}
	for (h = (uint32_t)hash_name(name) & ni->mask; ni->slot[h]; h = (h + 1) & ni->mask) {
		const struct go_func *f = &p->recs[ni->slot[h] - 1].f;

		if (!strcmp(f->name, name))
			return f;
	}
	errno = ENOENT;
	return NULL;
}

int pclntab__pcvalue(const struct pclntab *p, const struct go_func *fn, enum pcln_table t,
		     uint64_t pc, int32_t *val)
{
	size_t ri = rec_index(p, fn);
	const struct func_rec *r;
	unsigned off;

	if (ri == SIZE_MAX)
		return -ENOENT;
	r = &p->recs[ri];
	if (pc < r->f.entry || pc >= r->f.end)
		return -ENOENT;
	switch (t) {
	case PCTAB_SP:
		off = p->fl.pcsp;
		break;
	case PCTAB_FILE:
		off = p->fl.pcfile;
		break;
	case PCTAB_LINE:
		off = p->fl.pcln;
		break;
	default:
		return -EINVAL;
	}
	return pcvalue_walk(p, &r->f, func_u32(p, r->fp, off), pc - r->f.entry, val);
}

int pclntab__pcdata(const struct pclntab *p, const struct go_func *fn, uint32_t table,
		    uint64_t pc, int32_t *val)
{
	size_t ri = rec_index(p, fn);
	const struct func_rec *r;

	if (ri == SIZE_MAX)
		return -ENOENT;
	r = &p->recs[ri];
	if (pc < r->f.entry || pc >= r->f.end)
		return -ENOENT;
	return pcvalue_walk(p, &r->f, func_pcdata(p, r->fp, table), pc - r->f.entry, val);
}

/* File and line of a row (NULL: past the tables). */
static void pos_of(const struct pclntab *p, const struct pcrow *row, const char **file, int *line)
{
	*file = row && row->file != NO_FILE ? (const char *)p->filetab.p + row->file : "?";
	*line = row && row->line > 0 ? row->line : 0;
}

int pclntab__line(const struct pclntab *p, const struct go_func *fn, uint64_t pc,
		  const char **file, int *line)
{
	size_t ri = rec_index(p, fn);
	const struct func_cache *c;
	const struct func_rec *r;
	const struct pcrow *row;

	if (ri == SIZE_MAX)
		return -ENOENT;
	r = &p->recs[ri];
	if (pc < r->f.entry || pc >= r->f.end)
		return -ENOENT;
	c = get_cache(p, ri);
	if (!c)
		return -ENOMEM;
	row = row_at(c, pc - r->f.entry);
	if (!row || row->line == NO_LINE)
		return -ENOENT;
	pos_of(p, row, file, line);
	return 0;
}

bool pclntab__is_wrapper(const struct pclntab *p, const struct go_func *fn)
{
	size_t ri = rec_index(p, fn);

	return ri != SIZE_MAX && p->wrapper_id >= 0 &&
	       p->recs[ri].fp[p->fl.func_id] == p->wrapper_id;
}

int pclntab__start_line(const struct pclntab *p, const struct go_func *fn)
{
	size_t ri = rec_index(p, fn);
	const char *file;
	int line;

	if (ri == SIZE_MAX)
		return 0;
	if (p->fl.has_start_line) {
		int32_t v = (int32_t)func_u32(p, p->recs[ri].fp, p->fl.start_line);

		return v > 0 ? v : 0;
	}
	if (pclntab__line(p, &p->recs[ri].f, p->recs[ri].f.entry, &file, &line))
		return 0;
	return line;
}

int pclntab__symbolize(const struct pclntab *p, uint64_t pc, struct go_frame *frames, int max)
{
	const struct go_func *fn = pclntab__find_func(p, pc);
	const struct func_cache *c;
	const struct func_rec *r;
	const struct pcrow *row;
	uint64_t size;
	int n = 0, depth = 0;
	int32_t ix;

	if (max <= 0)
		return -EINVAL;
	if (!fn)
		return 0;
	r = (const struct func_rec *)fn;
	c = get_cache(p, (size_t)(r - p->recs));
	if (!c)
		return -ENOMEM;
	size = func_size(fn);
	row = row_at(c, pc - fn->entry);
	ix = row && c->inltree ? row->inl : -1;
	/*
	 * Innermost first: the inlined callee at CUR, then its caller at entry +
	 * parentPc, until the index is -1 (the physical function). Frames that do
	 * not fit in MAX are dropped, but the physical function always ends the list.
	 */
	while (ix >= 0 && depth++ < MAX_INLINE_DEPTH) {
		struct inl_entry e;

		if (!inl_get(p, c, ix, &e) || e.parent_pc < 0 || (uint64_t)e.parent_pc >= size)
			break;
		if (n < max - 1) {
			const char *name = name_at(p, e.name_off);

			frames[n].func = name ? name : "?";
			pos_of(p, row, &frames[n].file, &frames[n].line);
			frames[n].inlined = true;
			frames[n].func_id = e.func_id;
			frames[n].wrapper = e.func_id == p->wrapper_id;
			n++;
		}
		row = row_at(c, (uint64_t)e.parent_pc);
		ix = row ? row->inl : -1;
	}
	frames[n].func = fn->name;
	pos_of(p, row, &frames[n].file, &frames[n].line);
	frames[n].inlined = false;
	frames[n].func_id = r->fp[p->fl.func_id];
	frames[n].wrapper = frames[n].func_id == p->wrapper_id;
	return n + 1;
}
