// SPDX-License-Identifier: MIT
/*
 * Decoding Go function bodies with capstone 4: every RET (return probes are plain
 * uprobes on them, never uretprobes) and the entry attach point after the
 * stack-split check, so that a stack growth, which re-runs the function from its
 * entry, does not fire an entry probe twice.
 *
 * Linear sweep is sound for Go on amd64: the compiler puts no data in code, and
 * functions are padded with int3. arm64 text can hold literal pools, which decode
 * as (harmless) instructions; undecodable words are skipped and counted.
 */
#include <capstone/capstone.h>
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "goruntime/probes.h"
#include "util/log.h"

/*
 * g.stackguard0 and g.stackguard1 follow g.stack {lo, hi} in every Go version. Functions
 * marked //go:systemstack check stackguard1 (obj6.go stacksplit: cursym.CFunc()), which
 * is ~0 on user goroutines so that calling them off the system stack traps.
 */
#define G_STACKGUARD0 0x10
#define G_STACKGUARD1 0x18
/* The stack check is at most 5 instructions (amd64 huge frames); look a little further. */
#define MAX_PROLOGUE_INSNS 8

static int open_cs(uint16_t machine, bool detail, csh *h)
{
	cs_err e;

	switch (machine) {
	case EM_X86_64:
		e = cs_open(CS_ARCH_X86, CS_MODE_64, h);
		break;
	case EM_AARCH64:
		e = cs_open(CS_ARCH_ARM64, CS_MODE_LITTLE_ENDIAN, h);
		break;
	default:
		gt_seterr("unsupported machine %u for instruction decoding (x86-64, aarch64 only)",
			  machine);
		return -ENOTSUP;
	}
	if (e != CS_ERR_OK) {
		gt_seterr("capstone: %s", cs_strerror(e));
		return e == CS_ERR_MEM ? -ENOMEM : -EINVAL;
	}
	if (detail)
		cs_option(*h, CS_OPT_DETAIL, CS_OPT_ON);
	return 0;
}

/*
 * Length of a VEX (c4/c5) or EVEX (62) instruction at C, or 0. capstone 4 lacks some
 * AVX-512 extensions (VBMI, GFNI, BITALG, mask moves to memory) that Go's runtime
 * assembly uses (internal/runtime/gc/scan, asyncPreempt); their length is regular
 * enough to step over them instead of resynchronising byte by byte. 64-bit mode only.
 */
static size_t x86_vex_len(const uint8_t *c, size_t len)
{
	size_t i = 0;
	unsigned int map;
	uint8_t op, modrm, mod, rm;

	/* Only address-size and segment prefixes may precede VEX/EVEX. */
	while (i < len && (c[i] == 0x67 || c[i] == 0x2e || c[i] == 0x36 || c[i] == 0x3e ||
			   c[i] == 0x26 || c[i] == 0x64 || c[i] == 0x65))
		i++;
	if (i + 1 >= len)
		return 0;
	switch (c[i]) {
	case 0xc5:
		map = 1;
		i += 2;
		break;
	case 0xc4:
		map = c[i + 1] & 0x1f;
		i += 3;
		break;
	case 0x62:
		map = c[i + 1] & 0x07;
		i += 4;
		break;
	default:
		return 0;
	}
	if (map < 1 || map > 6 || map == 4 || i + 2 > len)
		return 0;
	op = c[i++];
	modrm = c[i++];
	mod = modrm >> 6;
	rm = modrm & 7;
	if (mod != 3) {
		if (rm == 4) {
			if (i >= len)
				return 0;
			if (mod == 0 && (c[i] & 7) == 5)
				i += 4;
			i++;
		} else if (mod == 0 && rm == 5) {
			i += 4; /* rip-relative */
		}
		if (mod == 1)
			i += 1; /* disp8 (EVEX scales it, the size stays 1) */
		else if (mod == 2)
			i += 4;
	}
	/* imm8: every 0F3A opcode; in 0F, the shifts/shuffles and compares. */
	if (map == 3 || (map == 1 && ((op >= 0x70 && op <= 0x73) || (op >= 0xc2 && op <= 0xc6 &&
								   op != 0xc3))))
		i++;
	return i <= len ? i : 0;
}

