#!/usr/bin/python3
"""Throughput a Go program keeps while `gotrace contention` watches it, sampled and exact,
against the same program with Go's own block profile at rate 1 (and the mutex profile at
fraction 1), in one run: the same process alternates untraced and watched phases, and each
watched phase's throughput is divided by the mean of the untraced phases around it.

Then the exact mode's cost per probe hit on the ping-pong, against bpftrace merely counting
hits of uprobes at the same two instructions (runtime.gopark and runtime.ready after their
prologue): cost per hit = (target CPU per round trip watched - untraced) / hits per round
trip. CPU time of the target (user + system, /proc/PID/stat), not wall time: other load on
the machine does not inflate it, and the kernel's uprobe work is system time of the target.

Loads (tests/scenarios/contention, built stripped by the newest cached toolchain, or GO=):
  pingpong  two goroutines bouncing a value over an unbuffered channel (round trips/s)
  http      a net/http server under wrk on 127.0.0.1 (requests/s)

Usage: bench/bench_contention.py [--phase S] [--rounds N] [--hz N] [--loads pingpong,http]
                                 [--kinds sampled,exact,exact-none,goprofile] [--no-bpftrace]
"""
import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import time

from common import (GOTRACE, Target, alternate, bpftrace_start, bpftrace_stop, build_scenario,
                    counter_rate, kept, kept_note, need_gotrace, start, stop, wrk_rate)

# What each watched phase runs: gotrace contention arguments, or Go's own profiles.
KINDS = {
    "sampled": ["--mode", "sampled"],
    "exact": ["--mode", "exact"],                          # default budget (5% of a CPU)
    "exact-none": ["--mode", "exact", "--budget", "none"],  # every probe on all the time
    "goprofile": None,
}
LABELS = {
    "sampled": "gotrace contention (sampled, 100 Hz)",
    "exact": "gotrace contention --mode exact (5% budget)",
    "exact-none": "gotrace contention --mode exact --budget none",
    "goprofile": "Go block+mutex profile rate 1",
}


def target(binary, mode):
    """The scenario in MODE, with Go's own block and mutex profiles off."""
    return Target(binary, "-mode", mode, "-blockrate", "0", "-mutexfrac", "0")


def ops(t):
    """The target's own count of operations so far."""
    return int(t.get("/ops"))


def ops_rate(t, seconds):
    """Operations per second of the target over SECONDS (its own counter)."""
    return counter_rate(lambda: ops(t), seconds)


def start_gotrace(pid, args, hz):
    # Past gotrace's start-up (and the probes' attach), into its window.
    return start([GOTRACE, "contention", "-p", str(pid), "-d", "3600", "--hz", str(hz),
                  "--json", *args], r"gotrace: (sampling|tracing)")


def stop_gotrace(g):
    return json.loads(stop(g, timeout=120)[0])


def phase(t, kind, args, measure):
    """Throughput during one phase watched by KIND (a KINDS key); returns (rate, report)."""
    g = None
    if kind == "goprofile":
        t.get("/setrate?block=1&mutex=1")
    else:
        g = start_gotrace(t.pid, KINDS[kind], args.hz)
    try:
        rate = measure(t, args.phase)
    finally:
        if kind == "goprofile":
            t.get("/setrate?block=0&mutex=0")
    return rate, stop_gotrace(g) if g else None


def bench(binary, mode, measure, args):
    """(untraced rates, {kind: ratios}, {kind: gotrace reports}): each round watches the
    program with every kind in turn, an untraced phase between each two."""
    t = target(binary, mode)
    try:
        time.sleep(1)
        watched = [functools.partial(phase, t, kind, args, measure) for kind in args.kinds]
        base, rates, reps = alternate(lambda: measure(t, args.phase), watched * args.rounds)
        ratios, n = kept(base, rates), len(args.kinds)
        return (base, {k: ratios[i::n] for i, k in enumerate(args.kinds)},
                {k: [r for r in reps[i::n] if r] for i, k in enumerate(args.kinds)})
    finally:
        t.close()


def cpu_per_op(t, seconds):
    """(target CPU seconds per operation, operations) over SECONDS."""
    c0, o0 = t.cpu_s(), ops(t)
    time.sleep(seconds)
    c1, o1 = t.cpu_s(), ops(t)
    return (c1 - c0) / max(1, o1 - o0), o1 - o0


def probe_offsets(binary):
    """File offsets of the two instructions the exact mode probes."""
    d = json.loads(subprocess.run([GOTRACE, "inspect", binary, "--json"], capture_output=True,
                                  text=True, check=True).stdout)
    return {p["role"]: p["file_offset"] + p["attach_offset"] for p in d["probes"]
            if p["role"] in ("gopark", "ready") and p["present"]}


