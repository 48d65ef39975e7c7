/* SPDX-License-Identifier: MIT */
/*
 * Goroutines over time, from successive censuses of one process: counts by state and
 * wait reason, creation sites with their growth, blocking groups, and leak suspects.
 *
 * A group is the goroutines of one creation site (gopc) blocked at one place (the PC
 * of the blocking frame, see session__blocked_at) for one wait reason. A goroutine
 * stays a member while it exists and is not seen blocked elsewhere (a ticker loop that
 * runs between two censuses is still the same leak). A group is a leak suspect when,
 * over the window:
 *   - it has at least GW_MIN_COUNT members and grew by at least GW_MIN_GROWTH;
 *   - it grew in at least two of the window's three thirds (a one-off step is not a leak);
 *   - at least 90% of the members it had at the window's start are still members
 *     (a group whose members come and go, like connections being served, is not);
 *   - its oldest member has been blocked there for at least GW_MIN_AGE_S.
 * Goroutines present at the first census count from it (or from g.waitsince, when the
 * GC has set it). A suspect stays one until its group shrinks to half.
 */
#ifndef GOTRACE_ENGINE_GWATCH_H
#define GOTRACE_ENGINE_GWATCH_H

#include <stdbool.h>
#include <stdint.h>
#include "census/census.h"
#include "engine/session.h"

#define GW_HIST 128	     /* censuses kept per series */
#define GW_WINDOW_S 20.0     /* leak window */
#define GW_MIN_COUNT 5
#define GW_MIN_GROWTH 3
#define GW_MIN_AGE_S 10.0
#define GW_SAMPLE_GOIDS 5

struct gw_series {
	double t[GW_HIST];
	uint32_t n[GW_HIST];
	unsigned head, len; /* ring: the newest at head - 1 */
};

struct gw_site {
	uint64_t gopc;
	struct site created_at;
	uint64_t count;
	double growth_per_min;
	struct gw_series hist;
	bool seen; /* in the last census */
};

struct gw_group {
	uint64_t gopc, blocked_pc;
	uint8_t waitreason;
	struct site created_at, blocked_at;
	const char *wait_reason;
	uint64_t count;
	double growth_per_min;
	double oldest_blocked_s;
	uint64_t sample_goids[GW_SAMPLE_GOIDS];
	int nsamples;
	struct gw_series hist;
	bool suspect;
	double first_reported_s; /* since the first census; < 0 never */
	uint64_t count_at_report;
	char why[192];		 /* the numbers behind the verdict */
};

struct gw_totals {
	double t;		/* seconds since the first census */
	uint64_t total;		/* user goroutines (runtime.NumGoroutine) */
	uint64_t system, unreadable, stack_unknown;
	uint64_t by_status[16];
	uint64_t by_reason[256];
	double created_per_s;	/* from the advance of goids (handed out in batches per P) */
	double exited_per_s;	/* created - growth of the total */
	double census_ms;
};

struct gwatch;

/* S may be NULL (tests): sites are then unnamed and a group's blocking PC is its stack's first. */
int gwatch__new(struct session *s, struct gwatch **out);
void gwatch__free(struct gwatch *w);
/* Take a census now and fold it in. -ESRCH once the process is gone. */
int gwatch__tick(struct gwatch *w);
/* Fold in a census taken at T seconds of CLOCK_MONOTONIC (the clock of g.waitsince). */
int gwatch__update(struct gwatch *w, const struct census *c, double t);

const struct gw_totals *gwatch__totals(const struct gwatch *w);
/* Sites / groups of the last census (count > 0), sorted by count, then growth. */
size_t gwatch__sites(struct gwatch *w, const struct gw_site ***out);
size_t gwatch__groups(struct gwatch *w, const struct gw_group ***out);
/* Series of the total, for the trend. */
const struct gw_series *gwatch__total_hist(const struct gwatch *w);
const char *gwatch__reason_name(const struct gwatch *w, unsigned r);

/* Least-squares slope of S over the last WINDOW_S seconds, per minute. */
double gw_series__slope_per_min(const struct gw_series *s, double window_s);

#endif
