// SPDX-License-Identifier: MIT
/*
 * Locating the heap profile and GC statistics of a Go process by decoding runtime
 * functions (see locate.h for which function gives which variable, and why it is
 * unambiguous). The shapes were checked with `go tool objdump` on go1.19.8 and
 * go1.21.13 ... go1.27.4 builds; each decoder refuses rather than guesses when the code
 * does not have the expected shape.
 */
#include <capstone/capstone.h>
#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heap/locate.h"
#include "util/log.h"

#define MAX_FUNC_BYTES 16384
#define MAX_INSNS 4096

/* One decoded instruction, reduced to what the locators look at. */
struct hinsn {
	unsigned int id;  /* X86_INS_* */
	uint64_t mem;	  /* absolute address of a RIP-relative memory operand, 0 when none */
	uint8_t size;	  /* size of that operand */
	bool mem_dst;	  /* the memory operand is written (the destination operand) */
	bool has_imm;	  /* an immediate operand ... */
	int64_t imm;	  /* ... and its value */
	uint64_t target;  /* CALL/JMP with an immediate target */
	uint64_t lea_rax; /* at a CALL: the address RAX holds from a LEA [rip+d], 0 unknown */
};

struct hfunc {
	struct hinsn *in;
	int n;
};

static const char *const var_names[HV__CNT] = {
	[HV_MBUCKETS] = "runtime.mbuckets",
	[HV_MPROF_CYCLE] = "runtime.mProfCycle",
	[HV_MEM_PROFILE_RATE] = "runtime.MemProfileRate",
	[HV_DISABLE_MEM_PROF] = "runtime.disableMemoryProfiling",
	[HV_GC_CONTROLLER] = "runtime.gcController",
	[HV_SWEEP_STATE] = "runtime.sweep.active.state",
	[HV_MEMSTATS] = "runtime.memstats",
};

const char *heap_locate__name(enum heap_var i)
{
	return i < HV__CNT ? var_names[i] : "?";
}

/*
 * Layouts from the DWARF of real builds (gdb `ptype /o`): runtime.mstats,
 * runtime.gcControllerState, runtime.sweepdata, runtime.memRecordCycle,
 * runtime.consistentHeapStats and runtime.heapStatsDelta (1.19, 1.21-1.27 checked).
 * 1.20 is not in the test matrix: its layouts were not checked, so it is refused.
 */
int heap_locate__layout(int minor, struct heap_layout *l)
{
	memset(l, 0, sizeof(*l));
	l->go_minor = minor;
	if (minor != 19 && (minor < 21 || minor > 27))
		return -ENOTSUP;
	/* memRecordCycle lost alloc_bytes/free_bytes in 1.27 (bytes = count * bucket size). */
	l->rec_words = minor >= 27 ? 2 : 4;
	/* mstats: 1.25 removed fields before pause_total_ns. */
	l->ms_pause_total_ns = minor >= 25 ? 3576 : 3600;
	l->ms_last_gc_unix = l->ms_pause_total_ns - 8;
	l->ms_numgc = minor >= 25 ? 7680 : 7704;
	l->ms_numforcedgc = l->ms_numgc + 4;
	l->ms_pause_ns = l->ms_pause_total_ns + 8;
	l->ms_pause_end = l->ms_pause_ns + 256 * 8;
	/* The GC pause histogram moved from mstats to schedt (stwTotalTimeGC) in 1.22. */
	l->ms_gc_pause_dist = minor <= 21 ? 7744 : 0;
	/* gcControllerState: 1.21 removed fields ahead of gcPercentHeapGoal. */
	l->gc_memory_limit = 8;
	l->gc_percent_heap_goal = minor == 19 ? 104 : 72;
	l->gc_sweep_dist_min_trigger = l->gc_percent_heap_goal + 8;
	l->gc_triggered = l->gc_percent_heap_goal + 16;
	l->gc_heap_live = minor == 19 ? 136 : 104;
	l->gc_heap_marked = minor == 19 ? 184 : 152;
	/* sweepdata: 1.22 dropped a field before active. */
	l->sweep_active_state = minor <= 21 ? 28 : 20;
	/* heapStatsDelta: 1.25 dropped one of the five memory-stat words that lead it. */
	l->hs_stride = minor >= 25 ? 1168 : 1176;
	l->hs_gen = 3 * l->hs_stride;
	l->hs_tiny_count = minor >= 25 ? 40 : 48;
	l->hs_large_alloc = l->hs_tiny_count + 8;
	l->hs_large_count = l->hs_tiny_count + 16;
	l->hs_small_count = l->hs_tiny_count + 24;
	return 0;
}

