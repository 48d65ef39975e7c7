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
Throughput: the same process alternates untraced and traced phases; each traced phase is
divided by the mean of the untraced phases around it. gotrace runs on the same 2 cores.

Usage: bench/bench_heap.py [--phase S] [--rounds N] [--stacks N] [--loads buckets,alloc,http]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENARIO = os.path.join(ROOT, "tests", "scenarios", "heap")
GOTRACE = os.path.join(ROOT, "gotrace")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".output")


def newest_go():
    if os.environ.get("GO"):
        return os.environ["GO"]
    r = subprocess.run([os.path.join(ROOT, "tools", "go-toolchains.sh")], capture_output=True,
                       text=True, check=True)
    _, goroot = sorted((int(l.split()[0]), l.split()[1]) for l in r.stdout.split("\n")
                       if l.strip())[-1]
    return os.path.join(goroot, "bin", "go")


def build():
    go = newest_go()
    goroot = os.path.dirname(os.path.dirname(go))
    os.makedirs(OUT, exist_ok=True)
    out = os.path.join(OUT, "heap-scenario")
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
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=60) as r:
        return r.read().decode()


class Target:
    def __init__(self, binary, *args):
        self.p = subprocess.Popen([binary, *args], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True)
        line = self.p.stdout.readline().split()
        if not line or line[0] != "ready":
            self.close()
            raise SystemExit("bench: %s %s did not start" % (binary, " ".join(args)))
        self.port, self.pid = int(line[1]), int(line[2])

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


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
    a, t0 = json.loads(get(t.port, "/memstats"))["ops"], time.monotonic()
    time.sleep(seconds)
    b, t1 = json.loads(get(t.port, "/memstats"))["ops"], time.monotonic()
    return (b - a) / (t1 - t0)


def wrk_rate(t, seconds):
    r = subprocess.run(["wrk", "-t1", "-c32", "-d%ds" % seconds,
                        "http://127.0.0.1:%d/work" % t.port],
                       capture_output=True, text=True, timeout=seconds + 30)
    m = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
    if not m:
        raise SystemExit("bench: cannot read wrk's output: %s %s" % (r.stdout, r.stderr))
    return float(m.group(1))


def phase(t, traced, seconds, measure):
    g = None
    if traced:
        g = subprocess.Popen([GOTRACE, "heap", "-p", str(t.pid), "-d", str(seconds + 1),
                              "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        time.sleep(0.5)  # past gotrace's start-up, into its watching
    rate = measure(t, seconds)
    if not g:
        return rate, None
    out, err = g.communicate(timeout=seconds + 60)
    if g.returncode != 0:
        raise SystemExit("bench: gotrace failed: %s" % err)
    rep = json.loads(out)
    return rate, (rep["cost"], rep["gc"]["cycles"], rep["duration_ns"])


def bench_load(binary, name, args):
    if name == "alloc":
        t, measure, unit = Target(binary, "-mode", "spin"), ops_rate, "requests/s"
    else:
        t, measure, unit = Target(binary, "-mode", "idle"), wrk_rate, "requests/s (wrk -t1 -c32)"
    try:
        time.sleep(1)
        base = [phase(t, False, args.phase, measure)[0]]
        ratios, costs = [], []
        for _ in range(args.rounds):
            rate, cost = phase(t, True, args.phase, measure)
            after = phase(t, False, args.phase, measure)[0]
            ratios.append(rate / ((base[-1] + after) / 2))
            base.append(after)
            costs.append(cost)
        cpu = statistics.median(c["cpu_ns"] / d for c, _, d in costs)
        print("%-9s untraced %10.0f %s" % (name, statistics.median(base), unit))
        print("          gotrace heap: %5.1f%% kept  [%s]  gotrace CPU %.2f%% of one core, "
              "%d GC cycles and %d walks per window" %
              (100 * statistics.median(ratios), " ".join("%.1f" % (100 * x) for x in ratios),
               100 * cpu, statistics.median(c for _, c, _ in costs),
               statistics.median(c["snapshots"] for c, _, _ in costs)))
    finally:
        t.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--phase", type=int, default=5, help="seconds per phase (default 5)")
    ap.add_argument("--rounds", type=int, default=3, help="traced rounds (default 3)")
    ap.add_argument("--stacks", type=int, default=50000, help="allocation stacks (50000)")
    ap.add_argument("--loads", default="buckets,alloc,http")
    args = ap.parse_args()
    if not os.access(GOTRACE, os.X_OK):
        raise SystemExit("bench: build gotrace first (make)")
    binary, ver = build()
    print("%s, %d cores, %d s phases, %d rounds" % (ver, os.cpu_count(), args.phase,
                                                    args.rounds))
    for name in args.loads.split(","):
        if name == "buckets":
            bench_buckets(binary, args)
        else:
            bench_load(binary, name, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
