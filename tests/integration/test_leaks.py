"""Leak detection, the goroutine census and `gotrace top`, checked against the program's truth.

tests/scenarios/leaks runs every classic goroutine leak at once (each from its own `go`
statement, blocked on its own line, both lines marked `// leak:NAME:go|block` in its source)
next to healthy controls, and reports its own truth: runtime.NumGoroutine and the goroutines
leaked per leak (one line on stdin -> one JSON line on stdout, which starts no goroutine),
and net/http/pprof. It is built stripped with every toolchain of the matrix; all the
processes run at once, so the file takes about as long as its longest run (~70 s).

Per toolchain:
- the scenario agrees with itself: Go's own goroutine dump (debug=2) puts every leak at its
  markers, with the counts the program reports;
- `gotrace goroutines --json --all` right after start (the first census) holds every
  goroutine leaked before gotrace attached;
- `gotrace top -b -d 40 --json`: every seeded leak is a suspect created and blocked at the
  right file:line (from the markers; for http.Get bodies left open, the net/http read and
  write loops where Go's own dump puts them), first reported within 30 s, its count the
  program's; no other suspect (the healthy controls stay silent); nothing lost;
- at steady state (drivers paused): `top`'s total is runtime.NumGoroutine within 1% (or 2),
  its per-creation-site counts are the goroutine profile's (debug=2 aggregated by "created
  by": debug=1 has no creation site) within 2%; `gotrace goroutines --json --all` has the
  dump's goids, states, wait reasons and creators, and the same stacks for the leaked
  goroutines; the grouped form adds up;
- a -healthy-only process traced by `top` for 60 s yields no suspect;
- the target never dies and writes nothing to stderr.
Bad input: a target killed while `top -b` runs ends gotrace within 10 s with a one-line
message and no crash (exit status 0 with a report, or 1 without: both are accepted and
shown); a PID that does not exist or is not Go: one line, non-zero exit.

BPF needs root: without it these tests skip (a failure under CI=true).
"""
import collections
import concurrent.futures
import hashlib
import json
import math
import os
import re
import signal
import subprocess
import threading
import time
import traceback
import urllib.request

import pytest

import gobuild

SCENARIO = os.path.join(gobuild.ROOT, "tests", "scenarios", "leaks")
SOURCE = os.path.join(SCENARIO, "main.go")
VARIANT = "stripped"
TOP_S = 40          # the leak run
HEALTHY_S = 60      # the healthy-only run
REPORT_WITHIN_S = 30
# Leaks whose goroutines wake up now and then (the ticker's loop runs once a second):
# a census may catch a few of them running.
WAKING = {"ticker"}

needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="gotrace top loads BPF programs: run the tests as root")


# ---------------------------------------------------------------- the scenario's source

def markers():
    """{leak: {"go": line, "block": line, "go_func": "main.f", "block_func": "main.g"}}
    from the `// leak:NAME:go|block` comments of the scenario's source."""
    out = collections.defaultdict(dict)
    func = None
    with open(SOURCE) as f:
        for n, line in enumerate(f, 1):
            m = re.match(r"^func (?:\([^)]*\) )?(\w+)\(", line)
            if m:
                func = "main." + m.group(1)
            m = re.search(r"// leak:(\w+):(go|block)\s*$", line)
            if m:
                out[m.group(1)][m.group(2)] = n
                out[m.group(1)][m.group(2) + "_func"] = func
    return {k: v for k, v in out.items() if "go" in v and "block" in v}


MARKERS = markers()


# ---------------------------------------------------------------- builds

def _build(scenario, minor, variant):
    """Build tests/scenarios/SCENARIO with go1.MINOR as VARIANT, cached by sources + toolchain
    + flags."""
    src = os.path.join(gobuild.ROOT, "tests", "scenarios", scenario)
    cgo, flags = gobuild.VARIANTS[variant]
    h = hashlib.sha256()
    for part in (scenario, gobuild.BUILD_REV, src, gobuild.toolchains()[minor],
                 gobuild.go_version(minor), repr(cgo), repr(flags)):
        h.update(part.encode() + b"\0")
    for f in sorted(os.listdir(src)):
        with open(os.path.join(src, f), "rb") as fh:
            h.update(f.encode() + b"\0" + hashlib.sha256(fh.read()).digest())
    outdir = os.path.join(gobuild.CACHE, "scenarios", h.hexdigest()[:20])
    out = os.path.join(outdir, "%s-%s" % (scenario, gobuild.ident(minor, variant)))
    if os.path.exists(out):
        return out
    os.makedirs(outdir, exist_ok=True)
    tmp = "%s.tmp%d.%d" % (out, os.getpid(), threading.get_ident())
    gobuild.go(minor, "build", "-buildvcs=false", *flags, "-o", tmp, ".", cwd=src,
               timeout=1200)
    os.rename(tmp, out)
    return out