/* The 64-bit register holding R (eax, ax, al -> rax), or 0 (RSP, RBP, R14 = g, others). */
static unsigned int reg64(unsigned int r)
{
	static const unsigned int regs[][4] = {
		{ X86_REG_RAX, X86_REG_EAX, X86_REG_AX, X86_REG_AL },
		{ X86_REG_RBX, X86_REG_EBX, X86_REG_BX, X86_REG_BL },
		{ X86_REG_RCX, X86_REG_ECX, X86_REG_CX, X86_REG_CL },
		{ X86_REG_RDX, X86_REG_EDX, X86_REG_DX, X86_REG_DL },
		{ X86_REG_RSI, X86_REG_ESI, X86_REG_SI, X86_REG_SIL },
		{ X86_REG_RDI, X86_REG_EDI, X86_REG_DI, X86_REG_DIL },
		{ X86_REG_R8, X86_REG_R8D, X86_REG_R8W, X86_REG_R8B },
		{ X86_REG_R9, X86_REG_R9D, X86_REG_R9W, X86_REG_R9B },
		{ X86_REG_R10, X86_REG_R10D, X86_REG_R10W, X86_REG_R10B },
		{ X86_REG_R11, X86_REG_R11D, X86_REG_R11W, X86_REG_R11B },
		{ X86_REG_R12, X86_REG_R12D, X86_REG_R12W, X86_REG_R12B },
		{ X86_REG_R13, X86_REG_R13D, X86_REG_R13W, X86_REG_R13B },
		{ X86_REG_R15, X86_REG_R15D, X86_REG_R15W, X86_REG_R15B },
	};

	for (size_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++) {
		for (int k = 0; k < 4; k++) {
			if (regs[i][k] == r)
				return regs[i][0];
		}
	}
	return 0;
}

/* Decode the function NAME of M into F (caller frees F->in). 0 or -errno, WHY set. */
static int decode(const struct go_model *m, const char *name, struct hfunc *f, char *why,
		  size_t whylen)
{
	uint64_t lea[X86_REG_ENDING] = { 0 };
	const struct go_func *fn = pclntab__func_by_name(m->pcln, name);
	const uint8_t *code, *p;
	size_t len, left;
	uint64_t pc;
	cs_insn *insn;
	csh h;

	f->in = NULL;
	f->n = 0;
	if (!fn) {
		snprintf(why, whylen, "no function %s", name);
		return -ENOENT;
	}
	len = fn->end - fn->entry;
	code = len && len <= MAX_FUNC_BYTES ? elf_file__vaddr_ptr(m->ef, fn->entry, len) : NULL;
	if (!code) {
		snprintf(why, whylen, "%s: code not readable (%zu bytes)", name, len);
		return -EINVAL;
	}
	f->in = calloc(MAX_INSNS, sizeof(*f->in));
	if (!f->in)
		return -ENOMEM;
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &h) != CS_ERR_OK) {
		free(f->in);
		f->in = NULL;
		snprintf(why, whylen, "capstone: cannot open an x86-64 decoder");
		return -ENOMEM;
	}
	cs_option(h, CS_OPT_DETAIL, CS_OPT_ON);
	insn = cs_malloc(h);
	p = code;
	left = len;
	pc = fn->entry;
	while (insn && left && f->n < MAX_INSNS && cs_disasm_iter(h, &p, &left, &pc, insn)) {
		const cs_x86 *x = &insn->detail->x86;
		struct hinsn *o = &f->in[f->n++];
		uint64_t next = insn->address + insn->size;
		cs_regs rr, rw;
		uint8_t nr = 0, nw = 0;

		if (insn->id == X86_INS_INT3)
			break; /* padding after the function */
		o->id = insn->id;
		for (int i = 0; i < x->op_count; i++) {
			const cs_x86_op *op = &x->operands[i];

			if (op->type == X86_OP_IMM) {
				o->has_imm = true;
				o->imm = op->imm;
			}
			if (op->type != X86_OP_MEM || op->mem.segment != X86_REG_INVALID ||
			    op->mem.base != X86_REG_RIP || op->mem.index != X86_REG_INVALID)
				continue;
			o->mem = next + (uint64_t)op->mem.disp;
			o->size = op->size;
			/* CMP and TEST only read their first operand. */
			o->mem_dst = i == 0 && insn->id != X86_INS_CMP && insn->id != X86_INS_TEST;
		}
		if ((insn->id == X86_INS_CALL || insn->id == X86_INS_JMP) && x->op_count == 1 &&
		    x->operands[0].type == X86_OP_IMM) {
			o->target = (uint64_t)x->operands[0].imm;
			o->has_imm = false;
		}
		if (insn->id == X86_INS_CALL) {
			o->lea_rax = lea[X86_REG_RAX];
			memset(lea, 0, sizeof(lea));
			continue;
		}
		/* Track LEA reg, [rip+d]; any other write to a register forgets it. */
		if (!cs_regs_access(h, insn, rr, &nr, rw, &nw)) {
			for (int i = 0; i < nw; i++)
				lea[reg64(rw[i])] = 0;
		} else {
			memset(lea, 0, sizeof(lea));
		}
		if (insn->id == X86_INS_LEA && x->op_count == 2 &&
		    x->operands[0].type == X86_OP_REG && o->mem)
			lea[reg64(x->operands[0].reg)] = o->mem;
		lea[0] = 0;
	}
	if (insn)
		cs_free(insn, 1);
	cs_close(&h);
	return 0;
}

