"""`gotrace count`: uprobes at the offsets gotrace resolves fire exactly once per call.

A small Go program (COUNTME below) calls //go:noinline functions a number of times given on
its command line and prints its own count; gotrace's hit counts must equal that count:
after the prologue and at the RETs exactly, at the entry possibly more (Go re-runs a
function's entry after growing its stack). Built with go1.19 and go1.27, plain, stripped and
stripped PIE. BPF needs root: without it these tests skip (a failure under CI=true).
"""
import hashlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import gobuild

COUNT_MINORS = [m for m in (19, 27) if m in gobuild.MINORS]
COUNT_VARIANTS = ["default", "stripped", "pie-stripped"]

needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="gotrace count loads BPF programs: run the tests as root")

COUNTME = r"""package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
)

var calls int

//go:noinline
func leaf(i int) int { return i ^ 0x5a }

// work has a stack check, a frame and a single RET.
//
//go:noinline
func work(i int) int { return leaf(i)*3 + 1 }

// grow's 16 KiB frame does not fit a new goroutine's 8 KiB stack: every call from a fresh
// goroutine grows the stack, and Go then restarts grow from its first instruction.
//
//go:noinline
func grow(i int) int {
	var buf [2048]int64
	for k := range buf {
		buf[k] = int64(i + k)
	}
	s := 0
	for k := 0; k < len(buf); k += 97 {
		s += int(buf[k])
	}
	return s
}

func main() {
	n := flag.Int("n", 1000, "calls")
	mode := flag.String("mode", "loop", "loop: work() N times; grow: grow() once in each of N goroutines")
	wait := flag.Bool("wait", false, "print 'ready pid=PID', wait for a line on stdin before and after")
	flag.Parse()
	in := bufio.NewReader(os.Stdin)
	if *wait {
		fmt.Printf("ready pid=%d\n", os.Getpid())
		in.ReadString('\n')
	}
	sum := 0
	switch *mode {
	case "loop":
		for i := 0; i < *n; i++ {
			calls++
			sum += work(i)
		}
	case "grow":
		done := make(chan int)
		for i := 0; i < *n; i++ {
			go func(i int) { done <- grow(i) }(i)
			calls++
			sum += <-done
		}
	}
	fmt.Printf("calls=%d sum=%d\n", calls, sum)
	if *wait {
		in.ReadString('\n')
	}
}
"""


def build_countme(minor, variant):
    """COUNTME built by go1.MINOR as VARIANT (gobuild.VARIANTS); cached by content."""
    cgo, flags = gobuild.VARIANTS[variant]
    tc = gobuild.toolchains()[minor]
    key = hashlib.sha256(repr((COUNTME, tc, gobuild.go_version(minor), cgo, flags,
                               gobuild.BUILD_REV)).encode()).hexdigest()[:20]
    outdir = os.path.join(gobuild.CACHE, "count-fixtures", key)
    out = os.path.join(outdir, "countme-" + gobuild.ident(minor, variant))
    if os.path.exists(out):
        return out
    os.makedirs(outdir, exist_ok=True)
    src = tempfile.mkdtemp(prefix="countme-src-", dir=outdir)
    try:
        with open(os.path.join(src, "go.mod"), "w") as f:
            f.write("module countme\n\ngo 1.17\n")
        with open(os.path.join(src, "main.go"), "w") as f:
            f.write(COUNTME)
        tmp = out + ".tmp%d" % os.getpid()
        gobuild.go(minor, "build", *flags, "-o", tmp, ".", cwd=src)
        os.rename(tmp, out)
    finally:
        shutil.rmtree(src, ignore_errors=True)
    return out


@pytest.fixture(scope="module")
def countme(toolchain_map):
    """{(minor, variant): path} of every COUNTME build the tests use."""
    built = {}
    try:
        for m in COUNT_MINORS:
            for v in COUNT_VARIANTS + ["pie"]:
                built[(m, v)] = build_countme(m, v)
    except Exception as e:
        pytest.fail("building the countme program failed: %s" % e, pytrace=False)
    return built


def run_count(tmp_path, *args, timeout=120):
    """gotrace count --json -o REPORT ARGS; returns (report dict, CompletedProcess)."""
    report = os.path.join(str(tmp_path), "report-%d.json" % time.monotonic_ns())
    r = gobuild.gotrace("count", "--json", "-o", report, *args, timeout=timeout)
    assert r.returncode == 0, "gotrace count %s: exit %d: %s" % (" ".join(args), r.returncode,
                                                                 r.stderr.strip())
    with open(report) as f:
        return json.load(f), r


