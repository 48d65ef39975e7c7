// SPDX-License-Identifier: MIT
/*
 * Unit tests of src/elf and src/gosym: the pc-value decoder, Go version and
 * modinfo parsing, .go.buildinfo (both formats, PIE relocations), .gopclntab
 * (1.16, 1.18 and 1.20 layouts, inline tree, moduledata/gofunc discovery) on
 * ELF images built here byte by byte, errors on garbage and cut-off input, and,
 * when a Go toolchain is on PATH (or $GO), a real program checked against what
 * its own runtime.CallersFrames reports.
 */
#include <elf.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "elf/elf_file.h"
#include "gosym/buildinfo.h"
#include "gosym/pclntab.h"
#include "util/log.h"

/* ------------------------------------------------------------------ byte buffers */

struct buf {
	uint8_t *p;
	size_t len, cap;
};

static void buf_put(struct buf *b, const void *d, size_t n)
{
	if (!n)
		return;
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void buf_u8(struct buf *b, uint8_t v)
{
	buf_put(b, &v, 1);
}

static void buf_u16(struct buf *b, uint16_t v)
{
	buf_put(b, &v, 2);
}

static void buf_u32(struct buf *b, uint32_t v)
{
	buf_put(b, &v, 4);
}

static void buf_u64(struct buf *b, uint64_t v)
{
	buf_put(b, &v, 8);
}

static void buf_uvarint(struct buf *b, uint64_t v)
{
	while (v >= 0x80) {
		buf_u8(b, (uint8_t)(v | 0x80));
		v >>= 7;
	}
	buf_u8(b, (uint8_t)v);
}

static void buf_align(struct buf *b, size_t a)
{
	while (b->len % a)
		buf_u8(b, 0);
}

static void set_u32(struct buf *b, size_t off, uint32_t v)
{
	memcpy(b->p + off, &v, 4);
}

static void set_u64(struct buf *b, size_t off, uint64_t v)
{
	memcpy(b->p + off, &v, 8);
}

/* A pc-value table: rows of (value, end pc offset), as Go's linker encodes them. */
struct pcrow_spec {
	int32_t val;
	uint32_t end;
};

static void enc_pctab(struct buf *b, const struct pcrow_spec *rows, int n, int quantum)
{
	int32_t prev = -1;
	uint32_t pc = 0;

	for (int i = 0; i < n; i++) {
		int32_t d = rows[i].val - prev;

		buf_uvarint(b, ((uint32_t)d << 1) ^ (uint32_t)(d >> 31));
		buf_uvarint(b, (rows[i].end - pc) / quantum);
		prev = rows[i].val;
		pc = rows[i].end;
	}
	buf_u8(b, 0);
}

/* ------------------------------------------------------------------ ELF images */

#define BASE 0x400000ull
#define MAX_SECS 12

struct sec {
	const char *name;
	uint32_t type;
	uint64_t flags;
	uint32_t link;
	uint64_t entsize;
	size_t size; /* reserved size; data may be shorter */
	uint64_t off, addr;
	struct buf data;
};

struct image {
	struct sec s[MAX_SECS];
	int n;
	uint16_t type; /* ET_EXEC or ET_DYN */
	uint8_t *p;
	size_t len;
};

static struct sec *img_add(struct image *im, const char *name, uint32_t type, size_t size)
{
	struct sec *s = &im->s[im->n++];

	assert_true(im->n <= MAX_SECS);
	memset(s, 0, sizeof(*s));
	s->name = name;
	s->type = type;
	s->flags = SHF_ALLOC;
	s->size = size;
	return s;
}

/* Give every section its file offset and address: one PT_LOAD maps the whole file at BASE. */
static void img_layout(struct image *im)
{
	uint64_t off = sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr);

	for (int i = 0; i < im->n; i++) {
		off = (off + 31) & ~31ull;
		im->s[i].off = off;
		im->s[i].addr = BASE + off;
		off += im->s[i].size;
	}
}

/* Serialize: headers, section bytes, .shstrtab, section headers (unless NO_SHDRS). */
static void img_build(struct image *im, bool no_shdrs)
{
	struct buf b = {}, names = {};
	Elf64_Ehdr eh = {};
	Elf64_Phdr ph = {};
	uint64_t shstr_off, shoff, end = sizeof(eh) + sizeof(ph);
	uint32_t name_off[MAX_SECS], shstr_name;

	for (int i = 0; i < im->n; i++) {
		assert_true(im->s[i].data.len <= im->s[i].size);
		if (im->s[i].off + im->s[i].size > end)
			end = im->s[i].off + im->s[i].size;
	}
	buf_u8(&names, 0);
	for (int i = 0; i < im->n; i++) {
		name_off[i] = (uint32_t)names.len;
		buf_put(&names, im->s[i].name, strlen(im->s[i].name) + 1);
	}
	shstr_name = (uint32_t)names.len;
	buf_put(&names, ".shstrtab", 10);
	shstr_off = end;
	shoff = (shstr_off + names.len + 7) & ~7ull;

	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = im->type ? im->type : ET_EXEC;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_phoff = sizeof(eh);
	eh.e_ehsize = sizeof(eh);
	eh.e_phentsize = sizeof(ph);
	eh.e_phnum = 1;
	eh.e_shentsize = sizeof(Elf64_Shdr);
	if (!no_shdrs) {
		eh.e_shoff = shoff;
		eh.e_shnum = im->n + 2;
		eh.e_shstrndx = im->n + 1;
	}
	ph.p_type = PT_LOAD;
	ph.p_flags = PF_R | PF_W;
	ph.p_vaddr = ph.p_paddr = BASE;
	ph.p_filesz = ph.p_memsz = shstr_off;
	ph.p_align = 0x1000;
	buf_put(&b, &eh, sizeof(eh));
	buf_put(&b, &ph, sizeof(ph));
	for (int i = 0; i < im->n; i++) {
		while (b.len < im->s[i].off)
			buf_u8(&b, 0);
		buf_put(&b, im->s[i].data.p, im->s[i].data.len);
		while (b.len < im->s[i].off + im->s[i].size)
			buf_u8(&b, 0);
	}
	while (b.len < shstr_off)
		buf_u8(&b, 0);
	buf_put(&b, names.p, names.len);
	if (!no_shdrs) {
		Elf64_Shdr sh = {};

		buf_align(&b, 8);
		assert_int_equal(b.len, shoff);
		buf_put(&b, &sh, sizeof(sh));
		for (int i = 0; i < im->n; i++) {
			sh.sh_name = name_off[i];
			sh.sh_type = im->s[i].type;
			sh.sh_flags = im->s[i].flags;
			sh.sh_addr = im->s[i].addr;
			sh.sh_offset = im->s[i].off;
			sh.sh_size = im->s[i].size;
			sh.sh_link = im->s[i].link;
			sh.sh_entsize = im->s[i].entsize;
			sh.sh_addralign = 16;
			buf_put(&b, &sh, sizeof(sh));
		}
		memset(&sh, 0, sizeof(sh));
		sh.sh_name = shstr_name;
		sh.sh_type = SHT_STRTAB;
		sh.sh_offset = shstr_off;
		sh.sh_size = names.len;
		buf_put(&b, &sh, sizeof(sh));
	}
	free(names.p);
	free(im->p);
	im->p = b.p;
	im->len = b.len;
}

static void img_free(struct image *im)
{
	for (int i = 0; i < im->n; i++)
		free(im->s[i].data.p);
	free(im->p);
	memset(im, 0, sizeof(*im));
}

/* ------------------------------------------------------------------ pc-value decoder */

