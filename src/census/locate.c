// SPDX-License-Identifier: MIT
/*
 * Locating runtime.allgs, allglen and allgptr by decoding runtime.allgadd.
 *
 * allgadd is, in every Go release from 1.17 to 1.27 (runtime/proc.go):
 *	lock(&allglock)
 *	allgs = append(allgs, gp)
 *	if &allgs[0] != allgptr { atomicstorep(unsafe.Pointer(&allgptr), &allgs[0]) }
 *	atomic.Storeuintptr(&allglen, uintptr(len(allgs)))
 *	unlock(&allglock)
 * Compiled for amd64 that gives, whatever the register allocation:
 *   - RIP-relative 8-byte accesses to A, A+8 and A+16 (the slice's ptr, len, cap): allgs = A;
 *   - an 8-byte CMP of allgs[0]'s address against a RIP-relative word: allgptr;
 *   - an XCHG (Go's atomic store) on a word reached through LEA: allglen, and allgptr too
 *     when atomicstorep is inlined.
 * allglock is only ever passed by address (LEA) and runtime.writeBarrier is a 1- or
 * 4-byte compare, so neither can be mistaken for the others.
 */
#include <capstone/capstone.h>
#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "census/locate.h"
#include "util/log.h"

#define MAX_REFS 256
#define MAX_ALLGADD_BYTES 4096 /* allgadd is ~350 bytes; refuse anything absurd */

/* A memory operand resolved to an absolute link-time address. */
struct mem_ref {
	uint64_t addr;
	unsigned int insn; /* X86_INS_* */
	uint8_t size;	   /* operand size in bytes */
	bool via_lea;	   /* base register was loaded by a RIP-relative LEA */
};

struct ref_set {
	struct mem_ref r[MAX_REFS];
	int n;
};

/* The 64-bit register that holds REG (eax, ax, al -> rax), or 0 for non-GPRs. */
static unsigned int gpr64(unsigned int reg)
{
	switch (reg) {
	case X86_REG_RAX: case X86_REG_EAX: case X86_REG_AX: case X86_REG_AL: case X86_REG_AH:
		return X86_REG_RAX;
	case X86_REG_RBX: case X86_REG_EBX: case X86_REG_BX: case X86_REG_BL: case X86_REG_BH:
		return X86_REG_RBX;
	case X86_REG_RCX: case X86_REG_ECX: case X86_REG_CX: case X86_REG_CL: case X86_REG_CH:
		return X86_REG_RCX;
	case X86_REG_RDX: case X86_REG_EDX: case X86_REG_DX: case X86_REG_DL: case X86_REG_DH:
		return X86_REG_RDX;
	case X86_REG_RSI: case X86_REG_ESI: case X86_REG_SI: case X86_REG_SIL:
		return X86_REG_RSI;
	case X86_REG_RDI: case X86_REG_EDI: case X86_REG_DI: case X86_REG_DIL:
		return X86_REG_RDI;
	case X86_REG_RBP: case X86_REG_EBP: case X86_REG_BP: case X86_REG_BPL:
		return X86_REG_RBP;
	case X86_REG_RSP: case X86_REG_ESP: case X86_REG_SP: case X86_REG_SPL:
		return X86_REG_RSP;
	case X86_REG_R8: case X86_REG_R8D: case X86_REG_R8W: case X86_REG_R8B:
		return X86_REG_R8;
	case X86_REG_R9: case X86_REG_R9D: case X86_REG_R9W: case X86_REG_R9B:
		return X86_REG_R9;
	case X86_REG_R10: case X86_REG_R10D: case X86_REG_R10W: case X86_REG_R10B:
		return X86_REG_R10;
	case X86_REG_R11: case X86_REG_R11D: case X86_REG_R11W: case X86_REG_R11B:
		return X86_REG_R11;
	case X86_REG_R12: case X86_REG_R12D: case X86_REG_R12W: case X86_REG_R12B:
		return X86_REG_R12;
	case X86_REG_R13: case X86_REG_R13D: case X86_REG_R13W: case X86_REG_R13B:
		return X86_REG_R13;
	case X86_REG_R14: case X86_REG_R14D: case X86_REG_R14W: case X86_REG_R14B:
		return X86_REG_R14;
	case X86_REG_R15: case X86_REG_R15D: case X86_REG_R15W: case X86_REG_R15B:
		return X86_REG_R15;
	default:
		return 0;
	}
}