def own_count(stdout):
    """The 'calls=N' the program printed about itself."""
    m = re.search(r"^calls=(\d+) ", stdout, re.M)
    assert m, "the traced program printed no calls= line: %r" % stdout
    return int(m.group(1))


def hits(doc, kind, function="main.work"):
    return [s["hits"] for s in doc["sites"] if s["kind"] == kind and s["function"] == function]


def nm_address(minor, path, name):
    """Address of NAME from the toolchain's own `go tool nm` (unstripped binaries only)."""
    for line in gobuild.go_tool(minor, "nm", path).splitlines():
        f = line.split()
        if len(f) >= 3 and f[-1] == name:
            return int(f[0], 16)
    raise AssertionError("go tool nm: no %s in %s" % (name, path))


# ---------------------------------------------------------------- exact counts

@needs_root
@pytest.mark.parametrize("minor", COUNT_MINORS, ids=lambda m: "go1.%d" % m)
@pytest.mark.parametrize("variant", COUNT_VARIANTS)
def test_after_prologue_and_rets_count_every_call(countme, tmp_path, minor, variant):
    path = countme[(minor, variant)]
    n = 20000 + 137 * minor
    doc, r = run_count(tmp_path, "--at", "all", "main.work", "--", path, "-n", str(n))
    calls = own_count(r.stdout)
    assert calls == n
    assert doc["exit_code"] == 0
    assert doc["go_version"].startswith("go1.%d" % minor)
    assert hits(doc, "after-prologue") == [calls], doc
    rets = hits(doc, "ret")
    assert rets and sum(rets) == calls, doc
    assert len(rets) == 1, "main.work has one RET: %s" % doc["sites"]
    # An entry probe fires at least once per call; it may fire again after stack growth.
    entry, = hits(doc, "entry")
    assert entry >= calls
    assert doc["total_hits"] == sum(s["hits"] for s in doc["sites"])
    assert "unmatched_hits" not in doc


@needs_root
@pytest.mark.parametrize("minor", COUNT_MINORS, ids=lambda m: "go1.%d" % m)
def test_sites_are_where_the_toolchain_puts_the_function(countme, tmp_path, minor):
    path = countme[(minor, "default")]
    doc, _ = run_count(tmp_path, "--at", "all", "main.work", "--", path, "-n", "3")
    want = nm_address(minor, path, "main.work")
    for s in doc["sites"]:
        assert s["address"] - s["offset"] == want, s
    entry = [s for s in doc["sites"] if s["kind"] == "entry"][0]
    # Non-PIE Go binaries map their text PT_LOAD at 0x400000 from file offset 0.
    assert entry["file_offset"] == want - 0x400000
    prologue = [s for s in doc["sites"] if s["kind"] == "after-prologue"][0]
    assert prologue["offset"] > 0, "main.work has a stack check: the attach point is past it"


@needs_root
@pytest.mark.parametrize("minor", COUNT_MINORS, ids=lambda m: "go1.%d" % m)
def test_ret_only(countme, tmp_path, minor):
    path = countme[(minor, "stripped")]
    doc, r = run_count(tmp_path, "--at", "ret", "main.work", "--", path, "-n", "4321")
    assert {s["kind"] for s in doc["sites"]} == {"ret"}
    assert sum(hits(doc, "ret")) == own_count(r.stdout) == 4321


@needs_root
@pytest.mark.parametrize("minor", COUNT_MINORS, ids=lambda m: "go1.%d" % m)
def test_entry_probe_double_fires_on_stack_growth(countme, tmp_path, minor, record_property):
    path = countme[(minor, "pie-stripped")]
    n = 500
    doc, r = run_count(tmp_path, "--at", "entry,after-prologue", "main.grow", "--", path,
                       "-mode", "grow", "-n", str(n))
    calls = own_count(r.stdout)
    assert calls == n
    assert hits(doc, "after-prologue", "main.grow") == [calls], doc
    entry, = hits(doc, "entry", "main.grow")
    record_property("entry_hits", entry)
    record_property("calls", calls)
    # Each call starts on a fresh 8 KiB goroutine stack, overflows it, and runs the entry
    # instruction again once the stack has grown.
    assert entry > calls, "entry probe did not over-count (%d hits for %d calls)" % (entry, calls)


