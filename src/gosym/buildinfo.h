/* SPDX-License-Identifier: MIT */
/* The Go version and module/build settings the linker records in .go.buildinfo. */
#ifndef GOTRACE_BUILDINFO_H
#define GOTRACE_BUILDINFO_H

#include <stdbool.h>
#include "elf/elf_file.h"

#define GO_MAX_SETTINGS 64

struct go_setting {
	char *key;   /* "CGO_ENABLED", "-buildmode", "GOARCH", "-ldflags", ... */
	char *value;
};

struct go_buildinfo {
	char version[64]; /* "go1.27.4", "go1.21.13", "devel ..." */
	int major, minor, patch; /* 1, 27, 4; minor = -1 when unparsable */
	bool inline_strings;	 /* flags bit 1: 1.18+ format */
	char *modinfo;		 /* raw modinfo text without sentinels, or NULL */
	char *path;		 /* "path" line: main package path, or NULL */
	char *main_module;	 /* "mod" line: module path, or NULL */
	char *main_version;	 /* "mod" line: module version, or NULL */
	int nsettings;
	struct go_setting settings[GO_MAX_SETTINGS];
	/*
	 * Where the version came from: ".go.buildinfo", or "runtime.buildVersion" when
	 * the build info was removed after linking (esbuild >= 0.27 ships such binaries)
	 * and only the runtime's own version string is left; then modinfo is NULL.
	 */
	const char *source;
};

/*
 * Read .go.buildinfo (or, without that section, scan the writable segments for
 * the 16-byte aligned magic); both formats: inline strings (Go 1.18+) and the
 * pointer format (1.13-1.17, PIE relocations honoured). BI is overwritten
 * (free a previous result first); on error nothing is left to free, though
 * buildinfo__free() is always safe. Returns 0, -ENOENT when the binary carries no Go build info
 * (not Go, or Go < 1.13), -EINVAL when it is corrupt; gt_lasterr() says which.
 * Settings come from the "build" lines of modinfo, unquoted as Go quotes them.
 */
int buildinfo__read(const struct elf_file *ef, struct go_buildinfo *bi);
/*
 * Fallback without build info: find runtime.buildVersion, a Go string header
 * {ptr, len} in a writable section whose bytes read "go1.N[.P]..." in a read-only
 * one. Succeeds only when exactly one distinct version is referenced that way.
 * Fills version/major/minor/patch and source. 0, or -ENOENT with gt_lasterr() set.
 */
int buildinfo__read_version_string(const struct elf_file *ef, struct go_buildinfo *bi);
/*
 * Parse "go1.21.13" / "go1.22rc1" / "go1.19" / "devel go1.23-abc..." into numbers
 * (patch 0 when absent). 0 or -EINVAL.
 */
int buildinfo__parse_version(const char *s, int *major, int *minor, int *patch);
/* Value of a build setting ("CGO_ENABLED"), or NULL. */
const char *buildinfo__setting(const struct go_buildinfo *bi, const char *key);
void buildinfo__free(struct go_buildinfo *bi);

#endif
