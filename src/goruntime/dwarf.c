// SPDX-License-Identifier: MIT
/*
 * Runtime struct offsets from the binary's own DWARF (libdw).
 *
 * The Go linker puts every type DIE at the top level of a compile unit named
 * "runtime" (one of several such CUs), so only those are searched first; the
 * other CUs are scanned only when something is still missing. Go compresses its
 * DWARF: SHF_COMPRESSED .debug_* sections in the 1.19 - 1.27 builds checked, GNU-style
 * .zdebug_* in older linkers; libdw inflates both.
 * Input is untrusted: every offset read is range-checked, walks are bounded.
 */
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <errno.h>
#include <libelf.h>
#include <stdlib.h>
#include <string.h>

#include "goruntime/offsets.h"
#include "util/log.h"

/* The structs go_offset_desc names, looked up once each. */
static const char *const wanted_types[] = {
	"runtime.g",
	"runtime.m",
	"runtime.gobuf",
	"runtime.moduledata",
};
#define NWANTED (sizeof(wanted_types) / sizeof(wanted_types[0]))

/* Bounds against corrupt input (real Go structs nest 2 deep and are < 64 KiB). */
#define MAX_PATH_DEPTH 4
#define MAX_TYPE_HOPS 8
#define MAX_OFFSET (1 << 20)

struct dw_search {
	Dwarf_Die die[NWANTED];
	bool found[NWANTED];
	size_t nfound;
};

/* Look at the top-level DIEs of one CU for the wanted structure types. */
static void scan_cu(Dwarf_Die *cu, struct dw_search *s)
{
	Dwarf_Die child;

	if (dwarf_child(cu, &child) != 0)
		return;
	do {
		const char *name;

		if (dwarf_tag(&child) != DW_TAG_structure_type ||
		    dwarf_hasattr(&child, DW_AT_declaration))
			continue;
		name = dwarf_diename(&child);
		if (!name || strncmp(name, "runtime.", 8))
			continue;
		for (size_t i = 0; i < NWANTED; i++) {
			if (!s->found[i] && !strcmp(name, wanted_types[i])) {
				s->die[i] = child;
				s->found[i] = true;
				s->nfound++;
				break;
			}
		}
	} while (s->nfound < NWANTED && dwarf_siblingof(&child, &child) == 0);
}

/*
 * Walk the CUs: first those named "runtime" (RUNTIME_ONLY), else the others.
 * Returns -1 on a libdw error so the caller can stop.
 */
static int scan_cus(Dwarf *dw, struct dw_search *s, bool runtime_only)
{
	Dwarf_Off off = 0, next;
	size_t hsize;

	while (s->nfound < NWANTED) {
		Dwarf_Die cu;
		const char *name;
		int ret;

		ret = dwarf_nextcu(dw, off, &next, &hsize, NULL, NULL, NULL);
		if (ret != 0)
			return ret < 0 ? -1 : 0;
		if (next <= off)
			return -1;
		if (dwarf_offdie(dw, off + hsize, &cu)) {
			name = dwarf_diename(&cu);
			if (runtime_only == (name && !strcmp(name, "runtime")))
				scan_cu(&cu, s);
		}
		off = next;
	}
	return 0;
}

/* Follow typedefs (and qualifiers) from a member's DW_AT_type to the struct it names. */
static bool member_struct_type(Dwarf_Die *member, Dwarf_Die *out)
{
	Dwarf_Attribute attr;
	Dwarf_Die t = *member;

	for (int hop = 0; hop < MAX_TYPE_HOPS; hop++) {
		if (!dwarf_attr(&t, DW_AT_type, &attr) || !dwarf_formref_die(&attr, &t))
			return false;
		switch (dwarf_tag(&t)) {
		case DW_TAG_structure_type:
			*out = t;
			return true;
		case DW_TAG_typedef:
		case DW_TAG_const_type:
		case DW_TAG_volatile_type:
			continue;
		default:
			return false;
		}
	}
	return false;
}

/* DW_AT_data_member_location as a constant (Go) or a DW_OP_plus_uconst expression. */
static bool member_location(Dwarf_Die *member, int64_t *loc)
{
	Dwarf_Attribute attr;
	Dwarf_Word w;
	Dwarf_Op *expr;
	size_t nexpr;

	if (!dwarf_attr(member, DW_AT_data_member_location, &attr))
		return false;
	if (dwarf_formudata(&attr, &w) == 0) {
		*loc = (int64_t)w;
		return w < MAX_OFFSET;
	}
	if (dwarf_getlocation(&attr, &expr, &nexpr) == 0 && nexpr == 1 &&
	    expr[0].atom == DW_OP_plus_uconst && expr[0].number < MAX_OFFSET) {
		*loc = (int64_t)expr[0].number;
		return true;
	}
	return false;
}