def bpftrace_phase(t, binary, offsets, seconds):
    """bpftrace counting hits at OFFSETS: (CPU per op, ops, hits)."""
    b = bpftrace_start(binary, offsets.values())
    per_op, n = cpu_per_op(t, seconds)
    return per_op, n, bpftrace_stop(b)


def cost_per_hit(binary, args):
    """Exact mode (--budget none) and bpftrace, each against the untraced ping-pong."""
    t = target(binary, "pingpong")
    offsets = probe_offsets(binary)
    rows = {"gotrace": [], "bpftrace": []}
    try:
        time.sleep(1)
        for _ in range(args.rounds):
            base, _ = cpu_per_op(t, args.phase)
            g = start_gotrace(t.pid, KINDS["exact-none"], args.hz)
            c0, o0, t0 = t.cpu_s(), ops(t), time.monotonic()
            time.sleep(args.phase)
            c1, o1, t1 = t.cpu_s(), ops(t), time.monotonic()
            rep = stop_gotrace(g)
            # Hits over the whole gotrace run, ops over the measured part: hits per op.
            hits = sum(p["hits"] for p in rep["exact"]["probes"])
            per_op = (c1 - c0) / max(1, o1 - o0)
            hits_per_op = hits / (rep["duration_ns"] / 1e9) / ((o1 - o0) / (t1 - t0))
            rows["gotrace"].append(((per_op - base) / hits_per_op,
                                    [p["cost_ns"] for p in rep["exact"]["probes"]]))
            if not args.no_bpftrace:
                base2, _ = cpu_per_op(t, args.phase)
                bp_per_op, n, hits = bpftrace_phase(t, binary, offsets, args.phase)
                # bpftrace's count covers a little more than the measured part.
                rows["bpftrace"].append(((bp_per_op - base2) / (hits / max(1, n)), None))
    finally:
        t.close()
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--phase", type=int, default=5, help="seconds per phase (default 5)")
    ap.add_argument("--rounds", type=int, default=3, help="watched rounds (default 3)")
    ap.add_argument("--hz", type=int, default=100, help="gotrace's --hz (default 100)")
    ap.add_argument("--loads", default="pingpong,http")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--no-bpftrace", action="store_true")
    ap.add_argument("--no-cost", action="store_true", help="skip the cost-per-hit part")
    args = ap.parse_args()
    args.kinds = args.kinds.split(",")
    need_gotrace()
    binary, ver = build_scenario("contention")
    print("%s, %d cores, %d s phases, %d rounds, load average %.1f" %
          (ver, os.cpu_count(), args.phase, args.rounds, os.getloadavg()[0]))
    loads = {"pingpong": ("pingpong", ops_rate, "round trips/s"),
             "http": ("http", wrk_rate, "requests/s (wrk -t1 -c32)")}
    for name in args.loads.split(","):
        mode, measure, unit = loads[name]
        base, ratios, reps = bench(binary, mode, measure, args)
        print("%-9s untraced %10.0f %s (phases %s)" % (name, statistics.median(base), unit,
                                                       " ".join("%.0f" % b for b in base)))
        for kind in args.kinds:
            extra = ""
            if reps[kind] and "exact" in reps[kind][0]:
                x = [r["exact"] for r in reps[kind]]
                extra = "  est. target cost %.1f%%, probes on %.0f%% of the time" % (
                    statistics.median(e["cost_percent"] for e in x),
                    100 * statistics.median(e["on_fraction"] for e in x))
            elif reps[kind]:
                extra = "  gotrace CPU %.2f%% of one core" % (
                    100 * statistics.median(r["cost"]["cpu_share"] for r in reps[kind]))
            print("          %-46s %s%s" % (LABELS[kind], kept_note(ratios[kind]), extra))
    if not args.no_cost:
        rows = cost_per_hit(binary, args)
        g = [r[0] for r in rows["gotrace"]]
        print("cost per hit on ping-pong (target CPU, gopark + ready after the prologue):")
        print("          gotrace --mode exact: %.1f us median [%s]; its own estimate %s us" %
              (1e6 * statistics.median(g), " ".join("%.1f" % (1e6 * x) for x in g),
               "/".join("%.1f" % (c / 1e3) for c in rows["gotrace"][-1][1])))
        if rows["bpftrace"]:
            b = [r[0] for r in rows["bpftrace"]]
            print("          bpftrace counting hits: %.1f us median [%s]" %
                  (1e6 * statistics.median(b), " ".join("%.1f" % (1e6 * x) for x in b)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
