// SPDX-License-Identifier: MIT
/*
 * Unit tests of src/goruntime: the built-in offset table, wait reasons, instruction
 * decoding (on prologues and bodies copied from real go1.19/go1.27 builds), and, when a
 * Go toolchain is on PATH (or $GO), DWARF offsets and probe sites on the inspectme
 * fixture built by it.
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
#include <unistd.h>
#include <cmocka.h>

#include "elf/elf_file.h"
#include "goruntime/offsets.h"
#include "goruntime/probes.h"
#include "gosym/buildinfo.h"
#include "gosym/pclntab.h"
#include "util/log.h"

/* ------------------------------------------------------------------ offset table */

static void test_table_every_minor(void **state)
{
	for (int minor = GO_MIN_MINOR; minor <= GO_MAX_MINOR; minor++) {
		struct go_offsets o;

		assert_int_equal(go_offsets__from_table(minor, &o), 0);
		assert_int_equal(o.go_minor, minor);
		for (int i = 0; i < GO_OFF__CNT; i++) {
			if (o.val[i] < 0) {
				/* Only fields that older versions lack may be missing. */
				assert_int_equal(o.val[i], -1);
				assert_int_equal(o.src[i], GO_OFF_SRC_NONE);
				assert_true((i == GO_OFF_G_PARENTGOID && minor < 21) ||
					    (i == GO_OFF_MODULEDATA_GOFUNC && minor < 18));
				continue;
			}
			assert_int_equal(o.src[i], GO_OFF_SRC_TABLE);
		}
		/* Every g field lies inside g, every gobuf field inside gobuf. */
		for (int i = GO_OFF_G_STACK_LO; i <= GO_OFF_G_LABELS; i++)
			assert_true(o.val[i] < o.val[GO_OFF_G_SIZE]);
		assert_true(o.val[GO_OFF_G_SCHED_BP] - o.val[GO_OFF_G_SCHED_SP] <
			    o.val[GO_OFF_GOBUF_SIZE]);
		assert_true(o.val[GO_OFF_G_GOID] > o.val[GO_OFF_G_ATOMICSTATUS]);
		assert_true(o.val[GO_OFF_G_STARTPC] > o.val[GO_OFF_G_GOPC]);
		assert_true(o.val[GO_OFF_M_CURG] > o.val[GO_OFF_M_PROCID]);
	}
}

static void test_table_refuses_unknown(void **state)
{
	struct go_offsets o;

	gt_clearerr();
	assert_int_equal(go_offsets__from_table(28, &o), -ENOTSUP);
	assert_non_null(gt_lasterr());
	assert_string_equal(gt_lasterr(), "unsupported: go1.28, newest known go1.27");
	for (int i = 0; i < GO_OFF__CNT; i++)
		assert_int_equal(o.val[i], -1);

	gt_clearerr();
	assert_int_equal(go_offsets__from_table(16, &o), -ENOTSUP);
	assert_string_equal(gt_lasterr(), "unsupported: go1.16, oldest supported go1.17");
	assert_int_equal(go_offsets__from_table(-1, &o), -ENOTSUP);
	gt_clearerr();
}

