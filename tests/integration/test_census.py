"""`gotrace goroutines`: the goroutine census, checked against the program's own view.

tests/scenarios/leaky parks known numbers of goroutines in known functions (channel receive
and send, select, select {}, WaitGroup, mutex, sleep) and serves runtime.NumGoroutine() and
net/http/pprof on 127.0.0.1. For every toolchain, stripped (and PIE, and cgo, at the ends of
the matrix), gotrace reads the goroutine list from the process's memory and must agree with
what the runtime says of itself:

- total = runtime.NumGoroutine() (read just before and after) within 1% or 2;
- every parked goroutine of the program's goroutine dump (pprof debug=2) is in the census,
  with the same goid, state / wait reason, stack (function, file:line), creator and parent;
- counts per creation site agree with the dump's;
- grouped output adds up to the total;
- a list that changes under the reader (goroutine churn) is still read: the parked groups
  exactly, the rest counted, never invented.

No BPF here, but reading another process's memory needs root or ptrace rights.
"""
import collections
import json
import os
import re
import urllib.request

import pytest

import gobuild

SPECS = [(m, "stripped") for m in gobuild.MINORS]
SPECS += [(m, "pie-stripped") for m in sorted({min(gobuild.MINORS), max(gobuild.MINORS)})]
SPECS += [(max(gobuild.MINORS), "cgo-stripped")]
IDS = [gobuild.ident(m, v) for m, v in SPECS]

# Goroutines the scenario parks, by its flags (and its function names).
PARKED = {"recv": 40, "send": 5, "select": 20, "selectnc": 10, "wg": 15, "mutex": 7, "sleep": 3}
FUNCS = {"recv": "main.blockRecv", "send": "main.blockSend", "select": "main.blockSelect",
         "selectnc": "main.blockSelectNoCases", "wg": "main.blockWaitGroup",
         "mutex": "main.blockMutex", "sleep": "main.blockSleep"}

needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="reading another process's memory needs root here")


@pytest.fixture(scope="module")
def builds(toolchain_map):
    try:
        built = gobuild.build_many([("leaky", m, v) for m, v in SPECS], jobs=2)
    except Exception as e:
        pytest.fail("building tests/scenarios/leaky failed: %s" % e, pytrace=False)
    return {(m, v): p for (_, m, v), p in built.items()}


def _args(extra=()):
    return [x for k, n in PARKED.items() for x in ("-" + k, str(n))] + list(extra)


def _get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=30) as r:
        return r.read().decode()


def _numgoroutine(port):
    return int(_get(port, "/numgoroutine").strip())


# ---------------------------------------------------------------- the program's goroutine dump

DumpG = collections.namedtuple("DumpG", "goid state stack created_by parent")


def parse_debug2(text):
    """{goid: DumpG} from a debug=2 goroutine dump; fails on what it does not understand."""
    out = {}
    for block in text.strip().split("\n\n"):
        lines = block.split("\n")
        m = re.match(r"goroutine (\d+) \[([^\]]*)\]:$", lines[0])
        if not m:
            raise gobuild.GroundTruthError("unexpected dump header %r" % lines[0])
        goid = int(m.group(1))
        state = m.group(2).split(",")[0].strip()
        stack, created_by, parent = [], None, None
        i = 1
        while i < len(lines):
            ln = lines[i]
            if ln.startswith("created by "):
                cm = re.match(r"created by (\S+)(?: in goroutine (\d+))?$", ln)
                if not cm:
                    raise gobuild.GroundTruthError("unexpected creator line %r" % ln)
                fl = lines[i + 1].strip().split(" ")[0]
                f, _, l = fl.rpartition(":")
                created_by = (cm.group(1), f, int(l))
                parent = int(cm.group(2)) if cm.group(2) else None
                i += 2
                continue
            if ln.startswith("...") or ln.startswith("\t") is False and ln.endswith("elided..."):
                i += 1
                continue
            fn = re.sub(r"\((0x[0-9a-f?]+, ?|\.\.\.|0x[0-9a-f?]+|, |\{.*?\})*\)$", "", ln)
            if i + 1 >= len(lines) or not lines[i + 1].startswith("\t"):
                raise gobuild.GroundTruthError("unexpected frame %r in goroutine %d" % (ln, goid))
            fl = lines[i + 1].strip().split(" ")[0]
            f, _, l = fl.rpartition(":")
            stack.append((fn, f, int(l)))
            i += 2
        out[goid] = DumpG(goid, state, stack, created_by, parent)
    return out


def _parked_fn(funcs):
    """The scenario function a stack is parked in, or None."""
    return next((f for f in funcs if f in FUNCS.values()), None)


def _site(d):
    return (d["function"], d["file"], d["line"]) if d else None


def _check_against_dump(doc, dump, minor):
    """Every parked goroutine of the scenario: same state, stack, creator, parent."""
    ours = {g["goid"]: g for g in doc["goroutines"]}
    parked = {goid: d for goid, d in dump.items() if _parked_fn(f[0] for f in d.stack)}
    assert len(parked) == sum(PARKED.values()), \
        "the program's own dump shows %d parked goroutines, expected %d" \
        % (len(parked), sum(PARKED.values()))
    missing = sorted(set(parked) - set(ours))
    assert not missing, "parked goroutines missing from the census: %s" % missing[:10]
    for goid, d in parked.items():
        g = ours[goid]
        state = g["wait_reason"] if g["state"] == "waiting" else g["state"]
        assert state == d.state, "goroutine %d: state %r, the program says %r" \
            % (goid, state, d.state)
        stack = [_site(f) for f in g["stack"]]
        assert stack == d.stack, "goroutine %d: stack\n%s\nthe program's\n%s" \
            % (goid, stack, d.stack)
        assert _site(g["created_by"]) == d.created_by, "goroutine %d: creator %s vs %s" \
            % (goid, g["created_by"], d.created_by)
        if minor >= 21:
            assert g["parent_goid"] == d.parent, "goroutine %d: parent %s vs %s" \
                % (goid, g["parent_goid"], d.parent)