int insn__find_rets_stats(uint16_t machine, const uint8_t *code, size_t len, uint64_t addr,
			  uint32_t *offs, int max, struct insn_sweep_stats *st)
{
	struct insn_sweep_stats local;
	size_t step = machine == EM_AARCH64 ? 4 : 1; /* fixed-width vs byte-granular ISA */
	unsigned int ret_id = machine == EM_AARCH64 ? ARM64_INS_RET : X86_INS_RET;
	const uint8_t *p = code;
	size_t left = len;
	uint64_t pc = addr;
	cs_insn *insn = NULL;
	int n = 0, err;
	csh h;

	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	if ((!code && len) || max < 0 || (max && !offs))
		return -EINVAL;
	err = open_cs(machine, false, &h);
	if (err)
		return err;
	insn = cs_malloc(h);
	if (!insn) {
		err = -ENOMEM;
		goto cleanup;
	}
	while (left) {
		size_t adv;

		if (cs_disasm_iter(h, &p, &left, &pc, insn)) {
			st->ninsn++;
			if (insn->id == ret_id) {
				if (n < max)
					offs[n] = (uint32_t)(insn->address - addr);
				n++;
			}
			continue;
		}
		adv = machine == EM_X86_64 ? x86_vex_len(p, left) : 0;
		if (adv) {
			st->ninsn++;
			st->nlen_only++;
		} else {
			adv = left < step ? left : step;
			/* arm64 pads between functions with zero words (udf #0): not an error. */
			if (!(machine == EM_AARCH64 && adv == 4 && !(p[0] | p[1] | p[2] | p[3]))) {
				if (!st->nbad)
					st->first_bad = (uint32_t)(p - code);
				st->nbad += adv;
			}
		}
		p += adv;
		left -= adv;
		pc += adv;
	}
	if (st->nbad)
		dlog("gotrace: 0x%llx: %u undecodable byte(s), first at +0x%x\n",
		     (unsigned long long)addr, st->nbad, st->first_bad);
cleanup:
	if (insn)
		cs_free(insn, 1);
	cs_close(&h);
	return err ? err : n;
}

int insn__find_rets(uint16_t machine, const uint8_t *code, size_t len, uint64_t addr,
		    uint32_t *offs, int max)
{
	return insn__find_rets_stats(machine, code, len, addr, offs, max, NULL);
}

/*
 * x86-64: what arch/x86/kernel/uprobes.c (6.x) emulates instead of single-stepping
 * out of line: push reg (50+r, or 41 50+r), jmp rel8/rel32, call rel32, jcc (no 66
 * prefix: branch_setup_xol_ops), and nops (0x90 always; other nop forms through
 * insn_is_nop() in recent 6.x kernels, older ones single-step them).
 */
static enum go_attach_kind x86_kind(const uint8_t *c, size_t len)
{
	bool opsize = false;
	uint8_t rex = 0, op;
	size_t i = 0;

	for (; i < len && i < 15; i++) {
		uint8_t b = c[i];

		if (b == 0x66)
			opsize = true;
		else if (b == 0xf0 || b == 0xf2 || b == 0xf3 || b == 0x2e || b == 0x36 ||
			 b == 0x3e || b == 0x26 || b == 0x64 || b == 0x65 || b == 0x67)
			continue;
		else if (b >= 0x40 && b <= 0x4f)
			rex = b; /* a REX prefix must be last; good enough for classification */
		else
			break;
	}
	if (i >= len)
		return GO_ATTACH_NONE;
	op = c[i];

	if (op >= 0x50 && op <= 0x57) {
		/* Only "push r" (1 byte) and "41 push r8-r15" (2 bytes). */
		if (i == 0 || (i == 1 && rex == 0x41))
			return GO_ATTACH_EMULATED;
		return GO_ATTACH_SINGLESTEP;
	}
	if (op == 0x90 && !(rex & 1)) /* 41 90 is xchg r8d, eax */
		return GO_ATTACH_EMULATED;
	if (op == 0x0f && i + 1 < len && c[i + 1] == 0x1f)
		return GO_ATTACH_EMULATED;
	if (op == 0xeb || op == 0xe9 || op == 0xe8 || (op >= 0x70 && op <= 0x7f) ||
	    (op == 0x0f && i + 1 < len && (c[i + 1] & 0xf0) == 0x80))
		return opsize ? GO_ATTACH_SINGLESTEP : GO_ATTACH_EMULATED;
	return GO_ATTACH_SINGLESTEP;
}

/*
 * arm64: arch/arm64/kernel/probes/decode-insn.c simulates branches (b, bl, b.cond,
 * cbz/cbnz, tbz/tbnz, br/blr/ret), adr/adrp, ldr/ldrsw (literal) and nop; everything
 * else, including Go's "str x30, [sp, #-N]!" frame setup, is stepped out of line.
 */
static enum go_attach_kind arm64_kind(const uint8_t *c, size_t len)
{
	uint32_t op;

