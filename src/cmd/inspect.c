// SPDX-License-Identifier: MIT
/*
 * gotrace inspect PATH | -p PID: what gotrace knows about a Go binary.
 * The report is built once as a JSON tree; text output is rendered from it.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "cmd/cmds.h"
#include "goruntime/model.h"
#include "goruntime/probes.h"
#include "util/log.h"

static const char inspect_help[] =
	"Usage: gotrace inspect [OPTIONS] PATH\n"
	"       gotrace inspect [OPTIONS] -p PID\n"
	"\n"
	"Describe a Go binary (stripped or not, PIE or not, cgo or not) from its .go.buildinfo\n"
	"and .gopclntab: Go version and build settings, the runtime functions gotrace hooks\n"
	"(address, file offset, return instructions, entry attach point), the runtime struct\n"
	"offsets and wait reasons for that version. With -p, also the process's executable\n"
	"(through /proc/PID/exe), load bias and mappings.\n"
	"\n"
	"Options:\n"
	"  -p, --pid PID     inspect the executable of a running process\n"
	"  -j, --json        JSON output (see docs/json-output.md)\n"
	"      --functions   also list every function (name, entry, end)\n"
	"      --no-dwarf    use the built-in offset table even when DWARF is present\n"
	"      --force       report a Go version newer than the tables instead of refusing\n"
	"  -h, --help        this help\n";

enum { OPT_FUNCTIONS = 1000, OPT_NO_DWARF, OPT_FORCE };

static struct json_object *jaddr(uint64_t v)
{
	return json_object_new_int64((int64_t)v);
}

/*
 * True when the binary links C code through runtime/cgo. CGO_ENABLED=1 in the build
 * settings only says cgo was available: a pure-Go program built so has no C in it.
 * runtime/cgo's entry points show up in .gopclntab as functions: _cgo_topofstack (a
 * Go assembly function of runtime/cgo, present however the binary was linked) and,
 * with internal linking, the C functions x_cgo_init and _cgo_sys_thread_start.
 */
static bool is_cgo(const struct go_model *m)
{
	uint64_t a, sz;

	return pclntab__func_by_name(m->pcln, "_cgo_topofstack") ||
	       pclntab__func_by_name(m->pcln, "x_cgo_init") ||
	       pclntab__func_by_name(m->pcln, "_cgo_sys_thread_start") ||
	       elf_file__symbol(m->ef, "x_cgo_init", &a, &sz) == 0;
}

static const char *goarch_of(const struct go_model *m)
{
	const char *v = buildinfo__setting(&m->bi, "GOARCH");

	if (v)
		return v;
	switch (elf_file__machine(m->ef)) {
	case 62: /* EM_X86_64 */
		return "amd64";
	case 183: /* EM_AARCH64 */
		return "arm64";
	case 3: /* EM_386 */
		return "386";
	default:
		return "unknown";
	}
}

static const char *pcln_format_name(enum pcln_format f)
{
	switch (f) {
	case PCLN_FMT_116:
		return "1.16";
	case PCLN_FMT_118:
		return "1.18";
	case PCLN_FMT_120:
		return "1.20";
	default:
		return "unknown";
	}
}

static struct json_object *probes_json(const struct go_model *m)
{
	struct json_object *arr = json_object_new_array();
	struct go_probe_site *sites = NULL;
	int n = 0, err;

