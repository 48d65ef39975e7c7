#!/usr/bin/python3
"""Throughput kept by a Go program while `gotrace contention` samples it, against the same
program with Go's own block profile at rate 1 (and the mutex profile at fraction 1), in one
run: the same process alternates untraced, traced and profiled phases, and each phase's
throughput is divided by the mean of the untraced phases around it.

Loads (tests/scenarios/contention, built stripped by the newest cached toolchain, or GO=):
  pingpong  two goroutines bouncing a value over an unbuffered channel (round trips/s)
  http      a net/http server under wrk on 127.0.0.1 (requests/s)

Usage: bench/bench_contention.py [--phase S] [--rounds N] [--hz N] [--loads pingpong,http]
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
SCENARIO = os.path.join(ROOT, "tests", "scenarios", "contention")
GOTRACE = os.path.join(ROOT, "gotrace")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".output")


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


class Target:
    def __init__(self, binary, mode):
        self.p = subprocess.Popen([binary, "-mode", mode, "-blockrate", "0", "-mutexfrac", "0"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.p.stdout.readline().split()
        if not line or line[0] != "ready":
            self.close()
            raise SystemExit("bench: %s -mode %s did not start" % (binary, mode))
        self.port, self.pid = int(line[1]), int(line[2])

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


def ops_rate(t, seconds):
    """Operations per second of the target over SECONDS (its own counter)."""
    a, t0 = int(get(t.port, "/ops")), time.monotonic()
    time.sleep(seconds)
    b, t1 = int(get(t.port, "/ops")), time.monotonic()
    return (b - a) / (t1 - t0)


def wrk_rate(t, seconds):
    r = subprocess.run(["wrk", "-t1", "-c32", "-d%ds" % seconds,
                        "http://127.0.0.1:%d/hello" % t.port],
                       capture_output=True, text=True, timeout=seconds + 30)
    m = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
    if not m:
        raise SystemExit("bench: cannot read wrk's output: %s %s" % (r.stdout, r.stderr))
    return float(m.group(1))


def phase(t, kind, seconds, measure, hz):
    """Throughput during one phase; kind: base, gotrace or goprofile."""
    g = None
    if kind == "gotrace":
        g = subprocess.Popen([GOTRACE, "contention", "-p", str(t.pid), "-d", str(seconds + 1),
                              "--hz", str(hz), "--json"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        # Past gotrace's start-up, into its sampling window.
        line = g.stderr.readline()
        if "sampling" not in line:
            g.kill()
            raise SystemExit("bench: gotrace did not start sampling: %s%s" %
                             (line, g.stderr.read()))
    elif kind == "goprofile":
        get(t.port, "/setrate?block=1&mutex=1")
    try:
        rate = measure(t, seconds)
    finally:
        if kind == "goprofile":
            get(t.port, "/setrate?block=0&mutex=0")
    cost = None
    if g:
        out, err = g.communicate(timeout=seconds + 60)
        if g.returncode != 0:
            raise SystemExit("bench: gotrace failed: %s" % err)
        cost = json.loads(out)["cost"]
    return rate, cost


def bench(binary, mode, measure, args):
    t = Target(binary, mode)
    try:
        time.sleep(1)
        ratios = {"gotrace": [], "goprofile": []}
        costs = []
        base = [phase(t, "base", args.phase, measure, args.hz)[0]]
        for _ in range(args.rounds):
            for kind in ("gotrace", "goprofile"):
                rate, cost = phase(t, kind, args.phase, measure, args.hz)
                after = phase(t, "base", args.phase, measure, args.hz)[0]
                ratios[kind].append(rate / ((base[-1] + after) / 2))
                base.append(after)
                if cost:
                    costs.append(cost)
        return {
            "untraced": statistics.median(base),
            "gotrace": statistics.median(ratios["gotrace"]),
            "gotrace_all": ratios["gotrace"],
            "goprofile": statistics.median(ratios["goprofile"]),
            "goprofile_all": ratios["goprofile"],
            "gotrace_cpu_share": statistics.median(c["cpu_share"] for c in costs),
            "census_ms": statistics.median(c["census_ms_mean"] for c in costs),
        }
    finally:
        t.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--phase", type=int, default=5, help="seconds per phase (default 5)")
    ap.add_argument("--rounds", type=int, default=3, help="traced/profiled rounds (default 3)")
    ap.add_argument("--hz", type=int, default=100, help="gotrace's --hz (default 100)")
    ap.add_argument("--loads", default="pingpong,http")
    args = ap.parse_args()
    if not os.access(GOTRACE, os.X_OK):
        raise SystemExit("bench: build gotrace first (make)")
    binary, ver = build()
    print("%s, %d cores, %d s phases, %d rounds, gotrace --hz %d" %
          (ver, os.cpu_count(), args.phase, args.rounds, args.hz))
    loads = {"pingpong": ("pingpong", ops_rate, "round trips/s"),
             "http": ("http", wrk_rate, "requests/s (wrk -t1 -c32)")}
    for name in args.loads.split(","):
        mode, measure, unit = loads[name]
        r = bench(binary, mode, measure, args)
        print("%-9s untraced %10.0f %s" % (name, r["untraced"], unit))
        print("          gotrace contention (sampled): %5.1f%% kept  [%s]  gotrace CPU %.2f%% "
              "of one core, %.3f ms per census" %
              (100 * r["gotrace"], " ".join("%.1f" % (100 * x) for x in r["gotrace_all"]),
               100 * r["gotrace_cpu_share"], r["census_ms"]))
        print("          Go block+mutex profile rate 1:  %5.1f%% kept  [%s]" %
              (100 * r["goprofile"], " ".join("%.1f" % (100 * x) for x in r["goprofile_all"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
