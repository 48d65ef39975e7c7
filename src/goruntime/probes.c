// SPDX-License-Identifier: MIT
/*
 * The runtime functions gotrace hooks, by role, with the names each Go version
 * uses (facts: src/runtime/proc.go, malloc.go, mprof.go, mheap.go, mgc.go and
 * src/sync/mutex.go of 1.17 - 1.27). Functions are found through .gopclntab, so
 * stripped binaries work; small ones may be inlined away (goready since 1.21),
 * and the linker drops what the program never calls (sync.Mutex's slow path).
 */
#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "goruntime/probes.h"
#include "util/log.h"

struct cand {
	const char *name;
	int min, max; /* Go minor range; max 0 = open */
};

struct role_spec {
	const char *role_name;
	struct cand cands[2];
	const char *absent;	 /* fallback when no candidate exists in the binary */
	const char *unavailable; /* fallback when the version has no such function */
};

static const struct role_spec specs[GO_PROBE__CNT] = {
	[GO_PROBE_NEWPROC1] = {
		"newproc1", { { "runtime.newproc1", 17, 0 } },
		"none: goroutine creation is not traced",
	},
	[GO_PROBE_GOEXIT1] = {
		"goexit1", { { "runtime.goexit1", 17, 0 } },
		"runtime.goexit0",
	},
	[GO_PROBE_GOEXIT0] = {
		"goexit0", { { "runtime.goexit0", 17, 0 } },
		"runtime.goexit1",
	},
	/* go1.22 moved goexit0's body into gdestroy (go1.22.12 src/runtime/proc.go). */
	[GO_PROBE_GDESTROY] = {
		"gdestroy", { { "runtime.gdestroy", 22, 0 } },
		"runtime.goexit0",
		"runtime.goexit0 (it holds the gdestroy body before go1.22)",
	},
	[GO_PROBE_GOPARK] = {
		"gopark", { { "runtime.gopark", 17, 0 } },
		"runtime.casgstatus (new status _Gwaiting)",
	},
	[GO_PROBE_READY] = {
		"ready", { { "runtime.ready", 17, 0 } },
		"runtime.casgstatus (_Gwaiting -> _Grunnable)",
	},
	[GO_PROBE_GOREADY] = {
		"goready", { { "runtime.goready", 17, 0 } },
		"runtime.ready (goready is inlined into its callers)",
	},
	[GO_PROBE_CASGSTATUS] = {
		"casgstatus", { { "runtime.casgstatus", 17, 0 } },
		"none: goroutine status changes are not traced",
	},
	[GO_PROBE_EXECUTE] = {
		"execute", { { "runtime.execute", 17, 0 } },
		"runtime.casgstatus (new status _Grunning)",
	},
	[GO_PROBE_MALLOCGC] = {
		"mallocgc", { { "runtime.mallocgc", 17, 0 } },
		"none: allocations are not traced",
	},
	/* Filled by add_variants(); this entry only names the role and the absent case. */
	[GO_PROBE_MALLOCGC_VARIANT] = {
		"mallocgc_variant", { { "runtime.mallocgcTiny", 24, 0 } },
		"runtime.mallocgc",
		"runtime.mallocgc (its body is split into variants from go1.24)",
	},
	[GO_PROBE_PROFILEALLOC] = {
		"profilealloc", { { "runtime.profilealloc", 17, 0 } },
		"runtime.mProf_Malloc",
	},
	[GO_PROBE_MPROF_MALLOC] = {
		"mprof_malloc", { { "runtime.mProf_Malloc", 17, 0 } },
		"runtime.profilealloc",
	},
	[GO_PROBE_FREESPECIAL] = {
		"freespecial", { { "runtime.freeSpecial", 17, 0 } },
		"none: frees of profiled objects are not traced",
	},
	[GO_PROBE_GCSTART] = {
		"gcstart", { { "runtime.gcStart", 17, 0 } },
		"runtime.stopTheWorldWithSema (sweep termination)",
	},
	[GO_PROBE_STW_START] = {
		"stw_start", { { "runtime.stopTheWorldWithSema", 17, 0 } },
		"none: stop-the-world pauses are not traced",
	},
	[GO_PROBE_STW_DONE] = {
		"stw_done", { { "runtime.startTheWorldWithSema", 17, 0 } },
		"none: stop-the-world pauses are not traced",
	},
	/* go1.24 moved the implementation to internal/sync (sync.Mutex embeds it at +0). */
	[GO_PROBE_MUTEX_LOCKSLOW] = {
		"mutex_lockslow",
		{ { "sync.(*Mutex).lockSlow", 17, 23 },
		  { "internal/sync.(*Mutex).lockSlow", 24, 0 } },
		"none: the program does not link sync.Mutex's slow path",
	},
};

/* mallocgc's split bodies, go1.24+ (malloc.go). */
static const char *const variant_names[] = {
	"runtime.mallocgcTiny",
	"runtime.mallocgcSmallNoscan",
	"runtime.mallocgcSmallScanNoHeader",
	"runtime.mallocgcSmallScanHeader",
	"runtime.mallocgcLarge",
};