	err = go_probes__resolve(m->ef, m->pcln, m->bi.minor, &sites, &n);
	if (err) {
		elog("gotrace: warning: cannot resolve probe sites: %s\n",
		     gt_lasterr() ? gt_lasterr() : strerror(-err));
		return arr;
	}
	for (int i = 0; i < n; i++) {
		const struct go_probe_site *s = &sites[i];
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "role", json_object_new_string(s->role_name));
		json_object_object_add(o, "name", json_object_new_string(s->name));
		json_object_object_add(o, "present", json_object_new_boolean(s->present));
		if (s->present) {
			struct json_object *rets = json_object_new_array();

			json_object_object_add(o, "address", jaddr(s->addr));
			json_object_object_add(o, "file_offset", jaddr(s->file_offset));
			json_object_object_add(o, "size", jaddr(s->size));
			for (int r = 0; r < s->nret && r < GO_PROBE_MAX_RETS; r++)
				json_object_array_add(rets, json_object_new_int64(s->ret_offsets[r]));
			json_object_object_add(o, "ret_offsets", rets);
			json_object_object_add(o, "rets_truncated",
					       json_object_new_boolean(s->rets_truncated));
			json_object_object_add(o, "attach_offset",
					       json_object_new_int64(s->attach_offset));
			json_object_object_add(o, "attach_insn", json_object_new_string(s->attach_insn));
			json_object_object_add(o, "attach_kind",
					       json_object_new_string(
						       go_probes__attach_kind_name(s->attach_kind)));
			json_object_object_add(o, "stack_check",
					       json_object_new_boolean(s->has_stack_check));
		}
		json_object_object_add(o, "fallback",
				       s->fallback ? json_object_new_string(s->fallback) : NULL);
		json_object_array_add(arr, o);
	}
	free(sites);
	return arr;
}

static struct json_object *offsets_json(const struct go_model *m)
{
	struct json_object *o = json_object_new_object();

	if (!m->supported)
		return o;
	for (int i = 0; i < GO_OFF__CNT; i++) {
		const struct go_offset_desc *d = go_offsets__desc(i);
		struct json_object *e = json_object_new_object();

		json_object_object_add(e, "offset", json_object_new_int64(m->off.val[i]));
		json_object_object_add(e, "source",
				       json_object_new_string(go_offsets__src_name(m->off.src[i])));
		json_object_object_add(o, d->name, e);
	}
	return o;
}

static struct json_object *process_json(const struct go_model *m)
{
	const struct proc_target *t = &m->proc;
	struct json_object *o = json_object_new_object(), *maps = json_object_new_array();

	json_object_object_add(o, "pid", json_object_new_int(t->pid));
	json_object_object_add(o, "comm", json_object_new_string(t->comm));
	json_object_object_add(o, "exe", json_object_new_string(t->exe_path));
	json_object_object_add(o, "opened", json_object_new_string(t->open_path));
	json_object_object_add(o, "load_bias", jaddr(t->load_bias));
	for (int i = 0; i < t->nmaps; i++) {
		struct json_object *e = json_object_new_object();

		json_object_object_add(e, "start", jaddr(t->maps[i].start));
		json_object_object_add(e, "end", jaddr(t->maps[i].end));
		json_object_object_add(e, "offset", jaddr(t->maps[i].offset));
		json_object_object_add(e, "perms", json_object_new_string(t->maps[i].perms));
		json_object_array_add(maps, e);
	}
	json_object_object_add(o, "maps", maps);
	return o;
}

static struct json_object *inspect_json(const struct go_model *m, bool functions)
{
	struct json_object *o = json_object_new_object(), *mod, *set, *pc, *wr;
	const struct go_buildinfo *bi = &m->bi;
	const char *const *wtab;
	const uint8_t *hdr;
	const char *trim;
	int nw;

	json_object_object_add(o, "path", json_object_new_string(m->has_proc ? m->proc.exe_path
									     : m->path));
	json_object_object_add(o, "go_version", json_object_new_string(bi->version));
	json_object_object_add(o, "version_source",
			       json_object_new_string(bi->source ? bi->source : ".go.buildinfo"));
	json_object_object_add(o, "go_minor", json_object_new_int(bi->minor));
	json_object_object_add(o, "supported", json_object_new_boolean(m->supported));
	json_object_object_add(o, "unsupported_reason",
			       m->supported ? NULL : json_object_new_string(m->unsupported_reason));