/* Values read from the DWARF of go1.19.8 ... go1.27.4 builds (see offsets.c). */
static void test_table_known_values(void **state)
{
	static const struct {
		int minor;
		enum go_off_id id;
		int64_t val;
	} cases[] = {
		{ 19, GO_OFF_G_GOID, 152 },	    { 23, GO_OFF_G_GOID, 160 },
		{ 24, GO_OFF_G_GOID, 160 },	    { 25, GO_OFF_G_GOID, 152 },
		{ 23, GO_OFF_G_ATOMICSTATUS, 152 }, { 27, GO_OFF_G_ATOMICSTATUS, 144 },
		{ 20, GO_OFF_G_PARENTGOID, -1 },    { 21, GO_OFF_G_PARENTGOID, 272 },
		{ 26, GO_OFF_G_PARENTGOID, 280 },   { 19, GO_OFF_G_GOPC, 296 },
		{ 21, GO_OFF_G_GOPC, 280 },	    { 24, GO_OFF_G_SCHED_BP, 104 },
		{ 25, GO_OFF_G_SCHED_BP, 96 },	    { 24, GO_OFF_GOBUF_SIZE, 56 },
		{ 25, GO_OFF_GOBUF_SIZE, 48 },	    { 22, GO_OFF_G_SIZE, 424 },
		{ 27, GO_OFF_G_SIZE, 456 },	    { 24, GO_OFF_M_CURG, 192 },
		{ 25, GO_OFF_M_CURG, 184 },	    { 25, GO_OFF_M_P, 200 },
		{ 26, GO_OFF_M_P, 208 },	    { 17, GO_OFF_MODULEDATA_GOFUNC, -1 },
		{ 19, GO_OFF_MODULEDATA_GOFUNC, 304 }, { 21, GO_OFF_MODULEDATA_GOFUNC, 320 },
		{ 27, GO_OFF_MODULEDATA_GOFUNC, 344 }, { 27, GO_OFF_MODULEDATA_TEXT, 176 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct go_offsets o;

		assert_int_equal(go_offsets__from_table(cases[i].minor, &o), 0);
		if (o.val[cases[i].id] != cases[i].val)
			fail_msg("go1.%d %s: %lld, want %lld", cases[i].minor,
				 go_offsets__desc(cases[i].id)->name,
				 (long long)o.val[cases[i].id], (long long)cases[i].val);
	}
}

static void test_offset_descs(void **state)
{
	for (int i = 0; i < GO_OFF__CNT; i++) {
		const struct go_offset_desc *d = go_offsets__desc(i);

		assert_non_null(d);
		assert_non_null(d->name);
		assert_non_null(d->dwarf_type);
		assert_non_null(d->dwarf_path);
		assert_true(!strncmp(d->dwarf_type, "runtime.", 8));
		for (int j = 0; j < i; j++)
			assert_string_not_equal(d->name, go_offsets__desc(j)->name);
	}
	assert_null(go_offsets__desc(GO_OFF__CNT));
	assert_string_equal(go_offsets__desc(GO_OFF_G_SCHED_SP)->dwarf_path, "sched.sp");
	assert_string_equal(go_offsets__desc(GO_OFF_G_SIZE)->dwarf_path, "");
	assert_string_equal(go_offsets__src_name(GO_OFF_SRC_TABLE), "table");
	assert_string_equal(go_offsets__src_name(GO_OFF_SRC_DWARF), "dwarf");
	assert_string_equal(go_offsets__src_name(GO_OFF_SRC_NONE), "none");
}

/* ------------------------------------------------------------------ wait reasons */

static void test_waitreasons(void **state)
{
	const char *const *tab;

	/* "chan receive" moved from 14 to 19 with the go1.26 reorder. */
	assert_string_equal(go_waitreason(19, 14), "chan receive");
	assert_string_equal(go_waitreason(27, 19), "chan receive");
	assert_string_equal(go_waitreason(27, 14), "sleep");
	assert_string_equal(go_waitreason(19, 19), "sleep");
	assert_string_equal(go_waitreason(19, 0), "");
	assert_string_equal(go_waitreason(19, 21), "timer goroutine (idle)");
	assert_string_equal(go_waitreason(21, 21), "sync.Mutex.Lock");
	assert_string_equal(go_waitreason(24, 24), "sync.WaitGroup.Wait");
	assert_string_equal(go_waitreason(24, 41), "chan receive (synctest)");
	assert_string_equal(go_waitreason(25, 18), "GOMAXPROCS updater (idle)");
	assert_string_equal(go_waitreason(25, 42), "chan receive (durable)");
	assert_string_equal(go_waitreason(26, 3), "dumping heap");
	assert_string_equal(go_waitreason(27, 46), "cleanup wait");
	assert_null(go_waitreason(19, 27));
	assert_null(go_waitreason(27, 47));
	assert_null(go_waitreason(28, 0));
	assert_null(go_waitreason(16, 0));

	/* Lengths of runtime.waitReasonStrings in real binaries (1.17/1.18/1.20 from source). */
	static const int want[] = { 27, 27, 27, 32, 32, 37, 38, 44, 47, 47, 47 };
	for (int m = GO_MIN_MINOR; m <= GO_MAX_MINOR; m++) {
		int n = go_waitreasons(m, &tab);

		assert_int_equal(n, want[m - GO_MIN_MINOR]);
		assert_string_equal(tab[0], "");
		assert_string_equal(tab[1], "GC assist marking");
		for (int i = 1; i < n; i++)
			assert_true(tab[i] && tab[i][0]);
	}
	assert_int_equal(go_waitreasons(28, &tab), 0);
	assert_null(tab);
}

/* ------------------------------------------------------------------ x86-64 decoding */

struct prologue_case {
	const char *what;
	const uint8_t *code;
	size_t len;
	uint32_t attach;
	bool check;
	const char *insn;
	enum go_attach_kind kind;
};

#define BYTES(...) (const uint8_t[]){ __VA_ARGS__ }, sizeof((const uint8_t[]){ __VA_ARGS__ })

/* Bytes copied from go tool objdump / the file of real builds (noted per case). */
static const struct prologue_case x86_cases[] = {
	{ "go1.27 runtime.newproc1: cmp rsp, [r14+0x10]; jbe rel32",
	  BYTES(0x49, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0x93, 0x04, 0x00, 0x00, 0x55, 0x48, 0x89,
		0xe5, 0x48, 0x83, 0xec, 0x50),
	  10, true, "push rbp", GO_ATTACH_EMULATED },
	{ "go1.27 runtime.goexit0: jbe rel8",
	  BYTES(0x49, 0x3b, 0x66, 0x10, 0x76, 0x18, 0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec,
		0x08),
	  6, true, "push rbp", GO_ATTACH_EMULATED },
	{ "go1.27 runtime.gcStart: lea r12, [rsp-N]; cmp r12, [r14+0x10]",
	  BYTES(0x4c, 0x8d, 0xa4, 0x24, 0x70, 0xff, 0xff, 0xff, 0x4d, 0x3b, 0x66, 0x10, 0x0f,
		0x86, 0x69, 0x07, 0x00, 0x00, 0x55, 0x48, 0x89, 0xe5, 0x48, 0x81),
	  18, true, "push rbp", GO_ATTACH_EMULATED },
	{ "go1.27 runtime.stopTheWorldWithSema (//go:systemstack): stackguard1 at +0x18",
	  BYTES(0x4c, 0x8d, 0x64, 0x24, 0xe8, 0x4d, 0x3b, 0x66, 0x18, 0x0f, 0x86, 0x0e, 0x04,
		0x00, 0x00, 0x55, 0x48, 0x89, 0xe5, 0x48),
	  15, true, "push rbp", GO_ATTACH_EMULATED },
	{ "go1.27 debugCall4096 (ABI0, huge frame): g from TLS, mov/sub/jb, cmp/jbe",
	  BYTES(0x64, 0x4c, 0x8b, 0x34, 0x25, 0xf8, 0xff, 0xff, 0xff, 0x49, 0x89, 0xe4, 0x49,
		0x81, 0xec, 0x88, 0x0f, 0x00, 0x00, 0x72, 0x28, 0x4d, 0x3b, 0x66, 0x10, 0x76,
		0x22, 0x55, 0x48, 0x89, 0xe5, 0x48, 0x81, 0xec, 0x00, 0x10),
	  27, true, "push rbp", GO_ATTACH_EMULATED },
	{ "go1.27 PIE debugCall128: mov r14, -8; mov r14, fs:[r14]",
	  BYTES(0x49, 0xc7, 0xc6, 0xf8, 0xff, 0xff, 0xff, 0x64, 0x4d, 0x8b, 0x36, 0x4c, 0x8d,
		0x64, 0x24, 0xf8, 0x4d, 0x3b, 0x66, 0x10, 0x76, 0x1c, 0x55, 0x48, 0x89, 0xe5,
		0x48, 0x83, 0xc4, 0x80),
	  22, true, "push rbp", GO_ATTACH_EMULATED },
	{ "go1.19 runtime.mallocgc: old frame setup, sub rsp is single-stepped",
	  BYTES(0x49, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0xbe, 0x08, 0x00, 0x00, 0x48, 0x83, 0xec,
		0x70, 0x48, 0x89, 0x6c, 0x24, 0x68, 0x48),
	  10, true, "sub rsp, 0x70", GO_ATTACH_SINGLESTEP },
	{ "go1.19 runtime.casgstatus: nosplit",
	  BYTES(0x48, 0x83, 0xec, 0x40, 0x48, 0x89, 0x6c, 0x24, 0x38, 0x48, 0x8d, 0x6c),
	  0, false, "sub rsp, 0x40", GO_ATTACH_SINGLESTEP },
	{ "go1.27 runtime.casgstatus: nosplit",
	  BYTES(0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x58),
	  0, false, "push rbp", GO_ATTACH_EMULATED },
	{ "a compare with another g offset is no stack check",
	  BYTES(0x49, 0x3b, 0x66, 0x20, 0x0f, 0x86, 0x93, 0x04, 0x00, 0x00, 0x55),
	  0, false, NULL, GO_ATTACH_SINGLESTEP },
	{ "a stack check without its conditional jump is not one",
	  BYTES(0x49, 0x3b, 0x66, 0x10, 0x55, 0x48, 0x89, 0xe5),
	  0, false, NULL, GO_ATTACH_SINGLESTEP },
	{ "a stack check at the very end of the bytes: attach at entry",
	  BYTES(0x49, 0x3b, 0x66, 0x10, 0x76, 0x18),
	  0, false, NULL, GO_ATTACH_SINGLESTEP },
};

static void run_prologue_cases(uint16_t machine, const struct prologue_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct prologue_case *c = &cases[i];
		enum go_attach_kind kind;
		char text[48];
		uint32_t off;
		bool check;
		int err;

		err = insn__attach_point(machine, c->code, c->len, 0x401000, &off, text,
					 sizeof(text), &kind, &check);
		if (err)
			fail_msg("%s: error %d", c->what, err);
		if (off != c->attach || check != c->check || kind != c->kind ||
		    (c->insn && strcmp(text, c->insn)))
			fail_msg("%s: got +%u check=%d '%s' %s, want +%u check=%d '%s' %s", c->what,
				 off, check, text, go_probes__attach_kind_name(kind), c->attach,
				 c->check, c->insn ? c->insn : "*",
				 go_probes__attach_kind_name(c->kind));
	}
}

