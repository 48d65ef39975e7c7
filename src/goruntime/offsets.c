// SPDX-License-Identifier: MIT
/*
 * Built-in runtime struct offsets (linux/amd64; arm64 has the same g/m/gobuf/moduledata
 * prefix) for Go 1.17 - 1.27, from src/runtime/runtime2.go and symtab.go of each release.
 *
 * 1.19 and 1.21 - 1.27 were checked against the DWARF of binaries built by each toolchain
 * (go1.19.8, go1.21.13, go1.22.12, go1.23.5, go1.24.4, go1.25.12, go1.26.11, go1.27.4),
 * with Go's debug/dwarf and gdb `ptype /o`: default, PIE and cgo builds agree.
 * 1.17, 1.18 and 1.20 were computed from source (go/types sizes), NOT verified by DWARF:
 * no toolchain for them was available.
 */
#include <errno.h>
#include <string.h>

#include "goruntime/offsets.h"
#include "util/log.h"

static const struct go_offset_desc descs[GO_OFF__CNT] = {
	[GO_OFF_G_STACK_LO] = { "g.stack.lo", "runtime.g", "stack.lo" },
	[GO_OFF_G_STACK_HI] = { "g.stack.hi", "runtime.g", "stack.hi" },
	[GO_OFF_G_M] = { "g.m", "runtime.g", "m" },
	[GO_OFF_G_SCHED_SP] = { "g.sched.sp", "runtime.g", "sched.sp" },
	[GO_OFF_G_SCHED_PC] = { "g.sched.pc", "runtime.g", "sched.pc" },
	[GO_OFF_G_SCHED_BP] = { "g.sched.bp", "runtime.g", "sched.bp" },
	[GO_OFF_G_ATOMICSTATUS] = { "g.atomicstatus", "runtime.g", "atomicstatus" },
	[GO_OFF_G_GOID] = { "g.goid", "runtime.g", "goid" },
	[GO_OFF_G_WAITSINCE] = { "g.waitsince", "runtime.g", "waitsince" },
	[GO_OFF_G_WAITREASON] = { "g.waitreason", "runtime.g", "waitreason" },
	[GO_OFF_G_PARENTGOID] = { "g.parentGoid", "runtime.g", "parentGoid" },
	[GO_OFF_G_GOPC] = { "g.gopc", "runtime.g", "gopc" },
	[GO_OFF_G_STARTPC] = { "g.startpc", "runtime.g", "startpc" },
	[GO_OFF_G_LABELS] = { "g.labels", "runtime.g", "labels" },
	[GO_OFF_G_SIZE] = { "sizeof(g)", "runtime.g", "" },
	[GO_OFF_GOBUF_SIZE] = { "sizeof(gobuf)", "runtime.gobuf", "" },
	[GO_OFF_M_G0] = { "m.g0", "runtime.m", "g0" },
	[GO_OFF_M_PROCID] = { "m.procid", "runtime.m", "procid" },
	[GO_OFF_M_CURG] = { "m.curg", "runtime.m", "curg" },
	[GO_OFF_M_P] = { "m.p", "runtime.m", "p" },
	[GO_OFF_MODULEDATA_TEXT] = { "moduledata.text", "runtime.moduledata", "text" },
	[GO_OFF_MODULEDATA_ETEXT] = { "moduledata.etext", "runtime.moduledata", "etext" },
	[GO_OFF_MODULEDATA_GOFUNC] = { "moduledata.gofunc", "runtime.moduledata", "gofunc" },
};

/* -1: the field does not exist in that version. */
#define NONE (-1)

/*
 * One row per minor. Fields that never moved in 1.17 - 1.27: g.stack {lo 0, hi 8},
 * g.m 48, g.sched at 56 (gobuf.sp +0, pc +8), m.g0 0, moduledata.text 176 / etext 184.
 */
struct off_row {
	int16_t sched_bp, atomicstatus, goid, waitsince, waitreason, parentgoid, gopc, startpc,
		labels, g_size, gobuf_size, m_procid, m_curg, m_p, md_gofunc;
};