	mod = json_object_new_object();
	json_object_object_add(mod, "path", bi->path ? json_object_new_string(bi->path) : NULL);
	json_object_object_add(mod, "main",
			       bi->main_module ? json_object_new_string(bi->main_module) : NULL);
	json_object_object_add(mod, "version",
			       bi->main_version ? json_object_new_string(bi->main_version) : NULL);
	json_object_object_add(o, "module", mod);
	set = json_object_new_object();
	for (int i = 0; i < bi->nsettings; i++)
		json_object_object_add(set, bi->settings[i].key,
				       json_object_new_string(bi->settings[i].value));
	json_object_object_add(o, "build_settings", set);

	trim = buildinfo__setting(bi, "-trimpath");
	json_object_object_add(o, "goarch", json_object_new_string(goarch_of(m)));
	json_object_object_add(o, "stripped", json_object_new_boolean(!elf_file__has_symtab(m->ef)));
	json_object_object_add(o, "dwarf", json_object_new_boolean(elf_file__has_debug_info(m->ef)));
	json_object_object_add(o, "pie", json_object_new_boolean(elf_file__is_dyn(m->ef)));
	json_object_object_add(o, "cgo", json_object_new_boolean(is_cgo(m)));
	json_object_object_add(o, "trimpath", json_object_new_boolean(trim && !strcmp(trim, "true")));
	/* Register ABI: amd64 from 1.17, arm64 from 1.18 (go-runtime-facts §6). */
	json_object_object_add(o, "abi",
			       json_object_new_string(
				       (!strcmp(goarch_of(m), "amd64") && bi->minor >= 17) ||
						       (!strcmp(goarch_of(m), "arm64") && bi->minor >= 18)
					       ? "ABIInternal (register)"
					       : "ABI0 (stack)"));

	pc = json_object_new_object();
	json_object_object_add(pc, "format",
			       json_object_new_string(pcln_format_name(pclntab__format(m->pcln))));
	hdr = elf_file__vaddr_ptr(m->ef, pclntab__addr(m->pcln), 4);
	json_object_object_add(pc, "magic", hdr ? jaddr(elf_file__u32(m->ef, hdr)) : NULL);
	json_object_object_add(pc, "address", jaddr(pclntab__addr(m->pcln)));
	json_object_object_add(pc, "size", jaddr(pclntab__size(m->pcln)));
	json_object_object_add(pc, "text_start", jaddr(pclntab__text_start(m->pcln)));
	json_object_object_add(pc, "text_start_source",
			       json_object_new_string(pclntab__text_start_source(m->pcln)));
	json_object_object_add(pc, "functions", jaddr(pclntab__func_cnt(m->pcln)));
	json_object_object_add(pc, "files", jaddr(pclntab__nfiles(m->pcln)));
	json_object_object_add(pc, "moduledata", jaddr(pclntab__moduledata(m->pcln)));
	json_object_object_add(o, "pclntab", pc);
	json_object_object_add(o, "functions", jaddr(pclntab__func_cnt(m->pcln)));

	json_object_object_add(o, "probes", probes_json(m));
	json_object_object_add(o, "offsets", offsets_json(m));
	wr = json_object_new_array();
	nw = go_waitreasons(bi->minor, &wtab);
	for (int i = 0; i < nw; i++)
		json_object_array_add(wr, json_object_new_string(wtab[i] ? wtab[i] : ""));
	json_object_object_add(o, "wait_reasons", wr);
	if (m->has_proc)
		json_object_object_add(o, "process", process_json(m));

	if (functions) {
		struct json_object *fl = json_object_new_array();

		for (size_t i = 0; i < pclntab__func_cnt(m->pcln); i++) {
			const struct go_func *f = pclntab__func(m->pcln, i);
			struct json_object *e = json_object_new_object();

			json_object_object_add(e, "name", json_object_new_string(f->name));
			json_object_object_add(e, "entry", jaddr(f->entry));
			json_object_object_add(e, "end", jaddr(f->end));
			json_object_array_add(fl, e);
		}
		json_object_object_add(o, "function_list", fl);
	}
	return o;
}

