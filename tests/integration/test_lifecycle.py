"""`gotrace trace`: goroutine lifecycle tracing in BPF, checked against the program's own truth.

tests/scenarios/lifecycle creates goroutines from known sites (each `go` statement alone in its
own function) at a modest rate and serves what it did on 127.0.0.1: goroutines created and
exited per site, the (goid, parent goid) of children, the goids of parked goroutines, its
creator stack (runtime.Callers), runtime.NumGoroutine and its goroutine profile. Built stripped
with every toolchain of the matrix (plus stripped PIE with the oldest and newest).

- created per site equals the program's count exactly, exits too, nothing lost;
- parent goids of tracked goroutines are the program's;
- the wait reason gotrace saw at gopark is the one the goroutine profile (debug=2) shows;
- the creator stack unwound in BPF is the program's own (runtime.Callers);
- on a goroutine-churn program the governor detaches the hot probes and says so, its cost
  estimate stays within the budget plus the burst it allows, and once the program says the
  churn is over none of its goroutines is still listed (missed exits are swept);
- per-event mode with creations at newproc1's RETs: every event streamed and read, none
  lost, creations, exits and parents per goroutine are the program's;
- the target never crashes (alive, no Go crash on its stderr); a target that exits while
  traced gives a clean report.

BPF needs root: without it these tests skip (a failure under CI=true).
"""
import collections
import hashlib
import json
import os
import re
import select
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest

import gobuild

SCENARIO = os.path.join(gobuild.ROOT, "tests", "scenarios", "lifecycle")
SPECS = [(m, "stripped") for m in gobuild.MINORS] + \
    [(m, "pie-stripped") for m in (min(gobuild.MINORS), max(gobuild.MINORS))]
SPECS = list(dict.fromkeys(SPECS))
IDS = [gobuild.ident(m, v) for m, v in SPECS]

# The workload of the exactness test: modest rates, so every probe stays on.
N_A, N_B, N_C, RATE = 200, 30, 20, 500

# What a Go program prints when it crashes (a uprobe that corrupts it would show here).
CRASH = re.compile(r"fatal error|panic:|unexpected signal|SIGSEGV|SIGTRAP|SIGILL|SIGBUS")

needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="gotrace trace loads BPF programs: run the tests as root")


# ---------------------------------------------------------------- builds and processes

def _build(minor, variant):
    """Build the scenario with go1.MINOR as VARIANT (cached by sources + toolchain + flags)."""
    cgo, flags = gobuild.VARIANTS[variant]
    h = hashlib.sha256()
    for part in ("lifecycle", gobuild.BUILD_REV, gobuild.toolchains()[minor],
                 gobuild.go_version(minor), repr(cgo), repr(flags)):
        h.update(part.encode() + b"\0")
    for f in sorted(os.listdir(SCENARIO)):
        with open(os.path.join(SCENARIO, f), "rb") as fh:
            h.update(f.encode() + b"\0" + hashlib.sha256(fh.read()).digest())
    outdir = os.path.join(gobuild.CACHE, "scenarios", h.hexdigest()[:20])
    out = os.path.join(outdir, "lifecycle-" + gobuild.ident(minor, variant))
    if os.path.exists(out):
        return out
    os.makedirs(outdir, exist_ok=True)
    tmp = "%s.tmp%d.%d" % (out, os.getpid(), threading.get_ident())
    gobuild.go(minor, "build", "-buildvcs=false", *flags, "-o", tmp, ".", cwd=SCENARIO,
               timeout=1200)
    os.rename(tmp, out)
    return out


@pytest.fixture(scope="module")
def builds(toolchain_map):
    import concurrent.futures
    for m in {m for m, _ in SPECS}:
        gobuild.go_version(m)
    res, errs = {}, []
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as ex:
        futs = {ex.submit(_build, m, v): (m, v) for m, v in SPECS}
        for fut in concurrent.futures.as_completed(futs):
            try:
                res[futs[fut]] = fut.result()
            except Exception as e:
                errs.append("%s: %s" % (futs[fut], e))
    if errs:
        pytest.fail("building tests/scenarios/lifecycle failed:\n" + "\n".join(errs),
                    pytrace=False)
    return res


