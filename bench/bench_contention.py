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
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENARIO = os.path.join(ROOT, "tests", "scenarios", "contention")
GOTRACE = os.path.join(ROOT, "gotrace")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".output")

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


def newest_go():
    if os.environ.get("GO"):
        return os.environ["GO"]
    r = subprocess.run([os.path.join(ROOT, "tools", "go-toolchains.sh")], capture_output=True,
                       text=True, check=True)
    minor, goroot = sorted((int(l.split()[0]), l.split()[1]) for l in r.stdout.split("\n")
                           if l.strip())[-1]
    return os.path.join(goroot, "bin", "go")


def build():
    go = newest_go()
    goroot = os.path.dirname(os.path.dirname(go))
    os.makedirs(OUT, exist_ok=True)
    out = os.path.join(OUT, "contention-scenario")
    env = dict(os.environ, GOROOT=goroot, GOTOOLCHAIN="local", GOFLAGS="-mod=mod",
               GOPROXY="off", CGO_ENABLED="0")
    if "GOCACHE" not in env:
        env["GOCACHE"] = os.path.join(os.path.expanduser("~"), ".cache", "gotrace", "gocache",
                                      os.path.basename(goroot).replace("go-", ""))
    subprocess.run([go, "build", "-buildvcs=false", "-ldflags=-s -w", "-o", out, "."],
                   cwd=SCENARIO, env=env, check=True)
    ver = subprocess.run([go, "version"], capture_output=True, text=True, env=env).stdout.strip()
    return out, ver


def get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=20) as r:
        return r.read().decode()