/* The one address F accesses with instruction ID (any when 0) and SIZE; 0 if none or several. */
static uint64_t only_ref(const struct hfunc *f, unsigned int id, uint8_t size, bool dst, int *cnt)
{
	uint64_t found = 0;

	*cnt = 0;
	for (int i = 0; i < f->n; i++) {
		const struct hinsn *o = &f->in[i];

		if (!o->mem || o->id == X86_INS_LEA || o->size != size || o->mem_dst != dst ||
		    (id && o->id != id))
			continue;
		if (o->mem != found)
			(*cnt)++;
		found = o->mem;
	}
	return *cnt == 1 ? found : 0;
}

/* mbuckets: `head := mbuckets.Load()`, the only global mProf_FlushLocked reads. */
static void find_mbuckets(const struct go_model *m, struct heap_vars *v)
{
	char *why = v->why[HV_MBUCKETS];
	struct hfunc f;
	int n;

	if (decode(m, "runtime.mProf_FlushLocked", &f, why, sizeof(v->why[0])))
		return;
	v->decoded[HV_MBUCKETS] = only_ref(&f, X86_INS_MOV, 8, false, &n);
	if (!v->decoded[HV_MBUCKETS])
		snprintf(why, sizeof(v->why[0]), "runtime.mProf_FlushLocked loads %d globals, "
			 "expected 1", n);
	free(f.in);
}

/* mProfCycle: `cycle := mProfCycle.read() + 1`, the only 4-byte global of mProf_PostSweep. */
static void find_mprof_cycle(const struct go_model *m, struct heap_vars *v)
{
	char *why = v->why[HV_MPROF_CYCLE];
	struct hfunc f;
	int n;

	if (decode(m, "runtime.mProf_PostSweep", &f, why, sizeof(v->why[0])))
		return;
	v->decoded[HV_MPROF_CYCLE] = only_ref(&f, X86_INS_MOV, 4, false, &n);
	if (!v->decoded[HV_MPROF_CYCLE])
		snprintf(why, sizeof(v->why[0]), "runtime.mProf_PostSweep loads %d 4-byte "
			 "globals, expected 1", n);
	free(f.in);
}

/*
 * MemProfileRate and disableMemoryProfiling. 1.20+ schedinit:
 *	if disableMemoryProfiling { MemProfileRate = 0 }   (cmp byte [D], 0; jcc; mov qword [R], 0)
 * 1.19 runtime.init: MemProfileRate = defaultMemProfileRate(512 * 1024)
 *	(movzx eax, byte [D]; ...; cmov; mov qword [R], rax)
 * R must also be one of the two 8-byte globals profilealloc reads (mcache0, MemProfileRate).
 */
