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
import select
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.dirname(os.path.abspath(__file__))
GOTRACE = os.path.join(ROOT, "gotrace")
OUT = os.path.join(BENCH, ".output")


def newest_go():
    if os.environ.get("GO"):
        return os.environ["GO"]
    r = subprocess.run([os.path.join(ROOT, "tools", "go-toolchains.sh")], capture_output=True,
                       text=True, check=True)
    minor, goroot = sorted((int(l.split()[0]), l.split()[1]) for l in r.stdout.split("\n")
                           if l.strip())[-1]
    return os.path.join(goroot, "bin", "go")


def go_build(go, out, target, cwd):
    goroot = os.path.dirname(os.path.dirname(go))
    env = dict(os.environ, GOROOT=goroot, GOTOOLCHAIN="local", GOFLAGS="-mod=mod",
               GOPROXY="off", CGO_ENABLED="0")
    env.setdefault("GOCACHE", os.path.join(os.path.expanduser("~"), ".cache", "gotrace",
                                           "gocache", "bench"))
    subprocess.run([go, "build", "-buildvcs=false", "-ldflags=-s -w", "-o", out, target],
                   cwd=cwd, env=env, check=True)
    return subprocess.run([go, "version"], capture_output=True, text=True,
                          env=env).stdout.split()[2]


def sigint_dfl():
    """Children stop on SIGINT even when this script was started with it ignored (&)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_line(proc, stream, pattern, timeout=60):
    """Read STREAM of PROC until a line matches PATTERN; returns the text read."""
    buf, deadline = b"", time.monotonic() + timeout
    while not re.search(pattern, buf.decode(errors="replace")):
        r, _, _ = select.select([stream], [], [], max(0, deadline - time.monotonic()))
        chunk = os.read(stream.fileno(), 4096) if r else b""
        if not chunk:
            proc.kill()
            raise SystemExit("bench: %s did not say %r: %s" % (proc.args[0], pattern,
                                                                buf.decode()[-2000:]))
        buf += chunk
    return buf.decode(errors="replace")


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
    g = Popen([GOTRACE, "trace", "-p", str(pid), "--json", *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=sigint_dfl)
    g.err = wait_line(g, g.stderr, r"tracing goroutine lifecycle")
    return g


def gotrace_stop(g):
    """Stop it; returns (report, stderr). g.cpu_s: its CPU time (user + system)."""
    g.send_signal(signal.SIGINT)
    out, err = g.communicate(timeout=60)
    if g.returncode:
        raise SystemExit("bench: gotrace trace failed: %s%s" % (g.err, err.decode()))
    g.cpu_s = g.ru.ru_utime + g.ru.ru_stime if getattr(g, "ru", None) else None
    return json.loads(out.decode().strip().splitlines()[-1]), g.err + err.decode()


def proc_cpu(pid):
    """CPU seconds (user + system) of process PID so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Popen(subprocess.Popen):
    """Popen that keeps the child's resource usage (wait4) when reaping it."""

    def _try_wait(self, wait_flags):
        try:
            pid, sts, self.ru = os.wait4(self.pid, wait_flags)
        except ChildProcessError:
            pid, sts = self.pid, 0
        return pid, sts