static void add_ref(struct ref_set *s, uint64_t addr, unsigned int insn, uint8_t size, bool via_lea)
{
	if (s->n < MAX_REFS)
		s->r[s->n++] = (struct mem_ref){ addr, insn, size, via_lea };
}

static bool has_ref(const struct ref_set *s, uint64_t addr, uint8_t size)
{
	for (int i = 0; i < s->n; i++) {
		if (s->r[i].addr == addr && s->r[i].size == size && s->r[i].insn != X86_INS_LEA)
			return true;
	}
	return false;
}

/*
 * Decode CODE (at link-time ADDR) and collect every memory operand whose address is
 * known: RIP-relative ones, and [reg+disp] where reg was just loaded by a RIP-relative
 * LEA. Returns 0 or -errno.
 */
static int collect_refs(const uint8_t *code, size_t len, uint64_t addr, struct ref_set *s)
{
	uint64_t lea[X86_REG_ENDING] = { 0 }; /* reg -> address loaded by LEA [rip+d] */
	const uint8_t *p = code;
	uint64_t pc = addr;
	size_t left = len;
	cs_insn *insn;
	csh h;

	if (cs_open(CS_ARCH_X86, CS_MODE_64, &h) != CS_ERR_OK) {
		gt_seterr("capstone: cannot open an x86-64 decoder");
		return -ENOMEM;
	}
	cs_option(h, CS_OPT_DETAIL, CS_OPT_ON);
	insn = cs_malloc(h);
	if (!insn) {
		cs_close(&h);
		return -ENOMEM;
	}
	while (left && cs_disasm_iter(h, &p, &left, &pc, insn)) {
		const cs_x86 *x = &insn->detail->x86;
		uint64_t next = insn->address + insn->size;
		cs_regs rr, rw;
		uint8_t nr = 0, nw = 0;

		if (insn->id == X86_INS_INT3)
			break; /* padding after the function */
		for (int i = 0; i < x->op_count; i++) {
			const cs_x86_op *op = &x->operands[i];
			unsigned int base;

			if (op->type != X86_OP_MEM || op->mem.segment != X86_REG_INVALID)
				continue;
			if (op->mem.base == X86_REG_RIP && op->mem.index == X86_REG_INVALID) {
				add_ref(s, next + (uint64_t)op->mem.disp, insn->id, op->size, false);
				continue;
			}
			base = gpr64(op->mem.base);
			if (base && op->mem.index == X86_REG_INVALID && lea[base] &&
			    insn->id != X86_INS_LEA)
				add_ref(s, lea[base] + (uint64_t)op->mem.disp, insn->id, op->size, true);
		}
		/* Track LEA reg, [rip+d]; any other write to a register forgets it. */
		if (insn->id == X86_INS_CALL) {
			memset(lea, 0, sizeof(lea));
			continue;
		}
		if (!cs_regs_access(h, insn, rr, &nr, rw, &nw)) {
			for (int i = 0; i < nw; i++)
				lea[gpr64(rw[i])] = 0;
		} else {
			memset(lea, 0, sizeof(lea));
		}
		if (insn->id == X86_INS_LEA && x->op_count == 2 && x->operands[0].type == X86_OP_REG &&
		    x->operands[1].type == X86_OP_MEM && x->operands[1].mem.base == X86_REG_RIP &&
		    x->operands[1].mem.index == X86_REG_INVALID && gpr64(x->operands[0].reg))
			lea[gpr64(x->operands[0].reg)] = next + (uint64_t)x->operands[1].mem.disp;
		lea[0] = 0;
	}
	cs_free(insn, 1);
	cs_close(&h);
	return 0;
}

