#!/usr/bin/python3
"""Cost of `gotrace heap`: how long reading a large heap profile takes, and the throughput a
Go program keeps while gotrace watches it, against the same process untraced.

Measures (tests/scenarios/heap, built stripped by the newest cached toolchain, or GO=):
  buckets  a program with MemProfileRate=1 and 50,000 distinct allocation stacks (-mode
           stacks): wall time of `gotrace heap -d 0` and of one walk of every bucket
  alloc    two goroutines allocating a bytes.Buffer per request as fast as they can, GOGC=25
           (requests/s, the program's own counter)
  http     a net/http server allocating a bytes.Buffer per request, under wrk on 127.0.0.1
           (requests/s)
  alloc-bpf, http-bpf  the same loads built without runtime/pprof (-tags noprof: memory
           profiling disabled), so that gotrace samples allocations in BPF: at refill
           under the default budget (1% of one CPU), with --budget 10, and at mallocgc
           under the default budget (--bpf-configs changes the list)
  cost     cost of the BPF allocation probes (root): N allocations of 64 B, then 4 KiB, on
           one goroutine (GET /allocs), the program's CPU time untraced, under `gotrace heap
           --budget none` at mallocgc and at refill, and under bpftrace counting hits at the
           same file offsets as the mallocgc probes (`uprobe:BIN:OFFSET { @ = count(); }`):
           (CPU traced - untraced) / hits, and / allocations
Throughput: the same process alternates untraced and traced phases; each traced phase is
divided by the mean of the untraced phases around it. gotrace runs on the same 2 cores.

Usage: bench/bench_heap.py [--phase S] [--rounds N] [--stacks N] [--allocs N] [--alloc-sizes L]
                           [--loads buckets,alloc,http,alloc-bpf,http-bpf,cost]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from common import (GOTRACE, Target, alternate, bpftrace_start, bpftrace_stop, build_scenario,
                    counter_rate, kept, kept_note, need_gotrace, proc_cpu, start, stop,
                    wrk_rate)


def heap_json(pid, seconds):
    t0 = time.monotonic()
    r = subprocess.run([GOTRACE, "heap", "-p", str(pid), "-d", str(seconds), "--json"],
                       capture_output=True, text=True, timeout=seconds + 120)
    wall = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit("bench: gotrace heap failed: %s" % r.stderr)
    return json.loads(r.stdout), wall


def bench_buckets(binary, args):
    t = Target(binary, "-mode", "stacks", "-n", str(args.stacks))
    try:
        walls, walks, n = [], [], 0
        for _ in range(args.rounds + 2):
            rep, wall = heap_json(t.pid, 0)
            walls.append(wall)
            walks.append(rep["cost"]["walk_ms_max"])
            n = rep["cost"]["buckets"]
        print("buckets   %d profile buckets (%d distinct stacks asked for)" % (n, args.stacks))
        print("          one walk of every bucket: %.0f ms (median of %d; max %.0f ms)" %
              (statistics.median(walks), len(walks), max(walks)))
        print("          whole `gotrace heap -d 0` (model, symbols, report): %.2f s" %
              statistics.median(walls))
    finally:
        t.close()


def ops_rate(t, seconds):
    return counter_rate(lambda: t.json("/memstats")["ops"], seconds)


def work_rate(t, seconds):
    return wrk_rate(t, seconds, "/work")


def with_cpu(measure, effs):
    """MEASURE, also appending work per CPU-second of the target to EFFS: unlike the rate,
    it does not move with the CPU share other programs leave the target."""
    def m(t, seconds):
        c0 = proc_cpu(t.pid)
        rate = measure(t, seconds)
        effs.append(rate * seconds / max(proc_cpu(t.pid) - c0, 1e-3))
        return rate
    return m


def traced_phase(t, seconds, measure, extra=()):
    """MEASURE while `gotrace heap EXTRA` watches for the phase; returns (rate, report)."""
    g = subprocess.Popen([GOTRACE, "heap", "-p", str(t.pid), "-d", str(seconds + 1),
                          "--json", *extra], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)  # past gotrace's start-up, into its watching
    rate = measure(t, seconds)
    out, err = g.communicate(timeout=seconds + 60)
    if g.returncode != 0:
        raise SystemExit("bench: gotrace failed: %s" % err)
    return rate, json.loads(out)


def rounds(t, args, measure, extra=()):
    """(untraced rates, traced/untraced ratios, reports) over args.rounds traced phases."""
    base, rates, reps = alternate(
        lambda: measure(t, args.phase),
        [lambda: traced_phase(t, args.phase, measure, extra)] * args.rounds)
    return base, kept(base, rates), reps


def target_for(binary, name):
    if name.startswith("alloc"):
        return Target(binary, "-mode", "spin"), ops_rate, "requests/s"
    return Target(binary, "-mode", "idle"), work_rate, "requests/s (wrk -t1 -c32)"


def bench_load(binary, name, args):
    t, measure, unit = target_for(binary, name)
    try:
        time.sleep(1)
        base, ratios, reps = rounds(t, args, measure)
        costs = [(r["cost"], r["gc"]["cycles"], r["duration_ns"]) for r in reps]
        cpu = statistics.median(c["cpu_ns"] / d for c, _, d in costs)
        print("%-9s untraced %10.0f %s" % (name, statistics.median(base), unit))
        print("          gotrace heap: %s  gotrace CPU %.2f%% of one core, "
              "%d GC cycles and %d walks per window" %
              (kept_note(ratios), 100 * cpu, statistics.median(g for _, g, _ in costs),
               statistics.median(c["snapshots"] for c, _, _ in costs)))
    finally:
        t.close()


def bench_bpf_load(binary, name, args):
    """The BPF fallback (a binary without memory profiling) under each configuration."""
    t, measure, unit = target_for(binary, name)
    try:
        time.sleep(1)
        print("%-9s (memory profiling disabled: gotrace samples in BPF)" % name)
        for cfg in args.bpf_configs.split(";"):
            extra = cfg.split()
            effs = []
            base, ratios, reps = rounds(t, args, with_cpu(measure, effs), extra)
            # Phases ran untraced, then traced and untraced in turn.
            eff = kept(effs[0::2], effs[1::2])
            if any(r["mode"] != "bpf" for r in reps):
                raise SystemExit("bench: gotrace did not sample in BPF: %s" %
                                 reps[0]["mode_reason"])
            b = [r["bpf"] for r in reps]

            def med(k):
                return statistics.median(x[k] for x in b)
            print("          untraced %10.0f %s" % (statistics.median(base), unit))
            print("          gotrace heap %s: %s" % (cfg or "(defaults)", kept_note(ratios)))
            print("            work per target CPU-second: %s" % kept_note(eff))
            print("            at %s: %.0f hits/s x %.1f us = %.1f%% of a CPU while attached, "
                  "attached %.0f%% of the time, %.2f%% of a CPU on average, %.0f sample "
                  "points" % (b[0]["at"], med("hits_per_s_attached"),
                              med("cost_ns_per_hit") / 1e3, med("cost_pct_attached"),
                              100 * med("attached_fraction"), med("cost_pct_average"),
                              med("samples")))
    finally:
        t.close()


# ---------------------------------------------------------------- cost per hit

def alloc_cpu(t, n, size):
    """CPU ns the target spends on N allocations of SIZE bytes."""
    return t.json("/allocs?n=%d&size=%d" % (n, size))["cpu_ns"]


def gotrace_cpu(t, n, size, cmd):
    """alloc_cpu() under the gotrace heap command CMD, its hits and its report."""
    g = start(cmd, r"Ctrl-C")
    try:
        time.sleep(0.3)  # a margin past its start-up line (its probes attach before it)
        cpu = alloc_cpu(t, n, size)
    finally:
        out, _ = stop(g)
    rep = json.loads(out)
    if rep["mode"] != "bpf" or rep["bpf"]["attach_windows"] != 1:
        raise SystemExit("bench: gotrace did not keep its probes attached: %s" % rep["bpf"])
    return cpu, rep["bpf"]["hits"], rep


def bpftrace_cpu(t, n, size, binary, offsets):
    """alloc_cpu() under bpftrace counting hits at OFFSETS of BINARY, and its hits."""
    b = bpftrace_start(binary, offsets)
    try:
        cpu = alloc_cpu(t, n, size)
    finally:
        hits = bpftrace_stop(b)
    return cpu, hits


def bench_cost(binary, args):
    """Cost per hit and per allocation of the mallocgc and refill probes, and of bpftrace
    counting at the mallocgc sites, for each allocation size."""
    t = Target(binary, "-mode", "idle", "-gogc", "100")
    n = args.allocs
    try:
        for size in (int(x) for x in args.alloc_sizes.split(",")):
            rows = []
            alloc_cpu(t, n, size)  # warm-up: the heap grows to its working size
            base = statistics.median(alloc_cpu(t, n, size) for _ in range(args.rounds))
            head = [GOTRACE, "heap", "-p", str(t.pid), "-d", "600", "--json", "--budget",
                    "none"]
            offsets = None
            for label, extra in (("gotrace heap --bpf-at mallocgc", ["--bpf-at", "mallocgc"]),
                                 ("gotrace heap --bpf-at refill", ["--bpf-at", "refill"])):
                costs = []
                for _ in range(args.rounds):
                    cpu, hits, rep = gotrace_cpu(t, n, size, head + extra)
                    costs.append((cpu - base, hits))
                if "mallocgc" in extra:
                    offsets = [p["file_offset"] for p in rep["bpf"]["probes"]]
                rows.append((label, costs, rep["bpf"]))
            costs = []
            for _ in range(args.rounds):
                cpu, hits = bpftrace_cpu(t, n, size, binary, offsets)
                costs.append((cpu - base, hits))
            rows.append(("bpftrace, the mallocgc sites", costs, None))
            print("cost      %d allocations of %d B: %.0f ns each untraced (process CPU)" %
                  (n, size, base / n))
            for label, costs, b in rows:
                hits = statistics.median(h for _, h in costs)
                extra = ""
                if b:
                    extra = "  (trap %.0f ns %s, BPF program %s ns)" % (
                        b["trap_ns_per_hit"], b["trap_cost_source"],
                        "%.0f" % b["bpf_ns_per_hit"] if b["bpf_ns_per_hit"] is not None
                        else "?")
                print("          %-30s %7d hits %6.0f ns per hit %6.0f ns per allocation%s"
                      % (label, hits, statistics.median(c / max(h, 1) for c, h in costs),
                         statistics.median(c for c, _ in costs) / n, extra))
    finally:
        t.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--phase", type=int, default=5, help="seconds per phase (default 5)")
    ap.add_argument("--rounds", type=int, default=3, help="traced rounds (default 3)")
    ap.add_argument("--stacks", type=int, default=50000, help="allocation stacks (50000)")
    ap.add_argument("--allocs", type=int, default=200000,
                    help="allocations per cost measurement (200000)")
    ap.add_argument("--alloc-sizes", default="64,4096",
                    help="allocation sizes of the cost measurements (64,4096)")
    ap.add_argument("--bpf-configs", default=";--budget 10;--bpf-at mallocgc",
                    help="gotrace options of each BPF configuration, ';'-separated "
                         "(default: ';--budget 10;--bpf-at mallocgc')")
    ap.add_argument("--loads", default="buckets,alloc,http,alloc-bpf,http-bpf,cost")
    args = ap.parse_args()
    need_gotrace()
    binary, ver = build_scenario("heap")
    noprof, _ = build_scenario("heap", tags=["noprof"])
    print("%s, %d cores, %d s phases, %d rounds" % (ver, os.cpu_count(), args.phase,
                                                    args.rounds))
    for name in args.loads.split(","):
        if name == "buckets":
            bench_buckets(binary, args)
        elif name == "cost":
            bench_cost(noprof, args)
        elif name.endswith("-bpf"):
            bench_bpf_load(noprof, name, args)
        else:
            bench_load(binary, name, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