@needs_root
@pytest.mark.parametrize("variant", ["pie", "pie-stripped"])
def test_address_keyed_sites_without_cookies(countme, tmp_path, variant):
    """--no-cookie: the pre-5.15 path (site found by address relative to mm->start_code)."""
    minor = COUNT_MINORS[-1]
    path = countme[(minor, variant)]
    doc, r = run_count(tmp_path, "--no-cookie", "--at", "all", "main.work", "main.leaf", "--",
                       path, "-n", "777")
    calls = own_count(r.stdout)
    assert hits(doc, "after-prologue") == [calls]
    assert sum(hits(doc, "ret")) == calls
    assert hits(doc, "after-prologue", "main.leaf") == [calls]
    assert "unmatched_hits" not in doc


@needs_root
def test_glob_and_text_report(countme, tmp_path):
    path = countme[(COUNT_MINORS[-1], "stripped")]
    r = gobuild.gotrace("count", "main.w*", "main.leaf", "--", path, "-n", "250")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "calls=250 sum=%d" % sum((i ^ 0x5a) * 3 + 1 for i in range(250))
    assert lines[1].startswith(path + " (go1.")
    assert lines[2].split() == ["FUNCTION", "SITE", "OFFSET", "FILE", "OFFSET", "HITS"]
    rows = {l.split()[0]: l.split() for l in lines[3:] if l.split() and l.split()[0] != "total"}
    assert rows["main.work"][1] == "after-prologue" and rows["main.work"][-1] == "250"
    assert rows["main.leaf"][-1] == "250"
    total = [l for l in lines if l.startswith("total")]
    assert total and total[0].split()[-1] == "500"
    assert lines[-1] == "command exited with status 0"


@needs_root
def test_command_exit_status_and_stdin(countme, tmp_path):
    """The command keeps its stdin, and a failing command's status is reported."""
    path = countme[(COUNT_MINORS[-1], "default")]
    doc, r = run_count(tmp_path, "main.work", "--", path, "-n", "5", "-bogus-flag")
    assert doc["exit_code"] == 2  # the flag package exits 2 on an unknown flag
    assert hits(doc, "after-prologue") == [0]
    report = os.path.join(str(tmp_path), "stdin.json")
    r = gobuild.gotrace("count", "--json", "-o", report, "main.work", "--", path, "-wait",
                        "-n", "9", input="go\nbye\n")
    assert r.returncode == 0, r.stderr
    with open(report) as f:
        assert hits(json.load(f), "after-prologue") == [9]


# ---------------------------------------------------------------- -p PID

def read_line(proc, timeout=20):
    line = gobuild._read_line(proc, timeout)
    assert line, "no line from the process within %ds" % timeout
    return line


def wait_stderr_line(proc, timeout=30):
    """First line gotrace writes to stderr (the 'counting ...' notice once attached)."""
    fd = proc.stderr.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not buf.endswith(b"\n"):
        r, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            break
        ch = os.read(fd, 1)
        if not ch:
            break
        buf += ch
    return buf.decode()