class Target:
    """A running scenario process: PID, HTTP port, its stderr kept in a file for crash checks."""

    def __init__(self, path):
        self.errf = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.errf)
        line = gobuild._read_line(self.proc, 20)
        if not line or not line.startswith("ready "):
            self.kill()
            raise AssertionError("%s: no 'ready' line (got %r)" % (path, line))
        _, port, pid = line.split()
        self.port, self.pid = int(port), int(pid)
        assert self.pid == self.proc.pid

    def stderr(self):
        self.errf.seek(0)
        return self.errf.read().decode(errors="replace")

    def check(self):
        """The target is alive and wrote no Go crash (fatal error, panic, signal) on stderr."""
        err = self.stderr()
        assert self.alive(), "the target died while traced (exit %s): %s" % (
            self.proc.returncode, err[-3000:])
        assert not CRASH.search(err), "the target reported a crash: %s" % err[-3000:]

    def get(self, path, timeout=60):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, path),
                                    timeout=timeout) as r:
            return r.read().decode()

    def truth(self):
        return json.loads(self.get("/truth"))

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        """Kill by PID; returns the stderr it wrote."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        err = self.stderr()
        for s in (self.proc.stdin, self.proc.stdout, self.errf):
            s.close()
        return err


@pytest.fixture(scope="module")
def targets(builds):
    """One scenario process per build, started on first use, shared by the tests."""
    started = {}

    def get(spec):
        if spec not in started:
            started[spec] = Target(builds[spec])
        return started[spec]
    yield get
    crashed = []
    for spec, t in started.items():
        alive = t.alive()
        err = t.kill()
        if not alive or CRASH.search(err):
            crashed.append("%s: %s" % (gobuild.ident(*spec), err[-1000:]))
    assert not crashed, "scenario processes died or crashed:\n" + "\n".join(crashed)


class Trace:
    """`gotrace trace -p PID ARGS --json` running in the background."""

    def __init__(self, pid, *args):
        self.proc = subprocess.Popen([gobuild.GOTRACE_BIN, "trace", "-p", str(pid), "--json",
                                      *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.stderr = b""
        deadline = time.monotonic() + 30
        while b"tracing goroutine lifecycle" not in self.stderr:
            left = deadline - time.monotonic()
            r, _, _ = select.select([self.proc.stderr], [], [], max(0, left))
            chunk = os.read(self.proc.stderr.fileno(), 4096) if r else b""
            if not chunk:
                self.proc.kill()
                out, err = self.proc.communicate(timeout=10)
                raise AssertionError("gotrace trace did not start (exit %s): %s %s"
                                     % (self.proc.returncode, (self.stderr + err).decode(),
                                        out.decode()[-500:]))
            self.stderr += chunk

    out = b""

    def next_report(self, timeout=30):
        """The next report line (-i): waits for it while gotrace runs."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.out:
            r, _, _ = select.select([self.proc.stdout], [], [],
                                    max(0, deadline - time.monotonic()))
            chunk = os.read(self.proc.stdout.fileno(), 65536) if r else b""
            assert chunk, "gotrace trace printed no report within %ds" % timeout
            self.out += chunk
        line, self.out = self.out.split(b"\n", 1)
        return json.loads(line)

    def finish(self, stop=True, timeout=30):
        """Stop it (SIGINT) unless it ends by itself; return (report, stderr)."""
        if stop and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise AssertionError("gotrace trace did not stop within %ds" % timeout)
        err = (self.stderr + err).decode()
        assert self.proc.returncode == 0, "gotrace trace: exit %d: %s" % (
            self.proc.returncode, err)
        lines = [l for l in (self.out + out).decode().splitlines() if l.strip()]
        assert lines, "gotrace trace printed nothing: %s" % err
        return json.loads(lines[-1]), err


