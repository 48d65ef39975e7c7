"""`gotrace contention`: blocked time, scheduling latency and GC pauses of live Go programs.

The truth is the program's own: tests/scenarios/contention turns on Go's block profile at
rate 1 and serves it (/debug/pprof/block?debug=1) together with runtime/metrics'
/sched/latencies:seconds and /gc/pauses:seconds histograms and /sync/mutex/wait/total:seconds
(/metrics), and its goroutine profile (wait reasons). Each check reads the truth just after
gotrace says its sampling window began and just after it ended (histograms: before it began)
and compares the differences with gotrace's report. Scenario binaries are stripped (-s -w).

- blocked time per top blocking stack within 20% of the block profile, wait reasons as the
  goroutine profile shows them: 8 goroutines on one sync.Mutex (every toolchain, with the
  runtime's own mutex-wait total), a producer faster than its consumer, and readers on a
  sync.Mutex (newest and oldest toolchains);
- the same read-heavy load waits at least 5x less on a sync.RWMutex than on a sync.Mutex;
- GOMAXPROCS=1: p50/p99 scheduling latency within 20% of runtime/metrics over the window,
  and the GC pauses of a program calling runtime.GC();
- channel ping-pong and runtime.Gosched: the sites, reasons and lines gotrace reports;
- --pprof: a profile `go tool pprof -top` opens, with gotrace's totals;
- errors: one line and a non-zero exit.

Reading another process's memory needs root or ptrace rights (yama ptrace_scope 0):
without them these tests skip (a failure under CI=true).
"""
import contextlib
import hashlib
import json
import os
import re
import select
import signal
import subprocess
import tempfile
import time
import urllib.request

import pytest

import gobuild

SCENARIO = os.path.join(gobuild.ROOT, "tests", "scenarios", "contention")
NEW_OLD = sorted({max(gobuild.MINORS), min(gobuild.MINORS)})
WINDOW = "3"          # seconds of each gotrace window
WARMUP = 0.7          # seconds a load runs before it is measured
TOLERANCE = 0.20


def _ptrace_allowed():
    if os.geteuid() == 0:
        return True
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            return f.read().strip() == "0"
    except OSError:
        return True


pytestmark = pytest.mark.skipif(
    not _ptrace_allowed(),
    reason="gotrace reads the target's memory (process_vm_readv): run as root or with "
           "kernel.yama.ptrace_scope=0")


# ---------------------------------------------------------------- scenario builds

def _build(minor):
    """Build the scenario, stripped, with go1.MINOR; cached by sources and toolchain."""
    h = hashlib.sha256()
    for part in (gobuild.toolchains()[minor], gobuild.go_version(minor), "-s -w"):
        h.update(part.encode() + b"\0")
    for name in sorted(os.listdir(SCENARIO)):
        with open(os.path.join(SCENARIO, name), "rb") as f:
            h.update(name.encode() + b"\0" + hashlib.sha256(f.read()).digest())
    outdir = os.path.join(gobuild.CACHE, "scenarios", h.hexdigest()[:20])
    out = os.path.join(outdir, "contention-go1.%d-stripped" % minor)
    if os.path.exists(out):
        return out
    os.makedirs(outdir, exist_ok=True)
    tmp = "%s.tmp%d" % (out, os.getpid())
    gobuild.go(minor, "build", "-buildvcs=false", "-ldflags=-s -w", "-o", tmp, ".",
               cwd=SCENARIO, timeout=1200)
    os.rename(tmp, out)
    return out


@pytest.fixture(scope="session")
def scenario_bins(toolchain_map):
    """{minor: path} of the stripped scenario for every toolchain, built in parallel."""
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as ex:
        futs = {m: ex.submit(_build, m) for m in gobuild.MINORS}
        try:
            return {m: f.result() for m, f in futs.items()}
        except Exception as e:
            pytest.fail("building tests/scenarios/contention failed: %s" % e, pytrace=False)