@needs_root
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_census_matches_runtime(builds, gotrace_bin, spec):
    minor, variant = spec
    with gobuild.run_fixture_server(builds[spec], args=_args()) as (proc, ready):
        port = int(ready[1])
        before = _numgoroutine(port)
        doc = gobuild.gotrace_json("goroutines", "-p", str(proc.pid), "--all")
        after = _numgoroutine(port)
        dump = parse_debug2(_get(port, "/debug/pprof/goroutine?debug=2"))
        grouped = gobuild.gotrace_json("goroutines", "-p", str(proc.pid))
        assert proc.poll() is None, "the target died"

    total = doc["total"]
    for n in (before, after):
        assert abs(total - n) <= max(2, n // 100), \
            "census total %d, runtime.NumGoroutine() %d (before %d, after %d)" \
            % (total, n, before, after)
    assert len(doc["goroutines"]) == total
    assert doc["unreadable"] == 0, "goroutines unreadable in a quiet program: %s" % doc
    _check_against_dump(doc, dump, minor)

    # Counts per creation site: the census against the program's dump.
    ours = collections.Counter(_site(g["created_by"]) for g in doc["goroutines"])
    theirs = collections.Counter(d.created_by for d in dump.values())
    spawn = [s for s in theirs if s and s[0] == "main.spawn"]
    assert spawn, "the program's dump names no main.spawn creator"
    for s in spawn:
        assert ours[s] == theirs[s], "site %s: census %d, program %d" % (s, ours[s], theirs[s])
    for s, n in theirs.items():
        assert abs(ours[s] - n) <= max(2, n // 50), \
            "site %s: census %d, program %d" % (s, ours[s], n)

    # Grouped output: the same goroutines, summed by stack and site.
    assert grouped["total"] >= total - 2 and grouped["total"] <= total + 2
    assert sum(g["count"] for g in grouped["groups"]) == grouped["total"]
    by_fn = collections.Counter()
    for g in grouped["groups"]:
        fn = _parked_fn(f["function"] for f in g["stack"])
        if fn:
            by_fn[fn] += g["count"]
            assert g["blocked_at"]["function"] == fn, g["blocked_at"]
    assert by_fn == collections.Counter({FUNCS[k]: n for k, n in PARKED.items()})


@needs_root
@pytest.mark.parametrize("spec", [(min(gobuild.MINORS), "stripped"),
                                  (max(gobuild.MINORS), "stripped")],
                         ids=lambda s: gobuild.ident(*s))
def test_census_under_churn(builds, gotrace_bin, spec):
    """Goroutines start and exit while the list is read: parked groups exact, nothing invented."""
    with gobuild.run_fixture_server(builds[spec], args=_args(["-churn", "2"])) as (proc, ready):
        port = int(ready[1])
        docs = [gobuild.gotrace_json("goroutines", "-p", str(proc.pid), "--all")
                for _ in range(5)]
        dump = parse_debug2(_get(port, "/debug/pprof/goroutine?debug=2"))
        assert proc.poll() is None, "the target died"
    for doc in docs:
        fns = collections.Counter(_parked_fn(f["function"] for f in g["stack"])
                                  for g in doc["goroutines"])
        for k, n in PARKED.items():
            assert fns[FUNCS[k]] == n, "%s: census %d, parked %d (doc %s)" \
                % (FUNCS[k], fns[FUNCS[k]], n, {x: doc[x] for x in ("total", "unreadable")})
        # A goroutine is either read whole or counted unreadable: the census never
        # reports goids the program never had.
        assert all(0 < g["goid"] < 1 << 40 for g in doc["goroutines"])
        assert doc["unreadable"] <= max(2, doc["total"] // 100), doc["unreadable"]
    parked_goids = {goid for goid, d in dump.items() if _parked_fn(f[0] for f in d.stack)}
    for doc in docs:
        assert parked_goids <= {g["goid"] for g in doc["goroutines"]}


@needs_root
def test_goroutines_text(builds, gotrace_bin):
    """The text dump names the blocking function and file:line, like Go's own."""
    spec = (max(gobuild.MINORS), "stripped")
    with gobuild.run_fixture_server(builds[spec], args=_args()) as (proc, ready):
        grouped = gobuild.gotrace("goroutines", "-p", str(proc.pid))
        one = gobuild.gotrace("goroutines", "-p", str(proc.pid), "--all")
    assert grouped.returncode == 0, grouped.stderr
    assert re.search(r"^%d @ \[chan receive: %d\]$" % (PARKED["recv"], PARKED["recv"]),
                     grouped.stdout, re.M), grouped.stdout[:2000]
    assert re.search(r"main\.blockRecv\s+\S+/leaky/main\.go:\d+", grouped.stdout)
    assert one.returncode == 0, one.stderr
    assert len(re.findall(r"^goroutine \d+ \[chan receive\]:\nmain\.blockRecv\(\.\.\.\)$",
                          one.stdout, re.M)) == PARKED["recv"]
    assert re.search(r"^created by main\.spawn in goroutine 1$", one.stdout, re.M)


def test_goroutines_bad_pid(gotrace_bin):
    r = gobuild.gotrace("goroutines", "-p", "999999999")
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = gobuild.gotrace("goroutines", "-p", str(os.getpid()))
    assert r.returncode != 0 and "not a Go program" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