def start_waiting(path, n):
    p = subprocess.Popen([path, "-wait", "-n", str(n)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = read_line(p)
    assert line.startswith("ready pid=%d" % p.pid), line
    return p


def stop(proc):
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@needs_root
@pytest.mark.parametrize("minor", COUNT_MINORS, ids=lambda m: "go1.%d" % m)
def test_pid_mode_counts_only_that_process(countme, tmp_path, minor):
    path = countme[(minor, "pie-stripped")]
    target = start_waiting(path, 3000)
    other = start_waiting(path, 5000)  # same binary, not traced
    report = os.path.join(str(tmp_path), "pid.json")
    g = subprocess.Popen([gobuild.GOTRACE_BIN, "count", "--json", "-o", report, "-p",
                          str(target.pid), "--at", "all", "main.work"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        notice = wait_stderr_line(g)
        assert "counting" in notice and str(target.pid) in notice, notice
        for p in (target, other):
            p.stdin.write(b"go\n")
            p.stdin.flush()
        assert own_count(read_line(target)) == 3000
        assert own_count(read_line(other)) == 5000
        g.send_signal(signal.SIGINT)
        _, err = g.communicate(timeout=30)
        assert g.returncode == 0, err
        with open(report) as f:
            doc = json.load(f)
        assert doc["pid"] == target.pid
        assert doc["binary"] == path
        assert doc["exit_code"] is None
        assert hits(doc, "after-prologue") == [3000], doc
        assert sum(hits(doc, "ret")) == 3000
    finally:
        stop(g)
        stop(target)
        stop(other)


@needs_root
def test_pid_mode_ends_when_the_process_exits(countme, tmp_path):
    path = countme[(COUNT_MINORS[-1], "default")]
    target = start_waiting(path, 1234)
    g = subprocess.Popen([gobuild.GOTRACE_BIN, "count", "-p", str(target.pid), "main.work"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "counting" in wait_stderr_line(g)
        target.stdin.write(b"go\nbye\n")
        target.stdin.flush()
        target.wait(timeout=30)
        out, err = g.communicate(timeout=30)  # no signal: gotrace notices the exit
        assert g.returncode == 0, err
        assert re.search(r"^main\.work\s+after-prologue\s+\+0x[0-9a-f]+\s+0x[0-9a-f]+\s+1234$",
                         out, re.M), out
        assert out.rstrip().endswith("process %d exited" % target.pid)
    finally:
        stop(g)
        stop(target)


@needs_root
def test_exe_mode_counts_every_process_running_the_binary(countme, tmp_path):
    path = countme[(COUNT_MINORS[-1], "stripped")]
    report = os.path.join(str(tmp_path), "exe.json")
    g = subprocess.Popen([gobuild.GOTRACE_BIN, "count", "--json", "-o", report, "-e", path,
                          "main.work"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert "every process running" in wait_stderr_line(g)
        for n in (100, 250):
            r = subprocess.run([path, "-n", str(n)], capture_output=True, text=True, timeout=30)
            assert own_count(r.stdout) == n
        g.send_signal(signal.SIGINT)
        _, err = g.communicate(timeout=30)
        assert g.returncode == 0, err
        with open(report) as f:
            doc = json.load(f)
        assert doc["pid"] is None and doc["exit_code"] is None
        assert hits(doc, "after-prologue") == [350]
    finally:
        stop(g)


@needs_root
def test_duration_detaches_and_leaves_the_command_running(countme, tmp_path):
    path = countme[(COUNT_MINORS[-1], "default")]
    report = os.path.join(str(tmp_path), "d.json")
    # The command waits on its stdin, a pipe kept open here: only -d can end the count.
    g = subprocess.Popen([gobuild.GOTRACE_BIN, "count", "--json", "-o", report, "-d", "0.5",
                          "main.work", "--", path, "-wait"], stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    child = None
    try:
        g.wait(timeout=30)
        assert g.returncode == 0, g.stderr.read()
        with open(report) as f:
            doc = json.load(f)
        child = doc["pid"]
        assert doc["exit_code"] is None
        assert 0.4 < doc["duration_s"] < 10
        os.kill(child, 0)  # still running, untouched
    finally:
        stop(g)
        if child:
            os.kill(child, signal.SIGKILL)
        g.stdin.close()
        g.stderr.close()


# ---------------------------------------------------------------- errors

def assert_one_line_error(r, *words):
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gotrace: "), r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_unknown_function_is_named(countme):
    path = countme[(COUNT_MINORS[-1], "stripped")]
    r = gobuild.gotrace("count", "main.work", "main.nosuchfunc", "--", path)
    assert_one_line_error(r, "function not found", "main.nosuchfunc")
    r = gobuild.gotrace("count", "-e", path, "nosuchpkg.*")
    assert_one_line_error(r, "function not found", "nosuchpkg.*")


def test_not_a_go_binary():
    r = gobuild.gotrace("count", "main.main", "--", "/bin/true")
    assert_one_line_error(r, "not a Go program", "/bin/true")


def test_pid_gone():
    p = subprocess.Popen(["/bin/true"])
    p.wait()
    r = gobuild.gotrace("count", "-p", str(p.pid), "main.main")
    assert_one_line_error(r, "no such process", str(p.pid))


def test_usage_errors():
    assert_one_line_error(gobuild.gotrace("count", "main.main"), "nothing to trace")
    assert_one_line_error(gobuild.gotrace("count", "--at", "middle", "-p", "1", "x"), "--at")
    assert_one_line_error(gobuild.gotrace("count", "-p", "1", "-d", "soon", "x"), "duration")
    assert_one_line_error(gobuild.gotrace("count", "-e", "/bin/true"), "no function")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to an unprivileged user")
def test_unprivileged_gets_one_line_reason(countme, tmp_path):
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is not installed")
    d = tempfile.mkdtemp(prefix="gotrace-count-")
    try:
        os.chmod(d, 0o755)
        path = os.path.join(d, "countme")
        shutil.copy(countme[(COUNT_MINORS[-1], "stripped")], path)
        os.chmod(path, 0o755)
        r = gobuild.gotrace("count", "main.work", "--", path, prefix=(
            "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all"))
        assert_one_line_error(r, "BPF needs root or CAP_BPF and CAP_PERFMON: run gotrace with sudo")
    finally:
        shutil.rmtree(d, ignore_errors=True)