static bool find_member(Dwarf_Die *st, const char *name, size_t len, Dwarf_Die *out)
{
	Dwarf_Die m;

	if (dwarf_child(st, &m) != 0)
		return false;
	do {
		const char *n;

		if (dwarf_tag(&m) != DW_TAG_member)
			continue;
		n = dwarf_diename(&m);
		if (n && strlen(n) == len && !memcmp(n, name, len)) {
			*out = m;
			return true;
		}
	} while (dwarf_siblingof(&m, &m) == 0);
	return false;
}

static int64_t struct_size(Dwarf_Die *st)
{
	Dwarf_Attribute attr;
	Dwarf_Word sz;

	if (!dwarf_attr(st, DW_AT_byte_size, &attr) || dwarf_formudata(&attr, &sz) ||
	    sz >= MAX_OFFSET)
		return -1;
	return (int64_t)sz;
}

/*
 * Offset of dotted PATH ("sched.sp") inside struct ST, or its size for "". -1 if absent
 * or implausible (a field must start inside the struct).
 */
static int64_t resolve_path(Dwarf_Die *st, const char *path)
{
	int64_t off = 0, loc, size = struct_size(st);
	Dwarf_Die cur = *st, m;
	const char *p = path;

	if (!*p || size < 0)
		return size;
	for (int depth = 0; depth < MAX_PATH_DEPTH; depth++) {
		const char *dot = strchr(p, '.');
		size_t len = dot ? (size_t)(dot - p) : strlen(p);

		if (!find_member(&cur, p, len, &m) || !member_location(&m, &loc))
			return -1;
		off += loc;
		if (off >= size)
			return -1;
		if (!dot)
			return off;
		if (!member_struct_type(&m, &cur))
			return -1;
		p = dot + 1;
	}
	return -1;
}

/* An Elf handle of our own for libdw: from the file when open, else from a private copy. */
static int open_elf(const struct elf_file *ef, Elf **elf, void **copy)
{
	const uint8_t *data;
	size_t size;
	int fd = elf_file__fd(ef);

	*copy = NULL;
	elf_version(EV_CURRENT);
	if (fd >= 0) {
		*elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
		return *elf ? 0 : -EINVAL;
	}
	/*
	 * Inflating a compressed section rewrites its section header, which elf_memory()
	 * images share with the caller: give libelf a buffer of its own.
	 */
	data = elf_file__data(ef, &size);
	if (!data || !size)
		return -EINVAL;
	*copy = malloc(size);
	if (!*copy)
		return -ENOMEM;
	memcpy(*copy, data, size);
	*elf = elf_memory(*copy, size);
	return *elf ? 0 : -EINVAL;
}

int go_offsets__from_dwarf(const struct elf_file *ef, struct go_offsets *o)
{
	struct dw_search s = {};
	void *copy = NULL;
	Dwarf *dw = NULL;
	Elf *elf = NULL;
	int n = 0, err = 0;

	/* No .debug_info (stripped, -ldflags=-w) is the normal case, not an error. */
	if (!elf_file__has_debug_info(ef))
		return 0;
	err = open_elf(ef, &elf, &copy);
	if (err) {
		gt_seterr("cannot read the DWARF of %s: %s", elf_file__path(ef),
			  err == -ENOMEM ? strerror(ENOMEM) : elf_errmsg(-1));
		goto cleanup;
	}
	dw = dwarf_begin_elf(elf, DWARF_C_READ, NULL);
	if (!dw) {
		gt_seterr("cannot read the DWARF of %s: %s", elf_file__path(ef), dwarf_errmsg(-1));
		err = -EINVAL;
		goto cleanup;
	}

	if (scan_cus(dw, &s, true) == 0 && s.nfound < NWANTED)
		scan_cus(dw, &s, false);
	if (!s.nfound)
		goto cleanup;

	for (int id = 0; id < GO_OFF__CNT; id++) {
		const struct go_offset_desc *d = go_offsets__desc(id);
		int64_t v = -1;

		for (size_t i = 0; i < NWANTED; i++) {
			if (s.found[i] && !strcmp(d->dwarf_type, wanted_types[i])) {
				v = resolve_path(&s.die[i], d->dwarf_path);
				break;
			}
		}
		if (v < 0)
			continue;
		if (o->src[id] == GO_OFF_SRC_TABLE && o->val[id] != v)
			vlog("gotrace: %s: DWARF puts %s at %lld, the go1.%d table at %lld\n",
			     elf_file__path(ef), d->name, (long long)v, o->go_minor,
			     (long long)o->val[id]);
		o->val[id] = v;
		o->src[id] = GO_OFF_SRC_DWARF;
		n++;
	}

cleanup:
	if (dw)
		dwarf_end(dw);
	if (elf)
		elf_end(elf);
	free(copy);
	return err ? err : n;
}
