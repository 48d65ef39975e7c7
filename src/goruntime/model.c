// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "goruntime/model.h"
#include "util/log.h"

/* Everything after the ELF is open: build info, version policy, pclntab, offsets. */
static int model_load(struct go_model *m, const struct go_model_opts *opts)
{
	struct pclntab_opts popts = { .go_minor = -1 };
	int err;

	err = buildinfo__read(m->ef, &m->bi);
	if (err == -ENOENT && (elf_file__section(m->ef, ".gopclntab") ||
			       elf_file__section(m->ef, ".data.rel.ro.gopclntab"))) {
		/* Build info stripped after linking: the runtime's version string remains. */
		err = buildinfo__read_version_string(m->ef, &m->bi);
		if (!err)
			vlog("gotrace: %s has no .go.buildinfo; version %s from runtime.buildVersion\n",
			     m->path, m->bi.version);
	}
	if (err) {
		/* A Go binary without build info is older than 1.13, or not Go at all. */
		if (err == -ENOENT && !elf_file__section(m->ef, ".gopclntab") &&
		    !elf_file__section(m->ef, ".data.rel.ro.gopclntab"))
			gt_seterr("not a Go program: %s has no .go.buildinfo or .gopclntab", m->path);
		else if (!gt_lasterr())
			gt_seterr("%s: cannot read the Go build info: %s", m->path, strerror(-err));
		return err;
	}
	if (m->bi.major != 1 || m->bi.minor < 0) {
		gt_seterr("%s: unrecognised Go version '%s'", m->path, m->bi.version);
		return -ENOTSUP;
	}
	if (m->bi.minor < GO_MIN_MINOR) {
		gt_seterr("%s was built by %s: Go older than 1.%d is not supported", m->path,
			  m->bi.version, GO_MIN_MINOR);
		return -ENOTSUP;
	}

	popts.go_minor = m->bi.minor;
	m->pcln = pclntab__open(m->ef, &popts);
	if (!m->pcln) {
		err = -errno;
		if (!gt_lasterr())
			gt_seterr("%s: cannot read .gopclntab: %s", m->path, strerror(-err));
		return err ? err : -EINVAL;
	}

	gt_clearerr();
	if (go_offsets__from_table(m->bi.minor, &m->off)) {
		snprintf(m->unsupported_reason, sizeof(m->unsupported_reason), "%s",
			 gt_lasterr() ? gt_lasterr() : "unsupported Go version");
		if (!opts || !opts->allow_unsupported) {
			gt_seterr("%s (%s)", m->unsupported_reason, m->path);
			return -ENOTSUP;
		}
		gt_clearerr();
		return 0;
	}
	m->supported = true;
	if (!(opts && opts->no_dwarf) && elf_file__has_debug_info(m->ef)) {
		err = go_offsets__from_dwarf(m->ef, &m->off);
		if (err < 0)
			vlog("gotrace: DWARF offsets unreadable (%s), using the built-in table\n",
			     strerror(-err));
		else
			m->dwarf_fields = err;
	}
	gt_clearerr();
	return 0;
}

int go_model__open_path(const char *path, const struct go_model_opts *opts, struct go_model **out)
{
	struct go_model *m;
	int err;

	*out = NULL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->path = path;
	gt_clearerr();
	m->ef = elf_file__open(path);
	if (!m->ef) {
		err = -errno;
		if (!gt_lasterr())
			gt_seterr("cannot open %s: %s", path, strerror(errno));
		goto cleanup;
	}
	err = model_load(m, opts);
	if (err)
		goto cleanup;
	*out = m;
	return 0;
cleanup:
	go_model__free(m);
	return err ? err : -EINVAL;
}

int go_model__open_pid(pid_t pid, const struct go_model_opts *opts, struct go_model **out)
{
	struct go_model *m;
	int err;

	*out = NULL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	gt_clearerr();
	err = proc__open(pid, &m->proc);
	if (err)
		goto cleanup;
	m->has_proc = true;
	m->path = m->proc.open_path;
	m->ef = proc__open_elf(&m->proc);
	if (!m->ef) {
		err = -errno;
		if (!gt_lasterr())
			gt_seterr("cannot open the executable of process %d: %s", pid, strerror(errno));
		goto cleanup;
	}
	err = model_load(m, opts);
	if (err) {
		/* Name the process, not /proc/PID/exe, in the one-line error. */
		if (err == -ENOENT || err == -EINVAL)
			gt_seterr("process %d (%s) is not a Go program: %s", pid, m->proc.comm,
				  gt_lasterr() ? gt_lasterr() : "no Go build info");
		goto cleanup;
	}
	*out = m;
	return 0;
cleanup:
	go_model__free(m);
	return err ? err : -EINVAL;
}

void go_model__free(struct go_model *m)
{
	if (!m)
		return;
	pclntab__free(m->pcln);
	buildinfo__free(&m->bi);
	elf_file__free(m->ef);
	free(m);
}

uint64_t go_model__to_link(const struct go_model *m, uint64_t runtime_addr)
{
	return m->has_proc ? runtime_addr - m->proc.load_bias : runtime_addr;
}

uint64_t go_model__to_runtime(const struct go_model *m, uint64_t link_addr)
{
	return m->has_proc ? link_addr + m->proc.load_bias : link_addr;
}