/*
 * go1.27 size-specialised allocators (GOEXPERIMENT sizespecializedmalloc, on by default;
 * the code ships in 1.26 with the experiment off): PREFIX followed by a size class.
 * The compiler calls them directly, bypassing mallocgc.
 */
static const char *const sc_prefixes[] = {
	"runtime.mallocgcSmallScanNoHeaderSC",
	"runtime.mallocgcSmallNoScanSC",
	"runtime.mallocgcTinySC",
};

static bool in_range(const struct cand *c, int minor)
{
	/* An unknown version tries every name. */
	if (minor <= 0)
		return true;
	return minor >= c->min && (!c->max || minor <= c->max);
}

const char *go_probes__role_name(enum go_probe_role role)
{
	if ((unsigned)role >= GO_PROBE__CNT)
		return "unknown";
	return specs[role].role_name;
}

const char *go_probes__attach_kind_name(enum go_attach_kind k)
{
	switch (k) {
	case GO_ATTACH_EMULATED:
		return "emulated";
	case GO_ATTACH_SINGLESTEP:
		return "single-step";
	default:
		return "none";
	}
}

/*
 * Decode FN into S: extent, file offset, RETs and the entry attach point. -ENOENT when
 * FN cannot be probed (code not in the file, first instruction undecodable).
 */
static int fill_site(const struct elf_file *ef, const struct go_func *fn,
		     struct go_probe_site *s)
{
	uint16_t machine = elf_file__machine(ef);
	struct insn_sweep_stats st;
	const uint8_t *code;
	int n, err;

	s->name = fn->name;
	s->addr = fn->entry;
	s->size = fn->end > fn->entry ? fn->end - fn->entry : 0;
	code = s->size ? elf_file__vaddr_ptr(ef, s->addr, s->size) : NULL;
	if (!code || elf_file__vaddr_to_offset(ef, s->addr, &s->file_offset)) {
		gt_seterr("%s: the code of %s at 0x%llx is not in the file", elf_file__path(ef),
			  fn->name, (unsigned long long)s->addr);
		return -ENOENT;
	}

	n = insn__find_rets_stats(machine, code, s->size, s->addr, s->ret_offsets,
				  GO_PROBE_MAX_RETS, &st);
	if (n < 0)
		return n;
	s->nret = n < GO_PROBE_MAX_RETS ? n : GO_PROBE_MAX_RETS;
	s->rets_truncated = n > GO_PROBE_MAX_RETS;
	s->undecoded = st.nbad;
	if (st.nbad)
		vlog("gotrace: %s: %u byte(s) did not decode (first at +0x%x)\n", fn->name,
		     st.nbad, st.first_bad);

	err = insn__attach_point(machine, code, s->size, s->addr, &s->attach_offset,
				 s->attach_insn, sizeof(s->attach_insn), &s->attach_kind,
				 &s->has_stack_check);
	if (err == -EINVAL) {
		gt_seterr("%s: cannot decode the entry of %s", elf_file__path(ef), fn->name);
		return -ENOENT;
	}
	if (err)
		return err;
	s->present = true;
	return 0;
}

/* Resolve ROLE's first existing candidate into S (absent sites get their fallback). */
static int resolve_role(const struct elf_file *ef, const struct pclntab *p, int minor,
			enum go_probe_role role, struct go_probe_site *s)
{
	const struct role_spec *spec = &specs[role];
	const struct go_func *fn = NULL;
	bool any_in_range = false;
	int err;

	memset(s, 0, sizeof(*s));
	s->role = role;
	s->role_name = spec->role_name;
	s->name = NULL;
	for (size_t i = 0; i < 2 && spec->cands[i].name; i++) {
		const struct cand *c = &spec->cands[i];

		if (!in_range(c, minor))
			continue;
		if (!s->name)
			s->name = c->name;
		any_in_range = true;
		fn = pclntab__func_by_name(p, c->name);
		if (fn)
			break;
	}
	if (!s->name)
		s->name = spec->cands[0].name;
	if (!fn) {
		s->fallback = !any_in_range && spec->unavailable ? spec->unavailable :
								    spec->absent;
		return 0;
	}
	err = fill_site(ef, fn, s);
	if (err == -ENOENT) {
		/* Listed in pclntab but not probeable: report it absent, keep going. */
		vlog("gotrace: %s\n", gt_lasterr());
		memset(s, 0, sizeof(*s));
		s->role = role;
		s->role_name = spec->role_name;
		s->name = fn->name;
		s->fallback = spec->absent;
		gt_clearerr();
		return 0;
	}
	return err;
}

