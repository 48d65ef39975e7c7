// SPDX-License-Identifier: MIT
/*
 * The runtime's time histograms (runtime/histogram.go), located by decoding the runtime
 * functions that record into them, and read from the target's memory.
 *
 * timeHistogram layouts (histogram.go of each release, checked against the DWARF of
 * go1.19.8 and go1.21.13 ... go1.27.4 builds):
 *   1.17-1.19: counts [45*16]uint64, underflow uint64                      (5768 bytes)
 *   1.21-1.27: counts [39*4 + 4]uint64, underflow, overflow (atomic.Uint64) (1296 bytes)
 * Go 1.20 is not in the test matrix and its layout was not verified: refused.
 *
 * sched.timeToRun is recorded in casgstatus when a goroutine goes _Grunnable -> _Grunning,
 * but only for goroutines being "tracked": one transition out of _Grunning in
 * gTrackingPeriod (8) starts tracking (proc.go casgstatus, all versions). runtime/metrics
 * reads the same histogram, so a window of it is exactly what /sched/latencies:seconds
 * gives over that window.
 */
#include <capstone/capstone.h>
#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contention/rthist.h"
#include "util/log.h"

#define HDR16_COUNTS (45 * 16)
#define HDR4_COUNTS ((48 - 9 + 1) * 4)
#define MAX_FUNC_BYTES 16384
#define MAX_HITS 16
#define MAX_RIP 256

/*
 * Field distances inside runtime.schedt, from timeToRun (DWARF of go1.21.13 ... go1.27.4;
 * the fields in between moved together in every release): totalMutexWaitTime (1.21+) and
 * stwTotalTimeGC (1.22+).
 */
#define SCHED_MUTEXWAIT_FROM_TTR 1304
#define SCHED_STWGC_FROM_TTR 3904

/* Histogram addresses and RIP-relative references found in one function. */
struct fn_refs {
	uint64_t hist[MAX_HITS]; /* timeHistogram receivers (record calls, inlined indexing) */
	int nhist;
	uint64_t call[MAX_HITS]; /* of those, the receivers of a call of record() */
	int ncall;
	uint64_t rip[MAX_RIP];	 /* every RIP-relative address referenced or LEA-loaded */
	int nrip;
};

static unsigned int reg64(unsigned int r)
{
	switch (r) {
	case X86_REG_RAX: case X86_REG_EAX: case X86_REG_AX: case X86_REG_AL: return X86_REG_RAX;
	case X86_REG_RBX: case X86_REG_EBX: case X86_REG_BX: case X86_REG_BL: return X86_REG_RBX;
	case X86_REG_RCX: case X86_REG_ECX: case X86_REG_CX: case X86_REG_CL: return X86_REG_RCX;
	case X86_REG_RDX: case X86_REG_EDX: case X86_REG_DX: case X86_REG_DL: return X86_REG_RDX;
	case X86_REG_RSI: case X86_REG_ESI: case X86_REG_SI: case X86_REG_SIL: return X86_REG_RSI;
	case X86_REG_RDI: case X86_REG_EDI: case X86_REG_DI: case X86_REG_DIL: return X86_REG_RDI;
	case X86_REG_R8: case X86_REG_R8D: case X86_REG_R8W: case X86_REG_R8B: return X86_REG_R8;
	case X86_REG_R9: case X86_REG_R9D: case X86_REG_R9W: case X86_REG_R9B: return X86_REG_R9;
	case X86_REG_R10: case X86_REG_R10D: case X86_REG_R10W: case X86_REG_R10B: return X86_REG_R10;
	case X86_REG_R11: case X86_REG_R11D: case X86_REG_R11W: case X86_REG_R11B: return X86_REG_R11;
	case X86_REG_R12: case X86_REG_R12D: case X86_REG_R12W: case X86_REG_R12B: return X86_REG_R12;
	case X86_REG_R13: case X86_REG_R13D: case X86_REG_R13W: case X86_REG_R13B: return X86_REG_R13;
	case X86_REG_R15: case X86_REG_R15D: case X86_REG_R15W: case X86_REG_R15B: return X86_REG_R15;
	default: return 0; /* RSP, RBP, R14 (g) never hold a global's address here */
	}
}

static void add_u64(uint64_t *v, int *n, int max, uint64_t a)
{
	for (int i = 0; i < *n; i++) {
		if (v[i] == a)
			return;
	}
	if (*n < max)
		v[(*n)++] = a;
}

static bool has_u64(const uint64_t *v, int n, uint64_t a)
{
	for (int i = 0; i < n; i++) {
		if (v[i] == a)
			return true;
	}
	return false;
}