# ---------------------------------------------------------------- Go's own goroutine dump

class G:
    """One goroutine of a debug=2 dump."""
    __slots__ = ("goid", "state", "frames", "created_by", "creator_goid")

    def __repr__(self):
        return "goroutine %d [%s] %s created by %s" % (self.goid, self.state,
                                                       self.frames[:3], self.created_by)


def parse_debug2(text):
    """Goroutines of a goroutine profile with debug=2: {goid: G}. frames and created_by are
    (function, file, line); the state is the bracket's first field ("chan receive")."""
    out = {}
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.split("\n")
        m = re.match(r"^goroutine (\d+) (?:gp=\S+ m=\S+ (?:mp=\S+ )?)?\[([^\]]*)\]:$", lines[0])
        if not m:
            raise gobuild.GroundTruthError("debug=2: cannot parse %r" % lines[0])
        g = G()
        g.goid, g.state = int(m.group(1)), m.group(2).split(",")[0].strip()
        g.frames, g.created_by, g.creator_goid = [], None, None
        i = 1
        while i < len(lines):
            head = lines[i]
            if head.startswith("...") or not head.strip():
                i += 1
                continue
            if i + 1 >= len(lines):
                raise gobuild.GroundTruthError("debug=2: frame without position: %r" % head)
            pos = re.match(r"^\t(.*):(\d+)(?: \+0x[0-9a-f]+)?$", lines[i + 1])
            if not pos:
                raise gobuild.GroundTruthError("debug=2: bad position %r" % lines[i + 1])
            loc = (pos.group(1), int(pos.group(2)))
            cm = re.match(r"^created by (\S+)(?: in goroutine (\d+))?$", head)
            if cm:
                g.created_by = (cm.group(1),) + loc
                g.creator_goid = int(cm.group(2)) if cm.group(2) else None
            else:
                g.frames.append((head.rpartition("(")[0] or head,) + loc)
            i += 2
        out[g.goid] = g
    if not out:
        raise gobuild.GroundTruthError("debug=2: no goroutine in %r" % text[:200])
    return out


def is_request(g):
    """The goroutines of the HTTP request that fetched the dump itself."""
    return (any(f[0].startswith(("net/http/pprof.", "runtime/pprof.")) for f in g.frames) or
            (g.created_by and g.created_by[0].endswith("startBackgroundRead")))


def blocked_frame(g, goroot):
    """Where a goroutine is blocked: its innermost frame outside GOROOT, else its innermost
    frame outside the runtime (the definition of blocked_at)."""
    for f in g.frames:
        if not f[1].startswith(goroot + "/"):
            return f
    for f in g.frames:
        if not f[0].startswith(("runtime.", "internal/runtime/", "runtime/internal/")) and \
                "/src/runtime/" not in f[1]:
            return f
    return g.frames[0] if g.frames else None


def by_site(gs):
    """{(file, line) of the go statement: count} over goroutines GS."""
    c = collections.Counter()
    for g in gs:
        if g.created_by:
            c[g.created_by[1:]] += 1
    return c


def http_groups(dump, goroot):
    """The net/http goroutines that pile up when bodies are left open, from Go's own dump:
    {"readloop"|"writeloop": (created_by, blocked frame, state)}."""
    out = {}
    for g in dump.values():
        b = blocked_frame(g, goroot)
        if not b or g.state != "select" or not g.created_by:
            continue
        for name, fn in (("readloop", "net/http.(*persistConn).readLoop"),
                         ("writeloop", "net/http.(*persistConn).writeLoop")):
            if b[0] == fn:
                out.setdefault(name, (g.created_by, b, g.state))
    return out


# ---------------------------------------------------------------- processes