def _markers():
    """{'mutex': line, ...} from the '// contention:NAME' comments of main.go."""
    out = {}
    with open(os.path.join(SCENARIO, "main.go")) as f:
        for i, line in enumerate(f, 1):
            m = re.search(r"// contention:(\w+)", line)
            if m:
                out[m.group(1)] = i
    return out


MARK = _markers()


# ---------------------------------------------------------------- truth and gotrace

def _get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=20) as r:
        return r.read().decode()


def block_profile(port):
    """{user stack key: delay ns} of Go's block profile (debug=1 text), keyed like _key()."""
    text = _get(port, "/debug/pprof/block?debug=1")
    m = re.search(r"cycles/second=([0-9.e+]+)", text)
    if not m:
        raise gobuild.GroundTruthError("block profile without cycles/second: %.300s" % text)
    cps = float(m.group(1))
    out, cur = {}, None
    for line in text.splitlines() + [""]:
        r = re.match(r"^(\d+) (\d+) @", line)
        if r or not line.startswith("#"):
            if cur:
                k = tuple(cur[1])
                out[k] = out.get(k, 0) + cur[0]
            cur = [int(r.group(1)) / cps * 1e9, []] if r else None
            continue
        f = re.match(r"^#\s+0x[0-9a-f]+\s+(\S+)\+0x[0-9a-f]+\s+\S+:(\d+)", line)
        if f and cur and f.group(1).startswith("main.") and ".gowrap" not in f.group(1):
            cur[1].append((f.group(1), int(f.group(2))))
    return out


def _key(stack):
    """The user frames (main.*, go-statement wrappers left out) of a gotrace stack."""
    return tuple((f["function"], f["line"]) for f in stack
                 if f["function"].startswith("main.") and ".gowrap" not in f["function"])


def metrics(port):
    return json.loads(_get(port, "/metrics"))


