/* SPDX-License-Identifier: MIT */
/*
 * A small writer of pprof profiles (profile.proto, the format `go tool pprof` reads):
 * sample types, functions, locations with inlined lines, samples with labels, written as
 * a gzipped protobuf. Hand-rolled encoding: the messages are few and flat, and this keeps
 * the build free of generated code. Symbolized profiles only: every location carries its
 * lines, and mappings say so (has_functions...), so pprof never looks for the binary.
 *
 * Ids handed out start at 1 (0 means none, as in profile.proto). Strings are copied.
 * Functions are shared by (name, file); locations by address when it is not 0.
 */
#ifndef GOTRACE_PPROF_H
#define GOTRACE_PPROF_H

#include <stddef.h>
#include <stdint.h>

struct pprof;

struct pprof_line {
	uint64_t function_id;
	int64_t line;
};

struct pprof_label {
	const char *key;
	const char *str;   /* NULL for a numeric label */
	int64_t num;
	const char *unit;  /* numeric labels: "bytes", "nanoseconds"...; may be NULL */
};

/* An empty profile; NULL with errno ENOMEM. */
struct pprof *pprof__new(void);
void pprof__free(struct pprof *p);

/* Append a sample type ("contentions", "count"); samples carry one value per type. 0/-errno. */
int pprof__add_sample_type(struct pprof *p, const char *type, const char *unit);
int pprof__set_period(struct pprof *p, const char *type, const char *unit, int64_t period);
/* Wall-clock start of the profile (ns since the epoch) and its duration. */
void pprof__set_time(struct pprof *p, int64_t time_nanos, int64_t duration_nanos);
/* The sample type `go tool pprof` shows first (default: the last one). 0/-errno. */
int pprof__set_default_sample_type(struct pprof *p, const char *type);
int pprof__add_comment(struct pprof *p, const char *comment);

/* A mapping (an executable); returns its id, 0 on ENOMEM. */
uint64_t pprof__add_mapping(struct pprof *p, uint64_t start, uint64_t limit, uint64_t offset,
			    const char *file, const char *build_id);
/* The function NAME in FILE (shared when seen before); its id, 0 on ENOMEM. */
uint64_t pprof__function(struct pprof *p, const char *name, const char *file, int64_t start_line);
/*
 * A location at ADDR in MAPPING_ID with LINES[0..N) (innermost first: the last is the
 * function the others were inlined into). Shared by address when ADDR != 0. Its id, 0 on
 * ENOMEM.
 */
uint64_t pprof__location(struct pprof *p, uint64_t mapping_id, uint64_t addr,
			 const struct pprof_line *lines, size_t n);
/*
 * A sample: the stack LOCS[0..NLOCS) (innermost first), one value per sample type, and
 * labels. 0 or -EINVAL (wrong number of values) / -ENOMEM.
 */
int pprof__add_sample(struct pprof *p, const uint64_t *locs, size_t nlocs, const int64_t *values,
		      size_t nvalues, const struct pprof_label *labels, size_t nlabels);

/* The profile as uncompressed protobuf in *BUF (malloc'd, caller frees). 0 or -ENOMEM. */
int pprof__encode(const struct pprof *p, uint8_t **buf, size_t *len);
/* Write the gzipped profile to PATH. 0 or -errno with gt_lasterr() set. */
int pprof__write(const struct pprof *p, const char *path);

#endif