static void test_pcvalue_decode(void **state)
{
	static const struct pcrow_spec rows[] = {
		{ 0, 4 }, { 8, 0x3c }, { -3, 0x40 }, { 1000000, 0x2040 },
	};
	struct buf b = {};
	int32_t v;

	enc_pctab(&b, rows, 4, 1);
	assert_int_equal(pclntab__pcvalue_decode(b.p, b.len, 1, 0, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(pclntab__pcvalue_decode(b.p, b.len, 1, 3, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(pclntab__pcvalue_decode(b.p, b.len, 1, 4, &v), 0);
	assert_int_equal(v, 8);
	assert_int_equal(pclntab__pcvalue_decode(b.p, b.len, 1, 0x3f, &v), 0);
	assert_int_equal(v, -3); /* negative deltas: zig-zag */
	assert_int_equal(pclntab__pcvalue_decode(b.p, b.len, 1, 0x203f, &v), 0);
	assert_int_equal(v, 1000000); /* multi-byte varints */
	assert_int_equal(pclntab__pcvalue_decode(b.p, b.len, 1, 0x2040, &v), -ENOENT);

	/* The table ends at the 0 byte even if bytes follow; truncation is an error. */
	buf_u8(&b, 0x02);
	buf_u8(&b, 0x10);
	assert_int_equal(pclntab__pcvalue_decode(b.p, b.len, 1, 0x2040, &v), -ENOENT);
	assert_int_equal(pclntab__pcvalue_decode(b.p, 3, 1, 0x3f, &v), -ENOENT);
	assert_int_equal(pclntab__pcvalue_decode(b.p, 0, 1, 0, &v), -ENOENT);

	/* A zero value delta is allowed on the first row only; pc deltas scale by the quantum. */
	b.len = 0;
	buf_u8(&b, 0x00); /* value stays -1 */
	buf_u8(&b, 0x02); /* 2 * 4 bytes */
	buf_u8(&b, 0x04); /* +2 -> 1 */
	buf_u8(&b, 0x01); /* 1 * 4 bytes */
	buf_u8(&b, 0x00);
	assert_int_equal(pclntab__pcvalue_decode(b.p, b.len, 4, 7, &v), 0);
	assert_int_equal(v, -1);
	assert_int_equal(pclntab__pcvalue_decode(b.p, b.len, 4, 8, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(pclntab__pcvalue_decode(b.p, b.len, 4, 12, &v), -ENOENT);

	/* A varint longer than 5 bytes (32 bits) is malformed. */
	b.len = 0;
	for (int i = 0; i < 6; i++)
		buf_u8(&b, 0x80);
	buf_u8(&b, 0x01);
	buf_u8(&b, 0x01);
	assert_int_equal(pclntab__pcvalue_decode(b.p, b.len, 1, 0, &v), -ENOENT);
	assert_int_equal(pclntab__pcvalue_decode(NULL, 0, 1, 0, &v), -EINVAL);
	free(b.p);
}

/* ------------------------------------------------------------------ versions */

static void test_parse_version(void **state)
{
	static const struct {
		const char *s;
		int major, minor, patch;
	} ok[] = {
		{ "go1.21.13", 1, 21, 13 },
		{ "go1.27.4", 1, 27, 4 },
		{ "go1.19", 1, 19, 0 },
		{ "go1.22rc1", 1, 22, 0 },
		{ "go1.21.0 X:boringcrypto", 1, 21, 0 },
		{ "devel go1.23-e7b1ad2 Wed Apr 10 11:00:00 2024 +0000", 1, 23, 0 },
		{ "go1.25-20250209-RC00 cl/724970549 +ff27d270c9 X:fieldtrack", 1, 25, 0 },
		{ "go1.16", 1, 16, 0 },
	};
	static const char *const bad[] = { "", "1.21", "go", "gox1.2", "devel +abcdef", "go1",
					   "go1.99999999" };
	int ma, mi, pa;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(buildinfo__parse_version(ok[i].s, &ma, &mi, &pa), 0);
		assert_int_equal(ma, ok[i].major);
		assert_int_equal(mi, ok[i].minor);
		assert_int_equal(pa, ok[i].patch);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(buildinfo__parse_version(bad[i], &ma, &mi, &pa), -EINVAL);
	assert_int_equal(buildinfo__parse_version(NULL, &ma, &mi, &pa), -EINVAL);
}

/* ------------------------------------------------------------------ .go.buildinfo */

#define MODINFO                                                                     \
	"path\texample.com/svc/cmd/svc\n"                                          \
	"mod\texample.com/svc\tv1.2.3\th1:abc=\n"                                  \
	"dep\tgolang.org/x/sys\tv0.1.0\th1:def=\n"                                 \
	"build\t-buildmode=pie\n"                                                  \
	"build\t-compiler=gc\n"                                                    \
	"build\t-ldflags=\"-s -w -X 'main.v=1'\"\n"                                \
	"build\t\"odd key\"=`raw \\n value`\n"                                     \
	"build\tCGO_ENABLED=1\n"                                                   \
	"build\tGOARCH=amd64\n"                                                    \
	"build\tEMPTY=\n"                                                          \
	"build\tbroken line without equals\n"

static const char sentinel[] = "0123456789abcdef";

/* The modinfo string as the go command stores it: 16-byte sentinels on both sides. */
static void put_modinfo(struct buf *b, bool with_len)
{
	size_t n = strlen(MODINFO) + 32;

	if (with_len)
		buf_uvarint(b, n);
	buf_put(b, sentinel, 16);
	buf_put(b, MODINFO, strlen(MODINFO));
	buf_put(b, sentinel, 16);
}

static void put_bi_header(struct buf *b, uint8_t flags)
{
	buf_put(b, "\xff Go buildinf:", 14);
	buf_u8(b, 8);
	buf_u8(b, flags);
}

static void check_modinfo(const struct go_buildinfo *bi)
{
	assert_string_equal(bi->path, "example.com/svc/cmd/svc");
	assert_string_equal(bi->main_module, "example.com/svc");
	assert_string_equal(bi->main_version, "v1.2.3");
	assert_non_null(strstr(bi->modinfo, "dep\tgolang.org/x/sys"));
	assert_int_equal(bi->nsettings, 7);
	assert_string_equal(buildinfo__setting(bi, "-buildmode"), "pie");
	assert_string_equal(buildinfo__setting(bi, "-ldflags"), "-s -w -X 'main.v=1'");
	assert_string_equal(buildinfo__setting(bi, "odd key"), "raw \\n value");
	assert_string_equal(buildinfo__setting(bi, "CGO_ENABLED"), "1");
	assert_string_equal(buildinfo__setting(bi, "EMPTY"), "");
	assert_null(buildinfo__setting(bi, "GOOS"));
}

static void test_buildinfo_inline(void **state)
{
	for (int scan = 0; scan < 2; scan++) {
		struct go_buildinfo bi;
		struct image im = {};
		struct elf_file *ef;
		struct sec *s;

		/* With scan=1 the section has another name: found by scanning the segment. */
		img_add(&im, ".text", SHT_PROGBITS, 64);
		s = img_add(&im, scan ? ".data" : ".go.buildinfo", SHT_PROGBITS, 512);
		img_layout(&im);
		if (scan) /* a decoy at an address that is not 16-byte aligned */
			buf_put(&s->data, "...\xff Go buildinf:", 17);
		buf_align(&s->data, 16);
		put_bi_header(&s->data, 0x2);
		buf_put(&s->data, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
		buf_uvarint(&s->data, 8);
		buf_put(&s->data, "go1.27.4", 8);
		put_modinfo(&s->data, true);
		img_build(&im, false);

		ef = elf_file__open_mem(im.p, im.len, "inline");
		assert_non_null(ef);
		if (buildinfo__read(ef, &bi))
			fail_msg("scan=%d: %s", scan, gt_lasterr());
		assert_string_equal(bi.version, "go1.27.4");
		assert_int_equal(bi.major, 1);
		assert_int_equal(bi.minor, 27);
		assert_int_equal(bi.patch, 4);
		assert_true(bi.inline_strings);
		check_modinfo(&bi);
		buildinfo__free(&bi);
		buildinfo__free(&bi); /* idempotent */
		elf_file__free(ef);
		img_free(&im);
	}
}

/*
 * Go <= 1.17: the header holds the addresses of two Go string headers. With
 * RELOC, a PIE whose pointer words are 0 in the file and only set by
 * R_X86_64_RELATIVE relocations.
 */
static void build_pointer_image(struct image *im, bool reloc)
{
	struct sec *bis, *data, *rela;
	uint64_t hdr_v, hdr_m, str_v, str_m;

	memset(im, 0, sizeof(*im));
	im->type = reloc ? ET_DYN : ET_EXEC;
	bis = img_add(im, ".go.buildinfo", SHT_PROGBITS, 32);
	data = img_add(im, ".data", SHT_PROGBITS, 1024);
	rela = img_add(im, ".rela.dyn", SHT_RELA, 5 * 24);
	rela->entsize = 24;
	img_layout(im);
	hdr_v = data->addr;
	hdr_m = data->addr + 16;
	str_v = data->addr + 32;
	str_m = data->addr + 64;

	put_bi_header(&bis->data, 0);
	buf_u64(&bis->data, reloc ? 0 : hdr_v);
	buf_u64(&bis->data, reloc ? 0 : hdr_m);
	/* string headers {ptr, len} */
	buf_u64(&data->data, reloc ? 0 : str_v);
	buf_u64(&data->data, 9);
	buf_u64(&data->data, reloc ? 0 : str_m);
	buf_u64(&data->data, strlen(MODINFO) + 32);
	buf_put(&data->data, "go1.15.15", 9);
	buf_align(&data->data, 32);
	put_modinfo(&data->data, false);

	{
		const uint64_t slots[4][2] = {
			{ bis->addr + 16, hdr_v },
			{ bis->addr + 24, hdr_m },
			{ hdr_v, str_v },
			{ hdr_m, str_m },
		};

		/* An unrelated relocation type first, then the RELATIVE ones, unsorted. */
		buf_u64(&rela->data, data->addr + 512);
		buf_u64(&rela->data, R_X86_64_64);
		buf_u64(&rela->data, 0x1234);
		for (int i = 3; i >= 0; i--) {
			buf_u64(&rela->data, slots[i][0]);
			buf_u64(&rela->data, R_X86_64_RELATIVE);
			buf_u64(&rela->data, slots[i][1]);
		}
	}
	img_build(im, false);
}

static void test_buildinfo_pointers(void **state)
{
	for (int reloc = 0; reloc < 2; reloc++) {
		struct go_buildinfo bi;
		struct image im;
		struct elf_file *ef;

		build_pointer_image(&im, reloc);
		ef = elf_file__open_mem(im.p, im.len, "ptr");
		assert_non_null(ef);
		assert_int_equal(buildinfo__read(ef, &bi), 0);
		assert_string_equal(bi.version, "go1.15.15");
		assert_int_equal(bi.minor, 15);
		assert_false(bi.inline_strings);
		check_modinfo(&bi);
		buildinfo__free(&bi);
		elf_file__free(ef);
		img_free(&im);
	}
}

/*
 * Build info removed after linking (esbuild 0.27+): the version comes from the runtime's
 * string header {ptr, len} in a writable section, pointing at "go1.N.P" in .rodata.
 * AMBIGUOUS adds a second header naming another version: then nothing is certain.
 */
static int version_string_image(struct image *im, bool ambiguous, struct go_buildinfo *bi)
{
	struct sec *ro, *data;
	struct elf_file *ef;
	int err;

	memset(im, 0, sizeof(*im));
	im->type = ET_EXEC;
	ro = img_add(im, ".rodata", SHT_PROGBITS, 64);
	data = img_add(im, ".data", SHT_PROGBITS, 64);
	data->flags |= SHF_WRITE;
	img_layout(im);
	buf_put(&ro->data, "xgo1.26.5 X:nodwarf5go1.25.1", 28);
	buf_u64(&data->data, 7);	     /* a length-like word that is not a header */
	buf_u64(&data->data, ro->addr + 1); /* "go1.26.5 X:nodwarf5" */
	buf_u64(&data->data, 19);
	if (ambiguous) {
		buf_u64(&data->data, ro->addr + 20); /* "go1.25.1" */
		buf_u64(&data->data, 8);
	}
	img_build(im, false);
	ef = elf_file__open_mem(im->p, im->len, "nobi");
	assert_non_null(ef);
	assert_int_equal(buildinfo__read(ef, bi), -ENOENT);
	err = buildinfo__read_version_string(ef, bi);
	elf_file__free(ef);
	img_free(im);
	return err;
}

static void test_buildinfo_version_string(void **state)
{
	struct go_buildinfo bi;
	struct image im;

	assert_int_equal(version_string_image(&im, false, &bi), 0);
	assert_string_equal(bi.version, "go1.26.5");
	assert_int_equal(bi.minor, 26);
	assert_int_equal(bi.patch, 5);
	assert_string_equal(bi.source, "runtime.buildVersion");
	assert_null(bi.modinfo);
	buildinfo__free(&bi);

	gt_clearerr();
	assert_int_equal(version_string_image(&im, true, &bi), -ENOENT);
	assert_non_null(strstr(gt_lasterr(), "several Go version strings"));
	buildinfo__free(&bi);
}

static void test_buildinfo_errors(void **state)
{
	struct go_buildinfo bi;
	struct image im = {};
	struct elf_file *ef;
	struct sec *s;

	/* No build info at all. */
	img_add(&im, ".text", SHT_PROGBITS, 64);
	img_layout(&im);
	img_build(&im, false);
	ef = elf_file__open_mem(im.p, im.len, "nobi");
	assert_non_null(ef);
	gt_clearerr();
	assert_int_equal(buildinfo__read(ef, &bi), -ENOENT);
	assert_non_null(strstr(gt_lasterr(), "no Go build info in nobi"));
	buildinfo__free(&bi);
	elf_file__free(ef);
	img_free(&im);

	/* A version string longer than the section. */
	s = img_add(&im, ".go.buildinfo", SHT_PROGBITS, 64);
	img_layout(&im);
	put_bi_header(&s->data, 0x2);
	buf_put(&s->data, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
	buf_uvarint(&s->data, 200);
	buf_put(&s->data, "go1.27.4", 8);
	img_build(&im, false);
	ef = elf_file__open_mem(im.p, im.len, "cut");
	assert_non_null(ef);
	assert_int_equal(buildinfo__read(ef, &bi), -EINVAL);
	assert_non_null(strstr(gt_lasterr(), "corrupt Go build info in cut"));
	buildinfo__free(&bi);
	elf_file__free(ef);
	img_free(&im);

	/* <=1.17 pointers that lead nowhere (a PIE without its relocations). */
	s = img_add(&im, ".go.buildinfo", SHT_PROGBITS, 32);
	img_layout(&im);
	im.type = ET_DYN;
	put_bi_header(&s->data, 0);
	img_build(&im, false);
	ef = elf_file__open_mem(im.p, im.len, "norel");
	assert_non_null(ef);
	assert_int_equal(buildinfo__read(ef, &bi), -EINVAL);
	assert_non_null(strstr(gt_lasterr(), "only set when the program is loaded"));
	buildinfo__free(&bi);
	elf_file__free(ef);
	img_free(&im);
}

/* ------------------------------------------------------------------ synthetic pclntab */

/*
 * Three functions at T: main.outer (0x40 bytes) with main.mid inlined at outer+0x08
 * and main.leaf inlined into mid at outer+0x10; main.mid and main.leaf (0x20 each)
 * as real functions. Layouts: 116 (Go 1.16/1.17), 118 (1.18/1.19), 120 (1.20+).
 */
#define NFUNC 3
#define FN_SIZE_OUTER 0x40
#define TEXT_SIZE 0x80

struct synth_opts {
	int fmt;
	bool text_in_header; /* else 0 (Go 1.26+): found through moduledata */
	bool no_moduledata;
	bool no_shdrs;
	uint32_t magic; /* override */
};

static const char *const fnames[NFUNC] = { "main.outer", "main.mid", "main.leaf" };

static void build_pclntab_image(struct image *im, const struct synth_opts *o)
{
	struct sec *text, *pcl, *rod, *md;
	struct buf *b;
	uint32_t nameoff[NFUNC], file_off[2], pcsp, pcfile[NFUNC], pcln[NFUNC], pcinl;
	size_t h_funcname, h_cu, h_filetab, h_pctab, h_pcln, ftab_at, hdr_words;
	size_t funcoff[NFUNC];
	uint64_t gofunc, inltree;
	uint32_t entry[NFUNC + 1] = { 0, 0x40, 0x60, TEXT_SIZE };
	int fmt = o->fmt, psz = 8;

	memset(im, 0, sizeof(*im));
	text = img_add(im, ".text", SHT_PROGBITS, TEXT_SIZE);
	text->flags |= SHF_EXECINSTR;
	pcl = img_add(im, o->no_shdrs ? ".rodata2" : ".gopclntab", SHT_PROGBITS, 4096);
	rod = img_add(im, ".rodata", SHT_PROGBITS, 256);
	md = img_add(im, ".noptrdata", SHT_PROGBITS, 64 * 8);
	img_layout(im);
	memset(text->data.p = malloc(TEXT_SIZE), 0xcc, TEXT_SIZE);
	text->data.len = text->data.cap = TEXT_SIZE;

	/* Inline tree in .rodata, 0x40 bytes past gofunc. */
	gofunc = rod->addr;
	inltree = rod->addr + 0x40;

	b = &pcl->data;
	hdr_words = fmt == 116 ? 7 : 8;
	buf_u32(b, o->magic ? o->magic :
		   fmt == 116 ? 0xfffffffa : fmt == 118 ? 0xfffffff0 : 0xfffffff1);
	buf_u8(b, 0);
	buf_u8(b, 0);
	buf_u8(b, 1);	/* quantum */
	buf_u8(b, psz); /* ptrsize */
	for (size_t i = 0; i < hdr_words; i++)
		buf_u64(b, 0); /* filled below */
	h_funcname = b->len;
	for (int i = 0; i < NFUNC; i++) {
		nameoff[i] = (uint32_t)(b->len - h_funcname);
		buf_put(b, fnames[i], strlen(fnames[i]) + 1);
	}
	buf_align(b, 4);
	h_cu = b->len;
	buf_u32(b, 0); /* CU 0: file 0 */
	buf_u32(b, 0); /*       file 1 (set below) */
	h_filetab = b->len;
	buf_u8(b, 0);
	file_off[0] = (uint32_t)(b->len - h_filetab);
	buf_put(b, "/src/main.go", 13);
	file_off[1] = (uint32_t)(b->len - h_filetab);
	buf_put(b, "/src/leaf.go", 13);
	set_u32(b, h_cu, file_off[0]);
	set_u32(b, h_cu + 4, file_off[1]);
	buf_align(b, 4);

	/* pctab: offset 0 means "no table", so start with a pad byte. */
	h_pctab = b->len;
	buf_u8(b, 0);
	{
		const struct pcrow_spec sp[] = { { 0, 4 }, { 8, 0x3c }, { 0, 0x40 } };
		const struct pcrow_spec file0[] = { { 0, 0x18 }, { 1, 0x20 }, { 0, 0x40 } };
		const struct pcrow_spec line0[] = { { 10, 0x10 }, { 20, 0x18 }, { 30, 0x20 }, { 11, 0x40 } };
		const struct pcrow_spec inl0[] = { { -1, 0x10 }, { 0, 0x18 }, { 1, 0x20 }, { -1, 0x40 } };
		const struct pcrow_spec file1[] = { { 0, 0x20 } };
		const struct pcrow_spec line1[] = { { 19, 0x08 }, { 20, 0x20 } };
		const struct pcrow_spec file2[] = { { 1, 0x20 } };
		const struct pcrow_spec line2[] = { { 29, 0x08 }, { 30, 0x20 } };

		pcsp = (uint32_t)(b->len - h_pctab);
		enc_pctab(b, sp, 3, 1);
		pcfile[0] = (uint32_t)(b->len - h_pctab);
		enc_pctab(b, file0, 3, 1);
		pcln[0] = (uint32_t)(b->len - h_pctab);
		enc_pctab(b, line0, 4, 1);
		pcinl = (uint32_t)(b->len - h_pctab);
		enc_pctab(b, inl0, 4, 1);
		pcfile[1] = (uint32_t)(b->len - h_pctab);
		enc_pctab(b, file1, 1, 1);
		pcln[1] = (uint32_t)(b->len - h_pctab);
		enc_pctab(b, line1, 2, 1);
		pcfile[2] = (uint32_t)(b->len - h_pctab);
		enc_pctab(b, file2, 1, 1);
		pcln[2] = (uint32_t)(b->len - h_pctab);
		enc_pctab(b, line2, 2, 1);
	}
	buf_align(b, 8);

	/* functab, then the _func records. */
	h_pcln = b->len;
	ftab_at = b->len;
	for (int i = 0; i <= NFUNC; i++) {
		if (fmt == 116) {
			buf_u64(b, text->addr + entry[i]);
			buf_u64(b, 0);
		} else {
			buf_u32(b, entry[i]);
			buf_u32(b, 0);
		}
	}
	for (int i = 0; i < NFUNC; i++) {
		bool inl = i == 0;
		uint32_t npcdata = inl ? 3 : 0, nfuncdata = inl ? 4 : 0;

		buf_align(b, 8);
		funcoff[i] = b->len - h_pcln;
		if (fmt == 116)
			buf_u64(b, text->addr + entry[i]);
		else
			buf_u32(b, entry[i]);
		buf_u32(b, nameoff[i]);
		buf_u32(b, 0);	  /* args */
		buf_u32(b, 0);	  /* deferreturn */
		buf_u32(b, pcsp); /* the same pcsp for all: a shared table, as the linker dedups */
		buf_u32(b, pcfile[i]);
		buf_u32(b, pcln[i]);
		buf_u32(b, npcdata);
		buf_u32(b, 0); /* cuOffset */
		if (fmt == 120)
			buf_u32(b, 100 + i); /* startLine */
		buf_u8(b, 0);		     /* funcID */
		buf_u8(b, 0);		     /* flag */
		buf_u8(b, 0);
		buf_u8(b, (uint8_t)nfuncdata);
		if (!inl)
			continue;
		buf_u32(b, 0); /* PCDATA_UnsafePoint */
		buf_u32(b, 0); /* PCDATA_StackMapIndex */
		buf_u32(b, pcinl);
		if (fmt == 116) {
			/* Pointer-aligned absolute pointers. */
			if ((pcl->addr + b->len) & 7)
				buf_u32(b, 0);
			buf_u64(b, 0);
			buf_u64(b, 0);
			buf_u64(b, 0);
			buf_u64(b, inltree);
		} else {
			buf_u32(b, 0xffffffff);
			buf_u32(b, 0xffffffff);
			buf_u32(b, 0xffffffff);
			buf_u32(b, (uint32_t)(inltree - gofunc));
		}
	}
	for (int i = 0; i < NFUNC; i++) {
		if (fmt == 116)
			set_u64(b, ftab_at + 16 * i + 8, funcoff[i]);
		else
			set_u32(b, ftab_at + 8 * i + 4, (uint32_t)funcoff[i]);
	}
	/* Header words. */
	{
		uint64_t w[8] = { NFUNC, 2 }, *o5 = &w[hdr_words - 5];

		if (fmt != 116)
			w[2] = o->text_in_header ? text->addr : 0;
		o5[0] = h_funcname;
		o5[1] = h_cu;
		o5[2] = h_filetab;
		o5[3] = h_pctab;
		o5[4] = h_pcln;
		for (size_t i = 0; i < hdr_words; i++)
			set_u64(b, 8 + 8 * i, w[i]);
	}
	assert_true(b->len <= pcl->size);

	/* Inline tree: [0] main.mid called at outer+0x08, [1] main.leaf called at outer+0x10. */
	b = &rod->data;
	while (b->len < inltree - rod->addr)
		buf_u8(b, 0);
	for (int i = 0; i < 2; i++) {
		uint32_t parent_pc = i == 0 ? 0x08 : 0x10;

		if (fmt == 120) {
			buf_u8(b, 0); /* funcID */
			buf_u8(b, 0);
			buf_u8(b, 0);
			buf_u8(b, 0);
			buf_u32(b, nameoff[1 + i]);
			buf_u32(b, parent_pc);
			buf_u32(b, 200 + i); /* startLine */
		} else {
			buf_u16(b, (uint16_t)(i - 1)); /* parent */
			buf_u8(b, 0);
			buf_u8(b, 0);
			buf_u32(b, 0);			  /* file of the call */
			buf_u32(b, i == 0 ? 10 : 20);	  /* line of the call */
			buf_u32(b, nameoff[1 + i]);
			buf_u32(b, parent_pc);
		}
	}

	/* runtime.firstmoduledata, with decoys where other versions keep gofunc. */
	if (!o->no_moduledata) {
		uint64_t w[64] = {};

		w[0] = pcl->addr;
		w[1] = pcl->addr + h_funcname;
		w[4] = pcl->addr + h_cu;
		w[7] = pcl->addr + h_filetab;
		w[22] = text->addr;
		w[38] = fmt == 118 ? gofunc : rod->addr + 8;
		w[40] = fmt == 120 ? gofunc : rod->addr + 4;
		w[43] = text->addr;
		for (int i = 0; i < 64; i++)
			buf_u64(&md->data, w[i]);
	}
	img_build(im, o->no_shdrs);
}

static void check_frames(const struct pclntab *p, uint64_t pc, int max, int want_n,
			 const char *const *names, const char *const *files, const int *lines)
{
	struct go_frame fr[8];
	int n = pclntab__symbolize(p, pc, fr, max);

	assert_int_equal(n, want_n);
	for (int i = 0; i < n; i++) {
		assert_string_equal(fr[i].func, names[i]);
		assert_string_equal(fr[i].file, files[i]);
		assert_int_equal(fr[i].line, lines[i]);
		assert_int_equal(fr[i].inlined, i < n - 1);
	}
}

static void check_synthetic(const struct synth_opts *o, int go_minor)
{
	struct pclntab_opts popts = { .go_minor = go_minor };
	const struct go_func *f;
	struct image im;
	struct elf_file *ef;
	struct pclntab *p;
	uint64_t t;
	const char *file;
	int32_t v;
	int line;

	build_pclntab_image(&im, o);
	ef = elf_file__open_mem(im.p, im.len, "synth");
	assert_non_null(ef);
	gt_clearerr();
	p = pclntab__open(ef, &popts);
	if (!p)
		fail_msg("pclntab__open: %s", gt_lasterr());
	t = im.s[0].addr;
	assert_int_equal(pclntab__format(p), o->fmt);
	assert_int_equal(pclntab__func_cnt(p), NFUNC);
	assert_int_equal(pclntab__nfiles(p), 2);
	assert_int_equal(pclntab__quantum(p), 1);
	assert_int_equal(pclntab__ptr_size(p), 8);
	assert_int_equal(pclntab__text_start(p), t);
	assert_int_equal(pclntab__addr(p), im.s[1].addr);
	if (!o->no_moduledata)
		assert_int_equal(pclntab__moduledata(p), im.s[3].addr);
	if (o->fmt != 116 && !o->no_moduledata)
		assert_int_equal(pclntab__gofunc(p), im.s[2].addr);

	for (int i = 0; i < NFUNC; i++) {
		f = pclntab__func(p, i);
		assert_string_equal(f->name, fnames[i]);
		assert_ptr_equal(pclntab__func_by_name(p, fnames[i]), f);
	}
	assert_null(pclntab__func(p, NFUNC));
	assert_null(pclntab__func_by_name(p, "main.nope"));
	f = pclntab__find_func(p, t + 0x3f);
	assert_non_null(f);
	assert_string_equal(f->name, "main.outer");
	assert_int_equal(f->entry, t);
	assert_int_equal(f->end, t + 0x40);
	assert_string_equal(pclntab__find_func(p, t + 0x40)->name, "main.mid");
	assert_string_equal(pclntab__find_func(p, t + 0x7f)->name, "main.leaf");
	assert_null(pclntab__find_func(p, t + TEXT_SIZE));
	assert_null(pclntab__find_func(p, t - 1));

	f = pclntab__func(p, 0);
	assert_int_equal(pclntab__pcvalue(p, f, PCTAB_SP, t + 5, &v), 0);
	assert_int_equal(v, 8);
	assert_int_equal(pclntab__pcvalue(p, f, PCTAB_LINE, t + 0x1f, &v), 0);
	assert_int_equal(v, 30);
	assert_int_equal(pclntab__pcdata(p, f, 2, t + 0x12, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(pclntab__pcvalue(p, f, PCTAB_SP, t + 0x40, &v), -ENOENT);
	assert_int_equal(pclntab__line(p, f, t + 0x19, &file, &line), 0);
	assert_string_equal(file, "/src/leaf.go");
	assert_int_equal(line, 30);
	assert_int_equal(pclntab__line(p, f, t + 0x40, &file, &line), -ENOENT);
	assert_int_equal(pclntab__start_line(p, f), o->fmt == 120 ? 100 : 10);
	assert_false(pclntab__is_wrapper(p, f));

	{
		/* In main.leaf's code inlined into main.mid inlined into main.outer. */
		const char *const n3[] = { "main.leaf", "main.mid", "main.outer" };
		const char *const f3[] = { "/src/leaf.go", "/src/main.go", "/src/main.go" };
		const int l3[] = { 30, 20, 10 };
		const char *const n2[] = { "main.mid", "main.outer" };
		const int l2[] = { 20, 10 };
		const char *const n1[] = { "main.outer" };
		const int l1[] = { 11 };
		const char *const f1[] = { "/src/main.go" };

		check_frames(p, t + 0x1a, 8, 3, n3, f3, l3);
		check_frames(p, t + 0x10, 8, 2, n2, f3 + 1, l2);
		check_frames(p, t + 0x20, 8, 1, n1, f1, l1);
		/* Too small a buffer: inner frames first, the physical function stays last. */
		{
			const char *const nn[] = { "main.leaf", "main.outer" };
			const char *const ff[] = { "/src/leaf.go", "/src/main.go" };
			const int ll[] = { 30, 10 };

			check_frames(p, t + 0x1a, 2, 2, nn, ff, ll);
		}
		check_frames(p, t + 0x1a, 1, 1, n3 + 2, f3 + 2, l3 + 2);
	}
	assert_int_equal(pclntab__symbolize(p, t + TEXT_SIZE, NULL, 0), -EINVAL);
	{
		struct go_frame fr[1];

		assert_int_equal(pclntab__symbolize(p, t + TEXT_SIZE, fr, 1), 0);
	}
	pclntab__free(p);
	elf_file__free(ef);
	img_free(&im);
}

static void test_pclntab_formats(void **state)
{
	struct synth_opts o = { .text_in_header = true };
	static const int fmts[] = { 116, 118, 120 };
	static const int minors[] = { 17, 19, 21 };

	for (int i = 0; i < 3; i++) {
		o.fmt = fmts[i];
		check_synthetic(&o, minors[i]);
		/* Version unknown: every moduledata gofunc slot is tried and validated. */
		check_synthetic(&o, -1);
	}
}

/* Go 1.26+ leaves pcHeader.textStart 0: runtime.text then comes from moduledata. */
static void test_pclntab_text_from_moduledata(void **state)
{
	struct synth_opts o = { .fmt = 120 };
	struct pclntab_opts popts = { .go_minor = 26 };
	struct image im;
	struct elf_file *ef;
	struct pclntab *p;

	check_synthetic(&o, 26);
	build_pclntab_image(&im, &o);
	ef = elf_file__open_mem(im.p, im.len, "md");
	p = pclntab__open(ef, &popts);
	assert_non_null(p);
	assert_string_equal(pclntab__text_start_source(p), "moduledata");
	pclntab__free(p);
	/* The caller's value wins. */
	popts.text_start = im.s[0].addr;
	p = pclntab__open(ef, &popts);
	assert_non_null(p);
	assert_string_equal(pclntab__text_start_source(p), "opts");
	pclntab__free(p);
	elf_file__free(ef);
	img_free(&im);
}

/* No section headers at all: the pcHeader is found by scanning the segments. */
static void test_pclntab_scan(void **state)
{
	struct synth_opts o = { .fmt = 120, .text_in_header = true, .no_shdrs = true };
	struct pclntab_opts popts = { .go_minor = 21 };
	struct image im;
	struct elf_file *ef;
	struct pclntab *p;
	struct go_frame fr[4];

	build_pclntab_image(&im, &o);
	ef = elf_file__open_mem(im.p, im.len, "noshdr");
	assert_non_null(ef);
	assert_int_equal(elf_file__section_cnt(ef), 0);
	p = pclntab__open(ef, &popts);
	assert_non_null(p);
	assert_int_equal(pclntab__addr(p), im.s[1].addr);
	assert_int_equal(pclntab__func_cnt(p), NFUNC);
	assert_int_equal(pclntab__symbolize(p, im.s[0].addr + 0x1a, fr, 4), 3);
	pclntab__free(p);
	elf_file__free(ef);
	img_free(&im);
}

static void test_pclntab_errors(void **state)
{
	struct synth_opts o = { .fmt = 120, .text_in_header = true };
	struct image im;
	struct elf_file *ef;

	/* Go 1.2-1.15 magic. */
	o.magic = 0xfffffffb;
	build_pclntab_image(&im, &o);
	ef = elf_file__open_mem(im.p, im.len, "old");
	gt_clearerr();
	assert_null(pclntab__open(ef, NULL));
	assert_int_equal(errno, EPROTONOSUPPORT);
	assert_string_equal(gt_lasterr(), "old: Go 1.15 or older pclntab format is not supported");
	elf_file__free(ef);
	img_free(&im);

	/* A magic from the future. */
	o.magic = 0xfffffff2;
	build_pclntab_image(&im, &o);
	ef = elf_file__open_mem(im.p, im.len, "new");
	assert_null(pclntab__open(ef, NULL));
	assert_int_equal(errno, EPROTONOSUPPORT);
	assert_non_null(strstr(gt_lasterr(), "unknown pclntab format (magic 0xfffffff2)"));
	elf_file__free(ef);
	img_free(&im);

	/* Not Go at all. */
	img_add(&im, ".text", SHT_PROGBITS, 64);
	img_layout(&im);
	img_build(&im, false);
	ef = elf_file__open_mem(im.p, im.len, "/bin/true");
	assert_null(pclntab__open(ef, NULL));
	assert_int_equal(errno, ENOENT);
	assert_string_equal(gt_lasterr(), "not a Go binary: no .gopclntab section in /bin/true");
	elf_file__free(ef);
	img_free(&im);

	/* Corrupt header: nfunc far beyond the table. */
	o.magic = 0;
	build_pclntab_image(&im, &o);
	set_u64(&(struct buf){ .p = im.p }, im.s[1].off + 8, 1000000);
	ef = elf_file__open_mem(im.p, im.len, "bad");
	assert_null(pclntab__open(ef, NULL));
	assert_int_equal(errno, EINVAL);
	assert_string_equal(gt_lasterr(), "corrupt .gopclntab in bad");
	elf_file__free(ef);
	img_free(&im);
}

/* ------------------------------------------------------------------ ELF errors, garbage */

static void test_elf_errors(void **state)
{
	static const uint8_t junk[256] = { 1, 2, 3 };
	struct image im = {};
	struct elf_file *ef;
	char path[] = "/tmp/gotrace-test-gosym.XXXXXX";
	int fd;

	gt_clearerr();
	assert_null(elf_file__open_mem(junk, sizeof(junk), "junk"));
	assert_int_equal(errno, ENOEXEC);
	assert_string_equal(gt_lasterr(), "not an ELF file: junk");
	assert_null(elf_file__open_mem(junk, 3, "tiny"));
	assert_null(elf_file__open_mem(NULL, 0, "null"));

	assert_null(elf_file__open("/nonexistent/gotrace"));
	assert_int_equal(errno, ENOENT);
	assert_string_equal(gt_lasterr(), "cannot read /nonexistent/gotrace: No such file or directory");
	assert_null(elf_file__open("/"));
	assert_int_equal(errno, EISDIR);

	/* Cut-off files: every header is there, the section contents are not. */
	img_add(&im, ".text", SHT_PROGBITS, 4096);
	img_layout(&im);
	img_build(&im, false);
	assert_non_null(ef = elf_file__open_mem(im.p, im.len, "whole"));
	assert_int_equal(elf_file__ptr_size(ef), 8);
	assert_false(elf_file__big_endian(ef));
	assert_int_equal(elf_file__machine(ef), EM_X86_64);
	assert_false(elf_file__is_dyn(ef));
	assert_false(elf_file__has_symtab(ef));
	assert_non_null(elf_file__section(ef, ".text"));
	assert_non_null(elf_file__vaddr_ptr(ef, im.s[0].addr, 4096));
	assert_null(elf_file__vaddr_ptr(ef, im.s[0].addr, 1 << 20));
	assert_null(elf_file__vaddr_ptr(ef, UINT64_MAX - 2, 8));
	elf_file__free(ef);
	for (size_t cut = 1; cut < im.len; cut += 97) {
		gt_clearerr();
		ef = elf_file__open_mem(im.p, cut, "cut");
		if (ef) {
			/* Only acceptable when nothing the headers promise is missing. */
			elf_file__free(ef);
			fail_msg("a file cut at %zu of %zu bytes opened", cut, im.len);
		}
		assert_true(errno == EINVAL || errno == ENOEXEC);
	}
	assert_string_equal(gt_lasterr(), "truncated or corrupt ELF file: cut");

	/* The same through a file, and a file we may not read. */
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, im.p, im.len / 2), (ssize_t)(im.len / 2));
	close(fd);
	assert_null(elf_file__open(path));
	assert_int_equal(errno, EINVAL);
	if (geteuid() != 0) {
		chmod(path, 0);
		assert_null(elf_file__open(path));
		assert_int_equal(errno, EACCES);
		assert_non_null(strstr(gt_lasterr(), "Permission denied"));
	}
	unlink(path);
	img_free(&im);
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Run every parser over IMG; all that matters is that nothing crashes or hangs. */
static void parse_all(const uint8_t *img, size_t len)
{
	struct pclntab_opts opts = { .go_minor = -1 };
	struct go_buildinfo bi;
	struct go_frame fr[16];
	struct elf_file *ef;
	struct pclntab *p;

	ef = elf_file__open_mem(img, len, "mutant");
	if (!ef)
		return;
	if (!buildinfo__read(ef, &bi))
		opts.go_minor = bi.minor;
	buildinfo__free(&bi);
	p = pclntab__open(ef, &opts);
	if (p) {
		for (size_t i = 0; i < pclntab__func_cnt(p) && i < 64; i++) {
			const struct go_func *f = pclntab__func(p, i);
			const char *file;
			int line;
			int32_t v;

			for (uint64_t pc = f->entry; pc < f->end && pc < f->entry + 256; pc += 3) {
				pclntab__symbolize(p, pc, fr, 16);
				pclntab__line(p, f, pc, &file, &line);
				pclntab__pcvalue(p, f, PCTAB_SP, pc, &v);
			}
			pclntab__start_line(p, f);
			pclntab__func_by_name(p, f->name);
		}
		pclntab__free(p);
	}
	elf_file__free(ef);
}

static void mutate_and_parse(const uint8_t *orig, size_t len, int rounds, uint64_t seed)
{
	uint8_t *img = malloc(len);

	assert_non_null(img);
	for (int r = 0; r < rounds; r++) {
		int nflip = 1 + (int)(xorshift(&seed) % 8);

		memcpy(img, orig, len);
		for (int k = 0; k < nflip; k++) {
			size_t at = xorshift(&seed) % len;

			/* Mostly single bytes, sometimes a whole word of 0xff or 0. */
			if (k % 3 == 2 && at + 4 <= len)
				memset(img + at, (xorshift(&seed) & 1) ? 0xff : 0, 4);
			else
				img[at] = (uint8_t)xorshift(&seed);
		}
		parse_all(img, len);
		parse_all(img, xorshift(&seed) % len);
	}
	free(img);
}

static void test_garbage(void **state)
{
	static const int fmts[] = { 116, 118, 120 };
	uint64_t seed = 0x12345678;
	uint8_t *rnd = malloc(1 << 16);

	assert_non_null(rnd);
	for (int i = 0; i < 3; i++) {
		struct synth_opts o = { .fmt = fmts[i], .text_in_header = i != 2 };
		struct image im;

		build_pclntab_image(&im, &o);
		mutate_and_parse(im.p, im.len, 3000, seed + i);
		img_free(&im);
	}
	for (int reloc = 0; reloc < 2; reloc++) {
		struct image im;

		build_pointer_image(&im, reloc);
		mutate_and_parse(im.p, im.len, 1000, seed + 7 + reloc);
		img_free(&im);
	}
	/* Random bytes behind a valid ELF magic. */
	for (int r = 0; r < 200; r++) {
		for (size_t i = 0; i < (1 << 16); i++)
			rnd[i] = (uint8_t)xorshift(&seed);
		memcpy(rnd, ELFMAG, SELFMAG);
		rnd[EI_CLASS] = 1 + r % 2;
		rnd[EI_DATA] = 1 + (r / 2) % 2;
		parse_all(rnd, 1 << 16);
	}
	free(rnd);
}

/* ------------------------------------------------------------------ a real Go program */

/*
 * The program records a stack from inside a chain of inlined calls with
 * runtime.Callers, then prints what runtime.CallersFrames makes of it ("F func
 * file line") and the raw PCs ("P pc").
 */
static const char go_prog[] =
	"package main\n"
	"\n"
	"import (\n"
	"\t\"fmt\"\n"
	"\t\"runtime\"\n"
	")\n"
	"\n"
	"func leaf() []uintptr {\n"
	"\tpcs := make([]uintptr, 64)\n"
	"\treturn pcs[:runtime.Callers(1, pcs)]\n"
	"}\n"
	"\n"
	"func mid() []uintptr  { return leaf() }\n"
	"func top() []uintptr  { return mid() }\n"
	"func top2() []uintptr { return top() }\n"
	"\n"
	"type T struct{ v int }\n"
	"\n"
	"func (t *T) get() []uintptr { return top2() }\n"
	"\n"
	"//go:noinline\n"
	"func physical(x int) []uintptr { return (&T{v: x}).get() }\n"
	"\n"
	"func main() {\n"
	"\tpcs := physical(3)\n"
	"\tfr := runtime.CallersFrames(pcs)\n"
	"\tfor {\n"
	"\t\tf, more := fr.Next()\n"
	"\t\tfmt.Printf(\"F %s\\t%s\\t%d\\n\", f.Function, f.File, f.Line)\n"
	"\t\tif !more {\n"
	"\t\t\tbreak\n"
	"\t\t}\n"
	"\t}\n"
	"\tfor _, pc := range pcs {\n"
	"\t\tfmt.Printf(\"P %x\\n\", pc)\n"
	"\t}\n"
	"}\n";

struct gofix {
	char dir[64];
	char src[96];
	char bin[96];	   /* default build */
	char stripped[96]; /* -ldflags=-s -w */
	char out[96];	   /* what the default build printed */
	bool built;
};

static struct gofix gf;

static int go_build(const char *go, const char *out, const char *ldflags)
{
	char cmd[640];

	snprintf(cmd, sizeof(cmd),
		 "cd %s && GO111MODULE=off GOFLAGS= GOTOOLCHAIN=local CGO_ENABLED=0 %s build "
		 "-buildmode=exe -ldflags='%s' -o %s main.go >/dev/null 2>&1",
		 gf.dir, go, ldflags, out);
	return system(cmd);
}

static int group_setup(void **state)
{
	const char *go = getenv("GO") ? getenv("GO") : "go";
	char cmd[256];
	FILE *f;

	snprintf(cmd, sizeof(cmd), "%s version >/dev/null 2>&1", go);
	if (system(cmd) != 0)
		return 0;
	strcpy(gf.dir, "/tmp/gotrace-test-gosym.XXXXXX");
	if (!mkdtemp(gf.dir))
		return 0;
	snprintf(gf.src, sizeof(gf.src), "%s/main.go", gf.dir);
	snprintf(gf.bin, sizeof(gf.bin), "%s/default", gf.dir);
	snprintf(gf.stripped, sizeof(gf.stripped), "%s/stripped", gf.dir);
	snprintf(gf.out, sizeof(gf.out), "%s/out.txt", gf.dir);
	f = fopen(gf.src, "w");
	if (!f)
		return 0;
	fputs(go_prog, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "%s > %s", gf.bin, gf.out);
	gf.built = !go_build(go, gf.bin, "") && !go_build(go, gf.stripped, "-s -w") &&
		   !system(cmd);
	return 0;
}

static int group_teardown(void **state)
{
	if (gf.dir[0]) {
		unlink(gf.src);
		unlink(gf.bin);
		unlink(gf.stripped);
		unlink(gf.out);
		rmdir(gf.dir);
	}
	return 0;
}

/* Skip without a Go toolchain, except under CI=true, where a skip would hide a gap. */
static void need_go(void)
{
	const char *ci = getenv("CI");

	if (gf.built)
		return;
	if (ci && !strcmp(ci, "true"))
		fail_msg("no Go build of the test program (is go on PATH, or $GO set?)");
	print_message("skipped: no Go toolchain (go on PATH or $GO) to build a test program\n");
	skip();
}

static struct pclntab *open_real(const char *path, struct elf_file **ef, struct go_buildinfo *bi)
{
	struct pclntab_opts opts = { .go_minor = -1 };
	struct pclntab *p;

	*ef = elf_file__open(path);
	assert_non_null(*ef);
	assert_int_equal(buildinfo__read(*ef, bi), 0);
	opts.go_minor = bi->minor;
	p = pclntab__open(*ef, &opts);
	if (!p)
		fail_msg("%s: %s", path, gt_lasterr());
	return p;
}

static void test_real_program(void **state)
{
	struct go_buildinfo bi;
	struct elf_file *ef;
	struct pclntab *p;
	char line[1024], *want[64];
	uint64_t pcs[64];
	int nwant = 0, npc = 0;
	const struct go_func *f;
	FILE *out;

	need_go();
	p = open_real(gf.bin, &ef, &bi);
	assert_int_equal(bi.major, 1);
	assert_true(bi.minor >= 16);
	/* GOPATH-mode builds carry module info (and build settings) only from Go 1.18. */
	if (bi.minor >= 18) {
		assert_non_null(bi.path);
		assert_string_equal(bi.path, "command-line-arguments");
		assert_non_null(buildinfo__setting(&bi, "CGO_ENABLED"));
		assert_string_equal(buildinfo__setting(&bi, "CGO_ENABLED"), "0");
	}
	assert_true(elf_file__has_symtab(ef));

	f = pclntab__func_by_name(p, "main.main");
	assert_non_null(f);
	{
		const char *file;
		int ln;

		assert_int_equal(pclntab__line(p, f, f->entry, &file, &ln), 0);
		assert_string_equal(file, gf.src);
		assert_int_equal(ln, 24);
		assert_int_equal(pclntab__start_line(p, f), 24);
	}
	assert_non_null(pclntab__func_by_name(p, "main.physical"));
	assert_non_null(pclntab__func_by_name(p, "runtime.gopark"));

	/* The frames runtime.CallersFrames printed, against ours for each physical PC. */
	out = fopen(gf.out, "r");
	assert_non_null(out);
	while (fgets(line, sizeof(line), out) && nwant < 64) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == 'F')
			want[nwant++] = strdup(line + 2);
		else if (line[0] == 'P' && npc < 64)
			pcs[npc++] = strtoull(line + 2, NULL, 16);
	}
	fclose(out);
	assert_int_equal(nwant, npc);
	assert_true(npc >= 6);
	for (int i = 0; i < npc;) {
		struct go_frame fr[16];
		int n = pclntab__symbolize(p, pcs[i] - 1, fr, 16), k = 0;

		assert_true(n > 0);
		for (int j = 0; j < n; j++) {
			/* Go hides wrapper frames that call something (elideWrapperCalling). */
			if (j && fr[j].wrapper)
				continue;
			snprintf(line, sizeof(line), "%s\t%s\t%d", fr[j].func, fr[j].file, fr[j].line);
			assert_true(i + k < nwant);
			assert_string_equal(line, want[i + k]);
			k++;
		}
		i += k;
	}
	/* main.leaf is a real function; mid <- top <- top2 <- (*T).get are inlined in physical. */
	{
		struct go_frame fr[16];

		assert_int_equal(pclntab__symbolize(p, pcs[0] - 1, fr, 16), 1);
		assert_string_equal(fr[0].func, "main.leaf");
		assert_int_equal(pclntab__symbolize(p, pcs[1] - 1, fr, 16), 5);
		assert_string_equal(fr[0].func, "main.mid");
		assert_true(fr[0].inlined);
		assert_string_equal(fr[3].func, "main.(*T).get");
		assert_string_equal(fr[4].func, "main.physical");
		assert_false(fr[4].inlined);
	}
	for (int i = 0; i < nwant; i++)
		free(want[i]);
	pclntab__free(p);
	buildinfo__free(&bi);
	elf_file__free(ef);
}

/* -s -w drops .symtab: the same functions and lines come from the pclntab alone. */
static void test_real_stripped(void **state)
{
	struct go_buildinfo bi, bis;
	struct elf_file *ef, *efs;
	struct pclntab *p, *ps;

	need_go();
	p = open_real(gf.bin, &ef, &bi);
	ps = open_real(gf.stripped, &efs, &bis);
	assert_false(elf_file__has_symtab(efs));
	assert_string_equal(bi.version, bis.version);
	assert_int_equal(pclntab__func_cnt(p), pclntab__func_cnt(ps));
	assert_int_equal(pclntab__text_start(p), pclntab__text_start(ps));
	assert_int_not_equal(pclntab__moduledata(ps), 0);
	for (size_t i = 0; i < pclntab__func_cnt(p); i++) {
		const struct go_func *a = pclntab__func(p, i), *b = pclntab__func(ps, i);
		struct go_frame fa[8], fb[8];
		int na, nb;

		assert_string_equal(a->name, b->name);
		assert_int_equal(a->entry, b->entry);
		assert_int_equal(a->end, b->end);
		na = pclntab__symbolize(p, a->entry + (a->end - a->entry) / 2, fa, 8);
		nb = pclntab__symbolize(ps, b->entry + (b->end - b->entry) / 2, fb, 8);
		assert_int_equal(na, nb);
		for (int j = 0; j < na; j++) {
			assert_string_equal(fa[j].func, fb[j].func);
			assert_string_equal(fa[j].file, fb[j].file);
			assert_int_equal(fa[j].line, fb[j].line);
		}
	}
	/* And mutations of a real binary's headers and tables do not crash the parsers. */
	{
		size_t len;
		const uint8_t *img = elf_file__data(efs, &len);

		mutate_and_parse(img, len, 30, 42);
	}
	pclntab__free(p);
	pclntab__free(ps);
	buildinfo__free(&bi);
	buildinfo__free(&bis);
	elf_file__free(ef);
	elf_file__free(efs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pcvalue_decode),
		cmocka_unit_test(test_parse_version),
		cmocka_unit_test(test_buildinfo_inline),
		cmocka_unit_test(test_buildinfo_pointers),
		cmocka_unit_test(test_buildinfo_version_string),
		cmocka_unit_test(test_buildinfo_errors),
		cmocka_unit_test(test_pclntab_formats),
		cmocka_unit_test(test_pclntab_text_from_moduledata),
		cmocka_unit_test(test_pclntab_scan),
		cmocka_unit_test(test_pclntab_errors),
		cmocka_unit_test(test_elf_errors),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_real_program),
		cmocka_unit_test(test_real_stripped),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
