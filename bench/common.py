# SPDX-License-Identifier: MIT
"""What the bench_*.py scripts share: building Go programs with the newest cached toolchain,
the scenario processes they measure, wrk and the programs' own counters, alternating
untraced and traced phases, and starting and stopping gotrace or bpftrace with SIGINT."""
import json
import os
import re
import select
import signal
import statistics
import subprocess
import time
import urllib.request

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
GOTRACE = os.path.join(ROOT, "gotrace")
OUT = os.path.join(BENCH, ".output")


def need_gotrace():
    if not os.access(GOTRACE, os.X_OK):
        raise SystemExit("bench: build gotrace first (make)")


# ---------------------------------------------------------------- building

def newest_go():
    """GO=, else the go of the newest toolchain cached by tools/go-toolchains.sh."""
    if os.environ.get("GO"):
        return os.environ["GO"]
    r = subprocess.run([os.path.join(ROOT, "tools", "go-toolchains.sh")], capture_output=True,
                       text=True, check=True)
    _, goroot = max((int(l.split()[0]), l.split()[1]) for l in r.stdout.splitlines()
                    if l.strip())
    return os.path.join(goroot, "bin", "go")


def go_build(cwd, out, target=".", tags=()):
    """Build TARGET (in CWD) stripped into OUT; return the toolchain's `go version` line."""
    go = newest_go()
    goroot = os.path.dirname(os.path.dirname(go))
    env = dict(os.environ, GOROOT=goroot, GOTOOLCHAIN="local", GOFLAGS="-mod=mod",
               GOPROXY="off", CGO_ENABLED="0")
    # The tests' build cache of the same toolchain (~/.cache/gotrace/gocache/1.N).
    env.setdefault("GOCACHE", os.path.join(os.path.expanduser("~"), ".cache", "gotrace",
                                           "gocache", os.path.basename(goroot)[len("go-"):]))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tagargs = ["-tags", ",".join(tags)] if tags else []
    subprocess.run([go, "build", "-buildvcs=false", *tagargs, "-ldflags=-s -w", "-o", out,
                    target], cwd=cwd, env=env, check=True)
    return subprocess.run([go, "version"], capture_output=True, text=True,
                          env=env).stdout.strip()


def build_scenario(name, tags=()):
    """Build tests/scenarios/NAME into .output/NAME-scenario[-TAG...]; return (path,
    `go version` line)."""
    out = os.path.join(OUT, "%s-scenario%s" % (name, "".join("-" + t for t in tags)))
    return out, go_build(os.path.join(ROOT, "tests", "scenarios", name), out, tags=tags)


# ---------------------------------------------------------------- the measured program

def proc_cpu(pid):
    """CPU seconds (user + system) of process PID so far: a uprobe's trap is system time."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Target:
    """A scenario process, BINARY ARGS, once it printed "ready PORT PID"."""

    def __init__(self, binary, *args):
        self.p = subprocess.Popen([binary, *args], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True)
        line = self.p.stdout.readline().split()
        if not line or line[0] != "ready":
            self.close()
            raise SystemExit("bench: %s %s did not start" % (binary, " ".join(args)))
        self.port, self.pid = int(line[1]), int(line[2])

    def get(self, path):
        """The body of http://127.0.0.1:PORT/PATH."""
        url = "http://127.0.0.1:%d%s" % (self.port, path)
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.read().decode()

    def json(self, path):
        return json.loads(self.get(path))

    def cpu_s(self):
        return proc_cpu(self.pid)

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


def wrk_rate(t, seconds, path="/hello"):
    """Requests per second of wrk -t1 -c32 against PATH of target T for SECONDS."""
    r = subprocess.run(["wrk", "-t1", "-c32", "-d%ds" % seconds,
                        "http://127.0.0.1:%d%s" % (t.port, path)],
                       capture_output=True, text=True, timeout=seconds + 30)
    m = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
    if not m:
        raise SystemExit("bench: cannot read wrk's output: %s %s" % (r.stdout, r.stderr))
    return float(m.group(1))