/*
 * Decode FNAME and collect the timeHistogram receivers it uses: the address in RAX
 * (loaded by LEA [rip+d]) at a CALL to RECORD (when record is not inlined), and the base
 * of an 8-byte-scaled index whose base register was loaded by LEA [rip+d] (the inlined
 * counts[i] update). Returns 0, or -ENOENT when FNAME is absent.
 */
static int decode_refs(const struct go_model *m, const char *fname, uint64_t record,
		       struct fn_refs *r)
{
	uint64_t lea[X86_REG_ENDING] = { 0 };
	const struct go_func *fn = pclntab__func_by_name(m->pcln, fname);
	const uint8_t *code, *p;
	size_t len, left;
	uint64_t pc;
	cs_insn *insn;
	csh h;

	memset(r, 0, sizeof(*r));
	if (!fn)
		return -ENOENT;
	len = fn->end - fn->entry;
	if (!len || len > MAX_FUNC_BYTES)
		return -EINVAL;
	code = elf_file__vaddr_ptr(m->ef, fn->entry, len);
	if (!code)
		return -ENOENT;
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &h) != CS_ERR_OK)
		return -ENOMEM;
	cs_option(h, CS_OPT_DETAIL, CS_OPT_ON);
	insn = cs_malloc(h);
	if (!insn) {
		cs_close(&h);
		return -ENOMEM;
	}
	p = code;
	left = len;
	pc = fn->entry;
	while (left && cs_disasm_iter(h, &p, &left, &pc, insn)) {
		const cs_x86 *x = &insn->detail->x86;
		uint64_t next = insn->address + insn->size;
		cs_regs rr, rw;
		uint8_t nr = 0, nw = 0;

		if (insn->id == X86_INS_INT3)
			break;
		for (int i = 0; i < x->op_count; i++) {
			const cs_x86_op *op = &x->operands[i];
			unsigned int b;

			if (op->type != X86_OP_MEM || op->mem.segment != X86_REG_INVALID)
				continue;
			if (op->mem.base == X86_REG_RIP && op->mem.index == X86_REG_INVALID) {
				add_u64(r->rip, &r->nrip, MAX_RIP, next + (uint64_t)op->mem.disp);
				continue;
			}
			b = reg64(op->mem.base);
			if (b && lea[b] && op->mem.index != X86_REG_INVALID && op->mem.scale == 8 &&
			    !op->mem.disp)
				add_u64(r->hist, &r->nhist, MAX_HITS, lea[b]);
		}
		if (insn->id == X86_INS_CALL) {
			if (x->op_count == 1 && x->operands[0].type == X86_OP_IMM &&
			    (uint64_t)x->operands[0].imm == record && record && lea[X86_REG_RAX]) {
				add_u64(r->hist, &r->nhist, MAX_HITS, lea[X86_REG_RAX]);
				add_u64(r->call, &r->ncall, MAX_HITS, lea[X86_REG_RAX]);
			}
			memset(lea, 0, sizeof(lea));
			continue;
		}
		if (!cs_regs_access(h, insn, rr, &nr, rw, &nw)) {
			for (int i = 0; i < nw; i++)
				lea[reg64(rw[i])] = 0;
		} else {
			memset(lea, 0, sizeof(lea));
		}
		if (insn->id == X86_INS_LEA && x->op_count == 2 && x->operands[0].type == X86_OP_REG &&
		    x->operands[1].type == X86_OP_MEM && x->operands[1].mem.base == X86_REG_RIP &&
		    x->operands[1].mem.index == X86_REG_INVALID)
			lea[reg64(x->operands[0].reg)] = next + (uint64_t)x->operands[1].mem.disp;
		lea[0] = 0;
	}
	cs_free(insn, 1);
	cs_close(&h);
	return 0;
}

/* Is A inside a writable, allocated section (where runtime globals live)? */
static bool in_data(const struct go_model *m, uint64_t a)
{
	for (size_t i = 0; i < elf_file__section_cnt(m->ef); i++) {
		const struct elf_section *s = elf_file__section_at(m->ef, i);

		if (s && (s->flags & SHF_ALLOC) && (s->flags & SHF_WRITE) && a >= s->addr &&
		    a < s->addr + s->size)
			return true;
	}
	return false;
}

static int counts_of(enum rthist_layout l)
{
	return l == RTHIST_HDR16 ? HDR16_COUNTS : l == RTHIST_HDR4 ? HDR4_COUNTS : 0;
}

/*
 * The one histogram FN records into, checked: in a data section and either the receiver
 * of a call of record(), or (record inlined) an array indexed by 8 whose underflow word,
 * right after the counts, is referenced too. Other arrays of uint64 indexed in the same
 * function (memstats.pause_ns and pause_end in gcMarkTermination) are not histograms.
 * 0 when none or ambiguous.
 */