static void test_x86_attach_points(void **state)
{
	run_prologue_cases(EM_X86_64, x86_cases, sizeof(x86_cases) / sizeof(x86_cases[0]));
}

static void test_x86_rets(void **state)
{
	/* go1.27 runtime.goexit0, whole extent (64 bytes, int3 padding after the code). */
	static const uint8_t goexit0[] = {
		0x49, 0x3b, 0x66, 0x10, 0x76, 0x18, 0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec,
		0x08, 0xe8, 0x2d, 0x00, 0x00, 0x00, 0xe8, 0x88, 0xf1, 0xff, 0xff, 0x48, 0x83,
		0xc4, 0x08, 0x5d, 0xc3, 0x48, 0x89, 0x44, 0x24, 0x08, 0xe8, 0x38, 0xd5, 0x02,
		0x00, 0x48, 0x8b, 0x44, 0x24, 0x08, 0xeb, 0xd1, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc,
		0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc,
	};
	/*
	 * go1.27 internal/runtime/gc/scan.expandAVX512_2: EVEX vpermb/vgf2p8affineqb that
	 * capstone 4 cannot decode; the RET at +84 must still be found (GNU objdump agrees).
	 */
	static const uint8_t avx512[] = {
		0x62, 0xf1, 0xfe, 0x48, 0x6f, 0x05, 0x76, 0x4d, 0x09, 0x00, 0x62, 0xf1, 0xfe,
		0x48, 0x6f, 0x0d, 0xac, 0x4d, 0x09, 0x00, 0x62, 0xf1, 0xfe, 0x48, 0x6f, 0x15,
		0xe2, 0x4d, 0x09, 0x00, 0x62, 0xf1, 0xfe, 0x48, 0x6f, 0x1d, 0x98, 0x72, 0x09,
		0x00, 0x62, 0xf1, 0xfe, 0x48, 0x6f, 0x20, 0x62, 0xf2, 0x7d, 0x48, 0x8d, 0xc4,
		0x62, 0xf3, 0xfd, 0x48, 0xce, 0xc1, 0x00, 0x62, 0xf2, 0x6d, 0x48, 0x8d, 0xd4,
		0x62, 0xf3, 0xed, 0x48, 0xce, 0xd1, 0x00, 0x62, 0xf2, 0x65, 0x48, 0x8d, 0xc8,
		0x62, 0xf2, 0x65, 0x48, 0x8d, 0xd2, 0xc3, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc,
		0xcc, 0xcc, 0xcc, 0xcc, 0xcc,
	};
	/* vzeroupper; ret (countbody tail): go tool objdump misreads it as one instruction. */
	static const uint8_t vzu[] = { 0xc5, 0xf8, 0x77, 0xc3 };
	/* 0x06 is invalid in 64-bit mode: skipped, counted, the RET after it still found. */
	static const uint8_t bad[] = { 0x06, 0xc3, 0xcc };
	/* A C3 byte inside an immediate is not a RET: mov eax, 0xc3c3c3c3; ret. */
	static const uint8_t imm[] = { 0xb8, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3 };
	struct insn_sweep_stats st;
	uint32_t offs[8];

	assert_int_equal(insn__find_rets_stats(EM_X86_64, goexit0, sizeof(goexit0), 0x450040,
					       offs, 8, &st), 1);
	assert_int_equal(offs[0], 29);
	assert_int_equal(st.nbad, 0);

	assert_int_equal(insn__find_rets_stats(EM_X86_64, avx512, sizeof(avx512), 0x410300, offs,
					       8, &st), 1);
	assert_int_equal(offs[0], 84);
	assert_int_equal(st.nbad, 0);
	assert_true(st.nlen_only > 0);

	assert_int_equal(insn__find_rets(EM_X86_64, vzu, sizeof(vzu), 0, offs, 8), 1);
	assert_int_equal(offs[0], 3);

	assert_int_equal(insn__find_rets_stats(EM_X86_64, bad, sizeof(bad), 0, offs, 8, &st), 1);
	assert_int_equal(offs[0], 1);
	assert_int_equal(st.nbad, 1);
	assert_int_equal(st.first_bad, 0);

	assert_int_equal(insn__find_rets(EM_X86_64, imm, sizeof(imm), 0, offs, 8), 1);
	assert_int_equal(offs[0], 5);

	/* More RETs than room: the count is exact, only MAX are written. */
	uint8_t many[10];
	memset(many, 0xc3, sizeof(many));
	offs[2] = 0xdead;
	assert_int_equal(insn__find_rets(EM_X86_64, many, sizeof(many), 0, offs, 2), 10);
	assert_int_equal(offs[1], 1);
	assert_int_equal(offs[2], 0xdead);
	assert_int_equal(insn__find_rets(EM_X86_64, many, 0, 0, offs, 2), 0);
}