def counter_rate(read, seconds):
    """How fast the counter READ() advances per second over SECONDS."""
    a, t0 = read(), time.monotonic()
    time.sleep(seconds)
    b, t1 = read(), time.monotonic()
    return (b - a) / (t1 - t0)


# ---------------------------------------------------------------- untraced vs traced

def alternate(untraced, traced):
    """UNTRACED(), then each phase of TRACED followed by UNTRACED() again, so that every
    traced phase lies between two untraced ones. UNTRACED() returns a rate, each traced
    phase (rate, anything). Returns (untraced rates, traced rates, the anythings)."""
    base, rates, results = [untraced()], [], []
    for phase in traced:
        rate, result = phase()
        rates.append(rate)
        results.append(result)
        base.append(untraced())
    return base, rates, results


def kept(base, rates):
    """Each traced rate divided by the mean of the untraced rates before and after it."""
    return [r / ((a + b) / 2) for r, a, b in zip(rates, base, base[1:])]


def percents(ratios):
    return " ".join("%.1f" % (100 * x) for x in ratios)


def kept_note(ratios):
    """'97.2% kept  [96.1 97.2 99.0]': the median ratio, then each."""
    return "%5.1f%% kept  [%s]" % (100 * statistics.median(ratios), percents(ratios))


# ---------------------------------------------------------------- tracers

def sigint_dfl():
    """Children stop on SIGINT even when this script was started with it ignored (&)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_line(proc, stream, pattern, timeout=60):
    """Read STREAM of PROC until what it said matches PATTERN; return the text read."""
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


def start(cmd, ready, stream="stderr"):
    """CMD in the background, once its STREAM ("stdout" or "stderr") matches READY."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         preexec_fn=sigint_dfl)
    p.said = (stream, wait_line(p, getattr(p, stream), ready))
    return p


def stop(p, timeout=60, again=None):
    """Stop P (from start()) with SIGINT, sent again every AGAIN seconds if given; return its
    (stdout, stderr), whole."""
    deadline = time.monotonic() + timeout
    while True:
        p.send_signal(signal.SIGINT)
        wait = max(0, deadline - time.monotonic())
        try:
            out, err = p.communicate(timeout=min(wait, again or wait))
            break
        except subprocess.TimeoutExpired:
            if time.monotonic() < deadline:
                continue
            with open("/proc/%d/stack" % p.pid) as f:
                stack = f.read()
            p.kill()
            p.communicate()
            raise SystemExit("bench: %s did not stop:\n%s" % (p.args[0], stack))
    out, err = out.decode(errors="replace"), err.decode(errors="replace")
    if p.said[0] == "stdout":
        out = p.said[1] + out
    else:
        err = p.said[1] + err
    if p.returncode:
        raise SystemExit("bench: %s failed (exit %d): %s" % (p.args[0], p.returncode,
                                                            err[-2000:]))
    return out, err


def bpftrace_start(binary, offsets):
    """bpftrace counting hits of uprobes at the file OFFSETS of BINARY, attached."""
    probes = ",".join("uprobe:%s:%#x" % (binary, o) for o in offsets)
    # BEGIN runs once every probe is attached ("Attaching N probes" comes before).
    return start(["bpftrace", "--unsafe", "-e",
                  probes + ' { @ = count(); } BEGIN { printf("bench: attached\\n"); }'],
                 r"bench: attached", "stdout")


def bpftrace_stop(b):
    """Stop bpftrace from bpftrace_start(); return its count of hits. bpftrace 0.17 now and
    then takes a SIGINT and still waits for events: it gets another every 2 s."""
    out, err = stop(b, again=2)
    m = re.search(r"@: (\d+)", out)
    if not m:
        raise SystemExit("bench: no count from bpftrace: %s %s" % (out, err))
    return int(m.group(1))