def _by_function(report):
    """{function of the go statement: site} of gotrace's report (one `go` per function)."""
    sites = {}
    for s in report["sites"]:
        fn = s["created_at"]["function"]
        if fn:
            assert fn not in sites or fn.startswith("runtime."), (fn, report["sites"])
            sites[fn] = s
    return sites


def _profile_reasons(text):
    """{goid: wait reason} from a goroutine profile, debug=2 ("goroutine 7 [chan receive]:")."""
    out = {}
    for m in re.finditer(r"^goroutine (\d+) \[([^\]]*)\]:", text, re.M):
        out[int(m.group(1))] = m.group(2).split(",")[0].strip()
    return out


# ---------------------------------------------------------------- tests

@needs_root
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_counts_parents_reasons(spec, targets):
    """Exact creations and exits per site, parents, wait reasons and creator stacks."""
    minor, _ = spec
    t = targets(spec)
    before = t.truth()
    assert not before["created"], "the scenario was used before this test"
    tr = Trace(t.pid, "--budget", "50", "-d", "120")
    try:
        assert t.get("/run?a=%d&b=%d&c=%d&rate=%d" % (N_A, N_B, N_C, RATE)).strip() == "ok"
        truth = t.truth()
        profile = t.get("/debug/pprof/goroutine?debug=2")
        time.sleep(0.3)  # the last goroutines of A reach goexit1 after reporting
    finally:
        report, err = tr.finish()
    t.check()

    assert report["go_version"].startswith("go1.%d" % minor)
    gov = report["governor"]
    assert gov["state"] == "all probes on" and not gov["partial"], gov
    assert report["lost_events"] == 0 and report["read_errors"] == 0, report
    assert report["table_full"] == 0 and report["sites_full"] == 0, report
    names = {p["name"]: p for p in report["probes"]}
    assert set(names) == {"newproc1", "goexit1", "gopark", "ready"}, names
    assert all(p["state"] == "on" for p in names.values()), names

    # Created and exited per site: exact.
    sites = _by_function(report)
    want_created = {"main.spawnA": N_A, "main.spawnB": N_B, "main.spawnC": N_C,
                    "main.cParent": 2 * N_C}
    assert truth["created"] == want_created, truth
    for fn, n in truth["created"].items():
        assert fn in sites, "no site for %s in %s" % (fn, sorted(sites))
        assert sites[fn]["created"] == n, (fn, sites[fn], n)
        assert sites[fn]["exited"] == truth["exited"].get(fn, 0), (fn, sites[fn], truth)
        assert sites[fn]["created_at"]["line"] > 0
    assert report["created"] >= sum(want_created.values())
    assert report["exited"] >= N_A + N_C

    # Parents and wait reasons of the goroutines still parked.
    gs = {g["goid"]: g for g in report["goroutines"]}
    reasons = _profile_reasons(profile)
    assert len(truth["children"]) == 2 * N_C
    for child, parent in truth["children"]:
        assert child in gs, "child goroutine %d not tracked" % child
        assert gs[child]["parent_goid"] == parent, (child, gs[child], parent)
        assert gs[child]["created_at"]["function"] == "main.cParent"
    parked = [c for c, _ in truth["children"]] + truth["parked_b"]
    assert len(parked) == 2 * N_C + N_B
    for goid in parked:
        assert goid in reasons, "goroutine %d not in the goroutine profile" % goid
        assert gs[goid]["state"] == "waiting", gs[goid]
        assert gs[goid]["wait_reason"] == reasons[goid], (goid, gs[goid], reasons[goid])
    assert {reasons[g] for g in truth["parked_b"]} == {"chan receive"}
    # B's parents: the HTTP handler that ran /run.
    handler = {gs[g]["parent_goid"] for g in truth["parked_b"]}
    assert len(handler) == 1 and 0 not in handler, handler

    # The creator stack of site A: the program's own, physical frames in order.
    want = truth["stacks"]["main.spawnA"]
    stacks = [s for s in report["stacks"]
              if s["frames"] and s["frames"][0]["function"] == "main.spawnA"]
    assert len(stacks) == 1 and stacks[0]["count"] == N_A, stacks
    got = [f["function"] for f in stacks[0]["frames"]]
    assert len(got) >= 3, got
    it = iter(want)
    assert all(fn in it for fn in got), "stack %s is not a subsequence of %s" % (got, want)


