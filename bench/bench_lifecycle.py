#!/usr/bin/python3
"""Cost of `gotrace trace` (goroutine lifecycle probes) on its targets.

(a) Per-hit cost of each lifecycle probe site, gotrace against bpftrace merely counting
    hits of a uprobe at the same file offset. bench/lifecycle_cost.go runs N iterations of
    `go f(); <-ch` on one P: each calls runtime.newproc1, gopark, ready and goexit1 exactly
    once. Cost per hit = (process CPU time traced - untraced) / hits, one probe attached at
    a time, with no budget (--budget none). CPU time, not wall time: other load on the
    machine does not inflate it, and the kernel's uprobe work is system time of the target.
(b) Throughput kept under the default budget: goroutine churn (lifecycle_cost.go, every P)
    and the lifecycle test scenario (/run + /release cycles), traced phases divided by the
    mean of the untraced phases around them.

Go binaries are built stripped and non-PIE with the newest cached toolchain (or GO=): a
stripped binary makes bpftrace 0.17 take the address as a file offset (--unsafe).

Usage: bench/bench_lifecycle.py [--iters N] [--reps R] [--phase S] [--rounds R] [--no-bpftrace]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

from common import (BENCH, GOTRACE, OUT, Target, alternate, bpftrace_start, bpftrace_stop,
                    build_scenario, go_build, kept, need_gotrace, percents, proc_cpu, start, stop)


class Driver:
    """bench/lifecycle_cost.go, driven over its stdin."""

    def __init__(self, binary):
        self.p = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline().split()
        if not line or line[0] != "ready":
            raise SystemExit("bench: %s did not start" % binary)
        self.pid = int(line[1])

    def cmd(self, what):
        self.p.stdin.write(what + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        m = re.match(r"\w+ n=(\d+) cpu_ns=(\d+) wall_ns=(\d+)", line)
        if not m:
            raise SystemExit("bench: %r: %r %s" % (what, line, self.p.stderr.read()))
        return tuple(int(x) for x in m.groups())

    def close(self):
        if self.p.poll() is None:
            self.p.stdin.write("quit\n")
            self.p.stdin.close()
            self.p.wait(timeout=10)
        err = self.p.stderr.read()
        if self.p.returncode or re.search(r"fatal error|panic:|SIG", err):
            raise SystemExit("bench: the target crashed (exit %s): %s" % (self.p.returncode,
                                                                        err[-2000:]))


def gotrace_start(pid, *args):
    return start([GOTRACE, "trace", "-p", str(pid), "--json", *args],
                 r"tracing goroutine lifecycle")


def gotrace_stop(g):
    """Stop it; returns (report, stderr)."""
    out, err = stop(g)
    return json.loads(out.strip().splitlines()[-1]), err


def sites(binary, drv):
    """[(name, gotrace args, file offsets)] of the lifecycle probe sites."""
    doc = json.loads(subprocess.run([GOTRACE, "inspect", binary, "--json"], check=True,
                                    capture_output=True, text=True).stdout)
    by = {p["role"]: p for p in doc["probes"] if p.get("present")}
    np1 = by["newproc1"]
    out = [("newproc1 RET", ["-P", "newproc1", "--create-at", "ret"],
            [np1["file_offset"] + r for r in np1["ret_offsets"]])]
    # The default creation site: gotrace -v names its file offset.
    g = gotrace_start(drv.pid, "-v", "-P", "newproc1")
    _, err = gotrace_stop(g)
    m = re.search(r"creations at (\S+) \(([^,]+), (\S+); file offset (0x[0-9a-f]+)\)", err)
    if m:
        out.append(("newproc1 %s (%s)" % (m.group(2), m.group(3)), ["-P", "newproc1"],
                    [int(m.group(4), 16)]))
    for role in ("goexit1", "gopark", "ready"):
        p = by[role]
        out.append(("%s after-prologue (%s)" % (role, p["attach_insn"]), ["-P", role],
                    [p["file_offset"] + p["attach_offset"]]))
    return out


def per_hit(binary, drv, args):
    """Rows (site, untraced ns/iter, gotrace ns/hit, bpftrace ns/hit, hits ok)."""
    n = args.iters
    drv.cmd("cycle %d" % n)  # warm-up
    rows = []
    for name, gargs, offs in sites(binary, drv):
        base, got, bpt = [], [], []
        for _ in range(args.reps):
            base.append(drv.cmd("cycle %d" % n)[1] / n)
            g = gotrace_start(drv.pid, "--budget", "none", *gargs)
            cpu = drv.cmd("cycle %d" % n)[1]
            rep, _ = gotrace_stop(g)
            hits = sum(p["hits"] for p in rep["probes"])
            if not n <= hits <= n * 1.01 + 10:
                raise SystemExit("bench: %s: gotrace counted %d hits for %d iterations"
                                 % (name, hits, n))
            got.append((cpu / n - statistics.median(base)) * n / hits)
            if args.no_bpftrace:
                continue
            base.append(drv.cmd("cycle %d" % n)[1] / n)
            b = bpftrace_start(binary, offs)
            cpu = drv.cmd("cycle %d" % n)[1]
            hits = bpftrace_stop(b)
            if not n <= hits <= n * 1.01 + 10:
                raise SystemExit("bench: %s: bpftrace counted %d hits for %d iterations"
                                 % (name, hits, n))
            bpt.append((cpu / n - statistics.median(base)) * n / hits)
        rows.append((name, statistics.median(base), statistics.median(got),
                     statistics.median(bpt) if bpt else None, got, bpt))
    return rows


def churn(drv, args):
    """(untraced goroutines/s, [kept ratio per round], [the same per target CPU-second],
    [gotrace avg cost %], [governor state], [gotrace's own CPU %])."""
    def rate():
        """(goroutines per second, goroutines per CPU-second of the target)."""
        n, cpu, wall = drv.cmd("churn %g" % args.phase)
        return n / (wall / 1e9), n / (cpu / 1e9)
    own = []

    def traced():
        g = gotrace_start(drv.pid)
        c0, t0 = proc_cpu(g.pid), time.monotonic()
        r = rate()
        own.append(100 * (proc_cpu(g.pid) - c0) / (time.monotonic() - t0))
        rep, _ = gotrace_stop(g)
        return r, rep["governor"]
    base, rates, gov = alternate(rate, [traced] * args.rounds)
    return (statistics.median(b[0] for b in base),
            kept([b[0] for b in base], [r[0] for r in rates]),
            kept([b[1] for b in base], [r[1] for r in rates]),
            [g["avg_cost_pct"] for g in gov], [g["state"] for g in gov], own)


def scenario(binary, args):
    """The lifecycle test scenario: /run + /release cycles per second, traced vs untraced."""
    t = Target(binary)
    try:
        def rate():
            k, t0 = 0, time.monotonic()
            while time.monotonic() - t0 < args.phase:
                t.get("/run?a=500&b=50&c=50&rate=0")
                t.get("/release")
                k += 1
            return k / (time.monotonic() - t0)

        def traced():
            g = gotrace_start(t.pid)
            r = rate()
            rep, _ = gotrace_stop(g)
            return r, rep["governor"]["avg_cost_pct"]
        base, rates, cost = alternate(rate, [traced] * args.rounds)
        return statistics.median(base), kept(base, rates), cost
    finally:
        t.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iters", type=int, default=100000, help="cycles per timed run")
    ap.add_argument("--reps", type=int, default=3, help="timed runs per site and tool")
    ap.add_argument("--phase", type=float, default=3, help="seconds per throughput phase")
    ap.add_argument("--rounds", type=int, default=3, help="traced phases per workload")
    ap.add_argument("--no-bpftrace", action="store_true")
    ap.add_argument("--only", default="cost,churn,scenario")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root (BPF)")
    need_gotrace()
    binary = os.path.join(OUT, "lifecycle_cost")
    ver = go_build(BENCH, binary, "lifecycle_cost.go").split()[2]
    print("%s, kernel %s, %d cores, load average %s" % (
        ver, os.uname().release, os.cpu_count(),
        " ".join(open("/proc/loadavg").read().split()[:3])))
    only = args.only.split(",")
    drv = Driver(binary)
    try:
        if "cost" in only:
            print("\n(a) CPU cost per hit, one probe at a time, %d cycles x %d runs (medians)"
                  % (args.iters, args.reps))
            print("%-44s %10s %12s %12s %6s" % ("SITE", "NS/CYCLE", "GOTRACE", "BPFTRACE",
                                                "RATIO"))
            for name, base, g, b, ga, ba in per_hit(binary, drv, args):
                print("%-44s %10.0f %9.0f ns %9s ns %6s   [%s | %s]" % (
                    name, base, g, "%.0f" % b if b else "-", "%.2f" % (g / b) if b else "-",
                    " ".join("%.0f" % x for x in ga), " ".join("%.0f" % x for x in ba)))
        if "churn" in only:
            base, ratios, ratios_cpu, cost, gov, own = churn(drv, args)
            print("\n(b) goroutine churn, every P, default budget: untraced %.0f goroutines/s"
                  % base)
            print("    throughput kept %.1f%% (median; rounds %s)" % (
                100 * statistics.median(ratios), percents(ratios)))
            print("    goroutines per CPU-second of the target kept %.1f%% (rounds %s)" % (
                100 * statistics.median(ratios_cpu), percents(ratios_cpu)))
            print("    gotrace's estimate of its cost %s%% of a CPU; gotrace's own CPU while "
                  "tracing %s%%" % (" ".join("%.2f" % c for c in cost),
                                    " ".join("%.1f" % c for c in own)))
            print("    governor: %s" % gov[-1])
    finally:
        drv.close()
    if "scenario" in only:
        sbin, _ = build_scenario("lifecycle")
        base, ratios, cost = scenario(sbin, args)
        print("\n    lifecycle scenario (/run?a=500&b=50&c=50 + /release, 700 goroutines "
              "each): untraced %.1f cycles/s" % base)
        print("    kept %.1f%% (median; rounds %s), gotrace's estimate %s%% of a CPU" % (
            100 * statistics.median(ratios), percents(ratios),
            " ".join("%.2f" % c for c in cost)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
