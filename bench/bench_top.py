#!/usr/bin/python3
"""What `gotrace top` and `gotrace goroutines` cost a Go program, and what they cost themselves.

Every ratio is measured in one run: the same process alternates untraced and traced phases,
and each traced phase's throughput is divided by the mean of the untraced phases around it.

  http    tests/scenarios/httpserver under wrk on 127.0.0.1 (requests/s), traced by
          `gotrace top -b` (target: keeps >= 98%)
  churn   tests/scenarios/churn: GOMAXPROCS workers start and end goroutines as fast as they
          can (its own counter, goroutines/s) next to --parked parked goroutines, traced by
          `gotrace top -b` (target: keeps >= 95%); and gotrace's total against the program's
          runtime.NumGoroutine sampled during the same phase (target: within 1%)
  census  tests/scenarios/churn -workers 0 -n 100000: wall time of `gotrace goroutines
          --json` (target < 1 s) and gotrace's max RSS, for `goroutines` and for `top -b`
          (target < 50 MB)

The scenarios are built stripped by the newest toolchain cached by tools/go-toolchains.sh
(or GO=/path/to/go). Needs root (BPF) and wrk.

Each round also runs a control phase traced by nothing: its ratio shows how much of a
difference the machine's own noise makes.

Usage: bench/bench_top.py [--phase S] [--rounds N] [--parked N] [--census N]
                          [--loads http,churn,census] [--no-control]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from common import (GOTRACE, Target, alternate, build_scenario, kept, need_gotrace,
                    percents, wrk_rate)


class Gotrace:
    """gotrace ARGS in the background; finish() waits and returns (exit, document or None,
    stderr, max RSS in MB, wall seconds); self.cpu is then its CPU time in seconds."""

    def __init__(self, *args):
        self.out = tempfile.TemporaryFile(mode="w+")
        self.err = tempfile.TemporaryFile(mode="w+")
        self.t0 = time.monotonic()
        self.p = subprocess.Popen([GOTRACE, *args], stdout=self.out, stderr=self.err)

    def finish(self, timeout=120):
        deadline = time.monotonic() + timeout
        while True:
            pid, status, ru = os.wait4(self.p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                self.p.kill()
                pid, status, ru = os.wait4(self.p.pid, 0)
                break
            time.sleep(0.01)
        wall = time.monotonic() - self.t0
        self.cpu = ru.ru_utime + ru.ru_stime
        self.p.returncode = os.waitstatus_to_exitcode(status)
        self.out.seek(0)
        self.err.seek(0)
        out, err = self.out.read(), self.err.read()
        doc = None
        try:
            doc = json.loads(out) if out.strip() else None
        except ValueError:
            pass
        return self.p.returncode, doc, err.strip(), ru.ru_maxrss / 1024.0, wall


def failure(rc, err):
    line = err.splitlines()[-1] if err else ""
    return "n/a (gotrace exit %d: %s)" % (rc, line[:100])


def churn_rate(t, seconds, samples=None):
    """Goroutines created per second over SECONDS (the program's counter); NumGoroutine
    sampled 10 times a second into SAMPLES."""
    a, t0 = t.json("/stats")["created"], time.monotonic()
    end = t0 + seconds
    while time.monotonic() < end:
        time.sleep(min(0.1, max(0, end - time.monotonic())))
        if samples is not None:
            samples.append(t.json("/stats")["numgoroutine"])
    b, t1 = t.json("/stats")["created"], time.monotonic()
    return (b - a) / (t1 - t0)


def phases(t, measure, args):
    """Alternate untraced and traced phases, plus control phases traced by nothing (their
    ratio is the noise of the machine); return the figures."""
    docs, fails, cpu = [], [], []

    def traced():
        g = Gotrace("top", "-p", str(t.pid), "-b", "-d", str(args.phase + 1), "--json")
        time.sleep(0.5)  # past gotrace's start-up
        samples = []
        rate = measure(t, args.phase, samples) if measure is churn_rate else \
            measure(t, args.phase)
        rc, doc, err, rss, wall = g.finish(timeout=args.phase + 60)
        if rc != 0 or not doc:
            fails.append(failure(rc, err))
        else:
            docs.append((doc, samples, rss))
            cpu.append(g.cpu / wall)
        return rate, None

    def control():
        time.sleep(0.5)
        return measure(t, args.phase), None
    each = [traced, control] if args.control else [traced]
    base, rates, _ = alternate(lambda: measure(t, args.phase), each * args.rounds)
    ratios = kept(base, rates)
    n = len(each)  # the traced phases, then the control phases, every N-th
    return {"untraced": statistics.median(base), "traced": statistics.median(rates[::n]),
            "kept": statistics.median(ratios[::n]), "all": ratios[::n], "docs": docs,
            "fails": fails, "controls": ratios[1::n] if n > 1 else [], "cpu": cpu}


def spread(r):
    """The per-round ratios, gotrace's CPU use, the control phases' ratios (the noise)."""
    s = "[%s]" % percents(r["all"])
    if r["cpu"]:
        s += " gotrace CPU %.1f%% of a core" % (100 * statistics.median(r["cpu"]))
    if r["controls"]:
        s += " untraced/untraced: %.1f%% [%s]" % (100 * statistics.median(r["controls"]),
                                                   percents(r["controls"]))
    return s


def row(name, untraced, traced, kept, target, note=""):
    print("%-28s %14s %14s %8s %9s  %s" % (name, untraced, traced, kept, target, note))


def bench_http(args):
    binary, _ = build_scenario("httpserver")
    t = Target(binary)
    try:
        time.sleep(1)
        r = phases(t, wrk_rate, args)
    finally:
        t.close()
    note = spread(r)
    if r["fails"]:
        note = r["fails"][0]
    row("http: requests/s (wrk -c32)", "%.0f" % r["untraced"], "%.0f" % r["traced"],
        "%.1f%%" % (100 * r["kept"]), ">= 98%", note)


def bench_churn(args):
    binary, _ = build_scenario("churn")
    t = Target(binary, "-n", str(args.parked))
    try:
        time.sleep(1)
        r = phases(t, churn_rate, args)
    finally:
        t.close()
    note = spread(r)
    if r["fails"]:
        note = r["fails"][0]
    row("churn: goroutines/s", "%.0f" % r["untraced"], "%.0f" % r["traced"],
        "%.1f%%" % (100 * r["kept"]), ">= 95%", note)
    if r["docs"]:
        errs, totals, meds, rng = [], [], [], []
        for doc, samples, _ in r["docs"]:
            med = statistics.median(samples)
            totals.append(doc["goroutines"]["total"])
            meds.append(med)
            rng.append((min(samples), max(samples)))
            errs.append(abs(doc["goroutines"]["total"] - med) / med)
        row("churn: gotrace total", "%.0f" % statistics.median(meds),
            "%.0f" % statistics.median(totals), "%.2f%%" % (100 * max(errs)), "<= 1%",
            "NumGoroutine ranged %s; created_per_s %s" % (
                " ".join("%d-%d" % x for x in rng),
                " ".join("%.0f" % d["created_per_s"] for d, _, _ in r["docs"])))
        row("churn: gotrace max RSS", "", "%.1f MB" % max(x[2] for x in r["docs"]), "",
            "< 50 MB")


def bench_census(args):
    binary, _ = build_scenario("churn")
    t = Target(binary, "-workers", "0", "-n", str(args.census))
    try:
        n = t.json("/stats")["numgoroutine"]
        walls, rss, ms, totals, fail = [], [], [], [], None
        for _ in range(3):
            rc, doc, err, r, wall = Gotrace("goroutines", "-p", str(t.pid), "--json").finish()
            if rc != 0 or not doc:
                fail = failure(rc, err)
                break
            walls.append(wall)
            rss.append(r)
            ms.append(doc.get("elapsed_ms", float("nan")))
            totals.append(doc["total"])
        if fail:
            row("census %d: goroutines" % args.census, "", "", "", "< 1 s", fail)
        else:
            row("census %d: wall" % args.census, "", "%.3f s" % statistics.median(walls), "",
                "< 1 s", "census %.0f ms; total %d vs NumGoroutine %d" % (
                    statistics.median(ms), totals[-1], n))
            row("census %d: max RSS" % args.census, "", "%.1f MB" % max(rss), "", "< 50 MB",
                "gotrace goroutines")
        rc, doc, err, r, wall = Gotrace("top", "-p", str(t.pid), "-b", "-d", "5",
                                        "--json").finish()
        if rc != 0 or not doc:
            row("census %d: top max RSS" % args.census, "", "", "", "< 50 MB", failure(rc, err))
        else:
            row("census %d: top max RSS" % args.census, "", "%.1f MB" % r, "", "< 50 MB",
                "gotrace top -b -d 5: total %d vs %d" % (doc["goroutines"]["total"], n))
    finally:
        t.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--phase", type=int, default=5, help="seconds per phase (default 5)")
    ap.add_argument("--rounds", type=int, default=3, help="traced rounds (default 3)")
    ap.add_argument("--parked", type=int, default=10000,
                    help="parked goroutines next to the churn (default 10000)")
    ap.add_argument("--census", type=int, default=100000,
                    help="parked goroutines of the census benchmark (default 100000)")
    ap.add_argument("--loads", default="http,churn,census")
    ap.add_argument("--no-control", dest="control", action="store_false",
                    help="skip the untraced/untraced control phases")
    args = ap.parse_args()
    need_gotrace()
    if os.geteuid() != 0:
        raise SystemExit("bench: gotrace top loads BPF programs: run as root")
    _, ver = build_scenario("churn")
    print("%s, %d cores, load average %.1f, %d s phases, %d rounds" %
          (ver, os.cpu_count(), os.getloadavg()[0], args.phase, args.rounds))
    row("load", "untraced", "traced", "kept", "target", "per round / notes")
    loads = {"http": bench_http, "churn": bench_churn, "census": bench_census}
    for name in args.loads.split(","):
        loads[name](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