class Target:
    """A running scenario: PID, HTTP port, truth over stdin, stderr kept for crash checks."""

    def __init__(self, path, *args):
        self.path = path
        self.proc = subprocess.Popen([path, *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = gobuild._read_line(self.proc, 30)
        if not line or not line.startswith("ready "):
            err = self.kill()
            raise AssertionError("%s: no 'ready' line (got %r): %s" % (path, line, err))
        _, port, pid = line.split()
        self.port, self.pid = int(port), int(pid)
        assert self.pid == self.proc.pid
        self.lock = threading.Lock()

    def cmd(self, line, timeout=20):
        """A command on stdin; its one-line answer (JSON for "truth")."""
        with self.lock:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
            ans = gobuild._read_line(self.proc, timeout)
        if ans is None:
            raise AssertionError("%s: no answer to %r" % (self.path, line))
        return json.loads(ans) if line == "truth" else ans.strip()

    def truth(self):
        d = self.cmd("truth")
        d["t"] = time.monotonic()
        return d

    def get(self, path, timeout=60):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, path),
                                    timeout=timeout) as r:
            return r.read().decode()

    def dump(self):
        return parse_debug2(self.get("/debug/pprof/goroutine?debug=2"))

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        """Kill by PID (once); return what it wrote on stderr."""
        if getattr(self, "err", None) is not None:
            return self.err
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.err = self.proc.stderr.read().decode(errors="replace")
        for s in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                s.close()
            except OSError:
                pass
        return self.err

    def steady(self, timeout=15):
        """Pause the drivers, then wait until NumGoroutine holds still for 0.5 s."""
        assert self.cmd("pause") == "ok"
        deadline = time.monotonic() + timeout
        prev = self.truth()["numgoroutine"]
        while time.monotonic() < deadline:
            time.sleep(0.5)
            cur = self.truth()["numgoroutine"]
            if cur == prev:
                return cur
            prev = cur
        raise AssertionError("NumGoroutine did not settle after pause")


def run_gotrace(*args, timeout):
    """gotrace ARGS: (returncode, parsed JSON or None, stdout, stderr, seconds)."""
    t0 = time.monotonic()
    r = subprocess.run([gobuild.GOTRACE_BIN, *args], capture_output=True, text=True,
                       timeout=timeout)
    doc = None
    if r.stdout.strip():
        try:
            doc = json.loads(r.stdout)
        except ValueError:
            doc = None
    return r.returncode, doc, r.stdout, r.stderr, time.monotonic() - t0


def json_ok(res, what):
    """The document of a gotrace run that must have succeeded."""
    rc, doc, out, err, _ = res
    assert rc == 0, "%s: exit %d: %s" % (what, rc, err.strip()[-2000:])
    assert doc is not None, "%s: stdout is not JSON: %.500s" % (what, out)
    return doc


class Outcome:
    """What one thread did: its values, or the error of the step that failed."""

    def __init__(self):
        self.v = {}
        self.error = None

    def __getitem__(self, k):
        if k not in self.v:
            pytest.fail("no %r: the run failed earlier: %s" % (k, self.error), pytrace=False)
        return self.v[k]


