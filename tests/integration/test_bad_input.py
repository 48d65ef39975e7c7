"""Bad input to `gotrace inspect` and `gotrace symbolize`: each gives exactly one error line on
stderr naming the problem, a non-zero exit, no crash (no signal, no sanitizer report) and no
hang (10 s); with --json, stdout is {"error": "<the same line>"}.
"""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile

import pytest

import gobuild

TIMEOUT = 10
NEWEST = gobuild.MINORS[-1]
CRASH = re.compile(r"Segmentation|AddressSanitizer|UndefinedBehaviorSanitizer|runtime error|"
                   r"core dumped|Aborted|double free|stack smashing", re.I)


@pytest.fixture(scope="module")
def workdir():
    d = tempfile.mkdtemp(prefix="gotrace-bad-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d)


@pytest.fixture(scope="module")
def gobin(inspectme_builds):
    return inspectme_builds[(NEWEST, "default")]


def run(args, json_out, prefix=()):
    cmd = list(args[:1]) + (["--json"] if json_out else []) + list(args[1:])
    try:
        r = gobuild.gotrace(*cmd, timeout=TIMEOUT, prefix=prefix)
    except subprocess.TimeoutExpired:
        pytest.fail("gotrace %s hung (> %d s)" % (" ".join(cmd), TIMEOUT))
    return r


def check_error(r, pattern, must_name=None, json_out=False):
    """One-line error matching PATTERN (and containing MUST_NAME), exit != 0, no crash."""
    assert r.returncode > 0, "exit %d (negative = killed by signal %s); stderr: %s" % (
        r.returncode, -r.returncode if r.returncode < 0 else "-", r.stderr)
    assert not CRASH.search(r.stderr + r.stdout), r.stderr
    lines = r.stderr.strip("\n").splitlines()
    assert len(lines) == 1, "want one error line, got %d:\n%s" % (len(lines), r.stderr)
    line = lines[0]
    assert line.startswith("gotrace: "), line
    assert re.search(pattern, line, re.I), "error line %r does not say /%s/" % (line, pattern)
    if must_name is not None:
        assert must_name in line, "error line %r does not name %r" % (line, must_name)
    if json_out:
        doc = json.loads(r.stdout)
        assert set(doc) == {"error"}, doc
        assert doc["error"] in (line, line[len("gotrace: "):]), (doc, line)
    else:
        assert r.stdout == "", "stdout on error: %r" % r.stdout[:300]
    return line


CMDS = [pytest.param(("inspect",), id="inspect"), pytest.param(("symbolize",), id="symbolize")]
# Commands on a live process only.
PID_CMDS = CMDS + [pytest.param(("goroutines",), id="goroutines"),
                   pytest.param(("top",), id="top")]
JSON = [pytest.param(False, id="text"), pytest.param(True, id="json")]


def path_args(cmd, path):
    return [cmd[0], path] + (["0x401000"] if cmd[0] == "symbolize" else [])


def pid_args(cmd, pid):
    extra = {"symbolize": ["0x401000"], "top": ["-b", "-d", "1"]}.get(cmd[0], [])
    return [cmd[0], "-p", str(pid)] + extra


# ---------------------------------------------------------------- files

def make_text_file(d):
    p = os.path.join(d, "notes.txt")
    with open(p, "w") as f:
        f.write("this is not an executable\n" * 50)
    return p


def make_truncated(d, src):
    p = os.path.join(d, "truncated")
    with open(src, "rb") as f, open(p, "wb") as g:
        g.write(f.read(64 * 1024))
    return p


def make_patched_version(d, src, new):
    """Copy SRC with the version in .go.buildinfo replaced by NEW (same length)."""
    old = gobuild.go_version(NEWEST).encode()
    new = new.encode()
    assert len(new) == len(old), (old, new)
    sec = gobuild.elf_sections(src)[".go.buildinfo"]
    data = bytearray(open(src, "rb").read())
    region = data[sec.offset: sec.offset + sec.size]
    i = region.find(old)
    assert i >= 0, "%s not in .go.buildinfo" % old
    data[sec.offset + i: sec.offset + i + len(old)] = new
    p = os.path.join(d, "version-" + new.decode())
    open(p, "wb").write(data)
    os.chmod(p, 0o755)
    return p


def make_corrupt_header(d, src):
    """Garbage over the pclntab header (magic kept) and its first function-table words."""
    sec = gobuild.pclntab_section(gobuild.elf_sections(src))
    data = bytearray(open(src, "rb").read())
    rng = random.Random(1)
    for i in range(8, 8 + 8 * 8):
        data[sec.offset + i] = rng.randrange(256)
    p = os.path.join(d, "corrupt-header")
    open(p, "wb").write(data)
    return p


def make_corrupt_body(d, src, seed):
    """Random bytes over random places of the pclntab after its header (fixed SEED)."""
    sec = gobuild.pclntab_section(gobuild.elf_sections(src))
    data = bytearray(open(src, "rb").read())
    rng = random.Random(seed)
    for _ in range(2000):
        at = sec.offset + 64 + rng.randrange(sec.size - 64)
        for j in range(rng.choice((1, 4, 16))):
            if at + j < sec.offset + sec.size:
                data[at + j] = rng.randrange(256)
    p = os.path.join(d, "corrupt-body-%d" % seed)
    open(p, "wb").write(data)
    return p


@pytest.mark.parametrize("cmd", CMDS)
@pytest.mark.parametrize("json_out", JSON)
def test_not_elf(workdir, gotrace_bin, cmd, json_out):
    p = make_text_file(workdir)
    check_error(run(path_args(cmd, p), json_out), r"\bELF\b", p, json_out)


@pytest.mark.parametrize("cmd", CMDS)
@pytest.mark.parametrize("json_out", JSON)
def test_elf_not_go(gotrace_bin, cmd, json_out):
    check_error(run(path_args(cmd, "/bin/ls"), json_out), r"not a Go|no .*gopclntab|not Go",
                "/bin/ls", json_out)


@pytest.mark.parametrize("cmd", CMDS)
@pytest.mark.parametrize("json_out", JSON)
def test_truncated(workdir, gobin, gotrace_bin, cmd, json_out):
    p = make_truncated(workdir, gobin)
    check_error(run(path_args(cmd, p), json_out),
                r"truncat|corrupt|invalid|malformed|short|beyond|outside|past the end|bad",
                p, json_out)


@pytest.mark.parametrize("cmd", CMDS)
@pytest.mark.parametrize("json_out", JSON)
def test_corrupt_pclntab_header(workdir, gobin, gotrace_bin, cmd, json_out):
    p = make_corrupt_header(workdir, gobin)
    check_error(run(path_args(cmd, p), json_out),
                r"corrupt|invalid|malformed|bad|out of range|inconsistent|truncat", p, json_out)


@pytest.mark.parametrize("seed", range(1, 6))
def test_corrupt_pclntab_body_no_crash(workdir, gobin, gotrace_bin, seed):
    """Scattered garbage inside the tables: gotrace may still read what it needs (exit 0,
    valid JSON) or refuse with one error line; it must never crash or hang. Symbolizing every
    function entry walks the damaged tables."""
    p = make_corrupt_body(workdir, gobin, seed)
    entries = [s.addr for s in gobuild.nm_text(NEWEST, gobin).values()][::3]
    for args in (["inspect", p, "--functions"], ["symbolize", p, "-"]):
        for json_out in (False, True):
            try:
                r = gobuild.gotrace(args[0], *(["--json"] if json_out else []), *args[1:],
                                    input="".join("%#x\n" % a for a in entries), timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                pytest.fail("gotrace %s hung" % " ".join(args))
            if r.returncode == 0:
                assert not CRASH.search(r.stderr), r.stderr
                if json_out:
                    json.loads(r.stdout)
            else:
                check_error(r, r".", None, json_out)


@pytest.mark.parametrize("cmd", CMDS)
@pytest.mark.parametrize("json_out", JSON)
def test_go_too_old(workdir, gobin, gotrace_bin, cmd, json_out):
    new = "go1.16" + gobuild.go_version(NEWEST)[len("go1.27"):]
    p = make_patched_version(workdir, gobin, new)
    check_error(run(path_args(cmd, p), json_out), r"go1\.16", p, json_out)


def test_go_too_new(workdir, gobin, gotrace_bin):
    """Newer than the tables: refused, and with --force reported as unsupported."""
    new = "go1.%d" % (NEWEST + 1) + gobuild.go_version(NEWEST)[len("go1.27"):]
    p = make_patched_version(workdir, gobin, new)
    line = check_error(run(["inspect", p], False), r"unsupported", p)
    assert "go1.%d" % (NEWEST + 1) in line and "go1.%d" % NEWEST in line, line
    doc = gobuild.gotrace_json("inspect", "--force", p)
    assert doc["supported"] is False and doc["offsets"] == {}
    assert doc["go_version"] == new and doc["probes"]


@pytest.mark.parametrize("cmd", [pytest.param(("goroutines",), id="goroutines"),
                                 pytest.param(("top",), id="top")])
@pytest.mark.parametrize("json_out", JSON)
def test_go_too_new_process(workdir, gobin, gotrace_bin, cmd, json_out):
    """A running program built by a Go newer than the tables: refused, never guessed."""
    new = "go1.%d" % (NEWEST + 1) + gobuild.go_version(NEWEST)[len("go1.27"):]
    p = make_patched_version(workdir, gobin, new)
    with gobuild.run_fixture_server(p) as (proc, _):
        r = run(pid_args(cmd, proc.pid), json_out)
    line = check_error(r, r"unsupported", None, json_out)
    assert "go1.%d" % (NEWEST + 1) in line, line


@pytest.mark.parametrize("cmd", CMDS)
@pytest.mark.parametrize("json_out", JSON)
def test_nonexistent_path(workdir, gotrace_bin, cmd, json_out):
    p = os.path.join(workdir, "does-not-exist")
    check_error(run(path_args(cmd, p), json_out), r"no such file|not found|does not exist",
                p, json_out)


# ---------------------------------------------------------------- processes

def free_pid():
    pid_max = int(open("/proc/sys/kernel/pid_max").read())
    for pid in range(pid_max - 1, 1, -1):
        if not os.path.exists("/proc/%d" % pid):
            return pid
    raise AssertionError("no free PID")


@pytest.mark.parametrize("cmd", PID_CMDS)
@pytest.mark.parametrize("json_out", JSON)
def test_nonexistent_pid(gotrace_bin, cmd, json_out):
    pid = free_pid()
    check_error(run(pid_args(cmd, pid), json_out),
                r"no such process|not found|does not exist|not running|no process", str(pid),
                json_out)


@pytest.mark.parametrize("cmd", PID_CMDS)
@pytest.mark.parametrize("json_out", JSON)
def test_kernel_thread(gotrace_bin, cmd, json_out):
    assert open("/proc/2/comm").read().strip() == "kthreadd"
    check_error(run(pid_args(cmd, 2), json_out), r"kernel thread|no executable|has no exe",
                "2", json_out)


@pytest.mark.parametrize("cmd", PID_CMDS)
@pytest.mark.parametrize("json_out", JSON)
def test_non_go_process(gotrace_bin, cmd, json_out):
    proc = subprocess.Popen(["sleep", "30"])
    try:
        r = run(pid_args(cmd, proc.pid), json_out)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    check_error(r, r"not a Go|no .*gopclntab|not Go", None, json_out)
    line = r.stderr.strip()
    assert str(proc.pid) in line or "sleep" in line, line


# ---------------------------------------------------------------- permissions (as nobody)

AS_NOBODY = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")


@pytest.fixture(scope="module")
def nobody_ok(gotrace_bin):
    r = subprocess.run([*AS_NOBODY, gotrace_bin, "--version"], capture_output=True, text=True,
                       timeout=TIMEOUT)
    assert r.returncode == 0, "cannot run gotrace as nobody via setpriv: %s" % r.stderr


@pytest.mark.parametrize("cmd", CMDS)
@pytest.mark.parametrize("json_out", JSON)
def test_unreadable_file(workdir, gobin, nobody_ok, cmd, json_out):
    p = os.path.join(workdir, "unreadable")
    shutil.copyfile(gobin, p)
    os.chmod(p, 0)
    check_error(run(path_args(cmd, p), json_out, prefix=AS_NOBODY),
                r"permission denied|not permitted|cannot read|cannot open", p, json_out)


@pytest.mark.parametrize("cmd", PID_CMDS)
@pytest.mark.parametrize("json_out", JSON)
def test_other_users_process(gobin, nobody_ok, cmd, json_out):
    """A Go process of root, inspected as nobody: /proc/PID/exe is not readable."""
    with gobuild.run_fixture_server(gobin) as (proc, _):
        r = run(pid_args(cmd, proc.pid), json_out, prefix=AS_NOBODY)
    check_error(r, r"permission denied|not permitted|cannot read|cannot open|access",
                str(proc.pid), json_out)


def test_no_bpf_privileges(workdir, gobin, nobody_ok):
    """Without the rights to load BPF, `trace` says so in one line; the census still works."""
    p = os.path.join(workdir, "mine")
    shutil.copyfile(gobin, p)
    os.chmod(p, 0o755)
    proc = subprocess.Popen([*AS_NOBODY, p, "serve"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = gobuild._read_line(proc, 20)
        assert line and line.startswith("ready"), line
        r = run(["trace", "-p", str(proc.pid), "-d", "1"], False, prefix=AS_NOBODY)
        check_error(r, r"root|CAP_BPF|permission", None, False)
        ok = run(["goroutines", "-p", str(proc.pid)], False, prefix=AS_NOBODY)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert ok.returncode == 0 or "not permitted" in ok.stderr or "ptrace" in ok.stderr, ok.stderr
