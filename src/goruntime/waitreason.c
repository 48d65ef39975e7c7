// SPDX-License-Identifier: MIT
/*
 * runtime.waitReasonStrings per Go minor version: g.waitreason (uint8) indexes it.
 *
 * Tables for 1.19 and 1.21 - 1.27 are the runtime.waitReasonStrings arrays read out of
 * binaries built by each toolchain (go1.19.8 ... go1.27.4), and their order matches the
 * DWARF constants runtime.waitReason*. 1.17 and 1.18 share the 1.19 list, 1.20 the 1.21
 * list (src/runtime/runtime2.go of go1.17, go1.18, go1.20.2; not checked on binaries).
 * Never reuse numbers across versions: 1.26 reordered the enum so that the channel and
 * sync waits are contiguous (isSyncWait in go1.26 runtime2.go is a range check).
 */
#include <stddef.h>

#include "goruntime/offsets.h"

/* 1.17 - 1.19. */
static const char *const wr_19[] = {
	/*  0 */ "",
	/*  1 */ "GC assist marking",
	/*  2 */ "IO wait",
	/*  3 */ "chan receive (nil chan)",
	/*  4 */ "chan send (nil chan)",
	/*  5 */ "dumping heap",
	/*  6 */ "garbage collection",
	/*  7 */ "garbage collection scan",
	/*  8 */ "panicwait",
	/*  9 */ "select",
	/* 10 */ "select (no cases)",
	/* 11 */ "GC assist wait",
	/* 12 */ "GC sweep wait",
	/* 13 */ "GC scavenge wait",
	/* 14 */ "chan receive",
	/* 15 */ "chan send",
	/* 16 */ "finalizer wait",
	/* 17 */ "force gc (idle)",
	/* 18 */ "semacquire",
	/* 19 */ "sleep",
	/* 20 */ "sync.Cond.Wait",
	/* 21 */ "timer goroutine (idle)",
	/* 22 */ "trace reader (blocked)",
	/* 23 */ "wait for GC cycle",
	/* 24 */ "GC worker (idle)",
	/* 25 */ "preempted",
	/* 26 */ "debug call",
};

/* 1.20 - 1.21: sync.Mutex/RWMutex reasons added, timer goroutine removed (1.20). */
static const char *const wr_21[] = {
	/*  0 */ "",
	/*  1 */ "GC assist marking",
	/*  2 */ "IO wait",
	/*  3 */ "chan receive (nil chan)",
	/*  4 */ "chan send (nil chan)",
	/*  5 */ "dumping heap",
	/*  6 */ "garbage collection",
	/*  7 */ "garbage collection scan",
	/*  8 */ "panicwait",
	/*  9 */ "select",
	/* 10 */ "select (no cases)",
	/* 11 */ "GC assist wait",
	/* 12 */ "GC sweep wait",
	/* 13 */ "GC scavenge wait",
	/* 14 */ "chan receive",
	/* 15 */ "chan send",
	/* 16 */ "finalizer wait",
	/* 17 */ "force gc (idle)",
	/* 18 */ "semacquire",
	/* 19 */ "sleep",
	/* 20 */ "sync.Cond.Wait",
	/* 21 */ "sync.Mutex.Lock",
	/* 22 */ "sync.RWMutex.RLock",
	/* 23 */ "sync.RWMutex.Lock",
	/* 24 */ "trace reader (blocked)",
	/* 25 */ "wait for GC cycle",
	/* 26 */ "GC worker (idle)",
	/* 27 */ "GC worker (active)",
	/* 28 */ "preempted",
	/* 29 */ "debug call",
	/* 30 */ "GC mark termination",
	/* 31 */ "stopping the world",
};

/* 1.22: new tracer and coroutine reasons. */
static const char *const wr_22[] = {
	/*  0 */ "",
	/*  1 */ "GC assist marking",
	/*  2 */ "IO wait",
	/*  3 */ "chan receive (nil chan)",
	/*  4 */ "chan send (nil chan)",
	/*  5 */ "dumping heap",
	/*  6 */ "garbage collection",
	/*  7 */ "garbage collection scan",
	/*  8 */ "panicwait",
	/*  9 */ "select",
	/* 10 */ "select (no cases)",
	/* 11 */ "GC assist wait",
	/* 12 */ "GC sweep wait",
	/* 13 */ "GC scavenge wait",
	/* 14 */ "chan receive",
	/* 15 */ "chan send",
	/* 16 */ "finalizer wait",
	/* 17 */ "force gc (idle)",
	/* 18 */ "semacquire",
	/* 19 */ "sleep",
	/* 20 */ "sync.Cond.Wait",
	/* 21 */ "sync.Mutex.Lock",
	/* 22 */ "sync.RWMutex.RLock",
	/* 23 */ "sync.RWMutex.Lock",
	/* 24 */ "trace reader (blocked)",
	/* 25 */ "wait for GC cycle",
	/* 26 */ "GC worker (idle)",
	/* 27 */ "GC worker (active)",
	/* 28 */ "preempted",
	/* 29 */ "debug call",
	/* 30 */ "GC mark termination",
	/* 31 */ "stopping the world",
	/* 32 */ "flushing proc caches",
	/* 33 */ "trace goroutine status",
	/* 34 */ "trace proc status",
	/* 35 */ "page trace flush",
	/* 36 */ "coroutine",
};