	if (len < 4)
		return GO_ATTACH_NONE;
	op = (uint32_t)c[0] | (uint32_t)c[1] << 8 | (uint32_t)c[2] << 16 | (uint32_t)c[3] << 24;
	if ((op & 0x7c000000) == 0x14000000 ||	/* b, bl */
	    (op & 0xff000010) == 0x54000000 ||	/* b.cond */
	    (op & 0x7e000000) == 0x34000000 ||	/* cbz, cbnz */
	    (op & 0x7e000000) == 0x36000000 ||	/* tbz, tbnz */
	    (op & 0xff9ffc1f) == 0xd61f0000 ||	/* br, blr */
	    (op & 0xfffffc1f) == 0xd65f0000 ||	/* ret */
	    (op & 0x1f000000) == 0x10000000 ||	/* adr, adrp */
	    (op & 0xbf000000) == 0x18000000 ||	/* ldr w/x (literal) */
	    (op & 0xff000000) == 0x98000000 ||	/* ldrsw (literal) */
	    op == 0xd503201f)			/* nop */
		return GO_ATTACH_EMULATED;
	return GO_ATTACH_SINGLESTEP;
}

enum go_attach_kind insn__attach_kind(uint16_t machine, const uint8_t *code, size_t len)
{
	if (!code)
		return GO_ATTACH_NONE;
	switch (machine) {
	case EM_X86_64:
		return x86_kind(code, len);
	case EM_AARCH64:
		return arm64_kind(code, len);
	default:
		return GO_ATTACH_NONE;
	}
}

static bool x86_is_jcc(csh h, const cs_insn *insn)
{
	return insn->id != X86_INS_JMP && insn->id != X86_INS_LJMP &&
	       cs_insn_group(h, insn, X86_GRP_JUMP);
}

static bool x86_is_guard_mem(const cs_x86_op *op, x86_reg g)
{
	return op->type == X86_OP_MEM && op->mem.base == g && op->mem.index == X86_REG_INVALID &&
	       op->mem.segment == X86_REG_INVALID &&
	       (op->mem.disp == G_STACKGUARD0 || op->mem.disp == G_STACKGUARD1);
}

/*
 * amd64 stack check (cmd/internal/obj/x86 stacksplit), g in R14 (ABIInternal):
 *   small frame:  cmp rsp, [r14+0x10]; jbe morestack   (0x18: stackguard1)
 *   large frame:  lea r12, [rsp-N]; cmp r12, [r14+0x10]; jbe morestack
 *   huge frame:   mov r12, rsp; sub r12, N; jb morestack; cmp r12, [r14+0x10]; jbe morestack
 * ABI0 assembly loads g from TLS first (mov rcx, fs:[-8]; PIE: mov r14, -8 and
 * mov r14, fs:[r14]). Returns the offset of the
 * instruction after the final conditional jump, or 0 when there is no check.
 */
static uint32_t x86_after_stack_check(csh h, cs_insn *insn, const uint8_t *code, size_t len,
				      uint64_t addr)
{
	x86_reg g = X86_REG_R14, tmp = X86_REG_INVALID;
	const uint8_t *p = code;
	size_t left = len;
	uint64_t pc = addr;
	bool cmp_seen = false;

	for (int i = 0; i < MAX_PROLOGUE_INSNS && cs_disasm_iter(h, &p, &left, &pc, insn); i++) {
		const cs_x86 *x = &insn->detail->x86;
		const cs_x86_op *o = x->operands;

		if (cmp_seen)
			return x86_is_jcc(h, insn) ? (uint32_t)(pc - addr) : 0;
		switch (insn->id) {
		case X86_INS_CMP:
			if (x->op_count != 2)
				return 0;
			if (o[0].type == X86_OP_REG && x86_is_guard_mem(&o[1], g) &&
			    (o[0].reg == X86_REG_RSP || o[0].reg == tmp))
				cmp_seen = true;
			else if (o[1].type == X86_OP_REG && x86_is_guard_mem(&o[0], g) &&
				 (o[1].reg == X86_REG_RSP || o[1].reg == tmp))
				cmp_seen = true;
			else
				return 0;
			break;
		case X86_INS_LEA:
			if (x->op_count != 2 || o[0].type != X86_OP_REG ||
			    o[1].type != X86_OP_MEM || o[1].mem.base != X86_REG_RSP)
				return 0;
			tmp = o[0].reg;
			break;
		case X86_INS_MOV:
			if (x->op_count != 2 || o[0].type != X86_OP_REG)
				return 0;
			if (o[1].type == X86_OP_REG && o[1].reg == X86_REG_RSP)
				tmp = o[0].reg;
			else if (o[1].type == X86_OP_MEM && o[1].mem.segment == X86_REG_FS)
				g = o[0].reg;
			else if (o[1].type != X86_OP_IMM || i != 0)
				return 0; /* PIE: "mov r14, -8; mov r14, fs:[r14]" */
			break;
		case X86_INS_SUB:
			if (x->op_count != 2 || o[0].type != X86_OP_REG || o[0].reg != tmp ||
			    tmp == X86_REG_INVALID || o[1].type != X86_OP_IMM)
				return 0;
			break;
		default:
			/* Huge frames: "jb morestack" when SP - N wrapped. */
			if (tmp == X86_REG_INVALID || !x86_is_jcc(h, insn))
				return 0;
			break;
		}
	}
	return 0;
}