bool go_probes__is_sc_variant(const char *name)
{
	for (size_t i = 0; i < sizeof(sc_prefixes) / sizeof(sc_prefixes[0]); i++) {
		size_t l = strlen(sc_prefixes[i]);
		const char *d = name + l;

		if (strncmp(name, sc_prefixes[i], l) || !*d)
			continue;
		while (*d >= '0' && *d <= '9')
			d++;
		if (!*d)
			return true;
	}
	return false;
}

static bool is_slowpath_variant(const char *name)
{
	static const char pfx[] = "runtime.mallocgc", sfx[] = "SlowPath";
	size_t l = strlen(name);

	return !strncmp(name, pfx, sizeof(pfx) - 1) && l > sizeof(pfx) - 1 + sizeof(sfx) - 1 &&
	       !strcmp(name + l - (sizeof(sfx) - 1), sfx);
}

struct site_vec {
	struct go_probe_site *v;
	int n, cap;
};

static struct go_probe_site *site_vec__add(struct site_vec *sv)
{
	if (sv->n == sv->cap) {
		int cap = sv->cap ? sv->cap * 2 : 32;
		struct go_probe_site *v = realloc(sv->v, cap * sizeof(*v));

		if (!v)
			return NULL;
		sv->v = v;
		sv->cap = cap;
	}
	return &sv->v[sv->n++];
}

/* Append a GO_PROBE_MALLOCGC_VARIANT site for FN. 1 added, 0 not probeable, or -errno. */
static int add_variant(const struct elf_file *ef, const struct go_func *fn, struct site_vec *sv)
{
	struct go_probe_site *s = site_vec__add(sv);
	int err;

	if (!s)
		return -ENOMEM;
	memset(s, 0, sizeof(*s));
	s->role = GO_PROBE_MALLOCGC_VARIANT;
	s->role_name = specs[GO_PROBE_MALLOCGC_VARIANT].role_name;
	err = fill_site(ef, fn, s);
	if (err == -ENOENT) {
		vlog("gotrace: %s\n", gt_lasterr());
		gt_clearerr();
		sv->n--;
		return 0;
	}
	return err ? err : 1;
}

/* One GO_PROBE_MALLOCGC_VARIANT site per split or size-specialised allocator. */
static int add_variants(const struct elf_file *ef, const struct pclntab *p, int minor,
			struct site_vec *sv)
{
	const struct role_spec *spec = &specs[GO_PROBE_MALLOCGC_VARIANT];
	struct go_probe_site *s;
	int found = 0, ret;

	if (minor <= 0 || minor >= 24) {
		for (size_t i = 0; i < sizeof(variant_names) / sizeof(variant_names[0]); i++) {
			const struct go_func *fn = pclntab__func_by_name(p, variant_names[i]);

			if (!fn)
				continue; /* e.g. mallocgcTiny, inlined into mallocgc in go1.27 */
			ret = add_variant(ef, fn, sv);
			if (ret < 0)
				return ret;
			found += ret;
		}
	}
	if (minor <= 0 || minor >= 26) {
		for (size_t i = 0, cnt = pclntab__func_cnt(p); i < cnt; i++) {
			const struct go_func *fn = pclntab__func(p, i);

			if (!fn || !fn->name || strncmp(fn->name, "runtime.mallocgc", 16) ||
			    !(go_probes__is_sc_variant(fn->name) || is_slowpath_variant(fn->name)))
				continue;
			ret = add_variant(ef, fn, sv);
			if (ret < 0)
				return ret;
			found += ret;
		}
	}
	if (found)
		return 0;
	s = site_vec__add(sv);
	if (!s)
		return -ENOMEM;
	memset(s, 0, sizeof(*s));
	s->role = GO_PROBE_MALLOCGC_VARIANT;
	s->role_name = spec->role_name;
	s->name = spec->cands[0].name;
	s->fallback = minor > 0 && minor < 24 ? spec->unavailable : spec->absent;
	return 0;
}

int go_probes__resolve(const struct elf_file *ef, const struct pclntab *p, int minor,
		       struct go_probe_site **sites, int *n)
{
	struct site_vec sv = {};
	uint16_t machine = elf_file__machine(ef);
	int err = 0;

	*sites = NULL;
	*n = 0;
	if (machine != EM_X86_64 && machine != EM_AARCH64) {
		gt_seterr("probe sites: machine %u is not supported (x86-64 and aarch64 are)",
			  machine);
		return -ENOTSUP;
	}
	for (int role = 0; role < GO_PROBE__CNT; role++) {
		struct go_probe_site *s;

		if (role == GO_PROBE_MALLOCGC_VARIANT) {
			err = add_variants(ef, p, minor, &sv);
			if (err)
				goto cleanup;
			continue;
		}
		s = site_vec__add(&sv);
		if (!s) {
			err = -ENOMEM;
			goto cleanup;
		}
		err = resolve_role(ef, p, minor, role, s);
		if (err)
			goto cleanup;
	}
	*sites = sv.v;
	*n = sv.n;
	return 0;
cleanup:
	if (err == -ENOMEM)
		gt_seterr("out of memory resolving probe sites");
	free(sv.v);
	return err;
}