def leak_run(path, minor):
    """The leak process of one toolchain, every step in order (see the module docstring)."""
    o = Outcome()
    t = None
    try:
        t = Target(path)
        o.v["minor"] = minor
        o.v["pid"] = t.pid
        o.v["ready_truth"] = t.truth()
        # First census, right after start: the leaks that predate gotrace.
        o.v["first"] = run_gotrace("goroutines", "--json", "--all", "-p", str(t.pid),
                                   timeout=60)
        o.v["first_dump"] = t.dump()
        # The leak run: `top -b`, the program's truth sampled all along.
        top = subprocess.Popen([gobuild.GOTRACE_BIN, "top", "-p", str(t.pid), "-b", "-d",
                                str(TOP_S), "--json"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        t0 = time.monotonic()
        samples = []
        while top.poll() is None and time.monotonic() - t0 < TOP_S + 60:
            samples.append(t.truth())
            time.sleep(0.5)
        try:
            out, err = top.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            top.kill()
            out, err = top.communicate()
        samples.append(t.truth())
        doc = None
        try:
            doc = json.loads(out) if out.strip() else None
        except ValueError:
            pass
        o.v["top"] = (top.returncode, doc, out, err, time.monotonic() - t0)
        o.v["top_end"] = time.monotonic()
        o.v["samples"] = samples
        o.v["leak_dump"] = t.dump()
        # Steady state: drivers paused, nothing created or ended.
        t.steady()
        o.v["steady_before"] = t.truth()
        o.v["all"] = run_gotrace("goroutines", "--json", "--all", "-p", str(t.pid), timeout=60)
        o.v["grouped"] = run_gotrace("goroutines", "--json", "-p", str(t.pid), timeout=60)
        o.v["top_steady"] = run_gotrace("top", "-p", str(t.pid), "-b", "-d", "3", "--json",
                                        timeout=60)
        o.v["steady_after"] = t.truth()
        o.v["steady_dump"] = t.dump()
        assert t.cmd("resume") == "ok"
        time.sleep(1)
        o.v["alive"] = t.alive()
    except Exception:
        o.error = traceback.format_exc()
    finally:
        if t:
            o.v["alive"] = o.v.get("alive", True) and t.alive()
            o.v["stderr"] = t.kill()
    return o


def healthy_run(path):
    o = Outcome()
    t = None
    try:
        t = Target(path, "-healthy-only")
        o.v["top"] = run_gotrace("top", "-p", str(t.pid), "-b", "-d", str(HEALTHY_S),
                                 "--json", timeout=HEALTHY_S + 60)
        o.v["truth"] = t.truth()
        o.v["alive"] = t.alive()
    except Exception:
        o.error = traceback.format_exc()
    finally:
        if t:
            o.v["alive"] = o.v.get("alive", True) and t.alive()
            o.v["stderr"] = t.kill()
    return o


def exit_run(path):
    """A target killed 3 s into `top -b -d 30`."""
    o = Outcome()
    t = None
    try:
        t = Target(path)
        top = subprocess.Popen([gobuild.GOTRACE_BIN, "top", "-p", str(t.pid), "-b", "-d",
                                "30", "--json"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        t.kill()
        t0 = time.monotonic()
        try:
            out, err = top.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            top.kill()
            out, err = top.communicate()
            err += "\n[test] gotrace top did not end within 20 s of the target's death"
        o.v["top"] = (top.returncode, out, err, time.monotonic() - t0)
    except Exception:
        o.error = traceback.format_exc()
    finally:
        if t:
            t.kill()
    return o


@pytest.fixture(scope="module")
def runs(toolchain_map, gotrace_bin):
    """Every run of the file, all at once: {("leak"|"healthy", minor) | "exit": Outcome}."""
    if os.geteuid() != 0:
        pytest.skip("gotrace top loads BPF programs: run the tests as root")
    for m in gobuild.MINORS:
        gobuild.go_version(m)
    builds, errs = {}, []
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as ex:
        futs = {ex.submit(_build, "leaks", m, VARIANT): m for m in gobuild.MINORS}
        for fut in concurrent.futures.as_completed(futs):
            try:
                builds[futs[fut]] = fut.result()
            except Exception as e:
                errs.append("go1.%d: %s" % (futs[fut], e))
    if errs:
        pytest.fail("building tests/scenarios/leaks failed:\n" + "\n".join(errs), pytrace=False)
    jobs = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=2 * len(builds) + 1) as ex:
        for m, p in builds.items():
            jobs[("leak", m)] = ex.submit(leak_run, p, m)
            jobs[("healthy", m)] = ex.submit(healthy_run, p)
        jobs["exit"] = ex.submit(exit_run, builds[max(builds)])
        return {k: f.result() for k, f in jobs.items()}


def goroot(minor):
    """GOROOT as the binary's file names spell it (the toolchain's path, unresolved)."""
    return gobuild.toolchains()[minor].rstrip("/")


def shown(frames):
    """The frames Go's traceback shows: no unexported runtime functions, no autogenerated
    wrappers, no function without a package."""
    out = []
    for fn, file, line in frames:
        if fn.startswith("runtime.") and not fn[8:9].isupper():
            continue
        if file == "<autogenerated>" or "." not in fn:
            continue
        out.append((fn, file, line))
    return out


def no_crash(o):
    assert o["alive"], "the target died: %s" % o.v.get("stderr")
    assert o["stderr"] == "", "the target wrote on stderr: %s" % o["stderr"]


def tol(n):
    """1% or 2 goroutines, whichever is larger."""
    return max(2, math.ceil(0.01 * n))


# ---------------------------------------------------------------- tests

IDS = ["go1.%d" % m for m in gobuild.MINORS]


def test_markers():
    """Every leak of the scenario has both markers (the other tests rely on them)."""
    assert set(MARKERS) == {"chanrange", "ctxsend", "select", "nilchan", "waitgroup", "ticker",
                            "mutex"}, MARKERS


@needs_root
@pytest.mark.parametrize("minor", gobuild.MINORS, ids=IDS)
def test_scenario_truth(minor, runs):
    """The scenario agrees with itself: Go's own dump puts each leak at its markers, with the
    counts the program reports (a failure here is the scenario's, not gotrace's)."""
    o = runs[("leak", minor)]
    dump, truth = o["steady_dump"], o["steady_after"]
    for name, mk in MARKERS.items():
        gs = [g for g in dump.values() if g.created_by and g.created_by[0] == mk["go_func"]
              and g.created_by[2] == mk["go"]]
        assert len(gs) == truth["leaks"][name], (name, len(gs), truth["leaks"])
        assert gs[0].created_by[1].endswith("/tests/scenarios/leaks/main.go"), gs[0]
        blocked = collections.Counter(blocked_frame(g, goroot(minor)) for g in gs)
        want = (mk["block_func"], gs[0].created_by[1], mk["block"])
        n = blocked[want]
        if name in WAKING:
            assert n >= 0.9 * len(gs), (name, blocked)
        else:
            assert n == len(gs), (name, want, blocked)
    hg = http_groups(dump, goroot(minor))
    assert set(hg) == {"readloop", "writeloop"}, hg
    assert truth["leaks"]["httpbody"] > 0


@needs_root
@pytest.mark.parametrize("minor", gobuild.MINORS, ids=IDS)
def test_first_census(minor, runs):
    """The census right after start holds every goroutine leaked before gotrace attached."""
    o = runs[("leak", minor)]
    secs = o["first"][4]
    doc = json_ok(o["first"], "gotrace goroutines --all (first census)")
    assert secs < 5, "the first census took %.1f s" % secs
    gs = [g for g in doc["goroutines"] if not g.get("system")]
    pre = o["ready_truth"]["leaks"]
    dump = o["first_dump"]
    for name, mk in MARKERS.items():
        # Leaked goroutines never end: all that gotrace saw are in Go's dump, taken after.
        in_dump = {g.goid for g in dump.values() if g.created_by and
                   g.created_by[2] == mk["go"] and g.created_by[0] == mk["go_func"]}
        mine = {g["goid"] for g in gs if (g.get("created_by") or {}).get("line") == mk["go"]
                and (g.get("created_by") or {}).get("file", "").endswith("leaks/main.go")}
        assert pre[name] > 0, pre
        assert len(mine) >= pre[name], (name, "leaked before attach: %d, in the first "
                                        "census: %d" % (pre[name], len(mine)))
        assert mine <= in_dump, (name, sorted(mine - in_dump)[:10])


def _suspects(doc):
    return doc.get("leak_suspects") or []


def _loc(d):
    return (d or {}).get("file"), (d or {}).get("line")


def _truth_window(o, key):
    """(lo, hi) of what the program reported for KEY over the last census of `top`:
    lo from ~3 s before gotrace ended, hi from just after."""
    end = o["top_end"]
    samples = o["samples"]
    before = [s for s in samples if s["t"] <= end - 3] or samples[:1]
    lo = key(before[-1])
    hi = key(samples[-1])
    return lo, hi


@needs_root
@pytest.mark.parametrize("minor", gobuild.MINORS, ids=IDS)
def test_top_reports_leaks(minor, runs):
    """`top -b -d 40`: each seeded leak is a suspect at the right created_at and blocked_at,
    first reported within 30 s, with the program's count; no other suspect."""
    o = runs[("leak", minor)]
    doc = json_ok(o["top"], "gotrace top -b -d %d --json" % TOP_S)
    assert doc["pid"] == o["pid"]
    assert doc["go_version"].startswith("go1.%d" % minor), doc["go_version"]
    assert doc["lost_events"] == 0, doc["lost_events"]
    assert isinstance(doc["reads_failed"], int), doc
    assert doc["duration_s"] >= TOP_S - 1, doc["duration_s"]
    file = [g.created_by[1] for g in o["steady_dump"].values()
            if g.created_by and g.created_by[1].endswith("/tests/scenarios/leaks/main.go")][0]
    want = {}
    for name, mk in MARKERS.items():
        want[name] = ((file, mk["go"]), (file, mk["block"]), None,
                      lambda s, n=name: s["leaks"][n])
    hg = http_groups(o["steady_dump"], goroot(minor))
    ka = o["steady_after"]["healthy"]["keepalive_clients"]
    want["http readLoop"] = (hg["readloop"][0][1:], hg["readloop"][1][1:], "select",
                             lambda s: s["leaks"]["httpbody"])
    # The keep-alive clients' write loops wait in the same select: one per client.
    want["http writeLoop"] = (hg["writeloop"][0][1:], hg["writeloop"][1][1:], "select",
                              lambda s: s["leaks"]["httpbody"] + ka)
    states = {}
    for g in o["steady_dump"].values():
        # A ticker's goroutine may be caught awake: its wait reason is the one it parks with.
        if g.created_by and g.state not in ("runnable", "running"):
            states.setdefault(g.created_by[1:], collections.Counter())[g.state] += 1
    sus = _suspects(doc)
    found = {}
    for s in sus:
        key = _loc(s["created_at"])
        name = [n for n, w in want.items() if w[0] == key]
        assert name, "a suspect that is no seeded leak (false alarm): %s" % json.dumps(s)
        assert name[0] not in found, "two suspects for %s: %s %s" % (name[0], found[name[0]], s)
        found[name[0]] = s
    missing = sorted(set(want) - set(found))
    assert not missing, "leaks not reported: %s; suspects: %s" % (
        missing, json.dumps(sus)[:3000])
    late = []
    for name, (created, blocked, reason, count) in want.items():
        s = found[name]
        assert _loc(s["blocked_at"]) == blocked, (name, s["blocked_at"], blocked)
        assert s["created_at"]["function"], s
        reason = reason or states[created].most_common(1)[0][0]
        assert s["wait_reason"] == reason, (name, s["wait_reason"], reason)
        lo, hi = _truth_window(o, count)
        if name in WAKING:
            lo = math.floor(0.9 * lo)
        assert lo - 1 <= s["count"] <= hi, (name, s["count"], (lo, hi))
        assert s["growth_per_min"] > 0, (name, s)
        # Leaked before gotrace attached, still blocked at the end.
        assert s["oldest_blocked_s"] >= (0.5 * TOP_S if name not in WAKING else 0.01), (
            name, s)
        assert s["first_reported_s"] >= 0, (name, s)
        if s["first_reported_s"] > REPORT_WITHIN_S:
            late.append((name, s["first_reported_s"]))
        # Sample goroutines: leaked ones, still there in Go's dump taken after.
        dump = o["steady_dump"]
        assert s["sample_goids"], (name, s)
        for goid in s["sample_goids"]:
            assert goid in dump and dump[goid].created_by[1:] == created, (name, goid)
    assert not late, "reported after %d s: %s" % (REPORT_WITHIN_S, late)


@needs_root
@pytest.mark.parametrize("minor", gobuild.MINORS, ids=IDS)
def test_top_total_during_leaks(minor, runs):
    """While leaking, top's last total lies between what the program counted around it (its
    samples, twice a second, miss the bursts: a census may land in one, 50 more goroutines
    for up to 50 ms)."""
    o = runs[("leak", minor)]
    doc = json_ok(o["top"], "gotrace top")
    lo, hi = _truth_window(o, lambda s: s["numgoroutine"])
    window = [s["numgoroutine"] for s in o["samples"] if s["t"] >= o["top_end"] - 3]
    lo, hi = min([lo] + window), max([hi] + window)
    burst = o["samples"][-1]["healthy"]["burst_size"]
    total = doc["goroutines"]["total"]
    assert lo - tol(lo) <= total <= hi + burst + tol(hi), (total, lo, hi)
    assert sum(doc["goroutines"]["by_state"].values()) == total, doc["goroutines"]
    waiting = doc["goroutines"]["by_state"].get("waiting", 0)
    assert sum(doc["goroutines"]["by_wait_reason"].values()) == waiting, doc["goroutines"]
    # Creations and exits: at least the leaked goroutines, and the burst tasks that ended.
    s0, s1 = o["samples"][0], o["samples"][-1]
    dt = s1["t"] - s0["t"]
    leaked = sum(s1["leaks"].values()) + s1["leaks"]["httpbody"] - \
        sum(s0["leaks"].values()) - s0["leaks"]["httpbody"]
    ended = (s1["healthy"]["bursts"] - s0["healthy"]["bursts"]) * s1["healthy"]["burst_size"]
    assert doc["created_per_s"] >= 0.8 * leaked / dt, (doc["created_per_s"], leaked / dt)
    assert doc["exited_per_s"] >= 0.8 * ended / dt, (doc["exited_per_s"], ended / dt)


@needs_root
@pytest.mark.parametrize("minor", gobuild.MINORS, ids=IDS)
def test_steady_total_and_sites(minor, runs):
    """At steady state: total = NumGoroutine within 1% (or 2); per-site counts = the
    goroutine profile's within 2%."""
    o = runs[("leak", minor)]
    doc = json_ok(o["top_steady"], "gotrace top -b -d 3 (steady)")
    before, after = o["steady_before"]["numgoroutine"], o["steady_after"]["numgoroutine"]
    assert before == after, "not steady: %d then %d" % (before, after)
    total = doc["goroutines"]["total"]
    assert abs(total - before) <= tol(before), (total, before)
    # Go's dump without the goroutines of the HTTP request that fetched it.
    prof = by_site(g for g in o["steady_dump"].values() if not is_request(g))
    sites = doc["sites"]
    assert sites, doc
    seen = set()
    bad = []
    for s in sites:
        key = _loc(s["created_at"])
        seen.add(key)
        if key not in prof:
            # The main goroutine has no creator in Go's dump; runtime goroutines are not
            # in it at all.
            fn = s["created_at"].get("function") or ""
            if s["count"] <= 1 or fn.startswith("runtime."):
                continue
            bad.append(("not in the profile", s))
            continue
        n = prof[key]
        if abs(s["count"] - n) > max(1, math.ceil(0.02 * n)):
            bad.append(("count %d, profile %d" % (s["count"], n), s["created_at"]))
    truncated = len(sites) < len(prof)
    smallest = min(s["count"] for s in sites)
    for key, n in prof.items():
        if key not in seen and (not truncated or n > smallest):
            bad.append(("site missing", key, n))
    assert not bad, bad


def _gstate(g):
    """gotrace's state in the words of Go's dump: the wait reason when waiting."""
    return g["wait_reason"] if g["state"] == "waiting" else g["state"]


@needs_root
@pytest.mark.parametrize("minor", gobuild.MINORS, ids=IDS)
def test_goroutines_vs_dump(minor, runs):
    """`gotrace goroutines --json --all` at steady state: the dump's goids, states, wait
    reasons, creators; the same stacks for the leaked goroutines; the grouped form adds up."""
    o = runs[("leak", minor)]
    doc = json_ok(o["all"], "gotrace goroutines --json --all")
    n = o["steady_before"]["numgoroutine"]
    assert abs(doc["total"] - n) <= tol(n), (doc["total"], n)
    gs = {g["goid"]: g for g in doc["goroutines"] if not g.get("system")}
    dump = {k: g for k, g in o["steady_dump"].items() if not is_request(g)}
    assert set(gs) == set(dump), ("only gotrace: %s" % sorted(set(gs) - set(dump))[:20],
                                  "only Go: %s" % sorted(set(dump) - set(gs))[:20])
    leak_lines = {mk["go"]: name for name, mk in MARKERS.items()}
    hg = http_groups(dump, goroot(minor))
    strict_sites = {hg["readloop"][0][1:]}
    mism, strict_bad = [], []
    for goid, d in dump.items():
        g = gs[goid]
        cb = g.get("created_by") or {}
        if d.created_by:
            if (cb.get("function"), cb.get("file"), cb.get("line")) != d.created_by:
                strict_bad.append(("created_by", goid, cb, d.created_by))
        name = leak_lines.get(d.created_by[2]) if d.created_by else None
        strict = (name and name not in WAKING) or (d.created_by and
                                                   d.created_by[1:] in strict_sites)
        if _gstate(g) != d.state:
            (strict_bad if strict else mism).append(("state", goid, _gstate(g), d.state))
        if strict:
            got = shown((f["function"], f["file"], f["line"]) for f in g["stack"])
            if got != shown(d.frames):
                strict_bad.append(("stack", goid, got, d.frames))
        if g.get("parent_goid") and d.creator_goid is not None and \
                g["parent_goid"] != d.creator_goid:
            strict_bad.append(("parent", goid, g["parent_goid"], d.creator_goid))
    assert not strict_bad, strict_bad[:10]
    # Goroutines that wake up (tickers, sleep loops) may have moved between the two reads:
    # awake in one, parked in the other. Any other difference is a defect.
    awake = ("runnable", "running")
    odd = [m for m in mism if m[0] != "state" or not (m[2] in awake or m[3] in awake)]
    assert len(odd) <= 3, odd[:20]
    assert len(mism) - len(odd) <= sum(1 for d in dump.values() if d.created_by and
                                       leak_lines.get(d.created_by[2]) in WAKING) + 40, mism

    grouped = json_ok(o["grouped"], "gotrace goroutines --json")
    groups = grouped.get("groups") or grouped.get("goroutines")
    assert groups, grouped
    assert sum(g["count"] for g in groups) == grouped["total"], grouped["total"]
    assert abs(grouped["total"] - n) <= tol(n), (grouped["total"], n)
    for name, mk in MARKERS.items():
        if name in WAKING:
            continue
        mine = [g for g in groups if (g.get("created_at") or {}).get("line") == mk["go"] and
                (g.get("blocked_at") or {}).get("line") == mk["block"]]
        assert sum(g["count"] for g in mine) == o["steady_before"]["leaks"][name], (
            name, mine, o["steady_before"]["leaks"])


@needs_root
@pytest.mark.parametrize("minor", gobuild.MINORS, ids=IDS)
def test_target_unharmed(minor, runs):
    """The traced targets never die nor complain."""
    no_crash(runs[("leak", minor)])
    no_crash(runs[("healthy", minor)])


@needs_root
@pytest.mark.parametrize("minor", gobuild.MINORS, ids=IDS)
def test_healthy_no_suspect(minor, runs):
    """A program with only healthy controls, traced for 60 s: no suspect at all."""
    o = runs[("healthy", minor)]
    doc = json_ok(o["top"], "gotrace top -b -d %d --json (healthy only)" % HEALTHY_S)
    assert o["truth"]["leaks"] == {}, o["truth"]
    assert _suspects(doc) == [], "false alarms: %s" % json.dumps(_suspects(doc))[:3000]
    assert doc["goroutines"]["total"] > 0, doc["goroutines"]


@needs_root
def test_target_exits_while_top_runs(runs):
    """A target killed while `top -b` runs: gotrace ends within 10 s, one message, no crash."""
    o = runs["exit"]
    rc, out, err, secs = o["top"]
    assert secs < 10, "gotrace top took %.1f s to notice: %s" % (secs, err)
    assert rc in (0, 1), "gotrace top: exit %d (crash?): %s" % (rc, err)
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert lines and len(lines) <= 3, err
    assert re.search(r"exit|gone|no such process|vanished", err, re.I), err
    assert not re.search(r"Segmentation|Aborted|AddressSanitizer|core dumped", err), err
    if rc == 0:
        doc = json.loads(out)
        assert doc.get("target_exited") in (True, None), doc
    print("gotrace top, target killed: exit %d in %.1f s: %s" % (rc, secs, lines[-1]))


@needs_root
def test_top_bad_pids(gotrace_bin):
    """No such process, a non-Go process: one line on stderr, non-zero exit."""
    r = gobuild.gotrace("top", "-p", "999999999", "-b", "-d", "1", "--json")
    assert r.returncode != 0 and r.stderr.startswith("gotrace: "), r
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        for cmd in (("top", "-b", "-d", "1"), ("goroutines",)):
            r = gobuild.gotrace(*cmd, "-p", str(sleeper.pid))
            assert r.returncode != 0 and r.stderr.startswith("gotrace: "), (cmd, r)
            assert len(r.stderr.strip().splitlines()) == 1, (cmd, r.stderr)
    finally:
        os.kill(sleeper.pid, signal.SIGKILL)
        sleeper.wait()