static const struct off_row rows[GO_MAX_MINOR - GO_MIN_MINOR + 1] = {
	/*
	 * 1.17: computed from go1.17 (ec5170397c72), unverified by DWARF. The sched-latency
	 * fields (tracking, runnableStamp...) already exist; moduledata has no gofunc
	 * (funcdata are absolute pointers before 1.18).
	 */
	[17 - GO_MIN_MINOR] = { 104, 144, 152, 168, 176, NONE, 296, 312, 360, 392, 56,
				72, 192, 208, NONE },
	/*
	 * 1.18: computed from go1.18, unverified by DWARF. g/m unchanged; moduledata gains
	 * gofunc for the funcdata offsets of the new pclntab.
	 */
	[18 - GO_MIN_MINOR] = { 104, 144, 152, 168, 176, NONE, 296, 312, 360, 392, 56,
				72, 192, 208, 304 },
	/* 1.19 [DWARF go1.19.8]: goroutineProfiled fits in existing padding. */
	[19 - GO_MIN_MINOR] = { 104, 144, 152, 168, 176, NONE, 296, 312, 360, 392, 56,
				72, 192, 208, 304 },
	/*
	 * 1.20: computed from go1.20.2, unverified by DWARF. atomicstatus/goid become
	 * atomic types of the same size; moduledata gains covctrs/ecovctrs before gofunc
	 * (both are present in the 1.21 DWARF, gofunc 320).
	 */
	[20 - GO_MIN_MINOR] = { 104, 144, 152, 168, 176, NONE, 296, 312, 360, 392, 56,
				72, 192, 208, 320 },
	/*
	 * 1.21 [DWARF go1.21.13]: trace fields move into g.trace (gTraceState, -24 for
	 * everything after them) and parentGoid is added before gopc.
	 */
	[21 - GO_MIN_MINOR] = { 104, 144, 152, 168, 176, 272, 280, 296, 344, 408, 56,
				72, 192, 208, 320 },
	/*
	 * 1.22 [DWARF go1.22.12]: inMarkAssist, coroexit, nocgocallback fill padding; coroarg
	 * lands after labels. Only sizeof(g) changes.
	 */
	[22 - GO_MIN_MINOR] = { 104, 144, 152, 168, 176, 272, 280, 296, 344, 424, 56,
				72, 192, 208, 320 },
	/*
	 * 1.23 [DWARF go1.23.5]: g.syscallbp after syscallpc shifts everything from
	 * atomicstatus on by +8; sleepWhen added.
	 */
	[23 - GO_MIN_MINOR] = { 104, 152, 160, 176, 184, 280, 288, 304, 352, 432, 56,
				72, 192, 208, 320 },
	/* 1.24 [DWARF go1.24.4]: fipsIndicator, syncGroup appended. */
	[24 - GO_MIN_MINOR] = { 104, 152, 160, 176, 184, 280, 288, 304, 352, 440, 56,
				72, 192, 208, 320 },
	/*
	 * 1.25 [DWARF go1.25.12]: gobuf.ret removed (gobuf 56 -> 48), so g fields after
	 * sched and m fields after morebuf move -8; syncSafePoint etc. added later in g.
	 */
	[25 - GO_MIN_MINOR] = { 96, 144, 152, 168, 176, 272, 280, 296, 344, 440, 48,
				64, 184, 200, 320 },
	/*
	 * 1.26 [DWARF go1.26.11]: g.secret (and fipsOnlyBypass/ditWanted, in padding) before
	 * parentGoid: +8 from there on; g.xRegs appended; m.signalSecret before m.p.
	 */
	[26 - GO_MIN_MINOR] = { 96, 144, 152, 168, 176, 280, 288, 304, 352, 456, 48,
				64, 184, 208, 320 },
	/*
	 * 1.27 [DWARF go1.27.4]: g/m as 1.26. moduledata: typedesclen/itaboffset/itabsize
	 * replace typelinks/itablinks, gofunc 320 -> 344.
	 */
	[27 - GO_MIN_MINOR] = { 96, 144, 152, 168, 176, 280, 288, 304, 352, 456, 48,
				64, 184, 208, 344 },
};