static void test_attach_kinds(void **state)
{
	const struct {
		const uint8_t *code;
		size_t len;
		enum go_attach_kind kind;
	} cases[] = {
		{ BYTES(0x55), GO_ATTACH_EMULATED },			   /* push rbp */
		{ BYTES(0x41, 0x56), GO_ATTACH_EMULATED },		   /* push r14 */
		{ BYTES(0x48, 0x55), GO_ATTACH_SINGLESTEP },		   /* rex.w push rbp */
		{ BYTES(0x66, 0x55), GO_ATTACH_SINGLESTEP },		   /* push bp */
		{ BYTES(0xe8, 0x00, 0x00, 0x00, 0x00), GO_ATTACH_EMULATED }, /* call rel32 */
		{ BYTES(0xe9, 0x00, 0x00, 0x00, 0x00), GO_ATTACH_EMULATED }, /* jmp rel32 */
		{ BYTES(0xeb, 0x10), GO_ATTACH_EMULATED },		   /* jmp rel8 */
		{ BYTES(0x76, 0x18), GO_ATTACH_EMULATED },		   /* jbe rel8 */
		{ BYTES(0x0f, 0x86, 0, 0, 0, 0), GO_ATTACH_EMULATED },	   /* jbe rel32 */
		{ BYTES(0x66, 0xe8, 0, 0), GO_ATTACH_SINGLESTEP },	   /* callw: rejected */
		{ BYTES(0x90), GO_ATTACH_EMULATED },			   /* nop */
		{ BYTES(0x0f, 0x1f, 0x44, 0x00, 0x00), GO_ATTACH_EMULATED }, /* nopl */
		{ BYTES(0x48, 0x83, 0xec, 0x40), GO_ATTACH_SINGLESTEP },   /* sub rsp, 0x40 */
		{ BYTES(0x48, 0x89, 0xe5), GO_ATTACH_SINGLESTEP },	   /* mov rbp, rsp */
		{ BYTES(0xc3), GO_ATTACH_SINGLESTEP },			   /* ret */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum go_attach_kind k = insn__attach_kind(EM_X86_64, cases[i].code, cases[i].len);

		if (k != cases[i].kind)
			fail_msg("case %zu: kind %s", i, go_probes__attach_kind_name(k));
	}
	assert_int_equal(insn__attach_kind(EM_AARCH64, BYTES(0xc0, 0x03, 0x5f, 0xd6)),
			 GO_ATTACH_EMULATED); /* ret */
	assert_int_equal(insn__attach_kind(EM_AARCH64, BYTES(0x09, 0x28, 0x00, 0x54)),
			 GO_ATTACH_EMULATED); /* b.ls */
	assert_int_equal(insn__attach_kind(EM_AARCH64, BYTES(0x1f, 0x20, 0x03, 0xd5)),
			 GO_ATTACH_EMULATED); /* nop */
	assert_int_equal(insn__attach_kind(EM_AARCH64, BYTES(0xfe, 0x0f, 0x1a, 0xf8)),
			 GO_ATTACH_SINGLESTEP); /* str x30, [sp, #-0x60]! */
	assert_string_equal(go_probes__attach_kind_name(GO_ATTACH_EMULATED), "emulated");
	assert_string_equal(go_probes__attach_kind_name(GO_ATTACH_SINGLESTEP), "single-step");
}