class Gotrace:
    """`gotrace contention -p PID -d SECONDS --json ARGS`, returned once its sampling window
    has begun (its "sampling" line on stderr): the truth is read around that window, not
    around gotrace's start-up, which competes with the target for the CPUs."""

    def __init__(self, pid, *args, seconds=WINDOW):
        self.proc = subprocess.Popen([gobuild.GOTRACE_BIN, "contention", "-p", str(pid), "-d",
                                      seconds, "--json", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.err = b""
        deadline = time.monotonic() + 30
        while b"gotrace: sampling" not in self.err:
            r, _, _ = select.select([self.proc.stderr], [], [],
                                    max(0, deadline - time.monotonic()))
            chunk = os.read(self.proc.stderr.fileno(), 4096) if r else b""
            if not chunk:
                self.proc.kill()
                out, err = self.proc.communicate(timeout=10)
                raise AssertionError("gotrace contention did not start sampling (exit %s): %s"
                                     % (self.proc.returncode, (self.err + err).decode()))
            self.err += chunk

    def finish(self, timeout=60):
        """Wait for the report; returns the parsed JSON."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise AssertionError("gotrace contention did not finish within %ds" % timeout)
        self.err += err
        assert self.proc.returncode == 0, "gotrace contention: exit %d: %s" % (
            self.proc.returncode, self.err.decode())
        return json.loads(out)


def run_gotrace(pid, *args, seconds=WINDOW):
    return Gotrace(pid, *args, seconds=seconds).finish()


def measured(port, pid, *args):
    """(report, block profile delta, scale): truth fetched around one gotrace window.

    scale = gotrace's window / the truth's window (fetch midpoints), to compare totals."""
    g = Gotrace(pid, *args)
    t = time.monotonic()
    b0 = block_profile(port)
    t0 = (t + time.monotonic()) / 2
    rep = g.finish()
    t = time.monotonic()
    b1 = block_profile(port)
    t1 = (t + time.monotonic()) / 2
    delta = {k: v - b0.get(k, 0) for k, v in b1.items()}
    return rep, delta, rep["duration_ns"] / 1e9 / (t1 - t0)


def by_key(rep):
    out = {}
    for s in rep["sites"]:
        k = _key(s["stack"])
        out[k] = out.get(k, 0) + s["total_ns"]
    return out


@contextlib.contextmanager
def start(binary, mode, *args):
    """The scenario running MODE; on leaving, checks it is still alive and did not crash."""
    with gobuild.run_fixture_server(binary, args=("-mode", mode, *args)) as (proc, ready):
        yield proc, ready
        alive = proc.poll() is None
        if alive:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        err = proc.stderr.read().decode(errors="replace")
        assert alive, "the %s scenario died (exit %s): %s" % (mode, proc.returncode, err[-2000:])
        assert not re.search(r"fatal error|panic:|SIGSEGV|SIGTRAP|SIGILL", err), err[-2000:]


def profile_reasons(port, line, tries=10):
    """Wait reasons the program's own goroutine profile (debug=2) shows for the goroutines
    blocked at main.go:LINE (their innermost main.* frame), over a few snapshots."""
    out = set()
    for _ in range(tries):
        text = _get(port, "/debug/pprof/goroutine?debug=2")
        for block in text.split("\n\n"):
            m = re.match(r"goroutine \d+ \[([^\],]+)", block)
            fr = re.search(r"^main\.\S+\(.*\)\n\t\S+/main\.go:(\d+) ", block, re.M)
            if m and fr and int(fr.group(1)) == line and \
                    m.group(1) not in ("running", "runnable", "syscall"):
                out.add(m.group(1))
        if out:
            return out
        time.sleep(0.05)
    raise gobuild.GroundTruthError("no goroutine blocked at main.go:%d in %d goroutine profiles"
                                   % (line, tries))


def check_top_stacks(rep, truth, scale, what):
    """Every block-profile stack with >= 10% of the delay: gotrace's total within 20%."""
    total = sum(truth.values())
    assert total > 0, "%s: the block profile recorded nothing in the window" % what
    tops = [(k, v) for k, v in truth.items() if k and v >= 0.1 * total]
    assert tops, "%s: no user stack in the block profile: %s" % (what, truth)
    got = by_key(rep)
    for k, v in tops:
        want = v * scale
        have = got.get(k, 0)
        assert abs(have - want) <= TOLERANCE * want, (
            "%s: stack %s: gotrace %.1f ms, block profile %.1f ms (scaled to gotrace's "
            "window): off by %.0f%%" % (what, k, have / 1e6, want / 1e6,
                                        100 * (have - want) / want))
    return tops


def reason_of(rep, line):
    return {s["wait_reason"] for s in rep["sites"]
            if s["blocked_at"] and s["blocked_at"]["function"].startswith("main.")
            and s["blocked_at"]["line"] == line}


# ---------------------------------------------------------------- blocked time

@pytest.mark.parametrize("minor", gobuild.MINORS, ids=lambda m: "go1.%d" % m)
def test_mutex_blocking_matches_block_profile(scenario_bins, minor, tmp_path):
    """8 goroutines on one sync.Mutex held ~1 ms: blocked time, reason, site, pprof."""
    workers = 8
    with start(scenario_bins[minor], "mutex", "-workers", str(workers)) as (proc, ready):
        port = int(ready[1])
        time.sleep(WARMUP)
        prof = str(tmp_path / "contention.pb.gz")
        t = time.monotonic()
        m0 = metrics(port)
        t0 = (t + time.monotonic()) / 2
        rep, truth, scale = measured(port, proc.pid, "--pprof", prof)
        t = time.monotonic()
        m1 = metrics(port)
        t1 = (t + time.monotonic()) / 2
        want = profile_reasons(port, MARK["mutex"])
    assert rep["mode"] == "sampled"
    assert rep["wakers"] == [] and rep["wakers_unavailable"]
    check_top_stacks(rep, truth, scale, "go1.%d mutex" % minor)
    assert reason_of(rep, MARK["mutex"]) == want
    top = rep["sites"][0]
    assert top["blocked_at"]["function"] == "main.mutexWorker"
    assert top["blocked_at"]["line"] == MARK["mutex"]
    assert top["blocking_call"] == "sync.(*Mutex).Lock"
    # At most every worker waits all the time.
    assert 0 < top["total_ns"] <= workers * rep["duration_ns"]
    # The runtime's own estimate of sync.Mutex waits, read from its memory: what
    # runtime/metrics says over the window (1.22+ adds the runtime's internal lock waits,
    # negligible here), gotrace's window being inside the truth's.
    name = "/sync/mutex/wait/total:seconds"
    if name in m0:
        got, mscale = rep["runtime_sync_wait_ns"], rep["duration_ns"] / 1e9 / (t1 - t0)
        want_ns = (m1[name] - m0[name]) * 1e9
        assert got is not None and want_ns > 0, (got, want_ns)
        assert got <= want_ns and abs(got - mscale * want_ns) <= TOLERANCE * mscale * want_ns, \
            (got, want_ns, mscale)
    else:
        assert minor < 20 and rep["runtime_sync_wait_ns"] is None, rep["runtime_sync_wait_ns"]
    # The pprof profile: go tool pprof reads it and finds gotrace's delay at the site.
    # One pprof reads them all: the format does not depend on the target's Go version.
    out = gobuild.go_tool(max(gobuild.MINORS), "pprof", "-top", "-sample_index=delay", "-unit=ms",
                          prof)
    m = re.search(r"(?m)^\s*\S+\s+[\d.]+%\s+[\d.]+%\s+([\d.e+]+)ms\s+[\d.]+%\s+"
                  r"main\.mutexWorker$", out)
    assert m, "go tool pprof -top has no main.mutexWorker line:\n%s" % out
    assert abs(float(m.group(1)) * 1e6 - top["total_ns"]) <= 0.01 * top["total_ns"] + 1e6


@pytest.mark.parametrize("minor", NEW_OLD, ids=lambda m: "go1.%d" % m)
def test_prodcons_matches_block_profile(scenario_bins, minor):
    """A producer faster than its consumer blocks on the full buffered channel."""
    with start(scenario_bins[minor], "prodcons") as (proc, ready):
        time.sleep(WARMUP)
        rep, truth, scale = measured(int(ready[1]), proc.pid)
        want = profile_reasons(int(ready[1]), MARK["produce"])
    check_top_stacks(rep, truth, scale, "go1.%d prodcons" % minor)
    assert reason_of(rep, MARK["produce"]) == want
    # The consumer hardly waits for items (the buffer is full): as little as the block
    # profile says, give or take the one or two censuses that can catch it.
    consume = sum(s["total_ns"] for s in rep["sites"] if s["blocked_at"]
                  and s["blocked_at"]["function"] == "main.consumer")
    truth_consume = sum(v for k, v in truth.items() if k and k[0][0] == "main.consumer")
    assert consume <= (1 + TOLERANCE) * truth_consume * scale + 2 * rep["resolution_ns"], \
        (consume, truth_consume)


@pytest.mark.parametrize("minor", NEW_OLD, ids=lambda m: "go1.%d" % m)
def test_rwmutex_waits_less_than_mutex(scenario_bins, minor):
    """The same read-heavy load: Mutex vs RWMutex, both measured in the same window."""
    lock_sites = {"mutexread", "mutexwrite", "rwread", "rwwrite"}
    lines = {MARK[n] for n in lock_sites}
    with start(scenario_bins[minor], "mutexread") as (pm, rm), \
            start(scenario_bins[minor], "rwread") as (pr, rr):
        time.sleep(WARMUP)
        ports = {"mutex": int(rm[1]), "rw": int(rr[1])}
        procs = {"mutex": Gotrace(pm.pid), "rw": Gotrace(pr.pid)}
        t = time.monotonic()
        b0 = {k: block_profile(p) for k, p in ports.items()}
        t0 = (t + time.monotonic()) / 2
        reps = {k: g.finish() for k, g in procs.items()}
        t = time.monotonic()
        b1 = {k: block_profile(p) for k, p in ports.items()}
        t1 = (t + time.monotonic()) / 2
        mutex_reasons = profile_reasons(ports["mutex"], MARK["mutexread"])
    waited = {k: sum(s["total_ns"] for s in r["sites"]
                     if s["blocked_at"] and s["blocked_at"]["function"].startswith("main.")
                     and s["blocked_at"]["line"] in lines)
              for k, r in reps.items()}
    truth = {k: sum(v - b0[k].get(s, 0) for s, v in b1[k].items()) for k in ports}
    # The load does what it claims (Go's own profile agrees) ...
    assert truth["mutex"] >= 5 * truth["rw"], truth
    # ... and gotrace sees the difference.
    assert waited["mutex"] > 0 and waited["mutex"] >= 5 * waited["rw"], waited
    scale = reps["mutex"]["duration_ns"] / 1e9 / (t1 - t0)
    check_top_stacks(reps["mutex"], {k: v - b0["mutex"].get(k, 0)
                                     for k, v in b1["mutex"].items()},
                     scale, "go1.%d mutexread" % minor)
    assert reason_of(reps["mutex"], MARK["mutexread"]) == mutex_reasons


@pytest.mark.parametrize("minor", NEW_OLD, ids=lambda m: "go1.%d" % m)
def test_pingpong_sites(scenario_bins, minor):
    """Unbuffered ping-pong: both sides block on send and receive at their own lines.

    Its waits last well under a microsecond, far below what reading the goroutine list
    can resolve; Go's block profile also counts the running time from the channel call to
    the park. So only where and why are checked here, and that gotrace's total is below the
    profile's."""
    with start(scenario_bins[minor], "pingpong") as (proc, ready):
        time.sleep(WARMUP)
        rep, truth, scale = measured(int(ready[1]), proc.pid)
    for mark, reasons in (("ping", {"chan send"}), ("pingwait", {"chan receive"}),
                          ("pong", {"chan receive"})):
        got = reason_of(rep, MARK[mark])
        assert got and got <= reasons | {"chan send", "chan receive"}, (mark, got)
        assert reasons <= got, (mark, got)
    total_truth = sum(v for k, v in truth.items() if k) * scale
    total = sum(s["total_ns"] for s in rep["sites"]
                if s["blocked_at"] and s["blocked_at"]["function"] in ("main.pinger",
                                                                      "main.ponger"))
    assert 0 < total <= total_truth * (1 + TOLERANCE)


@pytest.mark.parametrize("minor", NEW_OLD, ids=lambda m: "go1.%d" % m)
def test_gosched_is_not_waiting(scenario_bins, minor):
    """runtime.Gosched yields (runnable), it does not block: no site, like the block profile."""
    workers = 8
    with start(scenario_bins[minor], "gosched", "-workers", str(workers)) as (proc, ready):
        time.sleep(WARMUP)
        rep, truth, scale = measured(int(ready[1]), proc.pid)
    assert not reason_of(rep, MARK["gosched"])
    assert not any(k and k[0][0] == "main.yielder" for k in truth)
    # Every yielder is always runnable or running; the program's other goroutines wait.
    g = rep["goroutines"]
    assert workers - 0.5 <= g["runnable_mean"] + g["running_mean"] <= workers + 0.5, g


# ---------------------------------------------------------------- scheduling latency

def hist_delta(m0, m1, name):
    b = m1[name]["buckets"]
    c = [x - y for x, y in zip(m1[name]["counts"], m0[name]["counts"])]
    return b, c


def quantile_ns(buckets, counts, q):
    """The lower bound of the bucket holding quantile Q (runtime/metrics' median example)."""
    total = sum(counts)
    cum = 0
    for i, n in enumerate(counts):
        cum += n
        if n and cum >= q * total:
            return 0.0 if buckets[i] == "-Inf" else buckets[i] * 1e9
    return None


@pytest.mark.parametrize("minor", NEW_OLD, ids=lambda m: "go1.%d" % m)
def test_sched_latency_matches_runtime_metrics(scenario_bins, minor):
    """GOMAXPROCS=1, 8 goroutines queueing for the P; runtime.GC() every 100 ms."""
    with start(scenario_bins[minor], "sched", "-gc", "100ms") as (proc, ready):
        port = int(ready[1])
        time.sleep(WARMUP)
        # gotrace reads the histograms before its "sampling" line and after its window:
        # its window is inside the truth's.
        t = time.monotonic()
        m0 = metrics(port)
        t0 = (t + time.monotonic()) / 2
        rep = run_gotrace(proc.pid)
        t = time.monotonic()
        m1 = metrics(port)
        t1 = (t + time.monotonic()) / 2
    scale = rep["duration_ns"] / 1e9 / (t1 - t0)
    sl = rep["sched_latency"]
    assert sl["available"], sl
    b, c = hist_delta(m0, m1, "/sched/latencies:seconds")
    assert sum(c) > 500, "too few scheduling latencies recorded: %d" % sum(c)
    assert sl["count"] <= sum(c)
    assert abs(sl["count"] - scale * sum(c)) <= TOLERANCE * scale * sum(c), \
        (sl["count"], sum(c), scale)
    for q, k in ((0.5, "p50_ns"), (0.99, "p99_ns")):
        want = quantile_ns(b, c, q)
        assert abs(sl[k] - want) <= TOLERANCE * want, (k, sl[k], want)
    assert sl["max_ns"] >= sl["p99_ns"] >= sl["p50_ns"]

    gp = rep["gc_pauses"]
    assert gp["available"], gp
    b, c = hist_delta(m0, m1, "/gc/pauses:seconds")
    assert sum(c) > 0
    assert gp["count"] <= sum(c)
    assert abs(gp["count"] - scale * sum(c)) <= TOLERANCE * scale * sum(c) + 2, \
        (gp["count"], sum(c), scale)
    want = quantile_ns(b, c, 0.99)
    assert abs(gp["p99_ns"] - want) <= TOLERANCE * want or gp["p99_ns"] == want


# ---------------------------------------------------------------- command line

def test_errors_are_one_line(scenario_bins):
    binary = scenario_bins[max(gobuild.MINORS)]
    cases = [
        ([], "no process"),
        (["-p", "0"], "invalid PID"),
        (["-p", "1", "--hz", "0"], "invalid --hz"),
        (["-p", "1", "-d", "x"], "invalid duration"),
        (["-p", "1", "--mode", "exact"], "not built yet"),
        (["-p", "999999999"], ""),
    ]
    for args, want in cases:
        r = gobuild.gotrace("contention", *args, timeout=30)
        assert r.returncode != 0, args
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("gotrace: ") and want in lines[0], \
            (args, r.stderr)
    # Not a Go program.
    with tempfile.TemporaryFile() as f:
        p = subprocess.Popen(["sleep", "30"], stdout=f, stderr=f)
        try:
            r = gobuild.gotrace("contention", "-p", str(p.pid), "-d", "0.2", timeout=30)
        finally:
            p.kill()
            p.wait()
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    # A target that exits during the window: a partial report, up to the exit, and a warning.
    with gobuild.run_fixture_server(binary, args=("-mode", "idle")) as (proc, ready):
        t_start = time.monotonic()
        g = Gotrace(proc.pid, seconds="30")
        t_line = time.monotonic()
        time.sleep(1)
        proc.kill()
        t_kill = time.monotonic()
        rep = g.finish(timeout=30)
    assert rep["target_exited"] and "exited" in g.err.decode()
    assert t_kill - t_line - 0.3 <= rep["duration_ns"] / 1e9 <= t_kill - t_start + 0.1, \
        (rep["duration_ns"], t_line - t_start, t_kill - t_start)
