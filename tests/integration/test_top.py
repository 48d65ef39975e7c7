"""`gotrace top` (and `gotrace -p PID`): batch JSON against the program's own counts, the
full-screen view under a pseudo-terminal, and a target that exits while watched.

Leak detection itself, across the Go matrix, is test_leaks.py.
"""
import json
import os
import pty
import select
import signal
import subprocess
import time
import urllib.request

import pytest

import gobuild

NEWEST = max(gobuild.MINORS)
ARGS = ["-recv", "30", "-select", "10", "-selectnc", "5", "-wg", "5", "-sleep", "2"]

needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="reading another process's memory needs root here")


@pytest.fixture(scope="module")
def leaky(toolchain_map):
    try:
        return gobuild.build("leaky", NEWEST, "pie-stripped")
    except Exception as e:
        pytest.fail("building tests/scenarios/leaky failed: %s" % e, pytrace=False)


def _numgoroutine(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/numgoroutine" % port, timeout=30) as r:
        return int(r.read().decode().strip())


@needs_root
def test_top_json_counts(leaky, gotrace_bin):
    with gobuild.run_fixture_server(leaky, args=ARGS) as (proc, ready):
        port = int(ready[1])
        before = _numgoroutine(port)
        doc = gobuild.gotrace_json("top", "-p", str(proc.pid), "-b", "-d", "3", "-i", "0.5")
        after = _numgoroutine(port)
        assert proc.poll() is None
    total = doc["goroutines"]["total"]
    assert min(before, after) - 2 <= total <= max(before, after) + 2, (total, before, after)
    assert doc["pid"] == proc.pid and doc["go_version"] == gobuild.go_version(NEWEST)
    assert doc["mode"] == "census" and doc["target_exited"] is False
    assert doc["goroutines"]["by_wait_reason"]["chan receive"] == 30
    assert sum(doc["goroutines"]["by_state"].values()) == total
    spawn = [s for s in doc["sites"] if s["created_at"] and
             s["created_at"]["function"] == "main.spawn"]
    assert len(spawn) == 1 and spawn[0]["count"] == 30 + 10 + 5 + 5 + 2, spawn
    assert spawn[0]["growth_per_min"] == 0
    assert doc["leak_suspects"] == [], "a program that does not grow has no suspect"
    recv = [g for g in doc["blocking_sites"] if g["blocked_at"]["function"] == "main.blockRecv"]
    assert len(recv) == 1 and recv[0]["count"] == 30 and recv[0]["wait_reason"] == "chan receive"
    assert recv[0]["oldest_blocked_s"] >= 2.5
    assert doc["health"]["censuses"] >= 6 and doc["reads_failed"] == 0


@needs_root
def test_top_target_exits(leaky, gotrace_bin):
    """The target dies while watched: a message, its last state, exit 0, no hang."""
    with gobuild.run_fixture_server(leaky, args=ARGS) as (proc, ready):
        top = subprocess.Popen([gotrace_bin, "top", "-p", str(proc.pid), "-b", "-i", "0.2",
                                "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        time.sleep(1.5)
        os.kill(proc.pid, signal.SIGKILL)
        try:
            out, err = top.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            top.kill()
            pytest.fail("gotrace top did not notice its target exiting")
    assert top.returncode == 0, err
    assert err.strip().splitlines() == [err.strip()] and "exited" in err, err
    doc = json.loads(out)
    assert doc["target_exited"] is True
    assert doc["goroutines"]["by_wait_reason"]["chan receive"] == 30


@needs_root
def test_top_screen(leaky, gotrace_bin):
    """`gotrace -p PID` in a terminal draws the view, and q quits."""
    with gobuild.run_fixture_server(leaky, args=ARGS) as (proc, _):
        pid, fd = pty.fork()
        if pid == 0:
            os.environ["TERM"] = "xterm"
            os.execv(gotrace_bin, [gotrace_bin, "-p", str(proc.pid)])
        screen = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and b"main.blockRecv" not in screen:
            r, _, _ = select.select([fd], [], [], 0.5)
            if r:
                try:
                    screen += os.read(fd, 65536)
                except OSError:
                    break
        os.write(fd, b"q")
        status = None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            try:
                select.select([fd], [], [], 0.2)
                os.read(fd, 65536)
            except OSError:
                pass
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("gotrace -p did not quit on q")
        os.close(fd)
        assert proc.poll() is None
    text = screen.decode(errors="replace")
    assert "LEAK SUSPECTS" in text and "main.blockRecv" in text, text[-2000:]
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status


def test_top_needs_a_terminal(gotrace_bin):
    r = gobuild.gotrace("top", "-p", str(os.getpid()))
    assert r.returncode != 0 and "-b" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr


@needs_root
def test_top_heap_section(gotrace_bin):
    """The GC line and heap growth suspects of `top`, against the program's ReadMemStats."""
    path = gobuild.build("heap", NEWEST, "stripped")
    with gobuild.run_fixture_server(path, args=["-mode", "mapcache"]) as (proc, ready):
        port = int(ready[1])
        doc = gobuild.gotrace_json("top", "-p", str(proc.pid), "-b", "-d", "12", "-i", "4")
        with urllib.request.urlopen("http://127.0.0.1:%d/memstats" % port, timeout=30) as r:
            ms = json.loads(r.read().decode())
        assert proc.poll() is None
    gc = doc["gc"]
    assert gc is not None, doc.get("heap_unavailable")
    # NumGC read after gotrace's last look: gotrace's count is at most that, and recent.
    assert ms["NumGC"] - 10 <= gc["cycles"] <= ms["NumGC"], (gc, ms["NumGC"])
    assert gc["cycles_watched"] >= 2 and gc["pause_total_ns"] <= ms["PauseTotalNs"]
    sus = [s for s in doc["heap_growth_suspects"] if s["function"] == "main.cacheAdd"]
    assert sus and sus[0]["growth_bytes_per_min"] > 0, doc["heap_growth_suspects"]
    assert doc["leak_suspects"] == []


@needs_root
def test_top_target_execs(gotrace_bin):
    """The target replaces its program (exec, same PID): top stops reading it and says so."""
    path = gobuild.build("leaky", NEWEST, "stripped")
    with gobuild.run_fixture_server(path, args=ARGS) as (proc, ready):
        port = int(ready[1])
        top = subprocess.Popen([gotrace_bin, "top", "-p", str(proc.pid), "-b", "-i", "0.2",
                                "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        time.sleep(1.5)
        with urllib.request.urlopen("http://127.0.0.1:%d/exec" % port, timeout=10) as r:
            assert r.read().decode().strip() == "exec"
        try:
            out, err = top.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            top.kill()
            pytest.fail("gotrace top did not notice its target exec'ing")
        assert open("/proc/%d/comm" % proc.pid).read().strip() == "sleep"
    assert top.returncode == 0, err
    assert "exec" in err and len(err.strip().splitlines()) == 1, err
    doc = json.loads(out)
    assert doc["target_exited"] is True and doc["target_end"] == "exec"
    assert doc["goroutines"]["by_wait_reason"]["chan receive"] == 30