/* ------------------------------------------------------------------ arm64 decoding */

static const struct prologue_case arm64_cases[] = {
	{ "go1.27 arm64 runtime.newproc1: ldr x16, [x28, #16]; cmp sp, x16; b.ls",
	  BYTES(0x90, 0x0b, 0x40, 0xf9, 0xff, 0x63, 0x30, 0xeb, 0x09, 0x28, 0x00, 0x54, 0xfe,
		0x0f, 0x1a, 0xf8),
	  12, true, "str x30, [sp, #-0x60]!", GO_ATTACH_SINGLESTEP },
	{ "go1.27 arm64 runtime.gcStart: sub x17, sp, #N; cmp x17, x16; b.ls",
	  BYTES(0x90, 0x0b, 0x40, 0xf9, 0xf1, 0xc3, 0x02, 0xd1, 0x3f, 0x02, 0x10, 0xeb, 0xa9,
		0x38, 0x00, 0x54, 0xf4, 0xc3, 0x04, 0xd1, 0x9d, 0xfa, 0x3f, 0xa9),
	  16, true, "sub x20, sp, #0x130", GO_ATTACH_SINGLESTEP },
	{ "go1.27 arm64 runtime.casgstatus: nosplit",
	  BYTES(0xfe, 0x0f, 0x19, 0xf8, 0xfd, 0x83, 0x1f, 0xf8),
	  0, false, "str x30, [sp, #-0x70]!", GO_ATTACH_SINGLESTEP },
};