/* 1.23: weak-to-strong. */
static const char *const wr_23[] = {
	/*  0 */ "",
	/*  1 */ "GC assist marking",
	/*  2 */ "IO wait",
	/*  3 */ "chan receive (nil chan)",
	/*  4 */ "chan send (nil chan)",
	/*  5 */ "dumping heap",
	/*  6 */ "garbage collection",
	/*  7 */ "garbage collection scan",
	/*  8 */ "panicwait",
	/*  9 */ "select",
	/* 10 */ "select (no cases)",
	/* 11 */ "GC assist wait",
	/* 12 */ "GC sweep wait",
	/* 13 */ "GC scavenge wait",
	/* 14 */ "chan receive",
	/* 15 */ "chan send",
	/* 16 */ "finalizer wait",
	/* 17 */ "force gc (idle)",
	/* 18 */ "semacquire",
	/* 19 */ "sleep",
	/* 20 */ "sync.Cond.Wait",
	/* 21 */ "sync.Mutex.Lock",
	/* 22 */ "sync.RWMutex.RLock",
	/* 23 */ "sync.RWMutex.Lock",
	/* 24 */ "trace reader (blocked)",
	/* 25 */ "wait for GC cycle",
	/* 26 */ "GC worker (idle)",
	/* 27 */ "GC worker (active)",
	/* 28 */ "preempted",
	/* 29 */ "debug call",
	/* 30 */ "GC mark termination",
	/* 31 */ "stopping the world",
	/* 32 */ "flushing proc caches",
	/* 33 */ "trace goroutine status",
	/* 34 */ "trace proc status",
	/* 35 */ "page trace flush",
	/* 36 */ "coroutine",
	/* 37 */ "GC weak to strong wait",
};

/* 1.24: sync.WaitGroup.Wait inserted before trace reader (+1 from there); synctest. */
static const char *const wr_24[] = {
	/*  0 */ "",
	/*  1 */ "GC assist marking",
	/*  2 */ "IO wait",
	/*  3 */ "chan receive (nil chan)",
	/*  4 */ "chan send (nil chan)",
	/*  5 */ "dumping heap",
	/*  6 */ "garbage collection",
	/*  7 */ "garbage collection scan",
	/*  8 */ "panicwait",
	/*  9 */ "select",
	/* 10 */ "select (no cases)",
	/* 11 */ "GC assist wait",
	/* 12 */ "GC sweep wait",
	/* 13 */ "GC scavenge wait",
	/* 14 */ "chan receive",
	/* 15 */ "chan send",
	/* 16 */ "finalizer wait",
	/* 17 */ "force gc (idle)",
	/* 18 */ "semacquire",
	/* 19 */ "sleep",
	/* 20 */ "sync.Cond.Wait",
	/* 21 */ "sync.Mutex.Lock",
	/* 22 */ "sync.RWMutex.RLock",
	/* 23 */ "sync.RWMutex.Lock",
	/* 24 */ "sync.WaitGroup.Wait",
	/* 25 */ "trace reader (blocked)",
	/* 26 */ "wait for GC cycle",
	/* 27 */ "GC worker (idle)",
	/* 28 */ "GC worker (active)",
	/* 29 */ "preempted",
	/* 30 */ "debug call",
	/* 31 */ "GC mark termination",
	/* 32 */ "stopping the world",
	/* 33 */ "flushing proc caches",
	/* 34 */ "trace goroutine status",
	/* 35 */ "trace proc status",
	/* 36 */ "page trace flush",
	/* 37 */ "coroutine",
	/* 38 */ "GC weak to strong wait",
	/* 39 */ "synctest.Run",
	/* 40 */ "synctest.Wait",
	/* 41 */ "chan receive (synctest)",
	/* 42 */ "chan send (synctest)",
	/* 43 */ "select (synctest)",
};