static uint64_t one_hist(const struct go_model *m, const struct fn_refs *r, enum rthist_layout l,
			 char *why, size_t whylen, const char *fname)
{
	uint64_t found = 0;
	int n = 0;

	for (int i = 0; i < r->nhist; i++) {
		uint64_t a = r->hist[i];

		if (!in_data(m, a))
			continue;
		if (!has_u64(r->call, r->ncall, a) &&
		    !has_u64(r->rip, r->nrip, a + (uint64_t)counts_of(l) * 8))
			continue;
		if (found == a)
			continue;
		found = a;
		n++;
	}
	if (n == 1)
		return found;
	snprintf(why, whylen, "%s: %s histogram update found by decoding (%d candidates)", fname,
		 n ? "more than one" : "no", r->nhist);
	return 0;
}

int rthist__locate(const struct go_model *m, struct rthist_addrs *a)
{
	const struct go_func *rec;
	struct fn_refs r;
	uint64_t record = 0, sym, size;
	int minor = m->bi.minor, err;

	memset(a, 0, sizeof(*a));
	if (elf_file__machine(m->ef) != EM_X86_64) {
		snprintf(a->why, sizeof(a->why), "reading the runtime's histograms is implemented "
			 "for x86-64 only");
		snprintf(a->gc_why, sizeof(a->gc_why), "%s", a->why);
		gt_seterr("%s", a->why);
		return -ENOTSUP;
	}
	if (minor >= 17 && minor <= 19)
		a->layout = RTHIST_HDR16;
	else if (minor >= 21 && minor <= GO_MAX_MINOR)
		a->layout = RTHIST_HDR4;
	if (a->layout == RTHIST_NONE) {
		snprintf(a->why, sizeof(a->why), "%s: the runtime's histogram layout for this "
			 "version is not known", m->bi.version);
		snprintf(a->gc_why, sizeof(a->gc_why), "%s", a->why);
		gt_seterr("%s", a->why);
		return -ENOTSUP;
	}
	rec = pclntab__func_by_name(m->pcln, "runtime.(*timeHistogram).record");
	if (rec)
		record = rec->entry;
	/* Without the function, every record() was inlined (1.19 does that). */

	err = decode_refs(m, "runtime.casgstatus", record, &r);
	if (err) {
		snprintf(a->why, sizeof(a->why), "cannot decode runtime.casgstatus: %s",
			 strerror(-err));
	} else {
		a->time_to_run = one_hist(m, &r, a->layout, a->why, sizeof(a->why),
					  "runtime.casgstatus");
		/* totalMutexWaitTime is updated through a LEA'd pointer in the same function. */
		if (a->time_to_run && minor >= 21 &&
		    has_u64(r.rip, r.nrip, a->time_to_run + SCHED_MUTEXWAIT_FROM_TTR))
			a->mutex_wait = a->time_to_run + SCHED_MUTEXWAIT_FROM_TTR;
	}
	if (a->time_to_run && elf_file__has_symtab(m->ef) &&
	    !elf_file__symbol(m->ef, "runtime.sched", &sym, &size) &&
	    (a->time_to_run < sym || a->time_to_run >= sym + size)) {
		/* .symtab is the referee when present. */
		vlog("gotrace: BUG: decoded sched.timeToRun %#" PRIx64 " is outside runtime.sched "
		     "[%#" PRIx64 ", +%" PRIu64 ")\n", a->time_to_run, sym, size);
		snprintf(a->why, sizeof(a->why), "decoded sched.timeToRun disagrees with .symtab");
		a->time_to_run = 0;
		a->mutex_wait = 0;
	}

	if (minor <= 21) {
		err = decode_refs(m, "runtime.gcMarkTermination", record, &r);
		if (err)
			snprintf(a->gc_why, sizeof(a->gc_why),
				 "cannot decode runtime.gcMarkTermination: %s", strerror(-err));
		else
			a->gc_pauses = one_hist(m, &r, a->layout, a->gc_why,
						sizeof(a->gc_why), "runtime.gcMarkTermination");
		a->gc_pauses_name = "memstats.gcPauseDist";
	} else if (a->time_to_run) {
		/* Both GC and other STW totals are recorded here; the GC one sits at a known distance. */
		err = decode_refs(m, "runtime.startTheWorldWithSema", record, &r);
		if (!err && has_u64(r.hist, r.nhist, a->time_to_run + SCHED_STWGC_FROM_TTR))
			a->gc_pauses = a->time_to_run + SCHED_STWGC_FROM_TTR;
		else
			snprintf(a->gc_why, sizeof(a->gc_why), "runtime.startTheWorldWithSema does "
				 "not record into sched.stwTotalTimeGC where expected");
		a->gc_pauses_name = "sched.stwTotalTimeGC";
	} else {
		snprintf(a->gc_why, sizeof(a->gc_why), "located from sched.timeToRun, not found");
	}
	dlog("gotrace: timeToRun %#" PRIx64 " gc pauses %#" PRIx64 " mutex wait %#" PRIx64 "\n",
	     a->time_to_run, a->gc_pauses, a->mutex_wait);
	if (!a->time_to_run) {
		gt_seterr("cannot locate the runtime's scheduling-latency histogram: %s", a->why);
		return -ENOENT;
	}
	return 0;
}