/* The one address matching PRED among REFS (0 when none; sets *AMBIG when several). */
static uint64_t unique_ref(const struct ref_set *s, unsigned int insn, const uint64_t *exclude,
			   int nexclude, bool *ambig)
{
	uint64_t found = 0;

	for (int i = 0; i < s->n; i++) {
		const struct mem_ref *r = &s->r[i];
		bool skip = false;

		if (r->insn != insn || r->size != 8)
			continue;
		for (int k = 0; k < nexclude; k++)
			skip |= r->addr == exclude[k];
		if (skip)
			continue;
		if (found && found != r->addr)
			*ambig = true;
		found = r->addr;
	}
	return found;
}

/* Decode runtime.allgadd into V->decoded. 0 or -errno with gt_lasterr() set. */
static int decode_allgadd(const struct go_model *m, struct census_vars *v)
{
	const char *name = "runtime.allgadd";
	const struct go_func *fn;
	struct ref_set *s;
	uint64_t allgs = 0, allglen, allgptr, excl[4];
	const uint8_t *code;
	bool ambig = false;
	size_t len;
	int err, nallgs = 0;

	fn = pclntab__func_by_name(m->pcln, name);
	if (!fn) {
		gt_seterr("%s has no %s function (inlined or renamed in %s?)", m->path, name,
			  m->bi.version);
		return -ENOENT;
	}
	len = fn->end - fn->entry;
	if (!len || len > MAX_ALLGADD_BYTES) {
		gt_seterr("%s: %s has an implausible size (%zu bytes)", m->path, name, len);
		return -EINVAL;
	}
	code = elf_file__vaddr_ptr(m->ef, fn->entry, len);
	if (!code) {
		gt_seterr("%s: the code of %s is not in the file", m->path, name);
		return -ENOENT;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	err = collect_refs(code, len, fn->entry, s);
	if (err)
		goto cleanup;

	/* allgs: the base A of three 8-byte words A, A+8, A+16 all accessed directly. */
	for (int i = 0; i < s->n; i++) {
		uint64_t a = s->r[i].addr;

		if (s->r[i].insn == X86_INS_LEA || s->r[i].size != 8 || s->r[i].via_lea)
			continue;
		if (a != allgs && has_ref(s, a + 8, 8) && has_ref(s, a + 16, 8)) {
			nallgs++; /* a second distinct candidate makes it ambiguous */
			allgs = a;
		}
	}
	if (!allgs || nallgs != 1) {
		gt_seterr("%s: cannot decode %s: %s slice header (allgs) among its operands", m->path,
			  name, allgs ? "more than one" : "no");
		err = -ENOTSUP;
		goto cleanup;
	}
	excl[0] = allgs;
	excl[1] = allgs + 8;
	excl[2] = allgs + 16;
	/* allgptr: compared (8 bytes) with &allgs[0]. */
	allgptr = unique_ref(s, X86_INS_CMP, excl, 3, &ambig);
	if (!allgptr || ambig) {
		gt_seterr("%s: cannot decode %s: %s allgptr comparison", m->path, name,
			  allgptr ? "more than one" : "no");
		err = -ENOTSUP;
		goto cleanup;
	}
	/* allglen: the other word stored with XCHG. */
	excl[3] = allgptr;
	allglen = unique_ref(s, X86_INS_XCHG, excl, 4, &ambig);
	if (!allglen || ambig) {
		gt_seterr("%s: cannot decode %s: %s atomic store of allglen", m->path, name,
			  allglen ? "more than one" : "no");
		err = -ENOTSUP;
		goto cleanup;
	}
	v->decoded[0] = allgs;
	v->decoded[1] = allglen;
	v->decoded[2] = allgptr;
	v->decoded_from = name;
	dlog("gotrace: %s: allgs %#" PRIx64 " allglen %#" PRIx64 " allgptr %#" PRIx64 " (%d refs)\n",
	     name, allgs, allglen, allgptr, s->n);
cleanup:
	free(s);
	return err;
}

int census_locate__find(const struct go_model *m, struct census_vars *v)
{
	uint64_t sym[3] = { 0 }, size;
	static const char *const names[3] = { "runtime.allgs", "runtime.allglen", "runtime.allgptr" };
	char why[256] = "";
	int nsym = 0, err = -ENOTSUP;

	memset(v, 0, sizeof(*v));
	if (elf_file__machine(m->ef) != EM_X86_64) {
		gt_seterr("%s: locating the goroutine list is implemented for x86-64 only", m->path);
		return -ENOTSUP;
	}
	if (elf_file__has_symtab(m->ef)) {
		for (int i = 0; i < 3; i++)
			nsym += !elf_file__symbol(m->ef, names[i], &sym[i], &size);
	}
	gt_clearerr();
	err = decode_allgadd(m, v);
	if (err) {
		snprintf(why, sizeof(why), "%s", gt_lasterr() ? gt_lasterr() : strerror(-err));
		vlog("gotrace: %s\n", why);
	}
	if (nsym == 3) {
		v->allgs = sym[0];
		v->allglen = sym[1];
		v->allgptr = sym[2];
		if (err)
			v->symtab = LOCATE_SYMTAB_ONLY;
		else if (!memcmp(sym, v->decoded, sizeof(sym)))
			v->symtab = LOCATE_SYMTAB_AGREES;
		else {
			v->symtab = LOCATE_SYMTAB_DIFFERS;
			vlog("gotrace: BUG: decoded allgs/allglen/allgptr %#" PRIx64 "/%#" PRIx64
			     "/%#" PRIx64 " differ from .symtab; using .symtab\n",
			     v->decoded[0], v->decoded[1], v->decoded[2]);
		}
		gt_clearerr();
		return 0;
	}
	if (err) {
		gt_seterr("cannot locate the goroutine list (runtime.allgs) in %s: %s", m->path, why);
		return err;
	}
	v->allgs = v->decoded[0];
	v->allglen = v->decoded[1];
	v->allgptr = v->decoded[2];
	v->symtab = LOCATE_SYMTAB_ABSENT;
	return 0;
}

const char *census_locate__symtab_name(enum locate_symtab s)
{
	switch (s) {
	case LOCATE_SYMTAB_AGREES:
		return "agrees";
	case LOCATE_SYMTAB_DIFFERS:
		return "differs";
	case LOCATE_SYMTAB_ONLY:
		return "symtab-only";
	default:
		return "absent";
	}
}

#define CHECK_TRIES 5
#define MAX_GOROUTINES (1ULL << 28) /* far above any real program; rejects garbage */

int census_locate__check(const struct go_model *m, struct proc_mem *mem,
			 const struct census_vars *v)
{
	uint64_t hdr[3], len, ptr;
	int err = 0;

	for (int t = 0; t < CHECK_TRIES; t++) {
		proc_mem__drop_cache(mem);
		err = proc_mem__read(mem, go_model__to_runtime(m, v->allgs), hdr, sizeof(hdr));
		if (!err)
			err = proc_mem__read(mem, go_model__to_runtime(m, v->allglen), &len, 8);
		if (!err)
			err = proc_mem__read(mem, go_model__to_runtime(m, v->allgptr), &ptr, 8);
		if (err == -ESRCH)
			return err;
		if (err) {
			gt_seterr("cannot read the goroutine list of process %d: %s", m->proc.pid,
				  strerror(-err));
			return err;
		}
		/* hdr = {ptr, len, cap}; allgadd updates allgs, then allgptr, then allglen. */
		if (hdr[0] && !(hdr[0] & 7) && hdr[1] && hdr[1] <= hdr[2] &&
		    hdr[2] <= MAX_GOROUTINES && len <= hdr[1] && len && ptr == hdr[0])
			return 0;
		dlog("gotrace: allgs {%#" PRIx64 ", %" PRIu64 ", %" PRIu64 "} allglen %" PRIu64
		     " allgptr %#" PRIx64 ": inconsistent (try %d)\n",
		     hdr[0], hdr[1], hdr[2], len, ptr, t + 1);
	}
	gt_seterr("process %d: the memory at runtime.allgs (%#" PRIx64 ") does not hold a "
		  "goroutine list",
		  m->proc.pid, go_model__to_runtime(m, v->allgs));
	return -EINVAL;
}