static void find_rate(const struct go_model *m, struct heap_vars *v)
{
	static const char *const inits[] = { "runtime.schedinit", "runtime.init" };
	char *why = v->why[HV_MEM_PROFILE_RATE];
	uint64_t loads[8];
	int nloads = 0;
	struct hfunc f;

	if (decode(m, "runtime.profilealloc", &f, why, sizeof(v->why[0])))
		return;
	for (int i = 0; i < f.n && nloads < 8; i++) {
		if (f.in[i].mem && f.in[i].id == X86_INS_MOV && f.in[i].size == 8 &&
		    !f.in[i].mem_dst)
			loads[nloads++] = f.in[i].mem;
	}
	free(f.in);
	snprintf(why, sizeof(v->why[0]), "no store to a profilealloc global after a test of a "
		 "byte in runtime.schedinit or runtime.init");
	for (size_t k = 0; k < sizeof(inits) / sizeof(inits[0]); k++) {
		uint64_t d = 0, r = 0;
		int at = -100, hits = 0;
		char w2[160];

		if (decode(m, inits[k], &f, w2, sizeof(w2)))
			continue;
		for (int i = 0; i < f.n; i++) {
			const struct hinsn *o = &f.in[i];
			bool known = false;


			bool byte_read = o->id == X86_INS_CMP || o->id == X86_INS_MOVZX ||
					 o->id == X86_INS_TEST;

			if (o->mem && o->size == 1 && !o->mem_dst && byte_read) {
				d = o->mem;
				at = i;
				continue;
			}
			if (!o->mem || !o->mem_dst || o->size != 8 || o->id != X86_INS_MOV ||
			    i - at > 6)
				continue;
			for (int j = 0; j < nloads; j++)
				known |= loads[j] == o->mem;
			dlog("gotrace: %s: 8-byte store to %#" PRIx64 " %d after a byte test of %#"
			     PRIx64 "%s\n", inits[k], o->mem, i - at, d,
			     known ? " (profilealloc)" : "");
			if (known && (o->mem != r || d != v->decoded[HV_DISABLE_MEM_PROF])) {
				r = o->mem;
				v->decoded[HV_DISABLE_MEM_PROF] = d;
				hits++;
			}
		}
		free(f.in);
		if (hits == 1) {
			v->decoded[HV_MEM_PROFILE_RATE] = r;
			why[0] = 0;
			return;
		}
		v->decoded[HV_DISABLE_MEM_PROF] = 0;
	}
	snprintf(v->why[HV_DISABLE_MEM_PROF], sizeof(v->why[0]), "%s", why);
}

/*
 * gcController: the receiver of gcController.commit(isSweepDone()) in gcControllerCommit,
 * and sweep.active.state: the one 4-byte global it loads (isSweepDone inlined).
 */
static void find_gc_controller(const struct go_model *m, struct heap_vars *v)
{
	const struct go_func *commit;
	char *why = v->why[HV_GC_CONTROLLER];
	uint64_t rx = 0;
	struct hfunc f;
	int n, calls = 0;

	if (decode(m, "runtime.gcControllerCommit", &f, why, sizeof(v->why[0]))) {
		snprintf(v->why[HV_SWEEP_STATE], sizeof(v->why[0]), "%s", why);
		return;
	}
	commit = pclntab__func_by_name(m->pcln, "runtime.(*gcControllerState).commit");
	for (int i = 0; commit && i < f.n; i++) {
		if (f.in[i].id == X86_INS_CALL && f.in[i].target == commit->entry) {
			rx = f.in[i].lea_rax;
			calls++;
		}
	}
	if (calls == 1 && rx)
		v->decoded[HV_GC_CONTROLLER] = rx;
	else
		snprintf(why, sizeof(v->why[0]), "runtime.gcControllerCommit: %d calls of "
			 "(*gcControllerState).commit with a global receiver, expected 1", calls);
	v->decoded[HV_SWEEP_STATE] = only_ref(&f, X86_INS_MOV, 4, false, &n);
	if (!v->decoded[HV_SWEEP_STATE])
		snprintf(v->why[HV_SWEEP_STATE], sizeof(v->why[0]), "runtime.gcControllerCommit "
			 "loads %d 4-byte globals, expected 1", n);
	free(f.in);
}

/*
 * memstats: gcMarkTermination does `if work.userForced { memstats.numforcedgc++ }` then
 * `memstats.numgc++`: increments of two adjacent uint32 globals N+4 and N. It also adds
 * to memstats.pause_total_ns, which checks the base found.
 */