/*
 * arm64 stack check (cmd/internal/obj/arm64 stacksplit), g in R28:
 *   ldr x16, [x28, #16]; cmp sp, x16; b.ls morestack   (#24: stackguard1)
 *   ldr x16, [x28, #16]; sub x17, sp, #N; cmp x17, x16; b.ls morestack
 *   huge: ... subs x17, sp, x17; b.lo morestack; cmp x17, x16; b.ls morestack
 */
static uint32_t arm64_after_stack_check(csh h, cs_insn *insn, const uint8_t *code, size_t len,
					uint64_t addr)
{
	const uint8_t *p = code;
	size_t left = len;
	uint64_t pc = addr;
	bool cmp_seen = false;

	for (int i = 0; i < MAX_PROLOGUE_INSNS && cs_disasm_iter(h, &p, &left, &pc, insn); i++) {
		const cs_arm64 *a = &insn->detail->arm64;

		if (i == 0) {
			if (insn->id != ARM64_INS_LDR || a->op_count != 2 ||
			    a->operands[1].type != ARM64_OP_MEM ||
			    a->operands[1].mem.base != ARM64_REG_X28 ||
			    a->operands[1].mem.index != ARM64_REG_INVALID ||
			    (a->operands[1].mem.disp != G_STACKGUARD0 &&
			     a->operands[1].mem.disp != G_STACKGUARD1))
				return 0;
			continue;
		}
		switch (insn->id) {
		case ARM64_INS_CMP:
			cmp_seen = true;
			break;
		case ARM64_INS_B:
			if (a->cc == ARM64_CC_INVALID || a->cc == ARM64_CC_AL)
				return 0;
			if (cmp_seen)
				return (uint32_t)(pc - addr);
			break;
		case ARM64_INS_SUB: /* capstone 4: also SUBS (update_flags) */
		case ARM64_INS_ADD:
		case ARM64_INS_MOV:
		case ARM64_INS_MOVZ:
		case ARM64_INS_MOVK:
			if (cmp_seen)
				return 0;
			break;
		default:
			return 0;
		}
	}
	return 0;
}

int insn__attach_point(uint16_t machine, const uint8_t *code, size_t len, uint64_t addr,
		       uint32_t *off, char *text, size_t text_len, enum go_attach_kind *kind,
		       bool *has_stack_check)
{
	cs_insn *insn = NULL;
	const uint8_t *p;
	size_t left;
	uint64_t pc;
	uint32_t at;
	int err;
	csh h;

	*off = 0;
	*kind = GO_ATTACH_NONE;
	*has_stack_check = false;
	if (text && text_len)
		text[0] = '\0';
	if (!code || !len)
		return -EINVAL;
	err = open_cs(machine, true, &h);
	if (err)
		return err;
	insn = cs_malloc(h);
	if (!insn) {
		err = -ENOMEM;
		goto cleanup;
	}

	if (machine == EM_AARCH64)
		at = arm64_after_stack_check(h, insn, code, len, addr);
	else
		at = x86_after_stack_check(h, insn, code, len, addr);
	if (at >= len)
		at = 0; /* a check with nothing after it: not a Go prologue */

	p = code + at;
	left = len - at;
	pc = addr + at;
	if (!cs_disasm_iter(h, &p, &left, &pc, insn)) {
		gt_seterr("cannot decode the instruction at 0x%llx",
			  (unsigned long long)(addr + at));
		err = -EINVAL;
		goto cleanup;
	}
	*off = at;
	*has_stack_check = at != 0;
	*kind = insn__attach_kind(machine, code + at, insn->size);
	if (text && text_len)
		snprintf(text, text_len, "%s%s%s", insn->mnemonic, insn->op_str[0] ? " " : "",
			 insn->op_str);
cleanup:
	if (insn)
		cs_free(insn, 1);
	cs_close(&h);
	return err;
}