def sigint_dfl():
    """Children stop on SIGINT even when this script was started with it ignored (&)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Target:
    def __init__(self, binary, mode):
        self.p = subprocess.Popen([binary, "-mode", mode, "-blockrate", "0", "-mutexfrac", "0"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.p.stdout.readline().split()
        if not line or line[0] != "ready":
            self.close()
            raise SystemExit("bench: %s -mode %s did not start" % (binary, mode))
        self.port, self.pid = int(line[1]), int(line[2])

    def cpu_s(self):
        """CPU seconds (user + system) the target used so far."""
        with open("/proc/%d/stat" % self.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def ops(self):
        return int(get(self.port, "/ops"))

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


def ops_rate(t, seconds):
    """Operations per second of the target over SECONDS (its own counter)."""
    a, t0 = t.ops(), time.monotonic()
    time.sleep(seconds)
    b, t1 = t.ops(), time.monotonic()
    return (b - a) / (t1 - t0)


def wrk_rate(t, seconds):
    r = subprocess.run(["wrk", "-t1", "-c32", "-d%ds" % seconds,
                        "http://127.0.0.1:%d/hello" % t.port],
                       capture_output=True, text=True, timeout=seconds + 30)
    m = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
    if not m:
        raise SystemExit("bench: cannot read wrk's output: %s %s" % (r.stdout, r.stderr))
    return float(m.group(1))


def start_gotrace(pid, args, hz):
    g = subprocess.Popen([GOTRACE, "contention", "-p", str(pid), "-d", "3600", "--hz", str(hz),
                          "--json", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, preexec_fn=sigint_dfl)
    # Past gotrace's start-up (and the probes' attach), into its window.
    line = g.stderr.readline()
    if not re.search(r"gotrace: (sampling|tracing)", line):
        g.kill()
        raise SystemExit("bench: gotrace did not start: %s%s" % (line, g.stderr.read()))
    return g


def stop_gotrace(g):
    g.send_signal(signal.SIGINT)
    out, err = g.communicate(timeout=120)
    if g.returncode != 0:
        raise SystemExit("bench: gotrace failed: %s" % err)
    return json.loads(out)


def phase(t, kind, seconds, measure, hz):
    """Throughput during one phase; KIND: base, a KINDS key. Returns (rate, report)."""
    g = None
    if kind not in ("base", "goprofile"):
        g = start_gotrace(t.pid, KINDS[kind], hz)
    elif kind == "goprofile":
        get(t.port, "/setrate?block=1&mutex=1")
    try:
        rate = measure(t, seconds)
    finally:
        if kind == "goprofile":
            get(t.port, "/setrate?block=0&mutex=0")
    return rate, stop_gotrace(g) if g else None


def bench(binary, mode, measure, args):
    t = Target(binary, mode)
    try:
        time.sleep(1)
        ratios = {k: [] for k in args.kinds}
        reps = {k: [] for k in args.kinds}
        base = [phase(t, "base", args.phase, measure, args.hz)[0]]
        for _ in range(args.rounds):
            for kind in args.kinds:
                rate, rep = phase(t, kind, args.phase, measure, args.hz)
                after = phase(t, "base", args.phase, measure, args.hz)[0]
                ratios[kind].append(rate / ((base[-1] + after) / 2))
                base.append(after)
                if rep:
                    reps[kind].append(rep)
        return base, ratios, reps
    finally:
        t.close()


def cpu_per_op(t, seconds):
    """(target CPU seconds per operation, operations) over SECONDS."""
    c0, o0 = t.cpu_s(), t.ops()
    time.sleep(seconds)
    c1, o1 = t.cpu_s(), t.ops()
    return (c1 - c0) / max(1, o1 - o0), o1 - o0


def probe_offsets(binary):
    """File offsets of the two instructions the exact mode probes."""
    d = json.loads(subprocess.run([GOTRACE, "inspect", binary, "--json"], capture_output=True,
                                  text=True, check=True).stdout)
    return {p["role"]: p["file_offset"] + p["attach_offset"] for p in d["probes"]
            if p["role"] in ("gopark", "ready") and p["present"]}


def bpftrace_phase(t, binary, offsets, seconds):
    """bpftrace counting hits at OFFSETS: (CPU per op, ops, hits)."""
    probes = ",".join("uprobe:%s:%#x" % (binary, o) for o in offsets.values())
    b = subprocess.Popen(["bpftrace", "--unsafe", "-e", probes + " { @ = count(); }"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=sigint_dfl)
    line = b.stdout.readline()
    if "Attaching" not in line:
        b.kill()
        raise SystemExit("bench: bpftrace did not attach: %s %s" % (line, b.stderr.read()))
    time.sleep(0.5)  # "Attaching" comes before the attach itself
    per_op, ops = cpu_per_op(t, seconds)
    b.send_signal(signal.SIGINT)
    out, err = b.communicate(timeout=60)
    m = re.search(r"@: (\d+)", out)
    if not m:
        raise SystemExit("bench: no count from bpftrace: %s %s" % (out, err))
    return per_op, ops, int(m.group(1))


def cost_per_hit(binary, args):
    """Exact mode (--budget none) and bpftrace, each against the untraced ping-pong."""
    t = Target(binary, "pingpong")
    offsets = probe_offsets(binary)
    rows = {"gotrace": [], "bpftrace": []}
    try:
        time.sleep(1)
        for _ in range(args.rounds):
            base, _ = cpu_per_op(t, args.phase)
            g = start_gotrace(t.pid, KINDS["exact-none"], args.hz)
            c0, o0, t0 = t.cpu_s(), t.ops(), time.monotonic()
            time.sleep(args.phase)
            c1, o1, t1 = t.cpu_s(), t.ops(), time.monotonic()
            rep = stop_gotrace(g)
            # Hits over the whole gotrace run, ops over the measured part: hits per op.
            hits = sum(p["hits"] for p in rep["exact"]["probes"])
            per_op = (c1 - c0) / max(1, o1 - o0)
            hits_per_op = hits / (rep["duration_ns"] / 1e9) / ((o1 - o0) / (t1 - t0))
            rows["gotrace"].append(((per_op - base) / hits_per_op,
                                    [p["cost_ns"] for p in rep["exact"]["probes"]]))
            if not args.no_bpftrace:
                base2, _ = cpu_per_op(t, args.phase)
                bp_per_op, ops, hits = bpftrace_phase(t, binary, offsets, args.phase)
                # bpftrace's count covers a little more than the measured part.
                rows["bpftrace"].append(((bp_per_op - base2) / (hits / max(1, ops)), None))
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
    if not os.access(GOTRACE, os.X_OK):
        raise SystemExit("bench: build gotrace first (make)")
    binary, ver = build()
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
            print("          %-46s %5.1f%% kept  [%s]%s" %
                  (LABELS[kind], 100 * statistics.median(ratios[kind]),
                   " ".join("%.1f" % (100 * x) for x in ratios[kind]), extra))
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