static void test_arm64(void **state)
{
	/* go1.27 arm64 runtime.goexit0, whole extent: one RET at +40. */
	static const uint8_t goexit0[] = {
		0x90, 0x0b, 0x40, 0xf9, 0xff, 0x63, 0x30, 0xeb, 0x29, 0x01, 0x00, 0x54, 0xfe,
		0x0f, 0x1e, 0xf8, 0xfd, 0x83, 0x1f, 0xf8, 0xfd, 0x23, 0x00, 0xd1, 0x0a, 0x00,
		0x00, 0x94, 0x6d, 0xfc, 0xff, 0x97, 0xfd, 0x83, 0x5f, 0xf8, 0xfe, 0x07, 0x42,
		0xf8, 0xc0, 0x03, 0x5f, 0xd6, 0xe0, 0x07, 0x00, 0xf9, 0xe3, 0x03, 0x1e, 0xaa,
		0x5f, 0xaf, 0x00, 0x94, 0xe0, 0x07, 0x40, 0xf9, 0xf1, 0xff, 0xff, 0x17,
		0x00, 0x00, 0x00, 0x00, /* padding */
	};
	struct insn_sweep_stats st;
	uint32_t offs[4];

	run_prologue_cases(EM_AARCH64, arm64_cases, sizeof(arm64_cases) / sizeof(arm64_cases[0]));
	assert_int_equal(insn__find_rets_stats(EM_AARCH64, goexit0, sizeof(goexit0), 0x5c510,
					       offs, 4, &st), 1);
	assert_int_equal(offs[0], 40);
	assert_int_equal(st.nbad, 0); /* zero padding words are not "undecoded" */
}

static void test_unsupported_machine(void **state)
{
	static const uint8_t code[] = { 0xc3 };
	enum go_attach_kind kind;
	uint32_t off, offs[1];
	bool check;

	assert_int_equal(insn__find_rets(EM_386, code, 1, 0, offs, 1), -ENOTSUP);
	assert_int_equal(insn__attach_point(EM_PPC64, code, 1, 0, &off, NULL, 0, &kind, &check),
			 -ENOTSUP);
	gt_clearerr();
}

/* ------------------------------------------------------------------ on a real Go build */

struct fixture {
	char dir[64];
	char bin[96];	   /* default build */
	char stripped[96]; /* -ldflags=-s -w */
	char plain[96];	   /* -ldflags=-compressdwarf=false */
	bool built;
};

static struct fixture fx;

static int build(const char *go, const char *out, const char *ldflags)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd),
		 "cd tests/fixtures/inspectme && CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local "
		 "%s build -ldflags='%s' -o %s . >/dev/null 2>&1",
		 go, ldflags, out);
	return system(cmd);
}