/* Field accessors for the text renderer. */
static const char *js(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || !v)
		return NULL;
	return json_object_get_string(v);
}

static int64_t ji(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || !v)
		return -1;
	return json_object_get_int64(v);
}

static bool jb(struct json_object *o, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(o, k, &v) && v && json_object_get_boolean(v);
}

static void print_text(struct json_object *o)
{
	struct json_object *pc, *set, *probes, *offs, *proc, *wr;
	const char *s;

	printf("path:        %s\n", js(o, "path"));
	printf("go_version:  %s%s%s\n", js(o, "go_version"), jb(o, "supported") ? "" : "  (unsupported)",
	       strcmp(js(o, "version_source"), ".go.buildinfo") ?
		       "  (no .go.buildinfo: read from runtime.buildVersion)" : "");
	if (!jb(o, "supported"))
		printf("unsupported: %s\n", js(o, "unsupported_reason"));
	if ((s = js(json_object_object_get(o, "module"), "main")))
		printf("module:      %s\n", s);
	printf("goarch:      %s   abi: %s\n", js(o, "goarch"), js(o, "abi"));
	printf("binary:      stripped=%s pie=%s cgo=%s dwarf=%s trimpath=%s\n",
	       jb(o, "stripped") ? "yes" : "no", jb(o, "pie") ? "yes" : "no",
	       jb(o, "cgo") ? "yes" : "no", jb(o, "dwarf") ? "yes" : "no",
	       jb(o, "trimpath") ? "yes" : "no");
	set = json_object_object_get(o, "build_settings");
	if (set && json_object_object_length(set)) {
		printf("build:      ");
		json_object_object_foreach(set, k, v)
		{
			const char *val = json_object_get_string(v);

			/* Empty CGO_* flags are noise; -ldflags can be long: the JSON has all. */
			if (val && *val)
				printf(" %s=%.40s", k, val);
		}
		printf("\n");
	}
	pc = json_object_object_get(o, "pclntab");
	printf("pclntab:     format %s (magic 0x%" PRIx64 ") at 0x%" PRIx64 " (%" PRId64 " bytes), %" PRId64
	       " functions, %" PRId64 " files, text 0x%" PRIx64 " (from %s)\n",
	       js(pc, "format"), ji(pc, "magic"), ji(pc, "address"), ji(pc, "size"), ji(pc, "functions"),
	       ji(pc, "files"), ji(pc, "text_start"), js(pc, "text_start_source"));

	proc = json_object_object_get(o, "process");
	if (proc) {
		struct json_object *maps = json_object_object_get(proc, "maps");

		printf("process:     pid %" PRId64 " (%s) exe %s via %s, load bias 0x%" PRIx64 "\n",
		       ji(proc, "pid"), js(proc, "comm"), js(proc, "exe"), js(proc, "opened"),
		       ji(proc, "load_bias"));
		for (size_t i = 0; i < json_object_array_length(maps); i++) {
			struct json_object *m = json_object_array_get_idx(maps, i);

			printf("  map 0x%" PRIx64 "-0x%" PRIx64 " %s off 0x%" PRIx64 "\n",
			       ji(m, "start"), ji(m, "end"), js(m, "perms"), ji(m, "offset"));
		}
	}

	probes = json_object_object_get(o, "probes");
	printf("\nprobes:\n  %-34s %-12s %-9s %5s  %-7s %s\n", "function", "address", "file_off",
	       "size", "attach", "rets");
	for (size_t i = 0; i < json_object_array_length(probes); i++) {
		struct json_object *p = json_object_array_get_idx(probes, i), *rets;
		char rbuf[64] = "";
		size_t n, len = 0;

		if (!jb(p, "present")) {
			printf("  %-34s absent%s%s\n", js(p, "name"), js(p, "fallback") ? ": " : "",
			       js(p, "fallback") ? js(p, "fallback") : "");
			continue;
		}
		rets = json_object_object_get(p, "ret_offsets");
		n = json_object_array_length(rets);
		for (size_t r = 0; r < n && len < sizeof(rbuf) - 12; r++)
			len += snprintf(rbuf + len, sizeof(rbuf) - len, "%s+%" PRId64, r ? "," : "",
					json_object_get_int64(json_object_array_get_idx(rets, r)));
		if (len >= sizeof(rbuf) - 12 && n)
			snprintf(rbuf + len, sizeof(rbuf) - len, ",...(%zu)", n);
		printf("  %-34s 0x%-10" PRIx64 " 0x%-7" PRIx64 " %5" PRId64 "  +%-3" PRId64
		       " %-3s %s\n",
		       js(p, "name"), ji(p, "address"), ji(p, "file_offset"), ji(p, "size"),
		       ji(p, "attach_offset"),
		       !strcmp(js(p, "attach_kind") ?: "", "emulated") ? "emu" : "ss", rbuf);
	}

	offs = json_object_object_get(o, "offsets");
	if (offs && json_object_object_length(offs)) {
		int col = 0;

		printf("\noffsets (bytes; d = from DWARF, t = built-in table for go1.%" PRId64 "):\n",
		       ji(o, "go_minor"));
		json_object_object_foreach(offs, k, v)
		{
			int64_t off = ji(v, "offset");
			const char *src = js(v, "source");

			if (off < 0)
				printf("  %-22s %6s  ", k, "-");
			else
				printf("  %-22s %5" PRId64 "%c  ", k, off, src && src[0] == 'd' ? 'd' : 't');
			if (++col % 3 == 0)
				printf("\n");
		}
		if (col % 3)
			printf("\n");
	}
	wr = json_object_object_get(o, "wait_reasons");
	if (wr)
		printf("\nwait reasons: %zu known for this version\n", json_object_array_length(wr));
}