def bpftrace_start(binary, offsets):
    probes = ",".join("uprobe:%s:%#x" % (binary, o) for o in offsets)
    b = subprocess.Popen(["bpftrace", "--unsafe", "-e", probes + " { @ = count(); }"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=sigint_dfl)
    wait_line(b, b.stdout, r"Attaching \d+ probe")
    time.sleep(0.3)  # "Attaching" comes before the attach itself
    return b


def bpftrace_stop(b):
    b.send_signal(signal.SIGINT)
    try:
        out, err = b.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        st = open("/proc/%d/status" % b.pid).read()
        stack = subprocess.run(["cat", "/proc/%d/stack" % b.pid], capture_output=True,
                               text=True).stdout
        b.kill()
        b.communicate()
        raise SystemExit("bench: bpftrace did not stop: %s\n%s" % (st, stack))
    m = re.search(r"@: (\d+)", out.decode())
    if not m:
        raise SystemExit("bench: no count from bpftrace: %s %s" % (out.decode(), err.decode()))
    return int(m.group(1))


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
    """(untraced goroutines/s, [kept ratio per round], [gotrace avg cost %], [governor])."""
    def rate():
        """(goroutines per second, goroutines per CPU-second of the target)."""
        n, cpu, wall = drv.cmd("churn %g" % args.phase)
        return n / (wall / 1e9), n / (cpu / 1e9)
    base, kept, kept_cpu, cost, gov, own = [rate()], [], [], [], [], []
    for _ in range(args.rounds):
        g = gotrace_start(drv.pid)
        c0, t0 = proc_cpu(g.pid), time.monotonic()
        r = rate()
        own.append(100 * (proc_cpu(g.pid) - c0) / (time.monotonic() - t0))
        rep, _ = gotrace_stop(g)
        after = rate()
        kept.append(r[0] / ((base[-1][0] + after[0]) / 2))
        kept_cpu.append(r[1] / ((base[-1][1] + after[1]) / 2))
        base.append(after)
        cost.append(rep["governor"]["avg_cost_pct"])
        gov.append(rep["governor"]["state"])
    return statistics.median(b[0] for b in base), kept, kept_cpu, cost, gov, own


def scenario(binary, args):
    """The lifecycle test scenario: /run + /release cycles per second, traced vs untraced."""
    p = subprocess.Popen([binary], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, port, pid = p.stdout.readline().split()
        port, pid = int(port), int(pid)

        def get(path):
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                        timeout=60) as r:
                return r.read().decode()

        def rate():
            k, t0 = 0, time.monotonic()
            while time.monotonic() - t0 < args.phase:
                get("/run?a=500&b=50&c=50&rate=0")
                get("/release")
                k += 1
            return k / (time.monotonic() - t0)
        base, kept, cost = [rate()], [], []
        for _ in range(args.rounds):
            g = gotrace_start(pid)
            r = rate()
            rep, _ = gotrace_stop(g)
            after = rate()
            kept.append(r / ((base[-1] + after) / 2))
            base.append(after)
            cost.append(rep["governor"]["avg_cost_pct"])
        return statistics.median(base), kept, cost
    finally:
        p.kill()
        p.wait()


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
    if not os.access(GOTRACE, os.X_OK):
        raise SystemExit("bench: build gotrace first (make)")
    os.makedirs(OUT, exist_ok=True)
    go = newest_go()
    binary = os.path.join(OUT, "lifecycle_cost")
    ver = go_build(go, binary, "lifecycle_cost.go", BENCH)
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
            base, kept, kept_cpu, cost, gov, own = churn(drv, args)
            print("\n(b) goroutine churn, every P, default budget: untraced %.0f goroutines/s"
                  % base)
            print("    throughput kept %.1f%% (median; rounds %s)" % (
                100 * statistics.median(kept), " ".join("%.1f" % (100 * k) for k in kept)))
            print("    goroutines per CPU-second of the target kept %.1f%% (rounds %s)" % (
                100 * statistics.median(kept_cpu),
                " ".join("%.1f" % (100 * k) for k in kept_cpu)))
            print("    gotrace's estimate of its cost %s%% of a CPU; gotrace's own CPU while "
                  "tracing %s%%" % (" ".join("%.2f" % c for c in cost),
                                    " ".join("%.1f" % c for c in own)))
            print("    governor: %s" % gov[-1])
    finally:
        drv.close()
    if "scenario" in only:
        sbin = os.path.join(OUT, "lifecycle-scenario")
        go_build(go, sbin, ".", os.path.join(ROOT, "tests", "scenarios", "lifecycle"))
        base, kept, cost = scenario(sbin, args)
        print("\n    lifecycle scenario (/run?a=500&b=50&c=50 + /release, 700 goroutines "
              "each): untraced %.1f cycles/s" % base)
        print("    kept %.1f%% (median; rounds %s), gotrace's estimate %s%% of a CPU" % (
            100 * statistics.median(kept), " ".join("%.1f" % (100 * k) for k in kept),
            " ".join("%.2f" % c for c in cost)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