static int group_setup(void **state)
{
	const char *go = getenv("GO") ? getenv("GO") : "go";
	char probe[256];

	snprintf(probe, sizeof(probe), "%s version >/dev/null 2>&1", go);
	if (system(probe) != 0 || access("tests/fixtures/inspectme/main.go", R_OK))
		return 0;
	strcpy(fx.dir, "/tmp/gotrace-test-goruntime.XXXXXX");
	if (!mkdtemp(fx.dir))
		return 0;
	snprintf(fx.bin, sizeof(fx.bin), "%s/default", fx.dir);
	snprintf(fx.stripped, sizeof(fx.stripped), "%s/stripped", fx.dir);
	snprintf(fx.plain, sizeof(fx.plain), "%s/plain", fx.dir);
	fx.built = !build(go, fx.bin, "") && !build(go, fx.stripped, "-s -w") &&
		   !build(go, fx.plain, "-compressdwarf=false");
	return 0;
}

static int group_teardown(void **state)
{
	if (fx.dir[0]) {
		unlink(fx.bin);
		unlink(fx.stripped);
		unlink(fx.plain);
		rmdir(fx.dir);
	}
	return 0;
}

/* Skip without a Go toolchain, except under CI=true, where a skip would hide a gap. */
static void need_fixture(void)
{
	const char *ci = getenv("CI");

	if (fx.built)
		return;
	if (ci && !strcmp(ci, "true"))
		fail_msg("no Go build of tests/fixtures/inspectme (is go on PATH, or $GO set?)");
	skip();
}

static int fixture_minor(const struct elf_file *ef)
{
	struct go_buildinfo bi;
	int minor;

	assert_int_equal(buildinfo__read(ef, &bi), 0);
	minor = bi.minor;
	buildinfo__free(&bi);
	return minor;
}

static void test_dwarf_matches_table(void **state)
{
	struct go_offsets tab, o;
	struct elf_file *ef;
	int minor, n;

	need_fixture();
	ef = elf_file__open(fx.bin);
	assert_non_null(ef);
	minor = fixture_minor(ef);
	if (go_offsets__from_table(minor, &tab))
		skip();
	o = tab;
	n = go_offsets__from_dwarf(ef, &o);
	assert_int_equal(n, GO_OFF__CNT - (minor < 21) - (minor < 18));
	for (int i = 0; i < GO_OFF__CNT; i++) {
		if (o.val[i] != tab.val[i])
			fail_msg("go1.%d %s: DWARF %lld, table %lld", minor,
				 go_offsets__desc(i)->name, (long long)o.val[i],
				 (long long)tab.val[i]);
		assert_int_equal(o.src[i], tab.val[i] < 0 ? GO_OFF_SRC_NONE : GO_OFF_SRC_DWARF);
	}
	elf_file__free(ef);

	/* The same through an in-memory image (libelf gets a private copy). */
	size_t size;
	const uint8_t *data;
	struct elf_file *disk = elf_file__open(fx.plain);

	assert_non_null(disk);
	data = elf_file__data(disk, &size);
	ef = elf_file__open_mem(data, size, "plain");
	assert_non_null(ef);
	o = tab;
	assert_int_equal(go_offsets__from_dwarf(ef, &o), n);
	assert_memory_equal(o.val, tab.val, sizeof(o.val));
	elf_file__free(ef);
	elf_file__free(disk);

	/* Stripped: no DWARF, nothing overwritten. */
	ef = elf_file__open(fx.stripped);
	assert_non_null(ef);
	o = tab;
	assert_int_equal(go_offsets__from_dwarf(ef, &o), 0);
	assert_memory_equal(o.src, tab.src, sizeof(o.src));
	elf_file__free(ef);
}