@needs_root
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_governor_churn(spec, targets):
    """On goroutine churn the default budget detaches the hot probes and the report says so."""
    t = targets(spec)
    idx = int(t.get("/churn?seconds=120").strip())
    tr = None
    try:
        time.sleep(0.3)
        tr = Trace(t.pid, "-i", "2.5", "-d", "60")
        report = tr.next_report()
        churning = not t.truth()["churn"][idx]["done"]
    finally:
        assert t.get("/churnstop?idx=%d" % idx).strip() == "ok"
        # The churn's last goroutines must have ended before the final report: under
        # load the worker notices the stop late and its last goroutines run late.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not t.truth()["churn"][idx]["done"]:
            time.sleep(0.1)
        time.sleep(1.0)
        final, err = tr.finish(stop=True) if tr else (None, None)
    t.check()
    assert churning, "the churn ended before the first report: nothing to govern"
    gov = report["governor"]
    names = {p["name"]: p for p in report["probes"]}
    assert gov["partial"], gov
    assert names["newproc1"]["off_windows"] >= 1, names["newproc1"]
    # Duty cycling: at the instant of the report the probe may be back on for a window
    # (a starved churn can look cheap for a moment); while off, the report says why.
    assert names["newproc1"]["state"] in ("off", "sampling", "on"), names["newproc1"]
    if names["newproc1"]["state"] != "on":
        assert re.search(r"newproc1 (detached|sampling): \S+ hits/s ≈ [0-9.]+ CPU-s/s > "
                         r"budget %g%%" % gov["budget_pct"], gov["state"]), gov["state"]
    assert names["newproc1"]["on_s"] < 0.5 * names["newproc1"]["off_s"], names["newproc1"]
    # The estimated cost: the budget, plus the burst the bucket allows, plus overshoot of
    # less than one governor tick per detach at the probes' measured cost.
    overshoot = sum(p["off_windows"] * p["cost_on_cpu"] for p in report["probes"]) * \
        gov["tick_s"] * 2
    bound = gov["budget_pct"] * (1 + gov["burst_s"] / report["duration_s"]) + \
        100 * overshoot / report["duration_s"]
    assert gov["avg_cost_pct"] <= bound, (gov, bound)
    # The churn is over (the program says so): exits missed while goexit1 was off are
    # swept, so none of its goroutines is left in the final report as alive.
    run = t.truth()["churn"][idx]
    assert run["done"] and run["created"] > 0, run
    seen = sum(s["created"] for s in final["sites"]
               if s["created_at"]["function"] == "main.churnWorker")
    assert 0 < seen <= run["created"], (seen, run["created"])
    stale = [g for g in final["goroutines"]
             if (g["created_at"]["function"] or "").startswith("main.churn")]
    assert not stale, "%d goroutines of the finished churn still listed: %s" % (
        len(stale), stale[:3])