const struct go_offset_desc *go_offsets__desc(enum go_off_id id)
{
	if ((unsigned)id >= GO_OFF__CNT)
		return NULL;
	return &descs[id];
}

const char *go_offsets__src_name(enum go_off_src src)
{
	switch (src) {
	case GO_OFF_SRC_TABLE:
		return "table";
	case GO_OFF_SRC_DWARF:
		return "dwarf";
	default:
		return "none";
	}
}

int go_offsets__from_table(int minor, struct go_offsets *o)
{
	const struct off_row *r;

	memset(o, 0, sizeof(*o));
	o->go_minor = minor;
	for (int i = 0; i < GO_OFF__CNT; i++)
		o->val[i] = -1;
	if (minor < GO_MIN_MINOR) {
		gt_seterr("unsupported: go1.%d, oldest supported go1.%d", minor, GO_MIN_MINOR);
		return -ENOTSUP;
	}
	if (minor > GO_MAX_MINOR) {
		gt_seterr("unsupported: go1.%d, newest known go1.%d", minor, GO_MAX_MINOR);
		return -ENOTSUP;
	}
	r = &rows[minor - GO_MIN_MINOR];

	o->val[GO_OFF_G_STACK_LO] = 0;
	o->val[GO_OFF_G_STACK_HI] = 8;
	o->val[GO_OFF_G_M] = 48;
	o->val[GO_OFF_G_SCHED_SP] = 56;
	o->val[GO_OFF_G_SCHED_PC] = 64;
	o->val[GO_OFF_G_SCHED_BP] = r->sched_bp;
	o->val[GO_OFF_G_ATOMICSTATUS] = r->atomicstatus;
	o->val[GO_OFF_G_GOID] = r->goid;
	o->val[GO_OFF_G_WAITSINCE] = r->waitsince;
	o->val[GO_OFF_G_WAITREASON] = r->waitreason;
	o->val[GO_OFF_G_PARENTGOID] = r->parentgoid;
	o->val[GO_OFF_G_GOPC] = r->gopc;
	o->val[GO_OFF_G_STARTPC] = r->startpc;
	o->val[GO_OFF_G_LABELS] = r->labels;
	o->val[GO_OFF_G_SIZE] = r->g_size;
	o->val[GO_OFF_GOBUF_SIZE] = r->gobuf_size;
	o->val[GO_OFF_M_G0] = 0;
	o->val[GO_OFF_M_PROCID] = r->m_procid;
	o->val[GO_OFF_M_CURG] = r->m_curg;
	o->val[GO_OFF_M_P] = r->m_p;
	o->val[GO_OFF_MODULEDATA_TEXT] = 176;
	o->val[GO_OFF_MODULEDATA_ETEXT] = 184;
	o->val[GO_OFF_MODULEDATA_GOFUNC] = r->md_gofunc;

	for (int i = 0; i < GO_OFF__CNT; i++)
		o->src[i] = o->val[i] < 0 ? GO_OFF_SRC_NONE : GO_OFF_SRC_TABLE;
	return 0;
}

void go_offsets__window(const struct go_offsets *o, const enum go_off_id *ids, int n,
			uint32_t max, uint32_t *off, uint32_t *len)
{
	int64_t lo = INT64_MAX, hi = -1;

	*off = *len = 0;
	for (int i = 0; i < n; i++) {
		int64_t v = o->val[ids[i]];

		if (v < 0 && ids[i] == GO_OFF_G_PARENTGOID)
			continue;
		if (v < 0)
			return;
		lo = v < lo ? v : lo;
		hi = v + 8 > hi ? v + 8 : hi;
	}
	if (hi <= lo || hi - lo > max)
		return;
	*off = (uint32_t)lo;
	*len = (uint32_t)(hi - lo);
}