/* Random byte flips in uncompressed .debug_info/.debug_abbrev: no crash, sane results. */
static void test_dwarf_corrupt(void **state)
{
	const struct elf_section *info, *abbrev;
	struct elf_file *disk, *ef;
	const uint8_t *data;
	uint8_t *buf;
	size_t size;
	int minor;

	need_fixture();
	disk = elf_file__open(fx.plain);
	assert_non_null(disk);
	minor = fixture_minor(disk);
	info = elf_file__section(disk, ".debug_info");
	abbrev = elf_file__section(disk, ".debug_abbrev");
	assert_non_null(info);
	assert_non_null(abbrev);
	data = elf_file__data(disk, &size);
	buf = malloc(size);
	assert_non_null(buf);
	srand(7);
	for (int it = 0; it < 200; it++) {
		struct go_offsets o;

		memcpy(buf, data, size);
		for (int k = 1 + rand() % 16; k > 0; k--) {
			const struct elf_section *s = rand() % 3 ? info : abbrev;
			uint64_t span = rand() % 2 && s->size > 4096 ? 4096 : s->size;

			buf[s->offset + (uint64_t)rand() % span] = (uint8_t)rand();
		}
		ef = elf_file__open_mem(buf, size, "corrupt");
		if (!ef)
			continue;
		if (go_offsets__from_table(minor, &o))
			o.go_minor = minor;
		int n = go_offsets__from_dwarf(ef, &o);

		assert_true(n >= -ENOMEM && n <= GO_OFF__CNT);
		for (int i = 0; i < GO_OFF__CNT; i++)
			assert_true(o.val[i] >= -1 && o.val[i] < (1 << 20));
		elf_file__free(ef);
	}
	free(buf);
	elf_file__free(disk);
	gt_clearerr();
}

static void check_sites(const char *path)
{
	struct pclntab_opts popts = { .go_minor = -1 };
	struct go_probe_site *sites;
	struct elf_file *ef;
	struct pclntab *p;
	int n, minor;
	bool seen[GO_PROBE__CNT] = {};

	ef = elf_file__open(path);
	assert_non_null(ef);
	minor = fixture_minor(ef);
	popts.go_minor = minor;
	p = pclntab__open(ef, &popts);
	assert_non_null(p);
	assert_int_equal(go_probes__resolve(ef, p, minor, &sites, &n), 0);
	assert_true(n >= GO_PROBE__CNT);
	for (int i = 0; i < n; i++) {
		const struct go_probe_site *s = &sites[i];
		const uint8_t *code;

		seen[s->role] = true;
		assert_non_null(s->name);
		assert_string_equal(s->role_name, go_probes__role_name(s->role));
		if (!s->present) {
			assert_non_null(s->fallback);
			assert_null(pclntab__func_by_name(p, s->name));
			continue;
		}
		assert_null(s->fallback);
		assert_true(s->size > 0 && s->attach_offset < s->size);
		code = elf_file__vaddr_ptr(ef, s->addr, s->size);
		assert_non_null(code);
		for (int r = 0; r < s->nret; r++) {
			assert_true(s->ret_offsets[r] < s->size);
			if (elf_file__machine(ef) == EM_X86_64)
				assert_int_equal(code[s->ret_offsets[r]], 0xc3);
		}
		assert_int_equal(s->has_stack_check, s->attach_offset != 0);
		assert_int_equal(s->undecoded, 0);
	}
	for (int r = 0; r < GO_PROBE__CNT; r++)
		assert_true(seen[r]);
	/* Roles every version has, non-inlined. */
	for (int i = 0; i < n; i++) {
		const struct go_probe_site *s = &sites[i];

		switch (s->role) {
		case GO_PROBE_NEWPROC1:
		case GO_PROBE_GOPARK:
		case GO_PROBE_MALLOCGC:
		case GO_PROBE_EXECUTE:
			assert_true(s->present);
			assert_true(s->has_stack_check);
			assert_true(s->nret >= 1);
			break;
		case GO_PROBE_CASGSTATUS:
			assert_true(s->present);
			assert_false(s->has_stack_check); /* nosplit */
			break;
		case GO_PROBE_GDESTROY:
			assert_int_equal(s->present, minor >= 22);
			break;
		case GO_PROBE_MALLOCGC_VARIANT:
			if (minor < 24)
				assert_false(s->present);
			break;
		default:
			break;
		}
	}
	free(sites);
	pclntab__free(p);
	elf_file__free(ef);
}

static void test_probe_sites(void **state)
{
	need_fixture();
	check_sites(fx.bin);
	check_sites(fx.stripped);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_every_minor),
		cmocka_unit_test(test_table_refuses_unknown),
		cmocka_unit_test(test_table_known_values),
		cmocka_unit_test(test_offset_descs),
		cmocka_unit_test(test_waitreasons),
		cmocka_unit_test(test_x86_attach_points),
		cmocka_unit_test(test_x86_rets),
		cmocka_unit_test(test_attach_kinds),
		cmocka_unit_test(test_arm64),
		cmocka_unit_test(test_unsupported_machine),
		cmocka_unit_test(test_dwarf_matches_table),
		cmocka_unit_test(test_dwarf_corrupt),
		cmocka_unit_test(test_probe_sites),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