int rthist__read(const struct go_model *m, struct proc_mem *mem, uint64_t addr,
		 enum rthist_layout l, struct rthist *h)
{
	uint64_t raw[RTHIST_MAX_BUCKETS + 1];
	int nc = counts_of(l), nw, err;

	memset(h, 0, sizeof(*h));
	h->layout = l;
	if (!nc || !addr)
		return -EINVAL;
	nw = nc + (l == RTHIST_HDR4 ? 2 : 1); /* counts, underflow[, overflow] */
	err = proc_mem__read(mem, go_model__to_runtime(m, addr), raw, (size_t)nw * 8);
	if (err)
		return err;
	h->counts[0] = raw[nc];
	memcpy(&h->counts[1], raw, (size_t)nc * 8);
	h->n = nc + 1;
	if (l == RTHIST_HDR4)
		h->counts[h->n++] = raw[nc + 1];
	return 0;
}

int rthist__sub(const struct rthist *end, const struct rthist *start, struct rthist *h)
{
	int err = 0;

	*h = *end;
	if (end->layout != start->layout || end->n != start->n)
		return -EINVAL;
	for (int i = 0; i < end->n; i++) {
		if (end->counts[i] < start->counts[i]) {
			h->counts[i] = 0;
			err = -ERANGE;
			continue;
		}
		h->counts[i] = end->counts[i] - start->counts[i];
	}
	return err;
}

uint64_t rthist__total(const struct rthist *h)
{
	uint64_t t = 0;

	for (int i = 0; i < h->n; i++)
		t += h->counts[i];
	return t;
}

/* timeHistogramMetricsBuckets() of histogram.go, per layout; I in [0, n]. */
double rthist__lower(const struct rthist *h, int i)
{
	if (i <= 0)
		return -INFINITY;
	if (i >= h->n)
		return INFINITY;
	if (h->layout == RTHIST_HDR16) {
		/* b[i+1] = i for i < 16; b[(s+1)*16+j+1] = 1<<(s+4) | j<<s. */
		int k = i - 1, s, j;

		if (k < 16)
			return k;
		s = k / 16 - 1;
		j = k % 16;
		return (double)((1ULL << (s + 4)) | ((uint64_t)j << s));
	}
	/* HDR4: b[j+1] = j<<6; b[(b-9+1)*4+j+1] = 1<<(b-1) | j<<(b-3); b[n-1] = 1<<47. */
	{
		int k = i - 1, bit, j;

		if (i == h->n - 1)
			return (double)(1ULL << 47);
		if (k < 4)
			return (double)((uint64_t)k << 6);
		bit = k / 4 - 1 + 9;
		j = k % 4;
		return (double)((1ULL << (bit - 1)) | ((uint64_t)j << (bit - 3)));
	}
}

double rthist__quantile(const struct rthist *h, double q)
{
	uint64_t total = rthist__total(h), cum = 0;
	double thresh = q * (double)total;

	if (!total)
		return -1;
	for (int i = 0; i < h->n; i++) {
		cum += h->counts[i];
		if (h->counts[i] && (double)cum >= thresh) {
			double lo = rthist__lower(h, i);

			return lo < 0 ? 0 : lo;
		}
	}
	return rthist__lower(h, h->n - 1);
}

double rthist__max(const struct rthist *h)
{
	for (int i = h->n - 1; i >= 0; i--) {
		double hi;

		if (!h->counts[i])
			continue;
		hi = rthist__lower(h, i + 1);
		if (isinf(hi))
			hi = rthist__lower(h, i);
		return hi < 0 ? 0 : hi;
	}
	return -1;
}

const char *rthist__layout_name(enum rthist_layout l)
{
	switch (l) {
	case RTHIST_HDR16:
		return "go1.17-1.19 (16 sub-buckets)";
	case RTHIST_HDR4:
		return "go1.21+ (4 sub-buckets, overflow)";
	default:
		return "unknown";
	}
}