/* 1.25: GOMAXPROCS updater inserted after force gc (+1 from there); "durable" synctest. */
static const char *const wr_25[] = {
	/*  0 */ "",
	/*  1 */ "GC assist marking",
	/*  2 */ "IO wait",
	/*  3 */ "chan receive (nil chan)",
	/*  4 */ "chan send (nil chan)",
	/*  5 */ "dumping heap",
	/*  6 */ "garbage collection",
	/*  7 */ "garbage collection scan",
	/*  8 */ "panicwait",
	/*  9 */ "select",
	/* 10 */ "select (no cases)",
	/* 11 */ "GC assist wait",
	/* 12 */ "GC sweep wait",
	/* 13 */ "GC scavenge wait",
	/* 14 */ "chan receive",
	/* 15 */ "chan send",
	/* 16 */ "finalizer wait",
	/* 17 */ "force gc (idle)",
	/* 18 */ "GOMAXPROCS updater (idle)",
	/* 19 */ "semacquire",
	/* 20 */ "sleep",
	/* 21 */ "sync.Cond.Wait",
	/* 22 */ "sync.Mutex.Lock",
	/* 23 */ "sync.RWMutex.RLock",
	/* 24 */ "sync.RWMutex.Lock",
	/* 25 */ "sync.WaitGroup.Wait",
	/* 26 */ "trace reader (blocked)",
	/* 27 */ "wait for GC cycle",
	/* 28 */ "GC worker (idle)",
	/* 29 */ "GC worker (active)",
	/* 30 */ "preempted",
	/* 31 */ "debug call",
	/* 32 */ "GC mark termination",
	/* 33 */ "stopping the world",
	/* 34 */ "flushing proc caches",
	/* 35 */ "trace goroutine status",
	/* 36 */ "trace proc status",
	/* 37 */ "page trace flush",
	/* 38 */ "coroutine",
	/* 39 */ "GC weak to strong wait",
	/* 40 */ "synctest.Run",
	/* 41 */ "synctest.Wait",
	/* 42 */ "chan receive (durable)",
	/* 43 */ "chan send (durable)",
	/* 44 */ "select (durable)",
	/* 45 */ "sync.WaitGroup.Wait (durable)",
	/* 46 */ "cleanup wait",
};

/* 1.26 - 1.27: reordered (see top). */
static const char *const wr_26[] = {
	/*  0 */ "",
	/*  1 */ "GC assist marking",
	/*  2 */ "IO wait",
	/*  3 */ "dumping heap",
	/*  4 */ "garbage collection",
	/*  5 */ "garbage collection scan",
	/*  6 */ "panicwait",
	/*  7 */ "GC assist wait",
	/*  8 */ "GC sweep wait",
	/*  9 */ "GC scavenge wait",
	/* 10 */ "finalizer wait",
	/* 11 */ "force gc (idle)",
	/* 12 */ "GOMAXPROCS updater (idle)",
	/* 13 */ "semacquire",
	/* 14 */ "sleep",
	/* 15 */ "chan receive (nil chan)",
	/* 16 */ "chan send (nil chan)",
	/* 17 */ "select (no cases)",
	/* 18 */ "select",
	/* 19 */ "chan receive",
	/* 20 */ "chan send",
	/* 21 */ "sync.Cond.Wait",
	/* 22 */ "sync.Mutex.Lock",
	/* 23 */ "sync.RWMutex.RLock",
	/* 24 */ "sync.RWMutex.Lock",
	/* 25 */ "sync.WaitGroup.Wait",
	/* 26 */ "trace reader (blocked)",
	/* 27 */ "wait for GC cycle",
	/* 28 */ "GC worker (idle)",
	/* 29 */ "GC worker (active)",
	/* 30 */ "preempted",
	/* 31 */ "debug call",
	/* 32 */ "GC mark termination",
	/* 33 */ "stopping the world",
	/* 34 */ "flushing proc caches",
	/* 35 */ "trace goroutine status",
	/* 36 */ "trace proc status",
	/* 37 */ "page trace flush",
	/* 38 */ "coroutine",
	/* 39 */ "GC weak to strong wait",
	/* 40 */ "synctest.Run",
	/* 41 */ "synctest.Wait",
	/* 42 */ "chan receive (durable)",
	/* 43 */ "chan send (durable)",
	/* 44 */ "select (durable)",
	/* 45 */ "sync.WaitGroup.Wait (durable)",
	/* 46 */ "cleanup wait",
};

struct wr_table {
	const char *const *names;
	int cnt;
};

#define WR(t) { t, (int)(sizeof(t) / sizeof(t[0])) }

static const struct wr_table wr_tables[GO_MAX_MINOR - GO_MIN_MINOR + 1] = {
	[17 - GO_MIN_MINOR] = WR(wr_19),
	[18 - GO_MIN_MINOR] = WR(wr_19),
	[19 - GO_MIN_MINOR] = WR(wr_19),
	[20 - GO_MIN_MINOR] = WR(wr_21),
	[21 - GO_MIN_MINOR] = WR(wr_21),
	[22 - GO_MIN_MINOR] = WR(wr_22),
	[23 - GO_MIN_MINOR] = WR(wr_23),
	[24 - GO_MIN_MINOR] = WR(wr_24),
	[25 - GO_MIN_MINOR] = WR(wr_25),
	[26 - GO_MIN_MINOR] = WR(wr_26),
	[27 - GO_MIN_MINOR] = WR(wr_26),
};

int go_waitreasons(int minor, const char *const **tab)
{
	if (minor < GO_MIN_MINOR || minor > GO_MAX_MINOR) {
		*tab = NULL;
		return 0;
	}
	*tab = wr_tables[minor - GO_MIN_MINOR].names;
	return wr_tables[minor - GO_MIN_MINOR].cnt;
}

const char *go_waitreason(int minor, unsigned r)
{
	const char *const *tab;
	int n = go_waitreasons(minor, &tab);

	return r < (unsigned)n ? tab[r] : NULL;
}