int cmd_inspect(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' },
		{ "functions", no_argument, NULL, OPT_FUNCTIONS },
		{ "no-dwarf", no_argument, NULL, OPT_NO_DWARF },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct go_model_opts mopts = {};
	struct go_model *m = NULL;
	struct json_object *report;
	bool functions = false;
	pid_t pid = 0;
	int c, err;

	while ((c = getopt_long(argc, argv, "p:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			err = cmd_parse_pid(optarg, &pid);
			if (err)
				return err;
			break;
		case 'j':
			env_json = true;
			break;
		case OPT_FUNCTIONS:
			functions = true;
			break;
		case OPT_NO_DWARF:
			mopts.no_dwarf = true;
			break;
		case OPT_FORCE:
			mopts.allow_unsupported = true;
			break;
		case 'h':
			fputs(inspect_help, stdout);
			return 0;
		default:
			fputs(inspect_help, stderr);
			return 2;
		}
	}
	if (pid && optind < argc)
		return cmd_fail("give either PATH or -p PID, not both");
	if (!pid && optind != argc - 1)
		return cmd_fail("inspect needs one PATH or -p PID: see 'gotrace inspect --help'");

	if (pid)
		err = go_model__open_pid(pid, &mopts, &m);
	else
		err = go_model__open_path(argv[optind], &mopts, &m);
	if (err)
		return cmd_fail("%s", gt_lasterr() ? gt_lasterr() : strerror(-err));

	report = inspect_json(m, functions);
	if (env_json)
		printf("%s\n", json_object_to_json_string_ext(report, JSON_C_TO_STRING_PRETTY |
								      JSON_C_TO_STRING_NOSLASHESCAPE));
	else
		print_text(report);
	json_object_put(report);
	go_model__free(m);
	return 0;
}