@needs_root
@pytest.mark.parametrize("spec", [SPECS[0], SPECS[-1]], ids=[IDS[0], IDS[-1]])
def test_events_at_ret(spec, targets, tmp_path):
    """Per-event mode, creations at newproc1's RETs: every event streamed, none lost, and
    creations, exits and parents are the program's."""
    t = targets(spec)
    before = t.truth()
    events = tmp_path / "events.jsonl"
    tr = Trace(t.pid, "--budget", "none", "--create-at", "ret", "--events", str(events),
               "-d", "120")
    try:
        assert t.get("/run?a=%d&b=%d&c=%d&rate=0" % (N_A // 4, N_B // 3, N_C // 2)).strip() \
            == "ok"
        assert t.get("/release").strip() == "ok"
        after = t.truth()
        time.sleep(0.3)  # the last goroutines reach goexit1 after reporting
    finally:
        report, err = tr.finish()
    t.check()
    names = {p["name"]: p for p in report["probes"]}
    assert names["newproc1"]["function"] == "runtime.newproc1", names["newproc1"]
    assert names["newproc1"]["site"] == "ret" and names["newproc1"]["uprobes"] >= 1
    assert report["lost_events"] == 0 and report["read_errors"] == 0, report
    assert report["events"] == report["events_read"], report

    evs = [json.loads(l) for l in events.read_text().splitlines()]
    kinds = collections.Counter(e["event"] for e in evs)
    assert sum(kinds.values()) == report["events"], (kinds, report["events"])
    for kind, field in (("create", "created"), ("exit", "exited"), ("park", "parked"),
                        ("ready", "readied")):
        assert kinds[kind] == report[field], (kind, kinds, report[field])

    # Creations and exits per site, from the events alone: this run's goroutines all exit.
    site_of = {}
    fn_of = {s["created_at"]["pc"]: s["created_at"]["function"] for s in report["sites"]}
    for e in evs:
        if e["event"] == "create":
            site_of[e["goid"]] = fn_of.get(e["gopc"])
    created = collections.Counter(site_of.values())
    exited = collections.Counter(site_of[e["goid"]] for e in evs
                                 if e["event"] == "exit" and e["goid"] in site_of)
    for fn in after["created"]:
        want = after["created"][fn] - before["created"].get(fn, 0)
        assert created[fn] == want, (fn, created[fn], want)
        # Earlier runs' parked goroutines were released too: they are not this run's.
        want_exit = after["exited"].get(fn, 0) - before["created"].get(fn, 0)
        assert exited[fn] == want_exit, (fn, exited[fn], want_exit)
    parents = {e["goid"]: e["parent_goid"] for e in evs if e["event"] == "create"}
    new_children = after["children"][len(before["children"]):]
    assert new_children
    for child, parent in new_children:
        assert parents.get(child) == parent, (child, parents.get(child), parent)


@needs_root
def test_target_exits_while_traced(builds):
    """A target killed while traced: gotrace notices, reports, exits 0, no hang."""
    spec = SPECS[-1]
    t = Target(builds[spec])
    try:
        tr = Trace(t.pid, "-d", "60")
        t.get("/run?a=20&b=0&c=0&rate=0")
        truth = t.truth()
        t.check()
    finally:
        t.kill()
    start = time.monotonic()
    report, err = tr.finish(stop=False, timeout=20)
    assert time.monotonic() - start < 10
    assert report["target_exited"] is True
    assert "exited" in err
    assert _by_function(report)["main.spawnA"]["created"] == truth["created"]["main.spawnA"]


@needs_root
def test_bad_targets(tmp_path):
    """No process, a non-Go process: one line on stderr, non-zero exit, no traceback."""
    r = gobuild.gotrace("trace", "-p", "999999999", "-d", "1")
    assert r.returncode != 0 and r.stderr.startswith("gotrace: "), r
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        r = gobuild.gotrace("trace", "-p", str(sleeper.pid), "-d", "1")
        assert r.returncode != 0 and r.stderr.startswith("gotrace: "), r
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    finally:
        os.kill(sleeper.pid, signal.SIGKILL)
        sleeper.wait()
    r = gobuild.gotrace("trace", "-p", "1", "--budget", "abc")
    assert r.returncode != 0 and "budget" in r.stderr