static void find_memstats(const struct go_model *m, struct heap_vars *v)
{
	char *why = v->why[HV_MEMSTATS];
	uint64_t numgc = 0, base;
	bool pause = false;
	struct hfunc f;
	int pairs = 0;

	if (decode(m, "runtime.gcMarkTermination", &f, why, sizeof(v->why[0])))
		return;
	for (int i = 0; i < f.n; i++) {
		const struct hinsn *a = &f.in[i];

		if (a->id != X86_INS_INC || !a->mem || a->size != 4)
			continue;
		for (int j = 0; j < f.n; j++) {
			const struct hinsn *b = &f.in[j];

			if (b->id == X86_INS_INC && b->size == 4 && b->mem + 4 == a->mem &&
			    b->mem != numgc) {
				numgc = b->mem;
				pairs++;
			}
		}
	}
	if (pairs != 1) {
		snprintf(why, sizeof(v->why[0]), "runtime.gcMarkTermination: %d pairs of adjacent "
			 "uint32 increments (numgc, numforcedgc), expected 1", pairs);
		free(f.in);
		return;
	}
	base = numgc - v->lay.ms_numgc;
	for (int i = 0; i < f.n; i++)
		pause |= f.in[i].id == X86_INS_ADD && f.in[i].size == 8 && f.in[i].mem_dst &&
			 f.in[i].mem == base + v->lay.ms_pause_total_ns;
	if (pause)
		v->decoded[HV_MEMSTATS] = base;
	else
		snprintf(why, sizeof(v->why[0]), "runtime.gcMarkTermination: no addition to "
			 "memstats.pause_total_ns at %#" PRIx64, base + v->lay.ms_pause_total_ns);
	free(f.in);
}

const char *heap_locate__source(const struct heap_vars *v, enum heap_var i)
{
	if (!v->addr[i])
		return "missing";
	if (!v->symtab[i])
		return "decoded";
	if (!v->decoded[i])
		return "symtab-only";
	return v->decoded[i] == v->symtab[i] ? "agrees" : "differs";
}

int heap_locate__find(const struct go_model *m, struct heap_vars *v)
{
	static const char *const sym[HV__CNT] = {
		[HV_MBUCKETS] = "runtime.mbuckets",
		[HV_MPROF_CYCLE] = "runtime.mProfCycle",
		[HV_MEM_PROFILE_RATE] = "runtime.MemProfileRate",
		[HV_DISABLE_MEM_PROF] = "runtime.disableMemoryProfiling",
		[HV_GC_CONTROLLER] = "runtime.gcController",
		[HV_SWEEP_STATE] = "runtime.sweep",
		[HV_MEMSTATS] = "runtime.memstats",
	};

	memset(v, 0, sizeof(*v));
	if (elf_file__machine(m->ef) != EM_X86_64) {
		gt_seterr("%s: reading the heap profile is implemented for x86-64 only", m->path);
		return -ENOTSUP;
	}
	if (heap_locate__layout(m->bi.minor, &v->lay)) {
		gt_seterr("%s: %s: the heap profile layout is known for go1.19 and go1.21 to "
			  "go1.27 only", m->path, m->bi.version);
		return -ENOTSUP;
	}
	find_mbuckets(m, v);
	find_mprof_cycle(m, v);
	find_rate(m, v);
	find_gc_controller(m, v);
	find_memstats(m, v);
	for (int i = 0; i < HV__CNT; i++) {
		uint64_t size;

		if (elf_file__has_symtab(m->ef) && !elf_file__symbol(m->ef, sym[i], &v->symtab[i],
								     &size) &&
		    i == HV_SWEEP_STATE)
			v->symtab[i] += v->lay.sweep_active_state;
		v->addr[i] = v->symtab[i] ? v->symtab[i] : v->decoded[i];
		if (v->symtab[i] && v->decoded[i] && v->symtab[i] != v->decoded[i])
			vlog("gotrace: BUG: decoded %s %#" PRIx64 " differs from .symtab %#" PRIx64
			     "; using .symtab\n", var_names[i], v->decoded[i], v->symtab[i]);
		if (!v->addr[i])
			vlog("gotrace: cannot locate %s: %s\n", var_names[i], v->why[i]);
	}
	gt_clearerr();
	if (!v->addr[HV_MBUCKETS] || !v->addr[HV_MPROF_CYCLE]) {
		enum heap_var i = v->addr[HV_MBUCKETS] ? HV_MPROF_CYCLE : HV_MBUCKETS;

		gt_seterr("cannot locate the heap profile (%s) in %s: %s", var_names[i], m->path,
			  v->why[i]);
		return -ENOENT;
	}
	return 0;
}
